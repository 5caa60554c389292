"""The results page: import the studies, run the shipped presets (3 seeds) and their baselines,
write docs/results.md (the CLI; the work is in experiments.py, selection.py and page.py here).

    .venv/bin/python -m study.launch --preset mnist --space refine --name mnist-refine \
        --num-samples 8 --max-concurrent 2 --objective p_garbage:auroc --no-asha \
        --data-root ../shared/data
    .venv/bin/python scripts/results.py study mnist --study-dir studies/mnist-refine
    OMP_NUM_THREADS=1 .venv/bin/python scripts/results.py run mnist --data-root ../shared/data
    .venv/bin/python scripts/unseen_ood.py --data-root ../shared/data
    .venv/bin/python scripts/results.py page                # docs/results.md from docs/results/

``study ID`` copies a finished study's Parquet tables to ``docs/results/<ID>/study-*.parquet``
(and its ``study.json``) and prints the candidate that the selection rule (``selection.py``;
validation splits only) picks, as preset overrides for ``netinv/presets.py``. ``recheck ID``
re-runs the study's top trials with more seeds and prints the preset the rule picks on the
seed means. ``run ID`` runs, on the same code and
splits, the preset with seeds 0, 1, 2 (its round 0 is the noise-only (n+1)-class baseline), the
plain n-class baseline (``run_plain``: no garbage class, scored with MSP and energy), and the
paper's three losses (``delta_ortho = 0``) at the preset's weights; it exports
``netinv/presets/<ID>.pt`` (seed 0) and writes the inverted-image grids. Each run is stored as JSON
lines under ``docs/results/<ID>/<run>.jsonl`` (one object per round: the pipeline's record plus
run name, config, machine and the test ROC points). ``ablation ID`` runs the inversion
ablation (``experiments.ABLATION``: a no-inversion control, the preset, then one lever added at
a time) with seeds 0, 1, 2 as ``ablation-<variant>-s<seed>.jsonl``. ``page`` only reads those
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
from typing import Any

import torch
from experiments import ID_SETS, import_study, load_runs, recheck, run_ablation, run_preset
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
    parser.add_argument("command", choices=("study", "recheck", "run", "ablation", "page"))
    parser.add_argument("id_set", nargs="?", choices=ID_SETS)
    parser.add_argument("--study-dir", default=None,
                        help="study: the finished study's folder, e.g. studies/mnist-refine")
    parser.add_argument("--data-root", default=os.environ.get("NETINV_DATA"))
    parser.add_argument("--only", default=None,
                        help="comma-separated run names to (re)run, e.g. preset-s1,paper3-s0")
    add_logging_options(parser)
    return parser


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    apply_logging_options(args)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
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
