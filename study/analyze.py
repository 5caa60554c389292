"""Turn a study folder into a report: leaderboard, best config, best detector, plots.

    python -m study.analyze studies/mnist-loss-weights
    python -m study.analyze studies/mnist-loss-weights --out /tmp/report --top 10
    python -m study.analyze studies/mnist-loss-weights --objective energy:fpr95

Writes into ``--out`` (default ``<study>/report/``): ``report.md`` (open it in any Markdown
viewer; the PNGs sit beside it), ``leaderboard.csv`` (trials with a finished round, best first),
``summary.csv`` (every trial, failed ones with their reasons), ``best_config.json`` (run it with
``python -m netinv --config best_config.json``), ``best_detector.pt`` (``Detector.load``),
``importance.csv`` and the figures.

Trials are ranked on the **validation** objective only: each trial's best round is the one with
the best val objective, and that round's **test** metrics are reported beside it, never used to
choose. The objective ``<score>:<metric>`` (e.g. ``ue_tiered:auroc``) is the metric of that score
averaged over the OOD sets; ``fpr95`` is minimised, every other metric maximised. The analysis
only reads the study folder, so it can run while the study does.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from netinv.config import Config
from netinv.metrics import METRIC_NAMES
from netinv.pipeline import RoundState
from study import plots
from study import layout, storage
from study import results as R
from study.objective import DEFAULT_OBJECTIVE, Objective

log = logging.getLogger(__name__)

TOP_TRIALS = 5  # trials drawn in the per-round figure and shown first in report.md
MACHINE_KEYS = {"data/root": None, "rounds/device": "auto"}  # reset in best_config.json
IMPORTANCE_MIN_TRIALS = 2  # completed Optuna trials fANOVA needs at the very least
OUTPUTS = ("report.md", "leaderboard.csv", "summary.csv", "best_config.json", "best_detector.pt",
           "importance.csv", "history.png", "importance.png", "rounds.png", "grids.png",
           "roc.png", "histograms.png")
# artifacts/<trial>/: best val round's, last round's
STATE_FILES = (layout.BEST_STATE_FILE, layout.STATE_FILE)


# ----------------------------------------------------------------------------- objective


# ----------------------------------------------------------------------------- tables


def read_study_json(study_dir: str) -> dict[str, Any]:
    """The launch options in ``study.json``; ``{}`` for a study folder without one."""
    return layout.read_study_file(study_dir) or {}


def study_objective(trials: pd.DataFrame, study_json: dict[str, Any]) -> Objective:
    """The study's own objective: the trials' ``objective_name``, else study.json's."""
    names = trials["objective_name"].dropna() if "objective_name" in trials else pd.Series()
    candidates = [*names.mode().tolist(), study_json.get("objective"),
                  study_json.get("objective_name")]
    for candidate in candidates:
        if isinstance(candidate, str):
            try:
                return Objective.parse(candidate)
            except ValueError:
                log.warning("the study's objective %r is not <score>:<metric>", candidate)
    return Objective.parse(DEFAULT_OBJECTIVE)


def ood_means(ood: pd.DataFrame, score: str, metric: str, split: str) -> pd.DataFrame:
    """Mean of ``metric`` over OOD sets per (trial_id, round), for one score and split."""
    rows = ood[(ood[R.SCORE] == score) & (ood[R.SPLIT] == split)]
    out = rows.groupby([R.TRIAL_ID, R.ROUND], as_index=False)[metric].mean()
    return out.rename(columns={metric: f"{split}_{metric}_mean"})


