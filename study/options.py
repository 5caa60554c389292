"""The launcher's options: the parser, the checked :class:`Options`, and the space check.

Everything here runs before Ray starts and before any data is read, so a bad option costs
nothing: each check raises :class:`LaunchError` naming the option and the value it got.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netinv import __version__
from netinv.cli_logging import add_logging_options
from netinv.config import DATASET_NAMES, FOLDER_PREFIX, Config, resolve_dataset_name
from netinv.metrics import METRIC_NAMES
from netinv.presets import PRESETS, get_preset
from netinv.scores import FITTED_SCORES, SCORES
from study import layout, spaces, storage
from study.objective import DEFAULT_OBJECTIVE, Objective

SAMPLERS = ("tpe", "random", "gp", "nsga2")
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"
SEED_MAX = 2**32 - 1  # numpy's and Optuna's samplers take seeds in [0, 2**32 - 1]
DEFAULT_SAMPLES = 20
SMOKE_SAMPLES = 2
DEFAULT_GPU_FRACTION = 0.25  # --gpus-per-trial when a GPU is there and the option is not given


class LaunchError(ValueError):
    """A launch option or the search space is invalid; raised before Ray starts."""


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The launcher's argument parser; ``description`` is the ``--help`` text above the flags."""
    p = argparse.ArgumentParser(prog="python -m study.launch", description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"netinv-study {__version__}")
    p.add_argument("--space", default=None,
                   help="built-in space name (default, quick, paper) or a .py file "
                        "(default: default)")
    p.add_argument("--preset", default=None,
                   help="named config (netinv/presets.py) under every trial: the space's "
                        "suggestions and the options here win over it, it wins over the "
                        "space's constants (default: none)")
    p.add_argument("--name", default=None,
                   help="study name; the same name again continues its Optuna study "
                        "(default: the space's name)")
    p.add_argument("--num-samples", type=int, default=None,
                   help=f"trials to run (default: {DEFAULT_SAMPLES})")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="trials at once (default: as many as the cluster's CPUs/GPUs fit)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0,
                   help="CPUs per trial, also torch's thread count (default: 1)")
    p.add_argument("--gpus-per-trial", type=float, default=None,
                   help="fraction of one GPU, 0 < F <= 1, or 0 for none "
                        f"(default: {DEFAULT_GPU_FRACTION:g} with a GPU, else 0)")
    p.add_argument("--num-gpus", type=float, default=None,
                   help="GPUs a local Ray instance declares; logical ones allow fractional "
                        "scheduling without a GPU (default: the GPUs torch sees)")
    p.add_argument("--id", default=None, help="ID dataset: a name or folder:PATH, an image-"
                   "folder tree (default: the space's, else mnist)")
    p.add_argument("--ood", default=None,
                   help="comma list of OOD datasets, names or folder:PATH (default: the space's)")
    p.add_argument("--objective", default=None,
                   help="score:metric, mean over OOD sets on the val split; metric one of "
                        f"{', '.join(METRIC_NAMES)}; fpr95 (ID positive) and "
                        "fpr95_ood_positive (OpenOOD's) are minimised "
                        f"(default: {DEFAULT_OBJECTIVE})")
    p.add_argument("--sampler", default=None, choices=SAMPLERS,
                   help="Optuna sampler; nsga2 maximises ID val accuracy and the objective "
                        "together (default: tpe)")
    p.add_argument("--asha", dest="asha", action="store_true", default=None,
                   help="let ASHA stop weak trials after round 1 (default)")
    p.add_argument("--no-asha", dest="asha", action="store_false", help="run every trial out")
    p.add_argument("--no-round0-cache", dest="round0_cache", action="store_false",
                   help="every trial trains its own round 0 instead of sharing it with the "
                        "trials of its node that have the same round-0 settings (default: "
                        "share, via $NETINV_CACHE/round0)")
    p.add_argument("--seed", type=int, default=None,
                   help=f"rounds/seed of every trial, 0..{SEED_MAX}; the sampler's seed is "
                        "derived from it per launch (default: 0)")
    p.add_argument("--data-root", default=None,
                   help="folder with the datasets (default: $NETINV_DATA, else the cache)")
    p.add_argument("--storage", default="./studies",
                   help="folder or URI (s3://...) of studies (default: ./studies)")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join: auto or ray://host:10001 "
                        "(default: start a local instance)")
    p.add_argument("--resume", action="store_true",
                   help="finish the interrupted Tune run of the study in --storage/--name "
                        "(other options are read from its study.json)")
    p.add_argument("--smoke-test", action="store_true",
                   help="quick space, 2 trials, no ASHA: checks the whole path in minutes")
    watch = p.add_argument_group("watching (study.watch; not saved in study.json)")
    watch.add_argument("--ray-table", action="store_true",
                       help="Ray Tune's full trial table instead of the compact live display")
    watch.add_argument("--mlflow", nargs="?", const="", default=None, metavar="URI",
                       help="log trials to MLflow (Ray Tune's MLflowLoggerCallback); URI "
                            "default: sqlite:///<study>/mlflow.db (needs the mlflow extra)")
    add_logging_options(p)
    return p


