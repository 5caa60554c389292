"""The results page: import the studies, run the shipped presets (3 seeds) and their baselines,
write docs/results.md (the CLI; the work is in experiments.py, selection.py and page.py here).

    .venv/bin/python -m study.launch --preset mnist --space refine --name mnist-refine \
        --num-samples 8 --max-concurrent 2 --objective p_garbage:auroc --no-asha \
        --data-root ../shared/data
    .venv/bin/python scripts/results.py study mnist --study-dir studies/mnist-refine
    OMP_NUM_THREADS=1 .venv/bin/python scripts/results.py run mnist --data-root ../shared/data
    .venv/bin/python scripts/unseen_ood.py --data-root ../shared/data
    OMP_NUM_THREADS=1 .venv/bin/python scripts/results.py ovr --data-root ../shared/data
    .venv/bin/python scripts/results.py page                # docs/results.md from docs/results/

``study ID`` copies a finished study's Parquet tables to ``docs/results/<ID>/study-*.parquet``
(and its ``study.json``) and prints the candidate that the selection rule (``selection.py``;
validation splits only) picks, as preset overrides for ``netinv/presets.py``. ``recheck ID``
re-runs the study's top trials with more seeds and prints the preset the rule picks on the
seed means. ``run ID`` runs, on the same code and
splits, the preset with seeds 0, 1, 2 (its round 0 is the noise-only (n+1)-class baseline), the
plain n-class baseline (``run_plain``: no garbage class, scored with MSP and energy), and the
paper's three losses (``delta_ortho = 0``) at the preset's weights; it exports
``netinv/presets/<ID>.pt`` (seed 0) and writes the inverted-image grids; the plain baseline's
seed-0 network goes to ``runs/results/<ID>/nclass-s0.pt`` (not committed), which
``scripts/fitted_scores.py --plain ID=<that file>`` scores without training it again. Each run
is stored as JSON lines under ``docs/results/<ID>/<run>.jsonl`` (one object per round: the
pipeline's record plus run name, config, machine and the test ROC points). ``ablation ID`` runs the inversion
ablation (``experiments.ABLATION``: a no-inversion control, the preset, then one lever added at
a time) with seeds 0, 1, 2 as ``ablation-<variant>-s<seed>.jsonl``. ``ovr`` runs the
one-vs-rest matrix (``one_vs_rest.py``: every dataset whose training data is present as ID in
turn, the others as OOD) into ``docs/results/one-vs-rest/<id>-s<seed>.jsonl``, skipping the
files that exist; it leaves the page to ``page``. ``page`` only reads those
files and the study tables, and computes every statement it prints from them. Fixed configs
need no Ray: every run calls ``netinv.pipeline`` directly. The
recorded runs used one torch thread (as a study trial with 1 CPU does, so seed 0 of a preset
repeats its study trial exactly); another thread count changes float summation order, so its
numbers can differ slightly from the page's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from experiments import (ID_SETS, SEEDS, import_study, load_runs, recheck, run_ablation,
                         run_preset)
from one_vs_rest import OVR_DIR, check_names, download, parse_seeds, parse_sets, run_ovr
from page import write_page
from selection import GOALS, candidates, chosen_overrides, rechecked, top_trials

from netinv.cli_errors import CLIError, run_cli
from netinv.cli_logging import add_logging_options, apply_logging_options


def _print_choice(what: str, row: Any) -> None:
    print(f"{what}: trial {row['optuna_number']} round {row['round']} score {row['score']}; "
          f"preset overrides:")
    print(json.dumps(chosen_overrides(row), indent=1))


def build_parser() -> argparse.ArgumentParser:
    """The ``scripts/results.py`` argument parser."""
    parser = argparse.ArgumentParser(prog="scripts/results.py",
                                     description=__doc__)
    parser.add_argument("command",
                        choices=("study", "recheck", "run", "ablation", "ovr", "page"))
    parser.add_argument("id_set", nargs="?", choices=ID_SETS)
    parser.add_argument("--study-dir", default=None,
                        help="study: the finished study's folder, e.g. studies/mnist-refine")
    parser.add_argument("--data-root", default=os.environ.get("NETINV_DATA"))
    parser.add_argument("--only", default=None,
                        help="comma-separated run names to (re)run, e.g. preset-s1,paper3-s0; "
                             "ovr: ID sets, e.g. mnist,svhn (default: every one present)")
    ovr = parser.add_argument_group("ovr (one-vs-rest)")
    ovr.add_argument("--seeds", default=None, metavar="SEEDS",
                     help="comma-separated seeds of every ID set (default: 0,1,2)")
    ovr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                     help="config override for every run, repeatable, e.g. "
                          "data/train_limit=500 (not data/id, data/ood, data/root, rounds/seed)")
    ovr.add_argument("--overwrite", action="store_true",
                     help="re-run (ID, seed) pairs whose records file exists (default: skip)")
    ovr.add_argument("--results-dir", default=None, metavar="DIR",
                     help=f"folder of the <id>-s<seed>.jsonl files (default: "
                          f"{OVR_DIR.relative_to(OVR_DIR.parents[2])}, which the page reads)")
    ovr.add_argument("--download", default=None, metavar="NAMES",
                     help="comma-separated sets to fetch into the data root first, e.g. "
                          "svhn,cifar100 (torchvision's downloaders; default: none)")
    add_logging_options(parser)
    return parser


OVR_OPTIONS = {"seeds": None, "sets": [], "overwrite": False, "results_dir": None,
               "download": None}  # ovr's own options, at their defaults


def _ovr(args: argparse.Namespace) -> None:
    if args.id_set is not None:
        raise CLIError(f"ovr takes no ID set (it runs every one present); choose some with "
                       f"--only, got {args.id_set}.")
    seeds = parse_seeds(args.seeds) if args.seeds is not None else SEEDS
    sets = parse_sets(args.sets)
    only = args.only.split(",") if args.only else None
    check_names(only or [], "--only")  # before a download, as every other check
    if args.download:
        download(args.download.split(","), args.data_root)
    folder = Path(args.results_dir).resolve() if args.results_dir else OVR_DIR
    # the preset runs whose records a same-config run reuses: <id>/ beside the folder
    written = run_ovr(args.data_root, seeds=seeds, only=only, sets=sets, folder=folder,
                      overwrite=args.overwrite, results=folder.parent)
    print(f"one-vs-rest: {len(written)} run(s) written to {folder}; the page: "
          f".venv/bin/python scripts/results.py page")


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    apply_logging_options(args)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.command == "ovr":
        _ovr(args)
        return 0
    used = [f"--{k.replace('_', '-')}".replace("--sets", "--set")
            for k, default in OVR_OPTIONS.items() if getattr(args, k) != default]
    if used:
        raise CLIError(f"{', '.join(used)}: options of ovr only, got command={args.command}.")
    only = args.only.split(",") if args.only else None
    if args.command != "page" and args.id_set is None:
        raise CLIError(f"{args.command} needs an ID set: {', '.join(ID_SETS)}.")
    if args.command == "study":
        if args.study_dir is None:
            raise CLIError("study needs --study-dir, the finished study's folder.")
        import_study(args.id_set, args.study_dir)
        _print_choice("chosen", candidates(args.id_set).iloc[0])
    elif args.command == "recheck":
        picks = [(row["optuna_number"], chosen_overrides(row))
                 for _, row in top_trials(candidates(args.id_set)).iterrows()]
        recheck(args.id_set, picks, args.data_root, only)
        checked = rechecked(candidates(args.id_set), load_runs(args.id_set),
                            GOALS[args.id_set])
        _print_choice("chosen after the seed check", checked.iloc[0])
    elif args.command == "run":
        run_preset(args.id_set, args.data_root, only)
    elif args.command == "ablation":
        run_ablation(args.id_set, args.data_root, only)
    write_page()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python scripts/results.py``; returns the exit status."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
