"""Turn a study folder into a report: leaderboard, best config, best detector, plots.

Writes into ``--out`` (default ``<study>/report/``): ``report.md`` (open it in any Markdown
viewer; the PNGs sit beside it), ``leaderboard.csv`` (complete trials with a finished round,
best first), ``summary.csv`` (every trial, failed and incomplete ones with their reasons),
``best_config.json`` (run it with ``python -m netinv --config best_config.json``),
``best_detector.pt`` (``Detector.load``), ``importance.csv`` and the figures.

Trials are ranked on the **validation** objective only: each trial's best round is the one with
the best val objective, and that round's **test** metrics are reported beside it, never used to
choose. The objective ``<score>:<metric>`` (e.g. ``ue_tiered:auroc``) is the metric of that score
averaged over the OOD sets; ``fpr95`` (ID positive) and ``fpr95_ood_positive`` (OOD positive,
OpenOOD's convention) are minimised, every other metric maximised. The analysis
only reads the study folder, so it can run while the study does.

Before ranking, each trial's row, round files and Optuna trial are cross-checked
(:mod:`study.checks`): a trial whose round files are missing or disagree with its row is listed
apart as incomplete and never becomes the winner; every finding is a note in report.md and on
stdout. The exit status is 0 with notes, 2 when nothing can be ranked.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from netinv import __version__
from netinv.cli_errors import CLIError, run_cli
from netinv.cli_logging import add_logging_options, apply_logging_options
from netinv.state import RoundState
from study import checks, layout, plots, storage
from study import report as sections
from study import results as R
from study.journal import param_importances
from study.objective import Objective
from study.tables import (MACHINE_KEYS, best_config, leaderboard, load_trials, round_table,
                          searched_params, study_objective)

log = logging.getLogger(__name__)

EXAMPLES = """examples:
  python -m study.analyze studies/mnist-loss-weights
  python -m study.analyze studies/mnist-loss-weights --out /tmp/report --top 10
  python -m study.analyze studies/mnist-loss-weights --objective energy:fpr95"""
TOP_TRIALS = 5  # trials drawn in the per-round figure and shown first in report.md
OUTPUTS = ("report.md", "leaderboard.csv", "summary.csv", "best_config.json", "best_detector.pt",
           "importance.csv", "history.png", "importance.png", "rounds.png", "grids.png",
           "roc.png", "histograms.png")
# artifacts/<trial>/: best val round's, last round's
STATE_FILES = (layout.BEST_STATE_FILE, layout.STATE_FILE)


@dataclass
class Report:
    """What :func:`analyze` wrote: file role -> path, the best trial, notes, and the trials left
    out of the ranking as incomplete (trial id -> what is missing or inconsistent)."""

    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    best_trial: str | None = None
    notes: list[str] = field(default_factory=list)
    incomplete: dict[str, list[str]] = field(default_factory=dict)


def analyze(study_dir: str | Path, *, out: str | Path | None = None,
            objective: str | None = None, top: int = TOP_TRIALS) -> Report:
    """Write the study's report (see the module docstring) and return what was written.

    Args:
        study_dir: ``<storage>/<study>``, a local folder (Parquet results and artifacts may also
            be read from a ``pyarrow.fs`` URI; importance needs the local Optuna journal).
        out: Report folder; None = ``<study_dir>/report``. Created if missing; files in it are
            replaced.
        objective: ``<score>:<metric>`` to rank by; None = the study's own objective.
        top: Trials drawn in the per-round figure, >= 1.

    Raises:
        ValueError: A malformed objective, ``top`` < 1, a study folder without results, or one
            whose trials with finished rounds are all incomplete.
    """
    if top < 1:
        raise ValueError(f"`top` must be >= 1, got top={top}.")
    study_dir = str(study_dir)
    trials, rounds, ood = load_trials(study_dir)
    study_json = layout.read_study_file(study_dir) or {}
    goal = Objective.parse(objective) if objective else study_objective(trials, study_json)
    found = checks.check_study(study_dir, study_json, trials, rounds, ood)
    table = round_table(rounds, ood, goal)
    board = leaderboard(trials, table[~table[R.TRIAL_ID].isin(found.incomplete)], goal)
    if board.empty and found.incomplete:
        raise ValueError("a study needs one complete trial to rank, but every trial with "
                         "finished rounds is incomplete: " + "; ".join(
                             f"{t}: {', '.join(p)}" for t, p in found.incomplete.items()))

    out_dir = Path(out) if out is not None else Path(study_dir) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:  # a file this run cannot make must not survive from an earlier one
        (out_dir / name).unlink(missing_ok=True)
    report = Report(out=out_dir, incomplete=found.incomplete)
    report.notes += sections.incomplete_notes(trials, board, goal, found.incomplete) + found.notes

    ood_sets = sorted(ood[R.OOD_SET].unique()) if not ood.empty else []
    board_csv, params = sections.leaderboard_csv(board, ood_sets)
    report.files["leaderboard"] = out_dir / "leaderboard.csv"
    board_csv.to_csv(report.files["leaderboard"], index=False)
    report.files["summary"] = out_dir / "summary.csv"
    sections.summary_csv(trials, table, board, goal, found.incomplete).to_csv(
        report.files["summary"], index=False)

    names = trials[R.STUDY].dropna() if R.STUDY in trials else pd.Series()
    study_name = names.iloc[0] if len(names) else Path(study_dir).name
    md = sections.header(study_name, study_dir, trials, goal)
    md += sections.leaderboard_section(board_csv, params, ood_sets, goal, top,
                                  incomplete=len(found.incomplete))
    md += _history(trials, board, goal, report)
    md += _importance(study_dir, study_json, report)
    if len(board):
        md += sections.openood_section(ood, board.iloc[0], goal)
        md += _top_rounds(table, board, goal, top, report)
        md += _best_trial(study_dir, board.iloc[0], goal, report)
        md += sections.inversion_rounds_section(rounds, ood, str(board.iloc[0][R.TRIAL_ID]),
                                                goal)
    else:
        report.notes.append("no trial has a finished round with validation metrics yet: no "
                            "best trial, config or detector.")
    md += sections.incomplete_section(trials, found.incomplete)
    md += sections.status_sections(trials, table)
    md += sections.notes_section(report.notes)

    report.best_trial = str(board.iloc[0][R.TRIAL_ID]) if len(board) else None
    report.files["report"] = out_dir / "report.md"
    report.files["report"].write_text("\n".join(md))
    return report


# ----------------------------------------------------------------------------- sections


def _history(trials: pd.DataFrame, board: pd.DataFrame, goal: Objective, report: Report
             ) -> list[str]:
    by_trial = board.set_index(R.TRIAL_ID)
    history = trials[["order", R.TRIAL_ID, "status"]].assign(
        objective=trials[R.TRIAL_ID].map(by_trial["val_objective"]).astype(float)
        if len(board) else np.nan)
    report.files["history"] = report.out / "history.png"
    plots.optimisation_history(history, report.files["history"], label=goal.name,
                               minimize=goal.minimize)
    return ["## Optimisation history\n",
            f"Each trial's best val {goal.name}, in launch order.\n\n![history](history.png)\n"]


def _importance(study_dir: str, study_json: dict, report: Report) -> list[str]:
    md = ["## Parameter importance\n"]
    importances, note = param_importances(study_dir, study_json)
    if importances is None:
        report.notes.append(note)
        return md + [f"_Not computed: {note}_\n"]
    report.files["importance"] = report.out / "importance.png"
    plots.importance_bars(importances, report.files["importance"])
    report.files["importance_csv"] = report.out / "importance.csv"
    pd.DataFrame({"parameter": list(importances), "importance": list(importances.values())}
                 ).to_csv(report.files["importance_csv"], index=False)
    return md + [f"{note} Importance is for the objective Optuna was told (the study's own); "
                 f"browse the study with `optuna-dashboard "
                 f"{Path(study_dir) / layout.JOURNAL_FILE}`.\n\n![importance](importance.png)\n"]


def _top_rounds(table: pd.DataFrame, board: pd.DataFrame, goal: Objective, top: int,
                report: Report) -> list[str]:
    top_ids = board[R.TRIAL_ID].head(top).tolist()
    per_round = table[table[R.TRIAL_ID].isin(top_ids)].copy()
    per_round["trial"] = per_round[R.TRIAL_ID].map(
        {t: f"#{i + 1} {t}" for i, t in enumerate(top_ids)})
    per_round["_rank"] = per_round[R.TRIAL_ID].map({t: i for i, t in enumerate(top_ids)})
    report.files["rounds"] = report.out / "rounds.png"
    plots.metric_per_round(per_round.sort_values(["_rank", R.ROUND]), report.files["rounds"],
                           label=goal.name)
    return [f"## Top {len(top_ids)} trials, round by round\n",
            "Round 0 is the noise-only garbage class, before any inversion.\n\n"
            "![rounds](rounds.png)\n"]


def _load_state(study_dir: str, trial_id: str) -> RoundState | None:
    """The trial's kept RoundState: its best val round's if kept, else its last round's."""
    for name in STATE_FILES:
        data = storage.get_bytes(layout.artifact_uri(study_dir, trial_id, name))
        if data is not None:
            return RoundState.load(io.BytesIO(data))
    return None


