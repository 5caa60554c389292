"""Run one netinv pipeline from the command line.

    python -m netinv --id mnist --ood fashionmnist,cifar10,tinyimagenet --rounds 3
    python -m netinv --data-root ../shared/data --rounds 2 --out runs/mnist
    python -m netinv --config best_config.json          # e.g. a study's best configuration
    python -m netinv --preset mnist --data-root ../shared/data   # a shipped preset
    python -m netinv --inversion.alpha_kl 2 --garbage.policy uncertain --garbage.ue_threshold 0.3
    python -m netinv --smoke-test                        # tiny data, a minute on a laptop CPU
    python -m netinv --out runs/mnist --rounds 4 --resume   # continue a run with more rounds

Every config field is an option --section.field (listed below with its unit, range and
default); --id, --ood, --rounds, --seed, --device and --data-root are short forms. Writes into
--out (default: a fresh runs/<time>-<id> folder): config.json, rounds.jsonl (one object per
round), grid-round-<r>.png (inverted images, one row per class), state.pt (resumable with
--resume) and detector.pt (load with netinv.Detector.load). One run at a time holds a folder;
a folder that already holds a run is refused unless --resume continues it or --overwrite
replaces it. Exit status: 0 done, 2 bad input (one "error:" line), 1 the run failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from netinv import __version__
from netinv.cli_errors import EXIT_FAILED, CLIError, run_cli
from netinv.cli_logging import add_logging_options, apply_logging_options
from netinv.config import SECTIONS, Config, config_field, config_fields
from netinv.presets import PRESETS, get_preset
from netinv.run_folder import claim_run_folder, write_atomic

if TYPE_CHECKING:
    from netinv.state import RoundState

# torch and the pipeline are imported after the options are parsed, so --help and bad options
# answer at once

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
METAVARS = {int: "INT", float: "FLOAT", bool: "BOOL", str: "STR", tuple: "A,B,.."}


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The CLI: run options, short forms, and one ``--section.field`` option per config field
    (from :func:`netinv.config.config_fields`, with its help, range, choices and default)."""
    parser = argparse.ArgumentParser(prog="python -m netinv", usage="%(prog)s [options]",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    run = parser.add_argument_group("run")
    run.add_argument("--version", action="version", version=f"netinv-study {__version__}")
    run.add_argument("--preset", choices=sorted(PRESETS),
                     help="named configuration to start from (netinv.presets)")
    run.add_argument("--config", type=Path, metavar="FILE", help="JSON file of flat config keys to start from")
    run.add_argument("--out", type=Path, metavar="FOLDER", help="output folder (default: runs/<time>-<id>)")
    run.add_argument("--score", default="ue_tiered", metavar="NAME",
                     help="score shown in the per-round table, a name of netinv.scores.SCORES "
                          "(or of FITTED_SCORES with --rounds.fitted_scores true); all are "
                          "computed and stored (default: ue_tiered)")
    run.add_argument("--threads", type=_positive_int, metavar="N",
                     help="torch CPU threads, >= 1 (default: torch's choice)")
    run.add_argument("--round0-cache", action="store_true",
                     help="load round 0 from $NETINV_CACHE/round0 when a run with the same "
                          "round-0 settings stored it, else store it there "
                          "(netinv.round0_cache; default: always train it)")
    again = run.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its state.pt")
    again.add_argument("--overwrite", action="store_true",
                       help="replace the run already in --out (its files are removed first)")
    run.add_argument("--smoke-test", action="store_true",
                     help="tiny data and steps: the real code path in about a minute")
    add_logging_options(parser)
    short = parser.add_argument_group("short forms")
    for option, key in SHORT_FORMS.items():
        spec = config_field(key)
        short.add_argument(f"--{option.replace('_', '-')}", metavar=METAVARS[spec.kind],
                           help=f"{spec.describe()}; = --{key.replace('/', '.')}")
    groups: dict[str, Any] = {}  # section -> its argparse group
    for spec in config_fields():
        section = spec.key.partition("/")[0]
        if section not in groups:
            groups[section] = parser.add_argument_group(f"{section}: {SECTIONS[section].TITLE}")
        groups[section].add_argument(f"--{section}.{spec.name}", dest=spec.key,
                                     metavar=METAVARS[spec.kind],
                                     help=spec.describe().replace("%", "%%"))
    return parser


def read_config_file(path: Path) -> dict[str, Any]:
    """The flat config keys of a ``--config`` JSON file, keys and types checked.

    Raises:
        CLIError: The file is missing, not UTF-8, not JSON, not an object, or holds an unknown
            key or a value of the wrong type; the message names the file.
    """
    if not path.is_file():
        raise CLIError(f"--config file not found: {path}")
    try:
        flat = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise CLIError(f"--config {path} is not UTF-8 text (bad byte at {err.start})") from None
    except json.JSONDecodeError as err:
        raise CLIError(f"--config {path} is not valid JSON: {err}") from None
    if not isinstance(flat, dict):
        raise CLIError(f"--config {path} must hold a JSON object of flat config keys, e.g. "
                       f'{{"inversion/alpha_kl": 2.0}}, got a JSON {type(flat).__name__}')
    for key, value in flat.items():
        nested = isinstance(value, dict) and key in SECTIONS
        for sub, item in (value.items() if nested else [(None, value)]):
            try:
                config_field(f"{key}/{sub}" if nested else key).coerce(item)
            except (KeyError, TypeError) as err:
                raise CLIError(f"--config {path}: {err.args[0]}") from None
    return flat


def config_from_args(args: argparse.Namespace, *, base: dict[str, Any] | None = None
                     ) -> Config:
    """Resolve the config: defaults < ``base`` (a resumed run's saved config) < --preset <
    --config file < --smoke-test < explicit options."""
    overrides: dict[str, Any] = dict(base or {})
    if getattr(args, "preset", None) is not None:
        overrides.update(get_preset(args.preset))
    if args.config is not None:
        overrides.update(read_config_file(args.config))
    if args.smoke_test:
        overrides.update(SMOKE_TEST)
    for option, key in SHORT_FORMS.items():
        if getattr(args, option) is not None:
            overrides[key] = getattr(args, option)
    overrides.update({k: v for k, v in vars(args).items() if "/" in k and v is not None})
    return Config.from_flat(overrides)


def load_state(path: Path) -> RoundState:
    """The ``RoundState`` saved at ``path``, or a CLIError naming the file."""
    from netinv.state import RoundState

    try:  # the loader checks what it read and names the file and the key that is wrong
        return RoundState.load(path)
    except ValueError as err:
        raise CLIError(f"--resume: cannot use {path}: {err}") from None


def _mean_or_nan(record: dict[str, Any], score: str, metric: str) -> float:
    """Test mean of ``metric``, NaN when the record predates the metric (a resumed old run)."""
    from netinv.records import mean_metric

    if any(metric not in row for row in record["ood"]):
        return float("nan")
    return mean_metric(record, score=score, metric=metric, split="test")


def format_table(records: list[dict[str, Any]], score: str) -> str:
    """Per-round table: ID test accuracy, garbage size, time, per OOD set (test split) AUROC /
    FPR95 (ID positive) of ``score``, and the means, with FPR95 OOD positive (OpenOOD's)."""
    from netinv.metrics import FPR95_OOD_POSITIVE
    from netinv.records import mean_metric

    sets = list(dict.fromkeys(row["ood_set"] for row in records[0]["ood"]))
    head = f"{'round':>5} {'id_acc':>7} {'garbage':>8} {'time_s':>7}"
    head += "".join(f" {name[:12] + ' AUROC':>18} {'FPR95':>6}" for name in sets)
    head += f" {'mean AUROC':>10} {'mean FPR95':>10} {'FPR95 OOD+':>10}"
    lines = [f"score: {score} (test splits; FPR95: ID positive, FPR95 OOD+: OOD positive)",
             head]
    for rec in records:
        cells = {(row["ood_set"]): row for row in rec["ood"]
                 if row["score"] == score and row["split"] == "test"}
        line = (f"{rec['round']:>5} {rec['id_test_accuracy']:>7.4f} {rec['garbage_size']:>8} "
                f"{rec['time_round_s']:>7.1f}")
        line += "".join(f" {cells[s]['auroc']:>18.4f} {cells[s]['fpr95']:>6.3f}" for s in sets)
        line += (f" {mean_metric(rec, score=score, metric='auroc', split='test'):>10.4f}"
                 f" {mean_metric(rec, score=score, metric='fpr95', split='test'):>10.4f}"
                 f" {_mean_or_nan(rec, score, FPR95_OOD_POSITIVE):>10.4f}")
        lines.append(line)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m netinv``; returns the exit code (2: bad input, one
    ``error:`` line on stderr; 1: the run failed)."""
    return run_cli(_main, argv)


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    apply_logging_options(args, fmt="%(asctime)s %(message)s")
    import torch

    from netinv.scores import FITTED_SCORES, SCORES
    from netinv.state import check_resumable

    if args.score not in (*SCORES, *FITTED_SCORES):
        raise CLIError(f"--score must be one of {', '.join((*SCORES, *FITTED_SCORES))}, got "
                       f"--score={args.score!r}")
    config = None
    if args.resume:  # the saved run's config is the base; options given now override it
        if args.out is None or not (args.out / "state.pt").is_file():
            raise CLIError(f"--resume needs the run's --out folder with a state.pt, "
                           f"got --out={args.out}")
        out = args.out
    else:  # checked before anything is written
        config = config_from_args(args)
        _check_score(args.score, config)
        out = args.out or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{config.data.id}"
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    with claim_run_folder(out, resume=args.resume, overwrite=args.overwrite):
        state = None
        if args.resume:
            state = load_state(out / "state.pt")
            config = config_from_args(args, base=state.config)
            check_resumable(config, state)  # before config.json is replaced
        _check_score(args.score, config)
        write_atomic(out / "config.json", config.to_json())
        log.info("writing into %s; config:\n%s", out, config.to_json())
        return _run(config, state, out, score=args.score, quiet=args.quiet,
                    round0_cache=args.round0_cache)


def _check_score(score: str, config: Config) -> None:
    """A fitted ``--score`` needs ``rounds/fitted_scores`` (CLIError otherwise)."""
    from netinv.scores import FITTED_SCORES

    if score in FITTED_SCORES and not config.rounds.fitted_scores:
        raise CLIError(f"--score {score} needs --rounds.fitted_scores true (the fitted scores "
                       f"are computed only then)")


def _run(config: Config, state: RoundState | None, out: Path, *, score: str, quiet: bool,
         round0_cache: bool = False) -> int:
    """The rounds, with every round's outputs written as it finishes, then the detector."""
    from netinv.inversion import NonFiniteLossError
    from netinv.pipeline import run_detector, run_rounds
    from netinv.records import json_safe, mean_metric, record_scores
    from netinv.round0_cache import Round0Cache
    from netinv.plots import save_grid

    def on_round(record: dict[str, Any], state: RoundState) -> None:
        # rewritten whole from the state's records, so a resumed run never duplicates a line
        write_atomic(out / "rounds.jsonl",
                     "".join(json.dumps(json_safe(rec)) + "\n" for rec in state.records))
        if state.grid is not None:
            save_grid(state.grid, state.classes, out / f"grid-round-{record['round']}.png",
                      title=f"{config.data.id}: inverted images, round {record['round']}")
        state.save(out / "state.pt")
        if not quiet:
            print(format_table([record], score), flush=True)

    try:
        result = run_rounds(config, state=state, on_round=on_round,
                            round0_cache=Round0Cache() if round0_cache else None)
    except NonFiniteLossError as err:
        raise CLIError(f"{err}; lower the learning rates or noise std.",
                       exit_code=EXIT_FAILED) from None
    final = result.records[-1]
    # the detector reports the score that separates best on validation (never chosen on test)
    best = max(record_scores(final),
               key=lambda s: mean_metric(final, score=s, metric="auroc", split="val"))
    run_detector(result, best).save(out / "detector.pt")
    print()
    print(format_table(result.records, score))
    print(f"\nbest score on validation: {best} (test mean AUROC "
          f"{mean_metric(final, score=best, metric='auroc', split='test'):.4f}); "
          f"detector.pt uses it; outputs in {out}")
    return 0