def round_table(rounds: pd.DataFrame, ood: pd.DataFrame, objective: Objective) -> pd.DataFrame:
    """One row per (trial, round): val objective, test metrics of the objective's score.

    Columns: trial_id, round, val_objective, id_val_accuracy, id_test_accuracy,
    test_<m>_mean for every metric, test_auroc/<set> and test_fpr95/<set> per OOD set.
    """
    keys = [R.TRIAL_ID, R.ROUND]
    table = rounds[keys + [R.ID_VAL_ACCURACY, R.ID_TEST_ACCURACY]].copy()
    val = ood_means(ood, objective.score, objective.metric, R.VAL)
    table = table.merge(val.rename(columns={val.columns[-1]: "val_objective"}), on=keys,
                        how="left")
    for metric in METRIC_NAMES:
        table = table.merge(ood_means(ood, objective.score, metric, R.TEST), on=keys, how="left")
    test = ood[(ood[R.SCORE] == objective.score) & (ood[R.SPLIT] == R.TEST)]
    for metric in (R.AUROC, R.FPR95):
        wide = test.pivot_table(index=keys, columns=R.OOD_SET, values=metric, aggfunc="mean")
        wide.columns = [f"test_{metric}/{name}" for name in wide.columns]
        table = table.merge(wide.reset_index(), on=keys, how="left")
    return table.sort_values(keys).reset_index(drop=True)


def best_rounds(table: pd.DataFrame, objective: Objective) -> pd.DataFrame:
    """Each trial's best round by val objective (earliest on ties); trials without one drop."""
    valid = table.dropna(subset=["val_objective"])
    if valid.empty:
        return valid.copy()
    key = valid["val_objective"] if objective.minimize else -valid["val_objective"]
    order = valid.assign(_key=key).sort_values([R.TRIAL_ID, "_key", R.ROUND], kind="stable")
    return order.groupby(R.TRIAL_ID, as_index=False).head(1).drop(columns="_key")


def leaderboard(trials: pd.DataFrame, table: pd.DataFrame, objective: Objective
                ) -> pd.DataFrame:
    """Trials with a finished round, ranked by their best val objective (best first).

    Test columns describe the chosen round and play no part in the ranking.
    """
    best = best_rounds(table, objective).rename(columns={R.ROUND: "best_round"})
    info = trials.drop(columns=["best_round", R.OBJECTIVE], errors="ignore")
    board = best.merge(info, on=R.TRIAL_ID, how="left")
    board["rounds_done"] = board[R.TRIAL_ID].map(table.groupby(R.TRIAL_ID)[R.ROUND].max())
    ascending = objective.minimize
    board = board.sort_values(["val_objective", "optuna_number", R.TRIAL_ID],
                              ascending=[ascending, True, True], kind="stable",
                              na_position="last")
    board.insert(0, "rank", range(1, len(board) + 1))
    return board.reset_index(drop=True)


def searched_params(row: pd.Series) -> dict[str, Any]:
    """The params Optuna proposed for a trial (from its ``searched_params`` JSON)."""
    text = row.get("searched_params")
    if not isinstance(text, str) or not text:
        return {}
    try:
        return dict(json.loads(text))
    except (ValueError, TypeError):
        return {}


def best_config(row: pd.Series) -> dict[str, Any]:
    """The trial's full flat config, machine-specific keys reset (``MACHINE_KEYS``).

    Raises:
        ValueError: The trial row has no ``config_json``, or a value out of range.
        KeyError, TypeError: A key or value this netinv's Config no longer accepts.
    """
    text = row.get("config_json")
    if not isinstance(text, str) or not text:
        raise ValueError(f"the trial row must hold config_json, got trial_id="
                         f"{row.get(R.TRIAL_ID)!r} without one.")
    flat = Config.from_flat(json.loads(text)).to_flat()  # validates and fills every key
    flat.update(MACHINE_KEYS)
    return flat


# ----------------------------------------------------------------------------- optuna


