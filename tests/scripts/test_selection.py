"""scripts/selection.py: the rule that picks presets, on hand-built candidate tables whose
winners are worked out by hand (goals_met, then val AUROC, then ID val accuracy, then rounds)."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.helpers.scripts import load

selection = load("selection")
MNIST = (0.995, 0.02, 0.992)  # AUROC >=, FPR95 <=, accuracy >=
FASHION = (0.95, 0.25, 0.90)


def _table(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["name", "round", "auroc", "fpr95", "id_val_accuracy"])


def test_each_tie_break_in_turn() -> None:
    table = _table([
        ("a", 1, 0.999, 0.030, 0.995),  # best AUROC, but FPR95 misses: 2 goals
        ("b", 2, 0.996, 0.010, 0.993),  # 3 goals, lowest AUROC of those
        ("c", 3, 0.997, 0.010, 0.993),  # 3 goals, AUROC ties d and e, lower accuracy
        ("d", 3, 0.997, 0.015, 0.996),  # ties e on AUROC and accuracy, more rounds
        ("e", 1, 0.997, 0.015, 0.996),
        ("f", 1, 0.990, 0.001, 0.999),  # AUROC misses: 2 goals, below a on AUROC
    ])
    ranked = selection.rank(table, MNIST)
    assert ranked["name"].tolist() == ["e", "d", "c", "b", "a", "f"]
    assert ranked["goals_met"].tolist() == [3, 3, 3, 3, 2, 2]


def test_goals_are_inclusive_bounds() -> None:
    ranked = selection.rank(_table([("edge", 1, 0.995, 0.02, 0.992),
                                    ("below", 1, 0.9949, 0.0201, 0.9919)]), MNIST)
    assert ranked.set_index("name")["goals_met"].to_dict() == {"edge": 3, "below": 0}


def _record(auroc: float, fpr95: float, acc: float, score: str = "p_garbage") -> dict:
    rows = [{"ood_set": name, "split": "val", "score": score, "auroc": auroc + d,
             "fpr95": fpr95 - d} for name, d in (("x", 0.01), ("y", -0.01))]
    return {"round": 2, "id_val_accuracy": acc, "ood": rows}


def test_the_seed_check_ranks_the_top_trials_by_their_seed_means() -> None:
    candidates = pd.DataFrame([  # already ranked on seed 0 (the study): T1 is the study's pick
        ("t1", 1, 2, "p_garbage", 0.970, 0.15, 0.910),
        ("t1", 1, 1, "p_garbage", 0.965, 0.15, 0.910),  # t1's second candidate: not rechecked
        ("t2", 2, 2, "p_garbage", 0.960, 0.16, 0.915),
        ("t3", 3, 1, "p_garbage", 0.955, 0.20, 0.905),
        ("t4", 4, 1, "p_garbage", 0.950, 0.20, 0.905),  # 4th trial: outside RECHECK_TOP = 3
    ], columns=["trial_id", "optuna_number", "round", "score", "auroc", "fpr95",
                "id_val_accuracy"])
    runs = {"recheck-t1-s1": [_record(0.89, 0.30, 0.91)],  # t1's seed 2 never ran
            "recheck-t2-s1": [_record(0.94, 0.20, 0.915)],
            "recheck-t2-s2": [_record(0.93, 0.22, 0.915)],
            "recheck-t3-s1": [_record(0.96, 0.20, 0.905)],
            "recheck-t3-s2": [_record(0.95, 0.20, 0.905)],
            "recheck-t4-s1": [_record(0.99, 0.01, 0.99)]}
    checked = selection.rechecked(candidates, runs, FASHION)
    # means: t3 (0.955, 0.2, 0.905) meets all 3 goals; t2 (0.9433, 0.1933) and t1 (0.93, 0.225,
    # seeds 0 and 1 only) miss the AUROC goal, and t2's mean AUROC is the higher
    assert checked["trial_id"].tolist() == ["t3", "t2", "t1"]
    assert checked["goals_met"].tolist() == [3, 2, 2]
    assert checked["auroc_mean"].tolist() == pytest.approx([0.955, (0.96 + 0.94 + 0.93) / 3,
                                                            (0.97 + 0.89) / 2])
    assert checked["seeds"].tolist() == [[0, 1, 2], [0, 1, 2], [0, 1]]
    assert checked.iloc[2]["round"] == 2  # t1 at its best candidate


def test_chosen_overrides_drop_defaults_and_machine_keys() -> None:
    row = pd.Series({"round": 2, "config_json": (
        '{"data/id": "mnist", "data/root": "/data", "rounds/seed": 3, "rounds/count": 5, '
        '"classifier/width": 48}')})
    assert selection.chosen_overrides(row) == {
        "data/id": "mnist", "data/ood": ["fashionmnist", "cifar10", "tinyimagenet"],
        "classifier/width": 48, "rounds/count": 2}