def _best_trial(study_dir: str, row: pd.Series, goal: Objective, report: Report) -> list[str]:
    """The best trial's section: config, detector, grids, ROC curves, histograms."""
    tid, best_round = str(row[R.TRIAL_ID]), int(row["best_round"])
    md = ["## Best trial\n",
          f"`{tid}` (status {row.get('status')}): best val {goal.name} "
          f"{sections.fmt(row['val_objective'])} at round {best_round} of {int(row['rounds_done'])}; "
          f"at that round test mean AUROC {sections.fmt(row['test_auroc_mean'])}, test mean FPR95 "
          f"(ID+) {sections.fmt(row['test_fpr95_mean'])}, (OOD+) "
          f"{sections.fmt(row.get('test_fpr95_ood_positive_mean'))}, ID test accuracy "
          f"{sections.fmt(row[R.ID_TEST_ACCURACY])}.\n"]
    params = searched_params(row)
    if params:
        md.append(sections.markdown_table(pd.DataFrame({"searched parameter": list(params),
                                                   "value": list(params.values())})))
    md += _best_config(row, best_round, report)
    state = _load_state(study_dir, tid)
    md += _best_detector(state, tid, best_round, goal, report)
    md += _grids(study_dir, tid, int(row["rounds_done"]), report)
    if state is not None:
        md += _separation(state, tid, goal, report)
    return md