def param_importances(study_dir: str, study_json: dict[str, Any]
                      ) -> tuple[dict[str, float] | None, str]:
    """fANOVA importances from the study's Optuna journal, or None and the reason why not."""
    path = Path(study_dir) / layout.JOURNAL_FILE
    if not path.is_file():
        return None, f"no Optuna journal at `{path}`: importance needs it."
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(path)))
    names = optuna.get_all_study_names(storage)
    wanted = study_json.get("study_name") or study_json.get("name") or Path(study_dir).name
    if not names:
        return None, "the Optuna journal holds no study yet."
    name = wanted if wanted in names else names[0]
    study = optuna.load_study(study_name=name, storage=storage)
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(completed) < IMPORTANCE_MIN_TRIALS:
        return None, (f"parameter importance needs at least {IMPORTANCE_MIN_TRIALS} completed "
                      f"Optuna trials; the study has {len(completed)}.")
    target, about = None, ""
    if len(study.directions) > 1:  # nsga2 studies: (ID val accuracy, objective)
        metric_names = study.metric_names or []
        index = metric_names.index(R.OBJECTIVE) if R.OBJECTIVE in metric_names else -1
        target = lambda t: t.values[index]  # noqa: E731
        about = " (a multi-objective study: importance for the objective, not ID accuracy)"
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        values = optuna.importance.get_param_importances(study, evaluator=evaluator,
                                                         target=target)
    except (RuntimeError, ValueError) as err:
        return None, f"Optuna could not compute importances: {err}"
    if not values:
        return None, "the completed trials share no searched parameter."
    return dict(values), (f"fANOVA over {len(completed)} completed trials of Optuna study "
                          f"`{name}`{about}.")


# ----------------------------------------------------------------------------- report


@dataclass
class Report:
    """What :func:`analyze` wrote: file role -> path, the best trial, and notes."""

    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    best_trial: str | None = None
    notes: list[str] = field(default_factory=list)


def _fmt(value: Any) -> str:
    if value is None or (not isinstance(value, (str, dict, list)) and pd.isna(value)):
        return "–"
    if isinstance(value, (float, np.floating)):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (floats to 4 places, missing as –)."""
    if frame.empty:
        return "_none_\n"
    lines = ["| " + " | ".join(str(c) for c in frame.columns) + " |",
             "|" + "---|" * len(frame.columns)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _load_state(study_dir: str, trial_id: str) -> RoundState | None:
    """The trial's kept RoundState: its best val round's if kept, else its last round's."""
    for name in STATE_FILES:
        data = storage.get_bytes(layout.artifact_uri(study_dir, trial_id, name))
        if data is not None:
            return RoundState.load(io.BytesIO(data))
    return None


