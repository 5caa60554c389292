"""The results page's experiments: run the shipped presets and their baselines, import a study.

The files they write under ``docs/results/<ID>/`` are what ``scripts/page.py`` reads:
``<run>.jsonl`` (one JSON object per round: the pipeline's record plus run name, config,
machine and the test ROC points), ``study-{trials,rounds,ood}.parquet`` and ``study.json`` (the
imported study's launches, when its folder had one). Fixed configs need no Ray: every run
calls ``netinv.pipeline`` directly, with one torch thread unless ``OMP_NUM_THREADS`` says
otherwise (``scripts/results.py`` sets it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_curve

from netinv.config import Config, config_fields
from netinv.inference import bf16_pays
from netinv.detector import Detector
from netinv.models import Classifier
from netinv.pipeline import (evaluate_classifier, prepare_data, run_detector, run_plain,
                             run_rounds)
from netinv.records import json_safe, mean_metric, record_scores
from netinv.round0_cache import Round0Cache, round0_fields
from netinv.state import RoundState
from netinv.presets import get_preset, preset_detector_path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results"
SEEDS = (0, 1, 2)
PLAIN_SCORE = "msp"  # the default score of a plain baseline's detector file
ROC_POINTS = 120  # ROC points kept per curve (decimated), enough for a plot
ID_SETS = ("mnist", "fashionmnist", "cifar10")
# the OOD sets of each ID set's own section (the offline data); one-vs-rest adds SVHN and
# CIFAR-100 where present (one_vs_rest.py)
OOD_SETS = {"mnist": ["fashionmnist", "cifar10", "tinyimagenet"],
            "fashionmnist": ["mnist", "cifar10", "tinyimagenet"],
            "cifar10": ["tinyimagenet", "mnist", "fashionmnist"]}
LABELS = {"mnist": "MNIST", "fashionmnist": "FashionMNIST", "cifar10": "CIFAR-10 (JPEG)",
          "svhn": "SVHN", "cifar100": "CIFAR-100", "tinyimagenet": "TinyImageNet-200"}


# ----------------------------------------------------------------------------- stored files


def study_file(id_set: str, table: str) -> Path:
    """``docs/results/<id_set>/study-<table>.parquet``: an imported study's table."""
    return RESULTS / id_set / f"study-{table}.parquet"


def load_runs(id_set: str) -> dict[str, list[dict[str, Any]]]:
    """Run name -> its records (one per round), from ``docs/results/<id_set>/*.jsonl``."""
    folder = RESULTS / id_set
    return {p.stem: [json.loads(x) for x in p.read_text().splitlines()]
            for p in sorted(folder.glob("*.jsonl"))} if folder.is_dir() else {}


def runs_of(runs: dict[str, list[dict[str, Any]]], kind: str) -> list[list[dict[str, Any]]]:
    """The records of the runs named ``<kind>-*`` (e.g. ``preset``: one per seed), by name."""
    return [runs[k] for k in sorted(runs) if k.startswith(f"{kind}-")]


# ----------------------------------------------------------------------------- configs

# keys two runs may differ in and still count as one config: where the data is and whether it
# may be fetched, the device name, and how the scoring passes are chunked (the page's runs
# before session 14 recorded rounds/eval_batch_size 2048, the default is now by device and
# body: same scores up to float rounding, nothing trained differs)
SAME_RUN_FREE = ("data/root", "data/download", "rounds/device", "rounds/eval_batch_size")


def config_of(flat: dict[str, Any]) -> dict[str, Any]:
    """A stored (or planned) flat config as today's ``Config`` keys, SAME_RUN_FREE keys left
    out: keys it lacks take ``Config``'s defaults (a key added after a run took the default the
    run used, as long as that default has not changed since), keys ``Config`` no longer has are
    dropped, values are converted to their field's type (``"2"``, ``2`` and ``2.0`` of a float
    field agree). Not validated: a record that today's rules would refuse still compares."""
    defaults = Config().to_flat()
    out = {}
    for spec in config_fields():
        if spec.key in SAME_RUN_FREE:
            continue
        value = flat.get(spec.key, defaults[spec.key])
        try:
            out[spec.key] = spec.coerce(value)
        except TypeError:  # a value of a type the field no longer takes: compare it as stored
            out[spec.key] = value
    return out


