"""The text of a study's report: Markdown sections and the CSV frames, from computed tables.

Every function here is a pure function of tables (:mod:`study.tables`) and check findings
(:mod:`study.checks`); :mod:`study.analyze` decides what goes where and writes the files.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from netinv.metrics import METRIC_NAMES
from netinv.summary import summary_markdown
from study import results as R
from study.objective import Objective
from study.tables import searched_params

SHOWN_MIN = 10  # leaderboard rows shown in report.md at least (all are in leaderboard.csv)


def fmt(value: Any) -> str:
    """One table cell: floats to 4 places, missing as –, pipes escaped."""
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
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def rounds_done(table: pd.DataFrame) -> pd.Series:
    """trial_id -> highest round with a rounds row."""
    return table.groupby(R.TRIAL_ID)[R.ROUND].max()


def per_set_columns(ood_sets: list[str]) -> list[str]:
    """The test AUROC and FPR95 column of each OOD set, as :func:`~study.tables.round_table`
    names them."""
    return [f"test_{m}/{s}" for m in (R.AUROC, R.FPR95) for s in ood_sets]


def leaderboard_csv(board: pd.DataFrame, ood_sets: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """``leaderboard.csv``'s frame (one column per searched parameter) and those parameters."""
    params = sorted({k for _, row in board.iterrows() for k in searched_params(row)})
    per_set = per_set_columns(ood_sets)
    frame = board.reindex(columns=[
        "rank", R.TRIAL_ID, "optuna_number", "status", "best_round", "rounds_done",
        "val_objective", *[f"test_{m}_mean" for m in METRIC_NAMES], *per_set,
        R.ID_TEST_ACCURACY, R.ID_VAL_ACCURACY]).copy()
    for p in params:
        frame[p] = [searched_params(row).get(p) for _, row in board.iterrows()]
    return frame, params


def summary_csv(trials: pd.DataFrame, table: pd.DataFrame, board: pd.DataFrame,
                goal: Objective, incomplete: dict[str, list[str]]) -> pd.DataFrame:
    """``summary.csv``'s frame: every trial, whatever its status, with its problems if any."""
    by_trial = board.set_index(R.TRIAL_ID)
    summary = trials.reindex(columns=[R.TRIAL_ID, "optuna_number", "status", "failure_reason",
                                      "attempts", "seed", "wall_s", "node_ip", "started_at",
                                      "ended_at", "searched_params"]).copy()
    summary.insert(4, "rounds_done", summary[R.TRIAL_ID].map(rounds_done(table)).astype("Int64"))
    for col in ("best_round", "val_objective", "test_auroc_mean", "test_fpr95_mean",
                "test_fpr95_ood_positive_mean", R.ID_TEST_ACCURACY):
        summary[col] = summary[R.TRIAL_ID].map(by_trial[col]) if len(board) else np.nan
    summary["best_round"] = summary["best_round"].astype("Int64")
    summary["problems"] = summary[R.TRIAL_ID].map(lambda t: "; ".join(incomplete.get(t, [])))
    summary.insert(0, "objective_name", goal.name)
    return summary


def header(study_name: str, study_dir: str, trials: pd.DataFrame, goal: Objective) -> list[str]:
    """Title, folder, trial counts and what the objective is."""
    counts = trials["status"].fillna("unknown").value_counts()
    return [f"# Study `{study_name}`\n",
            f"Folder `{study_dir}`; report written {time.strftime('%Y-%m-%d %H:%M')}. "
            f"Trials: {', '.join(f'{n} {s}' for s, n in counts.items())}.\n",
            f"Objective **{goal.name}**: mean {goal.metric} of score `{goal.score}` over the OOD "
            f"sets on the **validation** split, {'lower' if goal.minimize else 'higher'} is "
            f"better. Each trial's best round is chosen on it; the test metrics shown are that "
            f"round's and never choose anything.\n"]


