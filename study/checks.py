"""Cross-checks of a study folder before anything is ranked: trial rows, round files, journal.

A study folder can be partial (a sync still running, files lost, a copy cut short). Ranking
what is left as if it were whole silently changes the winner, so each trial is checked:

- its trial row against its round files: every round ``0..rounds_done`` has a rounds row and
  OOD rows, and the row's best round holds the row's best objective;
- its round files against each other: no rounds row without OOD rows, and no OOD rows without
  a rounds row (but for a running trial's round in flight: its OOD rows are written first);
- the Optuna journal against the trial rows: a whole last line; each finished trial COMPLETE in
  Optuna with the value the trial row (or, for multi-objective studies, its last round) holds.

A trial that fails a check of the first two kinds is *incomplete*: :mod:`study.analyze` lists it
apart and never picks it as the winner. A journal disagreement is a note only (the Parquet
files are whole; Optuna's view is what is behind).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from study import journal
from study import results as R

FINISHED = (R.COMPLETED, R.STOPPED)  # trial statuses Optuna records as COMPLETE


@dataclass
class Findings:
    """What the checks found: per incomplete trial its problems, and journal notes."""

    incomplete: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, trial_id: str, problem: str) -> None:
        self.incomplete.setdefault(trial_id, []).append(problem)


def _rounds(frame: pd.DataFrame, trial_id: str) -> set[int]:
    return set(frame.loc[frame[R.TRIAL_ID] == trial_id, R.ROUND].astype(int))


def _ranges(values: set[int]) -> str:
    """``{0, 1, 2, 5}`` -> ``"0-2, 5"``."""
    out, items = [], sorted(values)
    start = prev = items[0]
    for v in items[1:] + [None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(out)


def _int_or_none(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def check_trial(row: pd.Series, rounds: pd.DataFrame, ood: pd.DataFrame) -> list[str]:
    """What is missing or inconsistent for one trial; empty when its files agree."""
    tid = str(row[R.TRIAL_ID])
    if pd.isna(row.get(R.STUDY)):  # every trial row names its study; load_trials' stand-ins not
        return ["it has round files but no trial row (results/trials)"]
    have_rounds, have_ood = _rounds(rounds, tid), _rounds(ood, tid)
    done = _int_or_none(row.get("rounds_done"))
    wanted = set(range(done + 1)) if done is not None else set()
    if have_rounds:  # rounds written before the trial row's update are fine; gaps are not
        wanted |= set(range(max(have_rounds) + 1))
    problems = []
    if wanted - have_rounds:
        problems.append(f"rounds {_ranges(wanted - have_rounds)} have no rounds file "
                        f"(results/rounds/{tid}/)")
    if (have_rounds & wanted) - have_ood:
        problems.append(f"rounds {_ranges((have_rounds & wanted) - have_ood)} have no OOD "
                        f"rows (results/ood/{tid}/)")
    orphans = have_ood - have_rounds - wanted  # a running trial's round in flight: OOD first
    if orphans and row.get("status") != R.RUNNING:
        problems.append(f"rounds {_ranges(orphans)} have OOD rows but no rounds file "
                        f"(results/rounds/{tid}/)")
    best, value = _int_or_none(row.get("best_round")), row.get(R.OBJECTIVE)
    if best is not None and value is not None and not pd.isna(value) and best in have_rounds:
        kept = rounds.loc[(rounds[R.TRIAL_ID] == tid) & (rounds[R.ROUND] == best), R.OBJECTIVE]
        if not math.isclose(float(kept.iloc[0]), float(value), rel_tol=1e-9, abs_tol=1e-12):
            problems.append(f"its trial row's best objective {value:.6g} (round {best}) "
                            f"differs from round {best}'s file ({float(kept.iloc[0]):.6g})")
    return problems


def check_journal(study_dir: str, study_json: dict[str, Any], trials: pd.DataFrame,
                  rounds: pd.DataFrame) -> list[str]:
    """Notes on where the Optuna journal disagrees with the trial rows (empty: it agrees)."""
    path = journal.journal_path(study_dir)
    if not path.is_file():
        return []
    notes = []
    cut = journal.truncated_tail(path)
    if cut is not None:
        notes.append(f"the Optuna journal `{path}` is truncated: {cut}. Optuna skips that line, "
                     f"so the operation it held (often a trial's result) is missing from "
                     f"Optuna's view (importances, the dashboard, TPE's history). If the study "
                     f"is still running this can be a write in progress: rerun the analysis.")
    study, _ = journal.load_study(study_dir, study_json)
    if study is None:
        return notes
    outcomes = journal.trial_outcomes(study)
    multi = len(study.directions) > 1
    for _, row in trials.dropna(subset=["optuna_number"]).iterrows():
        tid, number, status = row[R.TRIAL_ID], int(row["optuna_number"]), row.get("status")
        if number not in outcomes:
            notes.append(f"trial {tid}: the Optuna journal has no trial {number}.")
            continue
        state, value = outcomes[number]
        if status in FINISHED and state != "COMPLETE":
            notes.append(f"trial {tid} is {status} in its trial row but {state} in the Optuna "
                         f"journal (trial {number}).")
            continue
        expected = row.get(R.OBJECTIVE)
        if multi:  # nsga2 tells the last round's pair
            last = rounds[rounds[R.TRIAL_ID] == tid].sort_values(R.ROUND)[R.OBJECTIVE]
            expected = last.iloc[-1] if len(last) else None
        if (state == "COMPLETE" and value is not None and expected is not None
                and not pd.isna(expected)
                and not math.isclose(value, float(expected), rel_tol=1e-9, abs_tol=1e-12)):
            notes.append(f"trial {tid}: the Optuna journal's value {value:.6g} (trial {number}) "
                         f"differs from the trial row's best objective {float(expected):.6g}.")
    return notes


def check_study(study_dir: str, study_json: dict[str, Any], trials: pd.DataFrame,
                rounds: pd.DataFrame, ood: pd.DataFrame) -> Findings:
    """Every check above, over every trial (failed ones included: their rounds still count)."""
    findings = Findings()
    for _, row in trials.iterrows():
        for problem in check_trial(row, rounds, ood):
            findings.add(str(row[R.TRIAL_ID]), problem)
    findings.notes = check_journal(study_dir, study_json, trials, rounds)
    return findings