@dataclass(frozen=True)
class WatchOptions:
    """How a launch is watched; display only, so not part of :class:`Options` or study.json."""

    ray_table: bool = False
    mlflow: str | None = None  # None: off; "": the default URI; else the tracking URI
    quiet: bool = False


def parse_watch_options(argv: list[str] | None) -> tuple[WatchOptions, argparse.Namespace]:
    """The watching and logging options of ``argv`` (parsed again; checked by parse_options)."""
    a = build_parser().parse_args(argv)
    return WatchOptions(ray_table=a.ray_table, mlflow=a.mlflow, quiet=a.quiet), a


@dataclass
class Options:
    """One launch, checked. ``study.json`` records these fields under ``options``."""

    space: str
    name: str
    num_samples: int
    max_concurrent: int | None
    cpus_per_trial: float
    gpus_per_trial: float
    num_gpus: float | None
    id: str | None
    ood: list[str] | None
    objective: str
    sampler: str
    asha: bool
    seed: int
    data_root: str | None
    storage: str
    address: str | None
    resume: bool
    smoke_test: bool
    preset: str | None = None  # netinv.presets name; None = none (study.json files before it)
    round0_cache: bool = True  # share round 0 between trials (netinv.round0_cache)

    @property
    def study_dir(self) -> str:
        """``<storage>/<name>``: the study folder, a local path or a URI."""
        return storage.join(self.storage, self.name)

    @property
    def mode(self) -> str:
        """``"max"`` or ``"min"``: the direction of the objective."""
        return Objective.parse(self.objective).mode


def visible_gpus() -> int:
    """GPUs torch sees on this machine (0 without CUDA)."""
    import torch

    return torch.cuda.device_count()


def parse_objective(text: str) -> str:
    """Check ``score:metric`` against netinv's scores and metrics; returns it normalised."""
    try:
        return Objective.parse(text).name
    except ValueError:
        raise LaunchError(f"--objective must be score:metric with score in "
                          f"{', '.join((*SCORES, *FITTED_SCORES))} and metric in "
                          f"{', '.join(METRIC_NAMES)}, got {text!r}.") from None