def _best_config(row: pd.Series, best_round: int, report: Report) -> list[str]:
    try:
        config = best_config(row)
    except (ValueError, KeyError, TypeError) as err:  # no config_json, or an outdated one
        report.notes.append(f"no best_config.json: {err}")
        return []
    report.files["best_config"] = report.out / "best_config.json"
    report.files["best_config"].write_text(json.dumps(config, indent=2) + "\n")
    text = (f"\n**`best_config.json`**: the trial's full config, with "
            f"`{'`, `'.join(MACHINE_KEYS)}` reset to their defaults (they name the trial's "
            f"machine). Run it: `python -m netinv --config best_config.json --data-root DATA`.")
    if best_round == 0:
        text += (" Its best val round was round 0, the noise-only baseline: the inversion "
                 "rounds did not improve the val objective for this trial.")
    elif best_round < config["rounds/count"]:
        text += (f" Its best val round was {best_round} of {config['rounds/count']}: add "
                 f"`--rounds {best_round}` to stop there.")
    return [text + "\n"]


def _best_detector(state: RoundState | None, tid: str, best_round: int, goal: Objective,
                   report: Report) -> list[str]:
    from netinv.data import DataUnavailableError
    from netinv.pipeline import state_detector

    if state is None:
        report.notes.append(f"trial {tid} has no artifacts/{tid}/state.pt: no detector, ROC "
                            f"curves or histograms.")
        return []
    md = []
    try:  # fitted scores are fitted as the trial's evaluation fitted them (loads its data)
        detector = state_detector(state, goal.score)
    except (ValueError, DataUnavailableError) as err:
        report.notes.append(f"no best_detector.pt: {err}")
    else:
        report.files["best_detector"] = report.out / "best_detector.pt"
        detector.save(report.files["best_detector"])
        md.append(f"**`best_detector.pt`**: the classifier after round {state.round}, scoring "
                  f"`{goal.score}`:\n\n```python\nfrom netinv.detector import Detector\n"
                  f"detector = Detector.load(\"best_detector.pt\")\n"
                  f"detector.score(images)    # (N,), higher = more likely OOD\n"
                  f"detector.predict(images)  # class names or \"garbage\"\n```\n")
    if state.round != best_round:
        report.notes.append(
            f"the best trial's best val round is {best_round}, but only round "
            f"{state.round}'s state is kept: best_detector.pt, the ROC curves and the "
            f"histograms are from round {state.round}.")
    return md


