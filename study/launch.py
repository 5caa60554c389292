"""Launch (or continue, or resume) a hyperparameter study: Ray Tune trials, Optuna's sampler.

    python -m study.launch --smoke-test
    python -m study.launch --space quick --name q1 --num-samples 4 --data-root ../shared/data
    python -m study.launch --space default --name mnist-ue --num-samples 64 \\
        --objective ue_tiered:auroc --gpus-per-trial 0.25 --address auto --storage s3://b/studies
    python -m study.launch --preset fashionmnist --name fm --data-root ../shared/data
    python -m study.launch --name mnist-ue --resume          # after a crash or Ctrl+C
    optuna-dashboard studies/mnist-ue/optuna.journal          # the Optuna side, live

Running the same ``--name`` again continues (warm-starts) the same Optuna study with new trials;
``--resume`` instead finishes the interrupted Tune run (unfinished trials continue from their
last finished round). Results: ``<storage>/<name>/results/{trials,rounds,ood}`` (Parquet, see
:mod:`study.results`), artifacts per trial, ``optuna.journal`` and ``study.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from netinv import __version__
from netinv.config import Config, resolve_dataset_name
from netinv.metrics import METRIC_NAMES
from netinv.presets import PRESETS, get_preset
from netinv.scores import SCORES
from study import layout, storage
from study import results as R
from study import spaces
from study.objective import DEFAULT_OBJECTIVE, Objective

log = logging.getLogger("study.launch")

SAMPLERS = ("tpe", "random", "gp", "nsga2")
MAX_FAILURES = 2  # Tune retries per trial (from its last checkpoint)
CHECKPOINTS_TO_KEEP = 2
ASHA_GRACE_ROUNDS = 2  # reports before ASHA may stop a trial: round 0 and round 1
ASHA_REDUCTION_FACTOR = 3
ASHA_MAX_T = 101  # reports of the longest possible trial: rounds/count <= 100, plus round 0
REPORT_EVERY_S = 15  # seconds between progress tables
LEADERBOARD_SIZE = 5
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"
LOCAL_AUTH_MODE = "disabled"  # RAY_AUTH_MODE for a local instance when the user set none
CLUSTER_CONFIG = "~/ray_bootstrap_config.yaml"  # where `ray up` puts its config on the head


class LaunchError(ValueError):
    """A launch option or the search space is invalid; raised before Ray starts."""


# ----------------------------------------------------------------------------- options


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m study.launch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"netinv-study {__version__}")
    p.add_argument("--space", default=None,
                   help="built-in space name (default, quick, paper) or a .py file "
                        "(default: default)")
    p.add_argument("--preset", default=None,
                   help="named config (netinv.presets) under every trial: the space's "
                        "suggestions and the options here win over it, it wins over the "
                        "space's constants (default: none)")
    p.add_argument("--name", default=None,
                   help="study name; the same name again continues its Optuna study "
                        "(default: the space's name)")
    p.add_argument("--num-samples", type=int, default=None, help="trials to run (default: 20)")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="trials at once (default: as many as the cluster's CPUs/GPUs fit)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0,
                   help="CPUs per trial, also torch's thread count (default: 1)")
    p.add_argument("--gpus-per-trial", type=float, default=None,
                   help="fraction of one GPU, 0 < F <= 1, or 0 for none "
                        "(default: 0.25 with a GPU, else 0)")
    p.add_argument("--num-gpus", type=float, default=None,
                   help="GPUs a local Ray instance declares; logical ones allow fractional "
                        "scheduling without a GPU (default: the GPUs torch sees)")
    p.add_argument("--id", default=None, help="ID dataset: a name or folder:PATH, an image-"
                   "folder tree (default: the space's, else mnist)")
    p.add_argument("--ood", default=None,
                   help="comma list of OOD datasets, names or folder:PATH (default: the space's)")
    p.add_argument("--objective", default=None,
                   help="score:metric, mean over OOD sets on the val split; fpr95 is "
                        "minimised (default: ue_tiered:auroc)")
    p.add_argument("--sampler", default=None, choices=SAMPLERS,
                   help="Optuna sampler; nsga2 maximises ID val accuracy and the objective "
                        "together (default: tpe)")
    p.add_argument("--asha", dest="asha", action="store_true", default=None,
                   help="let ASHA stop weak trials after round 1 (default)")
    p.add_argument("--no-asha", dest="asha", action="store_false", help="run every trial out")
    p.add_argument("--seed", type=int, default=None,
                   help="sampler seed and rounds/seed of every trial (default: 0)")
    p.add_argument("--data-root", default=None,
                   help="folder with the datasets (default: $NETINV_DATA, else the cache)")
    p.add_argument("--storage", default="./studies",
                   help="folder or URI (s3://...) of studies (default: ./studies)")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join: auto or ray://host:10001 "
                        "(default: start a local instance)")
    p.add_argument("--resume", action="store_true",
                   help="finish the interrupted Tune run of --name (other options are read "
                        "from its study.json)")
    p.add_argument("--smoke-test", action="store_true",
                   help="quick space, 2 trials, no ASHA: checks the whole path in minutes")
    return p


@dataclass
class Options:
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

    @property
    def study_dir(self) -> str:
        return storage.join(self.storage, self.name)

    @property
    def mode(self) -> str:
        return Objective.parse(self.objective).mode


def _resolve_storage(text: str) -> str:
    if "://" in text:
        return text.rstrip("/")
    return str(Path(text).expanduser().resolve())


def parse_objective(text: str) -> str:
    """Check ``score:metric`` against netinv's scores and metrics; returns it normalised."""
    try:
        return Objective.parse(text).name
    except ValueError:
        raise LaunchError(f"--objective must be score:metric with score in {', '.join(SCORES)} "
                          f"and metric in {', '.join(METRIC_NAMES)}, got {text!r}.") from None


