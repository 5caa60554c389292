"""The rule that turns an imported study into a preset, on validation splits only.

Candidates are every trial's every finished round r >= 1 (= that config with
``rounds/count = r``: a run's first r rounds do not depend on later ones) and every score.
:func:`rank` orders them: first those meeting the most of the ID set's three goals
(``GOALS``: val mean AUROC, val mean FPR95, ID val accuracy), then the higher val mean AUROC,
then the higher ID val accuracy, then fewer rounds. The ``RECHECK_TOP`` best trials are re-run
with more seeds (``experiments.recheck``) and :func:`rechecked` ranks them again by the same
rule on their seed means; its first row is the preset.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

import pandas as pd
from experiments import RECHECK_SEEDS, study_file

from netinv.config import Config
from netinv.records import mean_metric

# per ID set: (val mean AUROC >=, val mean FPR95 <=, ID accuracy >=), the goals
GOALS = {"mnist": (0.995, 0.02, 0.992), "fashionmnist": (0.95, 0.25, 0.90),
         "cifar10": (0.96, 0.30, 0.90)}  # cifar10: issue 11 (TIN 0.90, MNIST/FMNIST 0.99)
RECHECK_TOP = 3  # the study's best trials re-run with more seeds before one becomes the preset
ALWAYS_IN_PRESET = ("data/id", "data/ood", "rounds/count")  # even when equal to the default
MACHINE_KEYS = ("data/root", "rounds/device", "rounds/seed", "data/download")  # never in one


def rank(table: pd.DataFrame, goals: tuple[float, float, float], *, auroc: str = "auroc",
         fpr95: str = "fpr95", acc: str = "id_val_accuracy") -> pd.DataFrame:
    """``table`` sorted by the rule, with a ``goals_met`` column (0-3).

    Args:
        table: One row per candidate; needs the ``auroc``, ``fpr95``, ``acc`` columns and
            ``round``.
        goals: (AUROC at least, FPR95 at most, accuracy at least), as in ``GOALS``.

    Returns:
        Most goals met first, then higher ``auroc``, then higher ``acc``, then lower
        ``round``; remaining ties keep the input order.
    """
    goal_auroc, goal_fpr, goal_acc = goals
    table = table.assign(goals_met=(table[auroc] >= goal_auroc).astype(int)
                         + (table[fpr95] <= goal_fpr).astype(int)
                         + (table[acc] >= goal_acc).astype(int))
    return table.sort_values(["goals_met", auroc, acc, "round"],
                             ascending=[False, False, False, True], kind="stable"
                             ).reset_index(drop=True)


def candidate_table(trials: pd.DataFrame, rounds: pd.DataFrame, ood: pd.DataFrame,
                    goals: tuple[float, float, float]) -> pd.DataFrame:
    """Every (trial, round >= 1, score) of a study's three tables, ranked by :func:`rank`."""
    val = ood[ood["split"] == "val"].groupby(["trial_id", "round", "score"], as_index=False)[
        ["auroc", "fpr95"]].mean()
    table = val.merge(rounds[["trial_id", "round", "id_val_accuracy"]],
                      on=["trial_id", "round"])
    table = table.merge(trials[["trial_id", "optuna_number", "status", "config_json",
                                "searched_params", "wall_s", "cpus"]], on="trial_id")
    return rank(table[table["round"] >= 1].copy(), goals)


def candidates(id_set: str) -> pd.DataFrame:
    """:func:`candidate_table` of the study imported for ``id_set``, best first."""
    tables = [pd.read_parquet(study_file(id_set, t)) for t in ("trials", "rounds", "ood")]
    return candidate_table(*tables, GOALS[id_set])


def top_trials(table: pd.DataFrame) -> pd.DataFrame:
    """The RECHECK_TOP best trials of a ranked candidate table, each at its best candidate."""
    return table.groupby("trial_id", sort=False).head(1).head(RECHECK_TOP)


def chosen_overrides(row: pd.Series) -> dict[str, Any]:
    """The preset of a candidate: its trial's config minus defaults and machine keys, with
    ``rounds/count`` = its round."""
    flat = {**json.loads(row["config_json"]), "rounds/count": int(row["round"])}
    defaults = Config().to_flat()
    return {k: v for k, v in Config.from_flat(flat).to_flat().items()
            if k not in MACHINE_KEYS and (v != defaults.get(k) or k in ALWAYS_IN_PRESET)}


def seed_values(row: pd.Series, runs: dict[str, list[dict[str, Any]]]
                ) -> dict[int, tuple[float, float, float]]:
    """Seed -> (val mean AUROC, val mean FPR95, ID val accuracy) of a candidate: seed 0 from
    the study, RECHECK_SEEDS from the ``recheck-t<number>-s<seed>`` runs' last records."""
    values = {0: (row["auroc"], row["fpr95"], row["id_val_accuracy"])}
    for seed in RECHECK_SEEDS:
        recs = runs.get(f"recheck-t{row['optuna_number']}-s{seed}")
        if recs:
            rec, score = recs[-1], row["score"]
            values[seed] = (mean_metric(rec, score=score, metric="auroc", split="val"),
                            mean_metric(rec, score=score, metric="fpr95", split="val"),
                            rec["id_val_accuracy"])
    return values


def rechecked(table: pd.DataFrame, runs: dict[str, list[dict[str, Any]]],
              goals: tuple[float, float, float]) -> pd.DataFrame:
    """Per top trial of a ranked candidate table: its candidate's val metrics per seed, their
    means (``auroc_mean``, ``fpr95_mean``, ``acc_mean``), ranked by :func:`rank` on the means;
    the first row is the preset."""
    rows = []
    for _, row in top_trials(table).iterrows():
        values = seed_values(row, runs)
        rows.append({**row.to_dict(), "seeds": sorted(values),
                     "auroc_by_seed": [values[k][0] for k in sorted(values)],
                     "auroc_mean": statistics.mean(v[0] for v in values.values()),
                     "fpr95_mean": statistics.mean(v[1] for v in values.values()),
                     "acc_mean": statistics.mean(v[2] for v in values.values())})
    return rank(pd.DataFrame(rows), goals, auroc="auroc_mean", fpr95="fpr95_mean",
                acc="acc_mean")