def parse_options(argv: list[str] | None, description: str | None = None) -> Options:
    """Parse and check every option (no Ray, no data); raises LaunchError naming the value.

    With ``--resume`` the options come from ``<storage>/<name>/study.json``, except ``name``,
    ``storage`` (the folder the user named is the study, even when it was copied or renamed),
    ``address`` and ``num_gpus``.
    """
    a = build_parser(description).parse_args(argv)
    _check_numbers(a)
    root = _resolve_storage(a.storage)
    if a.resume:
        return _resume_options(a, root)
    smoke = a.smoke_test
    space = a.space or ("quick" if smoke else "default")
    name = a.name or ("smoke-test" if smoke else Path(space).stem)
    _check_name(name)
    num_samples = a.num_samples if a.num_samples is not None else (
        SMOKE_SAMPLES if smoke else DEFAULT_SAMPLES)
    if num_samples < 1:
        raise LaunchError(f"--num-samples must be >= 1, got {num_samples}.")
    gpus = a.gpus_per_trial
    if gpus is None:
        gpus = DEFAULT_GPU_FRACTION if (a.num_gpus or visible_gpus()) else 0.0
    if a.preset is not None and a.preset not in PRESETS:
        raise LaunchError(f"--preset must be one of {', '.join(PRESETS)}, got {a.preset!r}.")
    if a.id is not None and not _known_dataset(a.id):
        raise LaunchError(f"--id (data/id) must be one of {', '.join(DATASET_NAMES)} or "
                          f"{FOLDER_PREFIX}PATH, got {a.id!r}.")
    ood = None
    if a.ood is not None:
        ood = [item.strip() for item in a.ood.split(",") if item.strip()]
        unknown = [item for item in ood if not _known_dataset(item)]
        if unknown or not ood:
            raise LaunchError(f"--ood (data/ood) must be a comma list of "
                              f"{', '.join(DATASET_NAMES)} or {FOLDER_PREFIX}PATH, "
                              f"got {a.ood!r}.")
    return Options(space=space, name=name, num_samples=num_samples,
                   max_concurrent=a.max_concurrent, cpus_per_trial=a.cpus_per_trial,
                   gpus_per_trial=gpus, num_gpus=a.num_gpus, id=a.id, ood=ood,
                   objective=parse_objective(a.objective or DEFAULT_OBJECTIVE),
                   sampler=a.sampler or "tpe", asha=(not smoke) if a.asha is None else a.asha,
                   seed=0 if a.seed is None else a.seed,
                   data_root=a.data_root if a.data_root else os.environ.get("NETINV_DATA"),
                   storage=root, address=a.address, resume=False, smoke_test=smoke,
                   preset=a.preset, round0_cache=a.round0_cache)


def _check_numbers(a: argparse.Namespace) -> None:
    """The numeric options: finite, inside their ranges (None = not given)."""
    if a.seed is not None and not 0 <= a.seed <= SEED_MAX:
        raise LaunchError(f"--seed must lie in [0, {SEED_MAX}], got seed={a.seed}.")
    if a.max_concurrent is not None and a.max_concurrent < 1:
        raise LaunchError(f"--max-concurrent must be >= 1, got {a.max_concurrent}.")
    if not (math.isfinite(a.cpus_per_trial) and a.cpus_per_trial > 0):
        raise LaunchError(f"--cpus-per-trial must be a finite number > 0, got "
                          f"{a.cpus_per_trial:g}.")
    gpus = a.gpus_per_trial
    if gpus is not None and not (gpus == 0 or 0 < gpus <= 1):
        raise LaunchError(f"--gpus-per-trial must lie in (0, 1], or be 0 for none, "
                          f"got {gpus:g}.")
    if a.num_gpus is not None and not (math.isfinite(a.num_gpus) and a.num_gpus >= 0):
        raise LaunchError(f"--num-gpus must be a finite number >= 0, got {a.num_gpus:g}.")


def _check_name(name: str) -> None:
    if not re.fullmatch(NAME_PATTERN, name):
        raise LaunchError(f"--name must match {NAME_PATTERN} (it names folders), got {name!r}.")


def _resolve_storage(text: str) -> str:
    """``--storage`` as an absolute path or a URI; a local one must be a writable folder."""
    if "://" in text:
        return text.rstrip("/")
    path = Path(text).expanduser().resolve()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise LaunchError(f"--storage must be a folder (or not exist yet), but {existing} is a "
                          f"file, got storage={text!r}.")
    try:  # the real test (root ignores permission bits; read-only mounts refuse even root)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise LaunchError(f"--storage must be a folder this process can write, but {existing} "
                          f"refuses a file ({err.strerror}), got storage={text!r}.") from None
    return str(path)