def parse_options(argv: list[str] | None) -> Options:
    """Parse and check every option (no Ray, no data); raises LaunchError naming the value."""
    a = build_parser().parse_args(argv)
    root = _resolve_storage(a.storage)
    if a.resume:
        if not a.name:
            raise LaunchError("--resume needs --name, the study to resume.")
        saved = layout.read_study_file(storage.join(root, a.name))
        if saved is None:
            raise LaunchError(f"--resume needs an earlier launch of --name {a.name}: no "
                              f"{layout.STUDY_FILE} in {storage.join(root, a.name)}.")
        num_gpus = a.num_gpus if a.num_gpus is not None else saved["options"]["num_gpus"]
        opts = Options(**{**saved["options"], "resume": True, "address": a.address,
                          "storage": root, "num_gpus": num_gpus})
        return opts
    smoke = a.smoke_test
    space = a.space or ("quick" if smoke else "default")
    name = a.name or ("smoke-test" if smoke else Path(space).stem)
    if not re.fullmatch(NAME_PATTERN, name):
        raise LaunchError(f"--name must match {NAME_PATTERN} (it names folders), got {name!r}.")
    num_samples = a.num_samples if a.num_samples is not None else (2 if smoke else 20)
    if num_samples < 1:
        raise LaunchError(f"--num-samples must be >= 1, got {num_samples}.")
    if a.max_concurrent is not None and a.max_concurrent < 1:
        raise LaunchError(f"--max-concurrent must be >= 1, got {a.max_concurrent}.")
    if not a.cpus_per_trial > 0:
        raise LaunchError(f"--cpus-per-trial must be > 0, got {a.cpus_per_trial}.")
    gpus = a.gpus_per_trial
    if gpus is None:
        gpus = 0.25 if (a.num_gpus or _visible_gpus()) else 0.0
    if not (gpus == 0 or 0 < gpus <= 1):
        raise LaunchError(f"--gpus-per-trial must lie in (0, 1], or be 0 for none, "
                          f"got {gpus:g}.")
    if a.num_gpus is not None and a.num_gpus < 0:
        raise LaunchError(f"--num-gpus must be >= 0, got {a.num_gpus:g}.")
    if a.preset is not None and a.preset not in PRESETS:
        raise LaunchError(f"--preset must be one of {', '.join(PRESETS)}, got {a.preset!r}.")
    ood = None
    if a.ood is not None:
        ood = [name.strip() for name in a.ood.split(",") if name.strip()]
    sampler = a.sampler or "tpe"
    asha = (not smoke) if a.asha is None else a.asha
    return Options(space=space, name=name, num_samples=num_samples,
                   max_concurrent=a.max_concurrent, cpus_per_trial=a.cpus_per_trial,
                   gpus_per_trial=gpus, num_gpus=a.num_gpus, id=a.id, ood=ood,
                   objective=parse_objective(a.objective or DEFAULT_OBJECTIVE), sampler=sampler,
                   asha=asha, seed=0 if a.seed is None else a.seed,
                   data_root=a.data_root if a.data_root else os.environ.get("NETINV_DATA"),
                   storage=root, address=a.address, resume=False, smoke_test=smoke,
                   preset=a.preset)