def load_trials(study_dir: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The trials, rounds and OOD tables; trials sorted by launch, with an ``order`` column.

    A trial seen only through its round files (its trial row not written yet) gets a row with
    status running.

    Raises:
        ValueError: The folder holds no results at all.
    """
    trials = R.read_table(study_dir, "trials")
    rounds = R.read_table(study_dir, "rounds")
    ood = R.read_table(study_dir, "ood")
    if trials.empty and rounds.empty:
        raise ValueError(f"the study folder must hold results/trials or results/rounds "
                         f"Parquet files, got study_dir={study_dir!r} without any.")
    extra = sorted(set(rounds[R.TRIAL_ID]) - set(trials[R.TRIAL_ID]))
    if extra:
        trials = pd.concat([trials, pd.DataFrame({R.TRIAL_ID: extra, "status": R.RUNNING})],
                           ignore_index=True)
    trials = trials.sort_values(["optuna_number", R.TRIAL_ID], na_position="last",
                                kind="stable").reset_index(drop=True)
    trials["order"] = range(len(trials))
    return trials, rounds, ood


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
        ValueError: A malformed objective, ``top`` < 1, or a study folder without results.
    """
    if top < 1:
        raise ValueError(f"`top` must be >= 1, got top={top}.")
    study_dir = str(study_dir)
    trials, rounds, ood = load_trials(study_dir)
    study_json = read_study_json(study_dir)
    goal = Objective.parse(objective) if objective else study_objective(trials, study_json)
    out_dir = Path(out) if out is not None else Path(study_dir) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:  # a file this run cannot make must not survive from an earlier one
        (out_dir / name).unlink(missing_ok=True)
    report = Report(out=out_dir)
    names = trials[R.STUDY].dropna() if R.STUDY in trials else pd.Series()
    study_name = names.iloc[0] if len(names) else Path(study_dir).name

    # leaderboard (chosen on val, test beside it) and summary (every trial), as CSV
    table = round_table(rounds, ood, goal)
    board = leaderboard(trials, table, goal)
    ood_sets = sorted(ood[R.OOD_SET].unique()) if not ood.empty else []
    params = sorted({k for _, row in board.iterrows() for k in searched_params(row)})
    per_set = [f"test_{m}/{s}" for m in (R.AUROC, R.FPR95) for s in ood_sets]
    board_csv = board.reindex(columns=[
        "rank", R.TRIAL_ID, "optuna_number", "status", "best_round", "rounds_done",
        "val_objective", *[f"test_{m}_mean" for m in METRIC_NAMES], *per_set,
        R.ID_TEST_ACCURACY, R.ID_VAL_ACCURACY]).copy()
    for p in params:
        board_csv[p] = [searched_params(row).get(p) for _, row in board.iterrows()]
    report.files["leaderboard"] = out_dir / "leaderboard.csv"
    board_csv.to_csv(report.files["leaderboard"], index=False)

    by_trial = board.set_index(R.TRIAL_ID)
    summary = trials.reindex(columns=[R.TRIAL_ID, "optuna_number", "status", "failure_reason",
                                      "attempts", "seed", "wall_s", "node_ip", "started_at",
                                      "ended_at", "searched_params"]).copy()
    summary.insert(4, "rounds_done", summary[R.TRIAL_ID].map(
        table.groupby(R.TRIAL_ID)[R.ROUND].max()).astype("Int64"))
    for col in ("best_round", "val_objective", "test_auroc_mean", "test_fpr95_mean",
                R.ID_TEST_ACCURACY):
        summary[col] = summary[R.TRIAL_ID].map(by_trial[col]) if len(board) else np.nan
    summary["best_round"] = summary["best_round"].astype("Int64")
    summary.insert(0, "objective_name", goal.name)
    report.files["summary"] = out_dir / "summary.csv"
    summary.to_csv(report.files["summary"], index=False)

    # report.md, top to bottom
    counts = trials["status"].fillna("unknown").value_counts()
    md = [f"# Study `{study_name}`\n",
          f"Folder `{study_dir}`; report written {time.strftime('%Y-%m-%d %H:%M')}. "
          f"Trials: {', '.join(f'{n} {s}' for s, n in counts.items())}.\n",
          f"Objective **{goal.name}**: mean {goal.metric} of score `{goal.score}` over the OOD "
          f"sets on the **validation** split, {'lower' if goal.minimize else 'higher'} is "
          f"better. Each trial's best round is chosen on it; the test metrics shown are that "
          f"round's and never choose anything.\n"]

    md.append("## Leaderboard\n")
    shown = board_csv.head(max(top, 10))
    md.append(markdown_table(shown[["rank", R.TRIAL_ID, "status", "best_round", "rounds_done",
                                    "val_objective", "test_auroc_mean", "test_fpr95_mean",
                                    R.ID_TEST_ACCURACY, *params]].rename(columns={
        "val_objective": f"val {goal.name}", "test_auroc_mean": "test AUROC (mean)",
        "test_fpr95_mean": "test FPR95 (mean)", R.ID_TEST_ACCURACY: "ID test acc",
        "best_round": "best round", "rounds_done": "rounds"})))
    if per_set:
        md.append(f"\nTest metrics per OOD set (score `{goal.score}`, at each trial's best "
                  f"round):\n")
        md.append(markdown_table(shown[["rank", R.TRIAL_ID, *per_set]]))
    md.append("\nAll trials: `leaderboard.csv` (ranked, every metric) and `summary.csv` (every "
              "trial, whatever its status).\n")

    md.append("## Optimisation history\n")
    history = trials[["order", R.TRIAL_ID, "status"]].assign(
        objective=trials[R.TRIAL_ID].map(by_trial["val_objective"]).astype(float)
        if len(board) else np.nan)
    report.files["history"] = out_dir / "history.png"
    plots.optimisation_history(history, report.files["history"], label=goal.name,
                               minimize=goal.minimize)
    md.append(f"Each trial's best val {goal.name}, in launch order.\n\n![history](history.png)\n")

    md.append("## Parameter importance\n")
    importances, note = param_importances(study_dir, study_json)
    if importances is None:
        report.notes.append(note)
        md.append(f"_Not computed: {note}_\n")
    else:
        report.files["importance"] = out_dir / "importance.png"
        plots.importance_bars(importances, report.files["importance"])
        report.files["importance_csv"] = out_dir / "importance.csv"
        pd.DataFrame({"parameter": list(importances), "importance": list(importances.values())}
                     ).to_csv(report.files["importance_csv"], index=False)
        md.append(f"{note} Importance is for the objective Optuna was told (the study's own); "
                  f"browse the study with `optuna-dashboard {Path(study_dir) / layout.JOURNAL_FILE}`."
                  f"\n\n![importance](importance.png)\n")

    if len(board):
        top_ids = board[R.TRIAL_ID].head(top).tolist()
        md.append(f"## Top {len(top_ids)} trials, round by round\n")
        per_round = table[table[R.TRIAL_ID].isin(top_ids)].copy()
        per_round["trial"] = per_round[R.TRIAL_ID].map(
            {t: f"#{i + 1} {t}" for i, t in enumerate(top_ids)})
        per_round["_rank"] = per_round[R.TRIAL_ID].map({t: i for i, t in enumerate(top_ids)})
        report.files["rounds"] = out_dir / "rounds.png"
        plots.metric_per_round(per_round.sort_values(["_rank", R.ROUND]),
                               report.files["rounds"], label=goal.name)
        md.append("Round 0 is the noise-only garbage class, before any inversion.\n\n"
                  "![rounds](rounds.png)\n")
        md.extend(_best_trial(study_dir, board.iloc[0], goal, out_dir, report))
    else:
        report.notes.append("no trial has a finished round with validation metrics yet: no "
                            "best trial, config or detector.")

    failed = trials[trials["status"] == R.FAILED]
    md.append("## Failed trials\n")
    md.append(markdown_table(failed.reindex(columns=[R.TRIAL_ID, "optuna_number", "attempts",
                                                     "failure_reason", "searched_params"])))
    running = trials[trials["status"] == R.RUNNING]
    if len(running):
        md.append("## Running trials\n")
        running = running.assign(rounds_done=running[R.TRIAL_ID].map(
            table.groupby(R.TRIAL_ID)[R.ROUND].max()).astype("Int64"))
        md.append(markdown_table(running.reindex(columns=[R.TRIAL_ID, "optuna_number",
                                                          "rounds_done", "started_at"])))
        md.append("\nThey are ranked on their finished rounds; rerun the analysis later.\n")
    if report.notes:
        md.append("## Notes\n")
        md.append("".join(f"- {n}\n" for n in report.notes))

    report.best_trial = str(board.iloc[0][R.TRIAL_ID]) if len(board) else None
    report.files["report"] = out_dir / "report.md"
    report.files["report"].write_text("\n".join(md))
    return report


def _best_trial(study_dir: str, row: pd.Series, goal: Objective, out_dir: Path,
                report: Report) -> list[str]:
    """The best trial's section: config, detector, grids, ROC curves, histograms."""
    from netinv.detector import Detector

    tid, best_round = str(row[R.TRIAL_ID]), int(row["best_round"])
    md = ["## Best trial\n",
          f"`{tid}` (status {row.get('status')}): best val {goal.name} "
          f"{_fmt(row['val_objective'])} at round {best_round} of {int(row['rounds_done'])}; "
          f"at that round test mean AUROC {_fmt(row['test_auroc_mean'])}, test mean FPR95 "
          f"{_fmt(row['test_fpr95_mean'])}, ID test accuracy {_fmt(row[R.ID_TEST_ACCURACY])}."
          "\n"]
    params = searched_params(row)
    if params:
        md.append(markdown_table(pd.DataFrame({"searched parameter": list(params),
                                               "value": list(params.values())})))
    try:
        config = best_config(row)
    except (ValueError, KeyError, TypeError) as err:  # no config_json, or an outdated one
        report.notes.append(f"no best_config.json: {err}")
    else:
        report.files["best_config"] = out_dir / "best_config.json"
        report.files["best_config"].write_text(json.dumps(config, indent=2) + "\n")
        text = (f"\n**`best_config.json`**: the trial's full config, with "
                f"`{'`, `'.join(MACHINE_KEYS)}` reset to their defaults (they name the trial's "
                f"machine). Run it: "
                f"`python -m netinv --config best_config.json --data-root DATA`.")
        if best_round == 0:
            text += (" Its best val round was round 0, the noise-only baseline: the inversion "
                     "rounds did not improve the val objective for this trial.")
        elif best_round < config["rounds/count"]:
            text += (f" Its best val round was {best_round} of {config['rounds/count']}: add "
                     f"`--rounds {best_round}` to stop there.")
        md.append(text + "\n")

    state = _load_state(study_dir, tid)
    if state is None:
        report.notes.append(f"trial {tid} has no artifacts/{tid}/state.pt: no detector, ROC "
                            f"curves or histograms.")
    else:
        try:
            detector = Detector.from_state(state, score=goal.score)
        except ValueError as err:
            report.notes.append(f"no best_detector.pt: {err}")
        else:
            report.files["best_detector"] = out_dir / "best_detector.pt"
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

    grids = []
    for r in range(1, int(row["rounds_done"]) + 1):
        data = storage.get_bytes(layout.artifact_uri(study_dir, tid, layout.grid_name(r)))
        if data is not None:
            path = out_dir / "grids" / f"{tid}-round-{r}.png"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            grids.append((f"round {r}", path))
    md.append("### Inverted images\n")
    if grids:
        report.files["grids"] = out_dir / "grids.png"
        plots.compose_images(grids, report.files["grids"])
        md.append("What the generator made of each class, one row per class, one panel per "
                  "round (single rounds in `grids/`).\n\n![grids](grids.png)\n")
    else:
        md.append("_No grid images were saved for this trial._\n")

    scores = state.test_scores if state is not None else None
    if not scores or "id" not in scores or len(scores) < 2:
        return md
    id_scores = scores["id"][goal.score].double().numpy()
    ood_scores = {name: s[goal.score].double().numpy() for name, s in scores.items()
                  if name != "id"}
    title = f"{tid}, round {state.round}: {goal.score}, ID test vs OOD test"
    report.files["roc"] = out_dir / "roc.png"
    plots.roc_curves(id_scores, ood_scores, report.files["roc"], title=title)
    report.files["histograms"] = out_dir / "histograms.png"
    plots.score_histograms(id_scores, ood_scores, report.files["histograms"], score=goal.score,
                           title=title)
    md.append(f"### Test-set separation (round {state.round})\n")
    md.append("ROC curves with OOD as the detected side; the dotted line is where 95% of ID "
              "test images are accepted (there a curve's height is 1 − FPR95).\n\n"
              "![roc](roc.png)\n\n![histograms](histograms.png)\n")
    return md


# ----------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m study.analyze", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", help="study folder <storage>/<name>")
    parser.add_argument("--out", help="report folder (default: <study>/report)")
    parser.add_argument("--objective", help="<score>:<metric> to rank by, val split "
                        "(default: the study's own, e.g. ue_tiered:auroc)")
    parser.add_argument("--top", type=int, default=TOP_TRIALS,
                        help=f"trials in the per-round figure (default: {TOP_TRIALS})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m study.analyze``; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    study_dir = args.study
    if "://" not in study_dir and not Path(study_dir).is_dir():
        print(f"error: the study folder must exist, got {study_dir!r}", file=sys.stderr)
        return 2
    try:
        report = analyze(study_dir, out=args.out, objective=args.objective, top=args.top)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report: {report.files['report']}")
    if report.best_trial:
        print(f"best trial (val): {report.best_trial}")
    for note in report.notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