def same_value(a: Any, b: Any) -> bool:
    """Whether two flat-config values are equal as JSON (a tuple and a list of the same items
    are)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def changed_keys(ran: dict[str, Any], planned: dict[str, Any]) -> list[str]:
    """The flat config keys, SAME_RUN_FREE aside, in which a run's stored config ``ran`` and
    the overrides ``planned`` differ (both read by :func:`config_of`)."""
    before, now = config_of(ran), config_of(planned)
    return [k for k in now if not same_value(before[k], now[k])]


def import_study(id_set: str, study_dir: str) -> None:
    """Copy a finished study's three Parquet tables (one file each) and its ``study.json`` into
    ``docs/results/<id_set>/``.

    Raises:
        ValueError: ``study_dir`` is not a folder holding a study's results.
    """
    from study import layout
    from study.tables import load_trials

    if "://" not in study_dir and not Path(study_dir).is_dir():
        raise ValueError(f"--study-dir must be an existing study folder, got "
                         f"study_dir={study_dir!r}.")
    trials, rounds, ood = load_trials(study_dir)
    saved = layout.read_study_file(study_dir)
    (RESULTS / id_set).mkdir(parents=True, exist_ok=True)
    for table, frame in (("trials", trials), ("rounds", rounds), ("ood", ood)):
        frame.to_parquet(study_file(id_set, table), index=False)
    if saved is not None:
        (RESULTS / id_set / "study.json").write_text(json.dumps(saved, indent=1) + "\n")


# ----------------------------------------------------------------------------- running


def machine() -> dict[str, Any]:
    """Where a run ran: CPU model, cores, torch threads, versions, and whether the CPU runs
    bf16 autocast where a config asks for it (``netinv.inference.bf16_pays``: AMX or AMD Zen 4
    and later; runs with and without it differ in float rounding, not in method)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "bf16": bf16_pays(torch.device("cpu"))}


def shrink_png(path: Path) -> None:
    """Rewrite a PNG optimised, as 8-bit grey when its content is grey (about 10x smaller);
    colour content (RGB ID sets) stays colour."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    pixels = np.asarray(image)
    grey = bool((pixels[..., :1] == pixels).all())
    (image.convert("L") if grey else image).save(path, optimize=True)


def roc_points(id_scores: torch.Tensor, ood_scores: torch.Tensor) -> list[list[float]]:
    """Decimated ROC (x = ID flagged as OOD, y = OOD flagged), at most ROC_POINTS points."""
    labels = np.concatenate([np.zeros(len(id_scores)), np.ones(len(ood_scores))])
    scores = np.concatenate([id_scores.numpy(), ood_scores.numpy()]).astype(np.float64)
    fpr, tpr, _ = roc_curve(labels, scores)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(ROC_POINTS, len(fpr))).round().astype(int))
    return [[round(float(fpr[i]), 5), round(float(tpr[i]), 5)] for i in keep]


def run_one(id_set: str, name: str, overrides: dict[str, Any], *, data_root: str | None,
            plain: bool = False, grids: bool = False, export: Path | None = None,
            roc: bool = True, grid_prefix: str = "", start: RoundState | None = None,
            states: list[RoundState] | None = None, folder: Path | None = None,
            extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run one config (``plain``: the n-class baseline, ``run_plain``) and store its records as
    ``<folder>/<name>.jsonl`` (``folder`` None: ``docs/results/<id_set>``), each record with
    ``extra``'s keys added; ``export``: save the last round's detector there (``plain``: the
    baseline's, scoring ``PLAIN_SCORE``); ``grids``: each
    round's picture as ``<grid_prefix>grid-round-<r>.png``; ``start``: continue after that
    state's rounds (:func:`shared_round0`); ``states``: receives every new round's state. The
    device is the CPU unless ``overrides`` names one (``rounds/device``). The file appears only
    once the run has finished."""
    flat = {"rounds/device": "cpu", **overrides, "data/root": data_root}
    config = Config.from_flat(flat)
    out = RESULTS / id_set if folder is None else folder
    out.mkdir(parents=True, exist_ok=True)
    lines: list[dict[str, Any]] = []
    last: dict[str, RoundState] = {}
    info = machine()
    t_start = time.perf_counter()

    def keep(record: dict[str, Any], test_scores: dict[str, dict[str, torch.Tensor]]) -> None:
        line = {"run": name, "id_set": id_set, **(extra or {}), **record, "machine": info,
                "config": {k: v for k, v in config.to_flat().items() if k != "data/root"}}
        if roc and record["round"] in (0, config.rounds.count):  # the curves the page draws
            line["roc_test"] = {
                score: {ood: roc_points(test_scores["id"][score], test_scores[ood][score])
                        for ood in config.data.ood}
                for score in test_scores["id"]}
        lines.append(line)
        print(f"  {name} round {record['round']}: id_test_acc={record['id_test_accuracy']:.4f} "
              f"val p_garbage AUROC="
              f"{mean_metric(record, score='p_garbage', metric='auroc', split='val'):.4f} "
              f"({record['time_round_s']:.0f}s)", flush=True)

    def on_round(record: dict[str, Any], state: RoundState) -> None:
        keep(record, state.test_scores)
        last["state"] = state
        if states is not None:
            states.append(state)
        if grids and state.grid is not None:
            from netinv.plots import save_grid

            path = out / f"{grid_prefix}grid-round-{record['round']}.png"
            save_grid(state.grid, state.classes, path,
                      title=f"{LABELS[id_set]}: inverted images, round {record['round']}")
            shrink_png(path)

    if plain:
        data = prepare_data(config)
        plain_run = run_plain(config, data=data)
        keep(plain_run.record, plain_run.test_scores)
    else:
        if start is not None:
            for record in start.records:
                keep(record, start.test_scores)
        # a fresh run takes its round 0 from the round-0 cache when a study (or an earlier
        # run) with the same round-0 settings, seed and thread count computed it
        result = run_rounds(config, state=start, on_round=on_round,
                            round0_cache=Round0Cache() if start is None else None)
    wall = time.perf_counter() - t_start
    for line in lines:
        line["run_wall_s"] = wall
    path = out / f"{name}.jsonl"
    partial = out / f".{name}.jsonl.{os.getpid()}.tmp"  # renamed when whole: no half files
    partial.write_text("".join(json.dumps(json_safe(x)) + "\n" for x in lines))
    os.replace(partial, path)
    if export is not None:
        export.parent.mkdir(parents=True, exist_ok=True)
        if plain:  # the baseline's network, for scripts/fitted_scores.py --plain ID=PATH
            Detector.from_run(plain_run.classifier, config, data, score=PLAIN_SCORE).save(export)
            print(f"  exported {export} (score {PLAIN_SCORE}, the plain baseline's)")
        else:
            best = val_best_score(lines[-1])
            run_detector(result, best).save(export)
            print(f"  exported {export} (score {best}, chosen on validation)")
    return lines