def _grids(study_dir: str, tid: str, last_round: int, report: Report) -> list[str]:
    grids = []
    for r in range(1, last_round + 1):
        data = storage.get_bytes(layout.artifact_uri(study_dir, tid, layout.grid_name(r)))
        if data is not None:
            path = report.out / "grids" / f"{tid}-round-{r}.png"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            grids.append((f"round {r}", path))
    if not grids:
        return ["### Inverted images\n", "_No grid images were saved for this trial._\n"]
    report.files["grids"] = report.out / "grids.png"
    plots.compose_images(grids, report.files["grids"])
    return ["### Inverted images\n",
            "What the generator made of each class, one row per class, one panel per round "
            "(single rounds in `grids/`).\n\n![grids](grids.png)\n"]


def _separation(state: RoundState, tid: str, goal: Objective, report: Report) -> list[str]:
    scores = state.test_scores
    if not scores or "id" not in scores or len(scores) < 2:
        return []
    if goal.score not in scores["id"]:  # a fitted score of a trial that did not compute it
        report.notes.append(f"trial {tid} has no test scores for {goal.score!r}: no ROC curves "
                            f"or histograms.")
        return []
    id_scores = scores["id"][goal.score].double().numpy()
    ood_scores = {name: s[goal.score].double().numpy() for name, s in scores.items()
                  if name != "id"}
    title = f"{tid}, round {state.round}: {goal.score}, ID test vs OOD test"
    report.files["roc"] = report.out / "roc.png"
    plots.roc_curves(id_scores, ood_scores, report.files["roc"], title=title)
    report.files["histograms"] = report.out / "histograms.png"
    plots.score_histograms(id_scores, ood_scores, report.files["histograms"], score=goal.score,
                           title=title)
    return [f"### Test-set separation (round {state.round})\n",
            "ROC curves with OOD as the detected side; the dotted line is where 95% of ID "
            "test images are accepted (there a curve's height is 1 − FPR95).\n\n"
            "![roc](roc.png)\n\n![histograms](histograms.png)\n"]


# ----------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m study.analyze`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m study.analyze", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    parser.add_argument("--version", action="version", version=f"netinv-study {__version__}")
    parser.add_argument("study", help="study folder <storage>/<name>")
    parser.add_argument("--out", help="report folder (default: <study>/report)")
    parser.add_argument("--objective", help="<score>:<metric> to rank by, val split "
                        "(default: the study's own, e.g. ue_tiered:auroc)")
    parser.add_argument("--top", type=int, default=TOP_TRIALS,
                        help=f"trials in the per-round figure, >= 1 (default: {TOP_TRIALS})")
    add_logging_options(parser)
    return parser


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    apply_logging_options(args, fmt="%(message)s")
    if "://" not in args.study and not Path(args.study).is_dir():
        raise CLIError(f"the study folder must exist, got study={args.study!r}.")
    report = analyze(args.study, out=args.out, objective=args.objective, top=args.top)
    print(f"report: {report.files['report']}")
    if report.best_trial:
        print(f"best trial (val): {report.best_trial}")
    for note in report.notes:
        print(f"note: {note}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m study.analyze``; returns the exit status."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
