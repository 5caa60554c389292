"""Run one netinv pipeline from the command line.

    python -m netinv --id mnist --ood fashionmnist,cifar10,tinyimagenet --rounds 3
    python -m netinv --data-root ../shared/data --rounds 2 --out runs/mnist
    python -m netinv --config best_config.json          # e.g. a study's best configuration
    python -m netinv --preset mnist --data-root ../shared/data   # a shipped preset
    python -m netinv --inversion.alpha_kl 2 --garbage.policy uncertain --garbage.ue_threshold 0.3
    python -m netinv --smoke-test                        # tiny data, a minute on a laptop CPU

Every config field is an option ``--section.field`` (see ``--help``); ``--id``, ``--ood``,
``--rounds``, ``--seed``, ``--device`` and ``--data-root`` are short forms. Writes into ``--out``
(default: a fresh ``runs/<time>-<id>`` folder): ``config.json``, ``rounds.jsonl`` (one object per
round), ``grid-round-<r>.png`` (inverted images, one row per class), ``state.pt`` (resumable with
``--resume``) and ``detector.pt`` (load with ``netinv.Detector.load``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
import typing
from pathlib import Path
from typing import Any

import torch

from netinv.config import SECTIONS, Config
from netinv.data import DataUnavailableError
from netinv.inversion import NonFiniteLossError
from netinv.pipeline import run_rounds
from netinv.presets import PRESETS, get_preset
from netinv.records import json_safe, mean_metric
from netinv.scores import SCORES
from netinv.state import RoundState, check_resumable

log = logging.getLogger("netinv")

SHORT_FORMS = {  # option -> flat config key
    "id": "data/id",
    "ood": "data/ood",
    "rounds": "rounds/count",
    "seed": "rounds/seed",
    "device": "rounds/device",
    "data_root": "data/root",
}
SMOKE_TEST = {  # small enough for a minute on two CPU cores, same code path
    "data/train_limit": 3000, "data/test_limit": 1000, "data/id_val_size": 500,
    "classifier/width": 16, "classifier/batch_size": 32, "classifier/epochs": 2,
    "inversion/steps": 40, "inversion/samples_per_round": 500,
    "garbage/noise_count": 500, "rounds/count": 2,
}


def build_parser() -> argparse.ArgumentParser:
    """The CLI: short forms, one ``--section.field`` option per config field, run options."""
    parser = argparse.ArgumentParser(
        prog="python -m netinv", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[2:9]))
    run = parser.add_argument_group("run")
    run.add_argument("--preset", choices=sorted(PRESETS),
                     help="named configuration to start from (netinv/presets.py)")
    run.add_argument("--config", type=Path, help="JSON file of flat config keys to start from")
    run.add_argument("--out", type=Path, help="output folder (default: runs/<time>-<id>)")
    run.add_argument("--score", default="ue_tiered", choices=list(SCORES),
                     help="score shown in the per-round table (all are computed and stored)")
    run.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    run.add_argument("--resume", action="store_true", help="continue from --out/state.pt")
    run.add_argument("--smoke-test", action="store_true",
                     help="tiny data and steps: the real code path in about a minute")
    run.add_argument("-q", "--quiet", action="store_true", help="only warnings and the table")
    short = parser.add_argument_group("short forms")
    short.add_argument("--id", help="ID dataset (data/id)")
    short.add_argument("--ood", help="comma-separated OOD sets (data/ood)")
    short.add_argument("--rounds", help="inversion rounds R (rounds/count)")
    short.add_argument("--seed", help="seed (rounds/seed)")
    short.add_argument("--device", help="auto, cpu, cuda or cuda:N (rounds/device)")
    short.add_argument("--data-root", help="data folder (data/root; else $NETINV_DATA)")
    for section, cls in SECTIONS.items():
        group = parser.add_argument_group(f"{section} ({cls.__doc__.splitlines()[0]})")
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default = (f.default if f.default is not dataclasses.MISSING
                       else f.default_factory())
            group.add_argument(f"--{section}.{f.name}", dest=f"{section}/{f.name}",
                               metavar=getattr(hints[f.name], "__name__", "VALUE").upper(),
                               help=f"default: {default}")
    return parser


def config_from_args(args: argparse.Namespace, *, base: dict[str, Any] | None = None
                     ) -> Config:
    """Resolve the config: defaults < ``base`` (a resumed run's saved config) < --preset <
    --config file < --smoke-test < explicit options."""
    overrides: dict[str, Any] = dict(base or {})
    if getattr(args, "preset", None) is not None:
        overrides.update(get_preset(args.preset))
    if args.config is not None:
        if not args.config.is_file():
            raise FileNotFoundError(f"--config file not found: {args.config}")
        overrides.update(json.loads(args.config.read_text()))
    if args.smoke_test:
        overrides.update(SMOKE_TEST)
    for option, key in SHORT_FORMS.items():
        if getattr(args, option) is not None:
            overrides[key] = getattr(args, option)
    overrides.update({k: v for k, v in vars(args).items() if "/" in k and v is not None})
    return Config.from_flat(overrides)


def format_table(records: list[dict[str, Any]], score: str) -> str:
    """Per-round table: ID test accuracy, garbage size, time, and per OOD set (test split)
    AUROC / FPR95 of ``score``."""
    sets = list(dict.fromkeys(row["ood_set"] for row in records[0]["ood"]))
    head = f"{'round':>5} {'id_acc':>7} {'garbage':>8} {'time_s':>7}"
    head += "".join(f" {name[:12] + ' AUROC':>18} {'FPR95':>6}" for name in sets)
    head += f" {'mean AUROC':>10} {'mean FPR95':>10}"
    lines = [f"score: {score} (test splits)", head]
    for rec in records:
        cells = {(row["ood_set"]): row for row in rec["ood"]
                 if row["score"] == score and row["split"] == "test"}
        line = (f"{rec['round']:>5} {rec['id_test_accuracy']:>7.4f} {rec['garbage_size']:>8} "
                f"{rec['time_round_s']:>7.1f}")
        line += "".join(f" {cells[s]['auroc']:>18.4f} {cells[s]['fpr95']:>6.3f}" for s in sets)
        line += (f" {mean_metric(rec, score=score, metric='auroc', split='test'):>10.4f}"
                 f" {mean_metric(rec, score=score, metric='fpr95', split='test'):>10.4f}")
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m netinv``; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    state = None
    if args.resume:  # the saved run's config is the base; options given now override it
        if args.out is None or not (args.out / "state.pt").is_file():
            print(f"error: --resume needs the run's --out folder with a state.pt, "
                  f"got --out={args.out}", file=sys.stderr)
            return 2
        state = RoundState.load(args.out / "state.pt")
    try:
        config = config_from_args(args, base=state.config if state is not None else None)
    except (KeyError, TypeError, ValueError, FileNotFoundError) as err:
        print(f"error: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    out = args.out or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{config.data.id}"
    out.mkdir(parents=True, exist_ok=True)
    log.info("writing into %s; config:\n%s", out, config.to_json())

    from netinv.detector import Detector
    from netinv.plots import save_grid

    def on_round(record: dict[str, Any], state: RoundState) -> None:
        # rewritten whole from the state's records, so a resumed run never duplicates a line
        lines = "".join(json.dumps(json_safe(rec)) + "\n" for rec in state.records)
        (out / "rounds.jsonl.tmp").write_text(lines)
        (out / "rounds.jsonl.tmp").replace(out / "rounds.jsonl")
        if state.grid is not None:
            save_grid(state.grid, state.classes, out / f"grid-round-{record['round']}.png",
                      title=f"{config.data.id}: inverted images, round {record['round']}")
        state.save(out / "state.pt")
        if not args.quiet:
            print(format_table([record], args.score), flush=True)

    try:
        if state is not None:
            check_resumable(config, state)  # before config.json is replaced
        (out / "config.json").write_text(config.to_json())
        result = run_rounds(config, state=state, on_round=on_round)
    except (DataUnavailableError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"error: {err}; lower the learning rates or noise std.", file=sys.stderr)
        return 1
    final = result.records[-1]
    # the detector reports the score that separates best on validation (never chosen on test)
    best = max(SCORES, key=lambda s: mean_metric(final, score=s, metric="auroc",
                                                       split="val"))
    Detector.from_state(result.state, score=best).save(out / "detector.pt")
    print()
    print(format_table(result.records, args.score))
    print(f"\nbest score on validation: {best} (test mean AUROC "
          f"{mean_metric(final, score=best, metric='auroc', split='test'):.4f}); "
          f"detector.pt uses it; outputs in {out}")
    return 0