def _visible_gpus() -> int:
    import torch

    return torch.cuda.device_count()


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
    """Load and validate the space with the preset and fixed settings; returns
    (fn, fixed, samples). A trial's config: space constants < preset < suggestions < fixed."""
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
    return fn, fixed, samples


def check_data(sample: dict[str, Any]) -> None:
    """Prepare the data of one sampled config on this node (fills the decoded cache)."""
    from netinv.data import DataUnavailableError
    from netinv.pipeline import prepare_data

    try:
        prepare_data(Config.from_flat(sample))
    except (DataUnavailableError, ValueError) as exc:
        raise LaunchError(f"the study's data is not usable: {exc}") from exc


# ----------------------------------------------------------------------------- study.json


def write_study_file(opts: Options, fixed: dict[str, Any]) -> None:
    """Record the launch (options, versions, seed) in ``<study>/study.json``."""
    import optuna
    import ray
    import torch

    saved = layout.read_study_file(opts.study_dir) or {"name": opts.name, "launches": []}
    launch = {
        "at": datetime.now(timezone.utc).isoformat(),
        "argv": sys.argv,
        "options": {k: v for k, v in vars(opts).items()},
        "fixed": fixed,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "ray": ray.__version__, "optuna": optuna.__version__},
    }
    space = opts.space
    if "/" in space or space.endswith(".py"):
        launch["options"]["space"] = str(Path(space).expanduser().resolve())
    saved.update({"options": launch["options"], "space": launch["options"]["space"],
                  "objective": opts.objective, "mode": opts.mode, "sampler": opts.sampler,
                  "seed": opts.seed})
    saved["launches"].append(launch)
    layout.write_study_file(opts.study_dir, saved)


# ----------------------------------------------------------------------------- searcher


def _searcher_base():
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch


class StudySearch(_searcher_base()):
    """OptunaSearch with the study's bookkeeping.

    - The launcher's fixed settings win over the space's constants (Tune lets a searcher's
      suggestion override ``param_space``, so the suggestion drops those keys); so do the
      preset's (``base_keys``) unless this trial suggested the key.
    - Each trial's config gains ``study/optuna_number`` and ``study/searched_params``, and the
      Optuna trial the user attribute ``tune_trial_id``: rows trace to Optuna and back.
    - A non-finite objective is told as FAIL (Optuna would refuse it and leave the trial
      RUNNING). A trial stopped early by ASHA stays COMPLETE with its last value, marked with
      the user attribute ``stopped_at_round``.
    """

    def __init__(self, *args: Any, fixed_keys: tuple[str, ...] = (),
                 base_keys: tuple[str, ...] = (), **kwargs: Any) -> None:
        self._fixed_keys = tuple(fixed_keys)
        self._base_keys = tuple(base_keys)
        super().__init__(*args, **kwargs)

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        if not isinstance(config, dict):
            return config
        ot_trial = self._ot_trials[trial_id]
        drop = [*self._fixed_keys, *(k for k in self._base_keys if k not in ot_trial.params)]
        for key in drop:
            section, _, field = key.partition("/")
            if isinstance(config.get(section), dict):
                config[section].pop(field, None)
        ot_trial.set_user_attr("tune_trial_id", trial_id)
        config["study"] = {"optuna_number": ot_trial.number,
                           "searched_params": json.dumps(ot_trial.params, sort_keys=True)}
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        import optuna

        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        ot_trial = self._ot_trials[trial_id]
        if result and not error:
            metrics = self.metric if isinstance(self.metric, list) else [self.metric]
            values = [result.get(m) for m in metrics]
            checked = [*values, result.get("objective")]  # this round's, whatever is told
            if any(v is not None and not math.isfinite(v) for v in checked):
                ot_trial.set_user_attr("failure", f"non-finite objective {checked}")
                self._ot_study.tell(ot_trial, None, state=optuna.trial.TrialState.FAIL)
                self._completed_trials.add(trial_id)
                return
            done, total = result.get("round"), result.get("rounds_total")
            if done is not None and total is not None and done < total:
                ot_trial.set_user_attr("stopped_at_round", int(done))
        return super().on_trial_complete(trial_id, result, error)


def make_sampler(name: str, seed: int):
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    raise LaunchError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {name!r}.")