def val_best_score(record: dict[str, Any], scores: tuple[str, ...] | None = None) -> str:
    """The score with the highest mean validation AUROC in ``record`` (never chosen on test)
    among ``scores`` (None = every score the record has)."""
    return max(scores or record_scores(record),
               key=lambda s: mean_metric(record, score=s, metric="auroc", split="val"))


def plain_detector_path(id_set: str) -> Path:
    """``runs/results/<id_set>/nclass-s0.pt``: the preset's plain baseline (seed 0) as saved by
    :func:`run_preset` (megabytes, so under the ignored ``runs/``, not ``docs/``), for
    ``scripts/fitted_scores.py --plain <id_set>=<this file>``, which then need not train it."""
    return ROOT / "runs" / "results" / id_set / "nclass-s0.pt"


def preset_plan(id_set: str) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Run name -> (config overrides, :func:`run_one` options) of what :func:`run_preset`
    runs today for ``id_set``: ``preset-s<seed>``, ``nclass-s<seed>``, ``control-s<seed>``
    for each of SEEDS, and ``paper3-s0``."""
    preset = get_preset(id_set)
    runs: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for seed in SEEDS:
        runs[f"preset-s{seed}"] = ({**preset, "rounds/seed": seed},
                                   {"grids": seed == 0,
                                    "export": preset_detector_path(id_set) if seed == 0
                                    else None})
    for seed in SEEDS:
        runs[f"nclass-s{seed}"] = ({**preset, "rounds/seed": seed},
                                   {"plain": True,
                                    "export": plain_detector_path(id_set) if seed == 0 else None})
    for seed in SEEDS:  # the same rounds and epochs, no inverted sample: what retraining adds
        runs[f"control-s{seed}"] = ({**preset, "rounds/seed": seed, "garbage/policy": "none"},
                                    {})
    runs["paper3-s0"] = ({**preset, "inversion/delta_ortho": 0.0}, {})
    return runs


def run_preset(id_set: str, data_root: str | None, only: list[str] | None) -> None:
    """Run the preset with SEEDS (seed 0 exported to ``netinv/presets/<id_set>.pt``, with
    grids), the plain n-class baseline with SEEDS (seed 0's network kept at
    :func:`plain_detector_path`), the no-inversion control (``garbage/policy none``) with SEEDS
    and the paper's three losses (``delta_ortho = 0``): :func:`preset_plan`; ``only``: just
    these run names."""
    for name, (overrides, kwargs) in preset_plan(id_set).items():
        if only and name not in only:
            continue
        run_one(id_set, name, overrides, data_root=data_root, **kwargs)


RECHECK_SEEDS = (1, 2)  # seed 0 is the study's own run


def recheck(id_set: str, picks: list[tuple[int, dict[str, Any]]], data_root: str | None,
            only: list[str] | None) -> None:
    """Re-run each picked trial's candidate (Optuna number, preset overrides) with
    RECHECK_SEEDS as ``recheck-t<number>-s<seed>``: a single seed flatters the best of many
    trials (its luck was part of why it won)."""
    for number, overrides in picks:
        for seed in RECHECK_SEEDS:
            name = f"recheck-t{number}-s{seed}"
            if only and name not in only:
                continue
            run_one(id_set, name, {**overrides, "rounds/seed": seed}, data_root=data_root,
                    roc=False)


# The inversion ablation (issue 14): FashionMNIST as ID, 2 rounds (3 from "rounds" on), the
# preset's epochs. Each variant after "paper" adds one lever to the variant before it; "control"
# retrains without any inverted sample (the page compares each variant with a control at its
# own round count). Values: see ABLATION_SOURCE.
ABLATION: dict[str, tuple[str, dict[str, Any]]] = {
    "control": ("no inverted samples: the same rounds and epochs on the noise-only pool",
                {"garbage/policy": "none"}),
    "paper": ("inversion with the former preset's losses (KL, CE, cosine, orthogonality)",
              {}),
    "fstats": ("+ BatchNorm feature-statistics prior (ID targets) and total variation",
               {"inversion/feature_stats": 10.0, "inversion/feature_stats_target": "id",
                "inversion/tv": 1.0}),
    "diversity": ("+ mode seeking", {"inversion/diversity": 0.01}),
    "policy": ("+ selection policy mix (uncertain or confidently ID)",
               {"garbage/policy": "mix", "garbage/ue_threshold": 0.2,
                "garbage/confidence_threshold": 0.9}),
    "arch": ("+ upsample + conv generator body", {"inversion/arch": "upsample"}),
    "rounds": ("+ a third round", {"rounds/count": 3}),
    "samples": ("+ 8,000 inverted images per round instead of 2,473",
                {"inversion/samples_per_round": 8000}),
    "ortho": ("- the orthogonality term (the paper's three losses plus the priors)",
              {"inversion/delta_ortho": 0.0}),
}
ABLATION_SOURCE = ("stated defaults: the issue's probe (feature statistics 10, TV 1), "
                   "diversity 0.01, policy mix at UE 0.2 / top ID probability 0.9; then a third "
                   "round and 8,000 images per round, the two probes that beat "
                   "*arch* on validation, and the orthogonality term dropped, which beat "
                   "*samples* on validation")


# the preset the ablation starts from: fashionmnist as shipped before issue 14 (the shipped one
# is now the ablation's last variant, chosen on validation)
ABLATION_BASE: dict[str, dict[str, Any]] = {
    "fashionmnist": {
        "data/id": "fashionmnist", "data/ood": ["mnist", "cifar10", "tinyimagenet"],
        "classifier/width": 48, "classifier/epochs": 2, "inversion/samples_per_round": 2473,
        "inversion/gamma_cosine": 0.03210577849550396,
        "inversion/delta_ortho": 0.08562913278818232, "garbage/noise_count": 16000,
        "garbage/noise_max_scale": 16, "rounds/count": 2,
    },
}


def ablation_overrides(id_set: str, variant: str) -> dict[str, Any]:
    """ABLATION_BASE of ``id_set`` plus ``variant``'s lever and those of every variant before
    it (``control`` and ``paper``: the base plus their own lever only)."""
    names = list(ABLATION)
    overrides = {k: list(v) if isinstance(v, list) else v
                 for k, v in ABLATION_BASE[id_set].items()}
    chain = [variant] if variant in ("control", "paper") else names[1:names.index(variant) + 1]
    for name in chain:
        overrides.update(ABLATION[name][1])
    return overrides


# run order: the most telling comparisons first, should the runs be cut short
ABLATION_ORDER = ("control", "arch", "paper", "fstats", "diversity", "policy", "rounds",
                  "samples", "ortho")


def round0_changes(state: RoundState, config: Config) -> list[str]:
    """The keys round 0 reads (``netinv.round0_cache.round0_fields``) whose value in ``config``
    differs from that of the run that saved ``state``."""
    saved = round0_fields(Config.from_flat({k: v for k, v in state.config.items()
                                            if k in Config.keys()}))
    wanted = round0_fields(config)
    return [k for k in wanted if wanted[k] != saved.get(k)]


def shared_round0(state: RoundState, overrides: dict[str, Any]) -> RoundState:
    """``state`` (after round 0) as if saved by the run of ``overrides``, so that run resumes
    from it: its round 0 would be the same computation (same seed, weights, noise and batches),
    so the ablation computes it once per seed.

    Raises:
        ValueError: ``overrides`` changes a key that round 0 reads
            (``netinv.round0_cache.round0_fields``, the round-0 cache's key fields).
    """
    assert state.round == 0, f"a shared state must be round 0's, got round={state.round}"
    config = Config.from_flat({**overrides, "data/root": state.config["data/root"],
                               "rounds/device": state.config["rounds/device"]})
    changed = round0_changes(state, config)
    if changed:
        raise ValueError(f"round 0 can only be shared by runs that agree in every setting round "
                         f"0 reads (netinv.round0_cache.round0_fields), got changed={changed}.")
    return dataclasses.replace(state, config=config.to_flat())


# what round 0 reads in its evaluation alone (its training never sees them; later rounds also
# screen inverted images with them)
EVAL_ONLY_KEYS = ("classifier/tta_shift",)


def reevaluated(state: RoundState, overrides: dict[str, Any]) -> RoundState:
    """``state`` (after round 0) evaluated again as the run of ``overrides`` evaluates it, when
    their round 0 differs only in EVAL_ONLY_KEYS: the training is the same computation
    (training mode never sees the test-time views), so a run with test-time augmentation
    continues from the round 0 trained by a run without it. ``overrides``' ``data/root`` and
    ``rounds/device`` apply where given, else the state's. The record keeps the training's
    fields, takes the new evaluation's and says ``"reevaluated": True``; ``time_round_s`` is the
    training's plus the new evaluation's.

    Raises:
        ValueError: ``overrides`` changes another key that round 0 reads
            (``netinv.round0_cache.round0_fields``) than EVAL_ONLY_KEYS.
    """
    assert state.round == 0, f"a re-evaluated state must be round 0's, got round={state.round}"
    config = Config.from_flat({"data/root": state.config["data/root"],
                               "rounds/device": state.config["rounds/device"], **overrides})
    changed = [k for k in round0_changes(state, config) if k not in EVAL_ONLY_KEYS]
    if changed:
        raise ValueError(f"a re-evaluated round 0 may change only {', '.join(EVAL_ONLY_KEYS)} of "
                         f"what it reads (netinv.round0_cache.round0_fields), got "
                         f"changed={changed}.")
    data = prepare_data(config)
    classifier = Classifier.from_config(config.classifier, data.shape, data.n_classes + 1)
    classifier.load_state_dict(state.classifier)
    t0 = time.perf_counter()
    fields, test_scores = evaluate_classifier(classifier, config, data)
    old = state.records[0]
    record = {**old, **fields, "time_eval_s": time.perf_counter() - t0, "reevaluated": True}
    record["time_round_s"] = old["time_round_s"] - old["time_eval_s"] + record["time_eval_s"]
    return dataclasses.replace(state, config=config.to_flat(), records=[record],
                               test_scores=test_scores, classifier_spec=classifier.spec())


def run_ablation(id_set: str, data_root: str | None, only: list[str] | None,
                 seeds: tuple[int, ...] = SEEDS) -> None:
    """Run every ABLATION variant with ``seeds`` as ``ablation-<variant>-s<seed>`` (grids for
    seed 0 as ``ablation-<variant>-grid-round-<r>.png``), in ABLATION_ORDER; the first run of a
    seed computes round 0, the others continue from it (:func:`shared_round0`); ``only``: just
    these run names."""
    for seed in seeds:
        first: list[RoundState] = []
        for variant in ABLATION_ORDER:
            name = f"ablation-{variant}-s{seed}"
            if only and name not in only:
                continue
            overrides = {**ablation_overrides(id_set, variant), "rounds/seed": seed}
            start = shared_round0(first[0], overrides) if first else None
            run_one(id_set, name, overrides, data_root=data_root, grids=seed == 0, roc=False,
                    grid_prefix=f"ablation-{variant}-", start=start,
                    states=None if first else first)