def _resume_options(a: argparse.Namespace, root: str) -> Options:
    """The options of the study in ``<root>/<a.name>``, keyed by the name the user gave."""
    if not a.name:
        raise LaunchError("--resume needs --name, the study to resume.")
    _check_name(a.name)
    study_dir = storage.join(root, a.name)
    saved = layout.read_study_file(study_dir)
    if saved is None:
        raise LaunchError(f"--resume needs an earlier launch of --name {a.name}: no "
                          f"{layout.STUDY_FILE} in {study_dir}.")
    options = saved.get("options")
    fields = {f.name for f in dataclasses.fields(Options)}
    required = {f.name for f in dataclasses.fields(Options)
                if f.default is dataclasses.MISSING}
    if not isinstance(options, dict) or not required <= set(options) <= fields:
        got = sorted(options) if isinstance(options, dict) else type(options).__name__
        raise LaunchError(f"{layout.study_file(study_dir)} must hold the launch options "
                          f"{', '.join(sorted(required))} under 'options', got {got}.")
    num_gpus = a.num_gpus if a.num_gpus is not None else options["num_gpus"]
    return Options(**{**options, "name": a.name, "storage": root, "resume": True,
                      "address": a.address, "num_gpus": num_gpus})


def _known_dataset(name: str) -> bool:
    """A built-in dataset name or ``folder:PATH`` with a path."""
    return name in DATASET_NAMES or (name.startswith(FOLDER_PREFIX)
                                     and bool(name[len(FOLDER_PREFIX):].strip()))


def fixed_settings(opts: Options) -> dict[str, Any]:
    """Flat config settings the launcher fixes for every trial (they override the space)."""
    fixed: dict[str, Any] = {"rounds/seed": opts.seed}
    # folder:PATH made absolute here: trials run in other working directories
    if opts.id is not None:
        fixed["data/id"] = resolve_dataset_name(opts.id)
    if opts.ood is not None:
        fixed["data/ood"] = [resolve_dataset_name(name) for name in opts.ood]
    if opts.data_root is not None:
        fixed["data/root"] = str(Path(opts.data_root).expanduser().resolve())
    if opts.gpus_per_trial == 0:
        fixed["rounds/device"] = "cpu"
    return fixed


def preset_settings(opts: Options) -> dict[str, Any]:
    """The flat settings of ``--preset`` (the base of every trial); {} without one."""
    return get_preset(opts.preset) if opts.preset else {}


def check_space(opts: Options) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    """Load and validate the space with the preset and fixed settings.

    A trial's config: space constants < preset < suggestions < fixed.

    Returns:
        (the space function, the fixed settings, 16 sampled flat configs).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        fn, _ = spaces.load_space(opts.space)
        fixed = fixed_settings(opts)
        suggested = set(spaces.suggested_keys(fn, seed=opts.seed))
        # validate_space applies its base over the suggestions: leave the suggested keys out
        base = {k: v for k, v in preset_settings(opts).items() if k not in suggested}
        samples = spaces.validate_space(fn, {**base, **fixed}, samples=16, seed=opts.seed)
        clash = suggested & set(fixed)
    except spaces.SpaceError as exc:
        raise LaunchError(str(exc)) from exc
    if clash:
        raise LaunchError(f"the space searches {', '.join(sorted(clash))}, which the launcher "
                          f"fixes from its options; drop the option or the suggestion.")
    score = Objective.parse(opts.objective).score
    # a searched switch may turn it off in a trial the 16 samples missed
    if score in FITTED_SCORES and ("rounds/fitted_scores" in suggested or not all(
            Config.from_flat(s).rounds.fitted_scores for s in samples)):
        raise LaunchError(f"--objective {opts.objective} needs rounds/fitted_scores true in "
                          f"every trial (the fitted scores are computed only then): set it in "
                          f"the space or the preset.")
    return fn, fixed, samples