def journal_path(study_dir: str, name: str) -> Path:
    """Where the driver keeps the Optuna journal: in the study folder when it is local, else
    in a local mirror (``$NETINV_JOURNALS``, default ``~/.cache/netinv/journals/<name>``) that
    :func:`upload_journal` copies next to the results (only the driver writes the journal)."""
    fs, path = storage.filesystem(study_dir)
    if fs.type_name == "local":
        return Path(path) / layout.JOURNAL_FILE
    root = Path(os.environ.get("NETINV_JOURNALS", Path.home() / ".cache/netinv/journals"))
    local = root.expanduser() / name / layout.JOURNAL_FILE
    remote = storage.get_bytes(storage.join(study_dir, layout.JOURNAL_FILE))
    if remote is not None and not local.exists():  # continuing a study from another machine
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(remote)
    return local


def upload_journal(study_dir: str, name: str) -> None:
    """Copy a local mirror of the journal into an object-store study folder."""
    fs, _ = storage.filesystem(study_dir)
    local = journal_path(study_dir, name)
    if fs.type_name != "local" and local.exists():
        storage.put_bytes(storage.join(study_dir, layout.JOURNAL_FILE), local.read_bytes())


def make_storage(study_dir: str, name: str):
    """Optuna's journal file storage (readable by ``optuna-dashboard <path>``)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = journal_path(study_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


# ----------------------------------------------------------------------------- callback


def _callback_base():
    from ray import tune

    return tune.Callback


class StudyCallback(_callback_base()):
    """Writes each trial's final status into its Parquet row (driver side).

    completed: all rounds ran; stopped: ASHA ended it early; failed: an error after all
    retries, with the reason the trial wrote (or Tune's error text when it could not).
    """

    def __init__(self, study_dir: str, study: str) -> None:
        self.study_dir = study_dir
        self.study = study

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from study.trainable import finish_trial

        result = trial.last_result or {}
        done, total = result.get("round"), result.get("rounds_total")
        status = R.STOPPED if (done is None or total is None or done < total) else R.COMPLETED
        finish_trial(self.study_dir, trial.trial_id, status=status, config=trial.config,
                     study=self.study)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from study.trainable import finish_trial

        finish_trial(self.study_dir, trial.trial_id, status=R.FAILED,
                     reason=_error_text(trial), config=trial.config, study=self.study)


def _error_text(trial: Any) -> str:
    path = trial.error_file
    if path and os.path.exists(path):
        lines = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]
        errors = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception)\b", ln)]
        if errors:
            return errors[-1][:500]
        if lines:
            return lines[-1][:500]
    return "the trial failed (see Tune's error.txt)"


# ----------------------------------------------------------------------------- ray


def init_ray(opts: Options) -> bool:
    """Start or join Ray; returns True when this call started it (and should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    repo = str(Path(__file__).resolve().parents[1])
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    for key in ("NETINV_CACHE", "NETINV_DATA", "RAY_AUTH_MODE"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    if opts.address is None:
        # Ray 2.60 turns token auth on for new local clusters; say so explicitly either way
        os.environ.setdefault("RAY_AUTH_MODE", LOCAL_AUTH_MODE)
        env["RAY_AUTH_MODE"] = os.environ["RAY_AUTH_MODE"]
        num_gpus = opts.num_gpus if opts.num_gpus is not None else _visible_gpus()
        ray.init(num_cpus=os.cpu_count(), num_gpus=num_gpus, include_dashboard=False,
                 runtime_env={"env_vars": env}, logging_level=logging.WARNING)
    else:
        ray.init(address=opts.address, runtime_env={"env_vars": env},
                 logging_level=logging.WARNING)
    return True


def _trials_per_node(resources: dict[str, float], need: dict[str, float]) -> int:
    return min(int(resources.get(k, 0.0) / v + 1e-9) for k, v in need.items() if v > 0)


def autoscaler_capacity(need: dict[str, float]) -> int | None:
    """Trials an autoscaling cluster fits once every worker it may start is up, or None.

    Read from the cluster launcher's config on the head (``$NETINV_CLUSTER_CONFIG``, default
    ``~/ray_bootstrap_config.yaml``, which ``ray up`` writes): each node type's ``resources``
    times its ``max_workers`` (1 for the head type). None when there is no such file.
    """
    import yaml

    path = Path(os.environ.get("NETINV_CLUSTER_CONFIG") or CLUSTER_CONFIG).expanduser()
    if not path.is_file():
        return None
    config = yaml.safe_load(path.read_text()) or {}
    limit = int(config.get("max_workers", 0))
    fits = 0
    for name, node_type in (config.get("available_node_types") or {}).items():
        count = 1 if name == config.get("head_node_type") else min(
            int(node_type.get("max_workers", limit)), limit)
        fits += count * _trials_per_node(node_type.get("resources") or {}, need)
    return fits


def check_resources(opts: Options) -> int:
    """Error when no node fits one trial; returns how many trials the cluster fits at once.

    On an autoscaling cluster (``ray up``, ``min_workers: 0``) the workers may not be up yet:
    then the node types of the autoscaler's config count, not only the live nodes.
    """
    import ray

    need = {"CPU": opts.cpus_per_trial, "GPU": opts.gpus_per_trial}
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    now = sum(_trials_per_node(res, need) for res in nodes)
    later = autoscaler_capacity(need) if opts.address is not None else None
    if not now and not later:
        have = ", ".join(f"CPU={r.get('CPU', 0):g} GPU={r.get('GPU', 0):g}" for r in nodes)
        hint = (" (declare logical GPUs with --num-gpus 1 for a local test)"
                if opts.gpus_per_trial > 0 else "")
        raise LaunchError(f"no Ray node fits one trial: each needs CPU={opts.cpus_per_trial:g} "
                          f"GPU={opts.gpus_per_trial:g}, the nodes have [{have}]{hint}; "
                          f"otherwise trials would stay PENDING forever.")
    if not now:
        print(f"no live node fits a trial yet: the autoscaler starts workers for them "
              f"(up to {later} trials at once)")
    return max(1, now, later or 0)


def check_local_resources(opts: Options) -> None:
    """Before a local Ray starts: the trial must fit this machine."""
    import ray

    if opts.address is not None or ray.is_initialized():
        return  # a running cluster is checked by check_resources
    cpus = os.cpu_count() or 1
    if opts.cpus_per_trial > cpus:
        raise LaunchError(f"--cpus-per-trial must be <= this machine's {cpus} CPUs, got "
                          f"{opts.cpus_per_trial:g}.")
    gpus = opts.num_gpus if opts.num_gpus is not None else _visible_gpus()
    if opts.gpus_per_trial > 0 and gpus < opts.gpus_per_trial:
        raise LaunchError(f"--gpus-per-trial {opts.gpus_per_trial:g} needs a GPU, this machine "
                          f"has {gpus:g}; use --gpus-per-trial 0, or --num-gpus 1 to declare a "
                          f"logical GPU for a test.")


# ----------------------------------------------------------------------------- tuner


def latest_experiment(study_dir: str) -> str | None:
    """The newest Tune experiment folder of the study, or None."""
    from ray import tune

    fs, path = storage.filesystem(storage.join(study_dir, layout.TUNE_DIR))
    import pyarrow.fs as pafs

    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return None
    infos = fs.get_file_info(pafs.FileSelector(path))
    names = sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)
    for name in reversed(names):
        candidate = storage.join(study_dir, layout.TUNE_DIR, name)
        if tune.Tuner.can_restore(candidate):
            return candidate
    return None


def make_trainable(opts: Options):
    from ray import tune

    from study.trainable import trainable

    fn = tune.with_parameters(trainable, study_dir=opts.study_dir, study=opts.name,
                              objective=opts.objective)
    return tune.with_resources(fn, {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial})


def _reporter(metric_columns: dict[str, str], params: list[str]):
    from ray import tune

    return tune.CLIReporter(metric_columns=metric_columns, parameter_columns=params[:6],
                            max_report_frequency=REPORT_EVERY_S, sort_by_metric=False)


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"data/id": v}`` -> ``{"data": {"id": v}}`` (Tune's nested config shape)."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        section, _, field = key.partition("/")
        nested.setdefault(section, {})[field] = value
    return nested


def build_tuner(opts: Options, fn: Any, fixed: dict[str, Any], samples: list[dict[str, Any]],
                max_concurrent: int):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    # the searcher: Optuna's sampler over the space, stored in the study's journal
    if opts.sampler == "nsga2":  # both values of the same (last) round
        metric, mode = [R.ID_VAL_ACCURACY, "objective"], ["max", opts.mode]
    else:  # the trial's best round, as the Parquet trials row and the leaderboard rank it
        metric, mode = "best_objective", opts.mode
    searcher = StudySearch(space=fn, metric=metric, mode=mode,
                           sampler=make_sampler(opts.sampler, opts.seed), study_name=opts.name,
                           storage=make_storage(opts.study_dir, opts.name),
                           fixed_keys=tuple(fixed),
                           base_keys=tuple(preset_settings(opts)))
    scheduler = None
    if opts.asha:
        # one report per round, round 0 included; max_t never cuts a trial's own rounds short
        scheduler = ASHAScheduler(time_attr="training_iteration", metric="objective",
                                  mode=opts.mode, max_t=ASHA_MAX_T,
                                  grace_period=ASHA_GRACE_ROUNDS,
                                  reduction_factor=ASHA_REDUCTION_FACTOR)
    tune_config = tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                  num_samples=opts.num_samples,
                                  max_concurrent_trials=max_concurrent, reuse_actors=True)

    # the run: where Tune keeps its experiment state and checkpoints, how it retries
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_config = tune.RunConfig(
        name=f"{opts.name}-{stamp}",
        storage_path=storage.join(opts.study_dir, layout.TUNE_DIR),
        failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_TO_KEEP),
        callbacks=[StudyCallback(opts.study_dir, opts.name)],
        progress_reporter=_reporter(
            {"round": "round", "objective": "val objective", R.ID_VAL_ACCURACY: "ID val acc",
             "best_objective": "best"}, spaces.suggested_keys(fn)),
        verbose=1,
    )

    # the param space: the preset under the launcher's fixed settings, constant for every trial
    return tune.Tuner(make_trainable(opts),
                      param_space=unflatten({**preset_settings(opts), **fixed}),
                      tune_config=tune_config, run_config=run_config)