def leaderboard_section(board_csv: pd.DataFrame, params: list[str], ood_sets: list[str],
                        goal: Objective, top: int, *, incomplete: int) -> list[str]:
    """The ranked complete trials (and per OOD set), pointing to the CSVs."""
    per_set = per_set_columns(ood_sets)
    shown = board_csv.head(max(top, SHOWN_MIN))
    md = ["## Leaderboard\n"]
    if incomplete:
        md.append(f"Complete trials only; {incomplete} incomplete or inconsistent "
                  f"{'trial is' if incomplete == 1 else 'trials are'} listed apart below.\n")
    md.append(markdown_table(shown[["rank", R.TRIAL_ID, "status", "best_round", "rounds_done",
                                    "val_objective", "test_auroc_mean", "test_fpr95_mean",
                                    "test_fpr95_ood_positive_mean", R.ID_TEST_ACCURACY,
                                    *params]].rename(columns={
        "val_objective": f"val {goal.name}", "test_auroc_mean": "test AUROC (mean)",
        "test_fpr95_mean": "test FPR95 ID+ (mean)",
        "test_fpr95_ood_positive_mean": "test FPR95 OOD+ (mean)", R.ID_TEST_ACCURACY: "ID test acc",
        "best_round": "best round", "rounds_done": "rounds"})))
    if per_set:
        md.append(f"\nTest metrics per OOD set (score `{goal.score}`, at each trial's best "
                  f"round):\n")
        md.append(markdown_table(shown[["rank", R.TRIAL_ID, *per_set]]))
    md.append("\nAll trials: `leaderboard.csv` (ranked, every metric) and `summary.csv` (every "
              "trial, whatever its status).\n")
    return md


def openood_section(ood: pd.DataFrame, row: pd.Series, goal: Objective) -> list[str]:
    """The best trial's best round as OpenOOD v1.5 reports a benchmark: test metrics x100 of the
    objective's score per OOD set, then near- and far-OOD means (``netinv.metrics.OOD_GROUPS``)."""
    tid, best_round = row[R.TRIAL_ID], int(row["best_round"])
    id_set = row.get("data/id")
    rows = ood[(ood[R.TRIAL_ID] == tid) & (ood[R.ROUND] == best_round)
               & (ood[R.SCORE] == goal.score) & (ood[R.SPLIT] == R.TEST)]
    if rows.empty or not isinstance(id_set, str):
        return []
    per_set = {r[R.OOD_SET]: {m: None if pd.isna(r.get(m)) else float(r[m])
                              for m in METRIC_NAMES} for _, r in rows.iterrows()}
    return ["## OpenOOD-style summary\n",
            f"Best trial `{tid}`, round {best_round}, score `{goal.score}`, test split, ID set "
            f"{id_set}; values x100. FPR95 (ID+): OOD accepted at 95% ID accepted (ODIN, "
            f"Energy); FPR95 (OOD+): ID flagged at 95% OOD flagged (OpenOOD v1.5, pytorch-ood). "
            f"Near/far grouping: `netinv.metrics.OOD_GROUPS`; sets it does not place have no "
            f"group. A missing value (–) is a metric the stored rows lack.\n",
            summary_markdown(id_set, per_set)]


def incomplete_notes(trials: pd.DataFrame, board: pd.DataFrame, goal: Objective,
                     incomplete: dict[str, list[str]]) -> list[str]:
    """One note per incomplete trial: what is missing, and whether its recorded best value
    would have beaten the winner (so the winner may not be the study's best)."""
    rows = trials.set_index(R.TRIAL_ID)
    best = board["val_objective"].iloc[0] if len(board) else None
    notes = []
    for tid, problems in incomplete.items():
        text = f"trial {tid} is incomplete and not ranked: {'; '.join(problems)}."
        row = rows.loc[tid] if tid in rows.index else pd.Series(dtype=object)
        value = row.get(R.OBJECTIVE)
        same_goal = row.get("objective_name") == goal.name
        if (best is not None and same_goal and value is not None and not pd.isna(value)
                and (value < best if goal.minimize else value > best)):
            text += (f" Its trial row records a best val {goal.name} of {value:.4f}, better than "
                     f"the winner's {best:.4f}: the winner is only the best complete trial. "
                     f"Restore the missing files (e.g. finish the sync) and rerun the analysis.")
        notes.append(text)
    return notes


