"""study.objective: one parser, one direction rule, computed on the val split only."""

from __future__ import annotations

import pytest

from study.objective import Objective


def _record(val: float, test: float) -> dict:
    rows = [{"ood_set": name, "split": split, "score": "p_garbage", "auroc": value,
             "fpr95": 1 - value} for name in ("a", "b")
            for split, value in (("val", val), ("test", test))]
    return {"round": 1, "ood": rows}


def test_parse_and_direction() -> None:
    auroc = Objective.parse(" p_garbage:auroc ")
    assert (auroc.name, auroc.mode, auroc.minimize) == ("p_garbage:auroc", "max", False)
    assert Objective.parse("ue:fpr95").mode == "min"


@pytest.mark.parametrize("text", ["ue", "ue:accuracy", "nope:auroc", ":auroc"])
def test_bad_objective_lists_what_is_allowed(text: str) -> None:
    with pytest.raises(ValueError, match=r"score in ue, ue_tiered.*metric in auroc"):
        Objective.parse(text)


def test_value_uses_the_val_split_never_test() -> None:
    record = _record(val=0.8, test=0.99)
    assert Objective.parse("p_garbage:auroc").value(record) == pytest.approx(0.8)
    assert Objective.parse("p_garbage:fpr95").value(record) == pytest.approx(0.2)


def test_better_is_strict_so_ties_keep_the_earlier_round() -> None:
    auroc, fpr = Objective.parse("ue:auroc"), Objective.parse("ue:fpr95")
    assert auroc.better(0.9, None) and auroc.better(0.91, 0.9)
    assert not auroc.better(0.9, 0.9) and not auroc.better(0.8, 0.9)
    assert fpr.better(0.1, 0.2) and not fpr.better(0.2, 0.2)


def test_fitted_scores_are_objectives_too() -> None:
    assert Objective.parse("fused:auroc").score == "fused"
    assert Objective.parse("layer_stats:fpr95").mode == "min"