# ----------------------------------------------------------------------------- leaderboard


def leaderboard(study_dir: str, objective: str, n: int = LEADERBOARD_SIZE):
    """Top ``n`` trials as ``study.analyze`` ranks them (best val round, earliest on ties),
    with the objective's metric on test at that round."""
    import pandas as pd

    from study import analyze

    try:
        trials, rounds, ood = analyze.load_trials(study_dir)
    except ValueError:  # nothing written yet
        return pd.DataFrame()
    goal = Objective.parse(objective)
    board = analyze.leaderboard(trials, analyze.round_table(rounds, ood, goal), goal).head(n)
    test = f"test_{goal.metric}_mean"
    columns = [R.TRIAL_ID, "optuna_number", "status", "rounds_done", "best_round",
               "val_objective", test, R.ID_TEST_ACCURACY]
    return board[columns].rename(columns={test: "test_objective"})


# ----------------------------------------------------------------------------- main


def run(opts: Options) -> Any:
    """Validate everything, then start/join Ray and fit; returns Tune's ResultGrid."""
    # everything that can be checked without Ray, first
    check_local_resources(opts)
    if opts.resume:
        # re-import a user's space so the pickled searcher finds it by name
        try:
            spaces.load_space(opts.space)
        except spaces.SpaceError as exc:
            raise LaunchError(str(exc)) from exc
        experiment = latest_experiment(opts.study_dir)
        if experiment is None:
            raise LaunchError(f"--resume found no Tune run to restore under "
                              f"{storage.join(opts.study_dir, layout.TUNE_DIR)}.")
    else:
        fn, fixed, samples = check_space(opts)
        make_sampler(opts.sampler, opts.seed)
        if opts.address is None:
            check_data(samples[0])
        write_study_file(opts, fixed)

    started = init_ray(opts)
    try:
        fits = check_resources(opts)
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our metric columns in the table
        if opts.resume:
            from ray import tune

            print(f"resuming {experiment}")
            tuner = tune.Tuner.restore(experiment, trainable=make_trainable(opts),
                                       resume_unfinished=True, resume_errored=True)
        else:
            max_concurrent = opts.max_concurrent or fits
            tuner = build_tuner(opts, fn, fixed, samples, max_concurrent)
        print(f"study {opts.name}: results in {storage.join(opts.study_dir, 'results')}, Optuna "
              f"storage {journal_path(opts.study_dir, opts.name)}")
        grid = tuner.fit()
    finally:
        upload_journal(opts.study_dir, opts.name)
        if started:
            import ray

            ray.shutdown()
    board = leaderboard(opts.study_dir, opts.objective)
    print(f"\ntop {LEADERBOARD_SIZE} by val {opts.objective} ({opts.mode}):")
    print(board.to_string(index=False) if len(board) else "(no finished rounds)")
    return grid


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns 0 on success, 2 on an invalid option or space."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    try:
        opts = parse_options(argv)
        run(opts)
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