def incomplete_section(trials: pd.DataFrame, incomplete: dict[str, list[str]]) -> list[str]:
    """The trials left out of the ranking, with what their trial rows record."""
    if not incomplete:
        return []
    rows = trials[trials[R.TRIAL_ID].isin(incomplete)].reindex(columns=[
        R.TRIAL_ID, "optuna_number", "status", "rounds_done", "best_round", R.OBJECTIVE])
    rows = rows.rename(columns={R.OBJECTIVE: "recorded best objective"})
    rows["problems"] = rows[R.TRIAL_ID].map(lambda t: "; ".join(incomplete[t]))
    return ["## Incomplete or inconsistent trials\n",
            "Their trial rows and round files disagree, so they are not ranked and cannot be "
            "the winner; the values shown are what their trial rows record.\n",
            markdown_table(rows)]


def status_sections(trials: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """The failed trials (always) and the running ones (when there are any)."""
    failed = trials[trials["status"] == R.FAILED]
    md = ["## Failed trials\n",
          markdown_table(failed.reindex(columns=[R.TRIAL_ID, "optuna_number", "attempts",
                                                 "failure_reason", "searched_params"]))]
    running = trials[trials["status"] == R.RUNNING]
    if len(running):
        running = running.assign(
            rounds_done=running[R.TRIAL_ID].map(rounds_done(table)).astype("Int64"))
        md += ["## Running trials\n",
               markdown_table(running.reindex(columns=[R.TRIAL_ID, "optuna_number",
                                                       "rounds_done", "started_at"])),
               "\nThey are ranked on their finished rounds; rerun the analysis later.\n"]
    return md


def notes_section(notes: list[str]) -> list[str]:
    """Everything the reader should know that the tables do not show."""
    if not notes:
        return []
    return ["## Notes\n", "".join(f"- {n}\n" for n in notes)]


INVERSION_COLUMNS = {  # rounds column -> its heading in the report
    R.GARBAGE_ADDED: "added",
    "inverted_diversity_features": "diversity (features)",
    "inverted_diversity_pixels": "diversity (pixels)",
    "inverted_frechet": "Fréchet to ID val",
}


def inversion_rounds_section(rounds: pd.DataFrame, ood: pd.DataFrame, trial_id: str,
                             goal: Objective) -> list[str]:
    """Per round of one trial: inverted images added, their diversity and Fréchet distance
    (``netinv.inverted``; none in round 0 or without inversion), and each OOD set's test AUROC
    change since round 0 for the objective's score."""
    mine = rounds[rounds[R.TRIAL_ID] == trial_id].sort_values(R.ROUND)
    if mine.empty:
        return []
    table = mine.reindex(columns=[R.ROUND, *INVERSION_COLUMNS]).rename(columns=INVERSION_COLUMNS)
    test = ood[(ood[R.TRIAL_ID] == trial_id) & (ood[R.SCORE] == goal.score)
               & (ood[R.SPLIT] == R.TEST)]
    auroc = test.pivot_table(index=R.ROUND, columns=R.OOD_SET, values=R.AUROC, aggfunc="mean")
    if 0 in auroc.index:
        for name in auroc.columns:
            change = (auroc[name] - auroc.loc[0, name]).rename(f"ΔAUROC {name}")
            table = table.merge(change, left_on=R.ROUND, right_index=True, how="left")
    return ["\n### Inverted samples per round\n",
            f"Diversity: mean pairwise distance within a label (penultimate features of the "
            f"classifier that was inverted; pixels in [0, 1]). Fréchet: between the inverted "
            f"samples' and the ID val images' features under that classifier. ΔAUROC: test "
            f"AUROC of score `{goal.score}` minus round 0's.\n",
            markdown_table(table)]
