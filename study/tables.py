"""A study's tables, computed from its Parquet results: nothing here writes a file.

:func:`load_trials` reads the three tables; :func:`round_table` puts one row per (trial, round)
with the val objective and the test metrics beside it; :func:`leaderboard` ranks trials by their
best val round. :mod:`study.checks` says which trials are complete enough to rank, and
:mod:`study.analyze` writes the report from these tables.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

import pandas as pd

from netinv.config import Config
from netinv.metrics import METRIC_NAMES
from study import results as R
from study.objective import DEFAULT_OBJECTIVE, Objective

log = logging.getLogger(__name__)

MACHINE_KEYS = {"data/root": None, "rounds/device": "auto"}  # reset in best_config.json


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


def study_objective(trials: pd.DataFrame, study_json: dict[str, Any]) -> Objective:
    """The study's own objective: the trials' ``objective_name``, else study.json's
    ``objective``, else :data:`~study.objective.DEFAULT_OBJECTIVE`."""
    names = trials["objective_name"].dropna() if "objective_name" in trials else pd.Series()
    for candidate in [*names.mode().tolist(), study_json.get("objective")]:
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


def max_concurrent(starts: Iterable[Any], ends: Iterable[Any]) -> int:
    """The most spans open at one instant, from their start and end times (numbers or
    timestamps); an end sorts before a start at the same instant, so spans that only touch do
    not count as overlapping."""
    events = sorted([(t, 1) for t in starts] + [(t, -1) for t in ends])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak
