"""One-vs-rest, the seed project's protocol: each dataset whose training data is present is the
ID set in turn, and every other present dataset is its OOD set.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/results.py ovr --data-root ../shared/data
    .venv/bin/python scripts/results.py page
    .venv/bin/python scripts/results.py ovr --data-root ../shared/data --only mnist,svhn \
        --seeds 0 --set data/train_limit=500 --set classifier/epochs=1     # a quick look

Each ID set runs its preset: the preset named after it, else (SVHN, CIFAR-100, TinyImageNet)
the ``cifar10`` preset with only ``data/id`` changed, untuned, which the records say. The runs
use every round of the preset, ``data/ood`` = every other present set, and SEEDS (or
``--seeds``); ``--set KEY=VALUE`` changes any other config key, and the records keep what it
changed. Each (ID, seed) run is written when it has finished, as
``docs/results/one-vs-rest/<id>-s<seed>.jsonl`` (one JSON object per round, as
``experiments.run_one`` writes them, plus ``preset``, ``preset_tuned`` and ``overrides``). A
file that exists is skipped unless ``overwrite`` (the skip names any config key in which it
differs from today's run), so an interrupted command resumes where it
stopped. Runs go seed by seed, so after seed 0 every row of the matrix has a value.
``ovr_page.py`` turns the files into the page's one-vs-rest section.

Present means on disk under the data root, found by ``netinv.datasets``' own lookup (an ID set
needs its train and test splits, an OOD set its test split, the only one the pipeline reads);
nothing is downloaded to find out. SVHN and CIFAR-100 are fetched first with
``--download svhn,cifar100`` (torchvision's downloaders, into the data root).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments import RESULTS, SEEDS, changed_keys, run_one

from netinv.config import Config, parse_overrides
from netinv.datasets import SPLITS, ensure_available, resolve_data_root
from netinv.datasets.sources import locate, looked_at
from netinv.presets import PRESETS, get_preset

OVR_SETS = ("mnist", "fashionmnist", "cifar10", "svhn", "cifar100", "tinyimagenet")
OVR_DIR = RESULTS / "one-vs-rest"
FALLBACK_PRESET = "cifar10"  # the preset of an ID set without its own (RGB photos, 32x32)
LOOP_KEYS = ("data/id", "data/ood", "data/root", "rounds/seed")  # set per run, not by --set


@dataclass(frozen=True)
class OvrRun:
    """One (ID set, seed) run of the one-vs-rest matrix."""

    id_set: str
    seed: int
    preset: str  # the preset it runs
    tuned: bool  # whether that preset was chosen for this ID set (else: FALLBACK_PRESET)
    overrides: dict[str, Any]  # the full flat overrides it runs (without data/root)
    path: Path  # its records file

    @property
    def name(self) -> str:
        """``<id>-s<seed>``: the file's stem and the records' ``run``."""
        return f"{self.id_set}-s{self.seed}"


# ----------------------------------------------------------------------------- discovery


def discover(data_root: str | os.PathLike[str] | None) -> dict[str, tuple[str, ...]]:
    """Each of OVR_SETS -> the splits of it on disk under ``data_root`` (possibly none).

    Looks with ``netinv.datasets``' lookup (every layout it reads, first match wins); touches
    neither the network nor the decode cache.
    """
    root = resolve_data_root(data_root)
    return {name: tuple(s for s in SPLITS if locate(name, s, root)[0] is not None)
            for name in OVR_SETS}


def id_sets(found: dict[str, tuple[str, ...]]) -> list[str]:
    """The sets that can be the ID set: train and test splits present."""
    return [name for name, splits in found.items() if set(SPLITS) <= set(splits)]


def ood_sets(found: dict[str, tuple[str, ...]]) -> list[str]:
    """The sets that can be an OOD set: test split present (e.g. TinyImageNet's val)."""
    return [name for name, splits in found.items() if "test" in splits]


def preset_of(id_set: str) -> tuple[str, bool]:
    """(the preset ``id_set`` runs, whether it is its own): the preset named after it, else
    FALLBACK_PRESET.

    Raises:
        ValueError: That preset is not in ``netinv.presets.PRESETS``.
    """
    tuned = id_set in PRESETS or id_set == FALLBACK_PRESET
    name = id_set if tuned else FALLBACK_PRESET
    if name not in PRESETS:
        why = (f"{id_set} as ID runs its own preset" if tuned else
               f"{id_set} has no preset of its own and runs preset {name!r} (untuned)")
        raise ValueError(f"one-vs-rest: {why}, but netinv/presets has no preset {name!r} "
                         f"(it has: {', '.join(PRESETS)}); leave {id_set} out with --only, "
                         f"e.g. --only {','.join(p for p in PRESETS if p in OVR_SETS)}.")
    return name, tuned


# ----------------------------------------------------------------------------- arguments


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> (0, 1, 2).

    Raises:
        ValueError: Not comma-separated distinct integers >= 0.
    """
    try:
        seeds = tuple(int(part) for part in text.split(","))
    except ValueError:
        seeds = ()
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"`--seeds` must be distinct integers >= 0 separated by commas, e.g. "
                         f"0,1,2, got seeds={text!r}.")
    return seeds


def parse_sets(items: list[str]) -> dict[str, str]:
    """The ``--set KEY=VALUE`` items as flat overrides (values converted by ``Config``).

    Raises:
        ValueError: An item without ``=``, or a key the command sets per run (LOOP_KEYS).
        KeyError: An unknown key (the message lists the valid keys).
    """
    sets = parse_overrides(items)
    fixed = [key for key in sets if key in LOOP_KEYS]
    if fixed:
        raise ValueError(f"`--set` must not name {', '.join(LOOP_KEYS)} (one-vs-rest sets them "
                         f"per run: --only, --seeds, --data-root), got keys={fixed}.")
    return sets


def check_names(names: list[str], option: str) -> None:
    """Raise ValueError unless every name is one of OVR_SETS."""
    unknown = [n for n in names if n not in OVR_SETS]
    if unknown:
        raise ValueError(f"`{option}` takes names from {', '.join(OVR_SETS)}, "
                         f"got {option.lstrip('-')}={','.join(unknown)!r}.")


# ----------------------------------------------------------------------------- running


def plan(data_root: str | os.PathLike[str] | None, *, seeds: tuple[int, ...] = SEEDS,
         only: list[str] | None = None, sets: dict[str, Any] | None = None,
         folder: Path = OVR_DIR, overwrite: bool = False) -> tuple[list[OvrRun], list[OvrRun]]:
    """The runs to make and the finished ones to skip, every config checked before any run.

    Args:
        data_root: Data root; None = ``NETINV_DATA``, else the per-user default.
        seeds: The seeds of every ID set.
        only: Just these ID sets (each must have its train and test splits); None = all.
        sets: Flat config overrides for every run (``--set``), not LOOP_KEYS.
        folder: Where the records files go.
        overwrite: Re-run (ID, seed) pairs whose file exists.

    Returns:
        (to run, skipped because their file exists), in run order: seed by seed, then ID sets
        in OVR_SETS order.

    Raises:
        ValueError: An unknown ``only`` name, an ID set without its splits or its preset, no
            ID set or no OOD set present, or a bad config value.
    """
    root = resolve_data_root(data_root)
    found = discover(root)
    ids, oods = id_sets(found), ood_sets(found)
    if only is not None:
        check_names(only, "--only")
        for name in only:
            if name not in ids:
                candidates = [c for s in SPLITS for c in locate(name, s, root)[1]]
                raise ValueError(f"`--only` names ID sets with their train and test splits "
                                 f"under the data root, got {name} with splits "
                                 f"{list(found[name]) or 'none'}; looked at: "
                                 f"{looked_at(candidates)}.")
        ids = [name for name in ids if name in only]
    if not ids:
        raise ValueError(f"one-vs-rest needs an ID set with its train and test splits under "
                         f"{root}, found none of {', '.join(OVR_SETS)}; point --data-root "
                         f"at the data, or fetch some with --download.")
    todo, done = [], []
    for seed in seeds:
        for id_set in ids:
            others = [name for name in oods if name != id_set]
            if not others:
                raise ValueError(f"one-vs-rest with {id_set} as ID needs another set's test "
                                 f"split under {root} as OOD, found none.")
            preset, tuned = preset_of(id_set)
            overrides = {**get_preset(preset), "data/download": False, **(sets or {}),
                         "data/id": id_set, "data/ood": others, "rounds/seed": seed}
            Config.from_flat({**overrides, "data/root": str(root)})  # a bad value fails now
            path = folder / f"{id_set}-s{seed}.jsonl"
            run = OvrRun(id_set, seed, preset, tuned, overrides, path)
            (done if run.path.exists() and not overwrite else todo).append(run)
    return todo, done


def download(names: list[str], data_root: str | os.PathLike[str] | None) -> None:
    """Fetch the train and test splits of ``names`` that are missing into the data root
    (torchvision's md5-checked downloaders; ``netinv.datasets.ensure_available``).

    Raises:
        ValueError: A name not in OVR_SETS.
        DataUnavailableError: The data root is not writable or a download failed.
    """
    check_names(names, "--download")
    needed = [(name, split) for name in names for split in SPLITS]
    ensure_available(needed, root=resolve_data_root(data_root), download=True)


def preset_records(run: OvrRun, results: Path = RESULTS) -> list[dict[str, Any]] | None:
    """The records of the results page's own run of ``run`` (``<results>/<id>/preset-s<seed>
    .jsonl``) when its config is the same as ``run``'s up to ``experiments.SAME_RUN_FREE``
    keys (the preset runs of an ID set whose OOD sets are all the other present sets), else
    None."""
    path = results / run.id_set / f"preset-s{run.seed}.jsonl"
    if not path.is_file():
        return None
    records = [json.loads(line) for line in path.read_text().splitlines()]
    if not records or changed_keys(records[0]["config"], run.overrides):
        return None
    return records


def run_ovr(data_root: str | os.PathLike[str] | None, *, seeds: tuple[int, ...] = SEEDS,
            only: list[str] | None = None, sets: dict[str, Any] | None = None,
            folder: Path = OVR_DIR, overwrite: bool = False,
            results: Path | None = RESULTS) -> list[Path]:
    """Make the runs :func:`plan` lists (same arguments) and return the files written.

    A run whose config equals that of the results page's preset run of the same ID set and
    seed (:func:`preset_records`, under ``results``; None = never) is not computed again: its
    records are copied, marked ``reused_from``."""
    todo, done = plan(data_root, seeds=seeds, only=only, sets=sets, folder=folder,
                      overwrite=overwrite)
    root = resolve_data_root(data_root)
    for run in done:
        lines = run.path.read_text().splitlines()
        stale = changed_keys(json.loads(lines[0])["config"], run.overrides) if lines else []
        made = (f", made with a config that differs from today's in {', '.join(stale)}"
                if stale else "")
        print(f"one-vs-rest: {run.path} exists{made}, skipped (--overwrite re-runs it)")
    written = []
    for i, run in enumerate(todo, 1):
        tuned = "" if run.tuned else ", untuned"
        print(f"one-vs-rest {i}/{len(todo)}: {run.id_set} as ID (seed {run.seed}, preset "
              f"{run.preset}{tuned}) vs {', '.join(run.overrides['data/ood'])}", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        extra = {"preset": run.preset, "preset_tuned": run.tuned, "overrides": dict(sets or {})}
        same = preset_records(run, results) if results is not None else None
        if same is not None:  # the page's preset run is this very run: take its records
            lines = [{**{k: v for k, v in record.items() if k != "roc_test"}, **extra,
                      "run": run.name, "reused_from": f"{run.id_set}/preset-s{run.seed}.jsonl"}
                     for record in same]
            run.path.write_text("".join(json.dumps(line) + "\n" for line in lines))
            print(f"  same config as the results page's preset run: its records reused "
                  f"({len(lines)} rounds)", flush=True)
        else:
            run_one(run.id_set, run.name, run.overrides, data_root=str(root), roc=False,
                    folder=folder, extra=extra)
        written.append(run.path)
    return written


def load_ovr(folder: Path = OVR_DIR) -> dict[str, list[list[dict[str, Any]]]]:
    """ID set -> its runs (each one record per round), by seed, from ``folder/*.jsonl``."""
    runs: dict[str, list[list[dict[str, Any]]]] = {}
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        records = [json.loads(line) for line in path.read_text().splitlines()]
        if records:
            runs.setdefault(records[0]["id_set"], []).append(records)
    for id_set in runs:
        runs[id_set].sort(key=lambda recs: recs[0]["config"]["rounds/seed"])
    return runs
