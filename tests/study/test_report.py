"""study.report: the per-round inverted-sample table on hand-built rounds and OOD rows."""

from __future__ import annotations

import pandas as pd
import pytest

from study import results as R
from study.objective import Objective
from study.report import inversion_rounds_section


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rounds = pd.DataFrame({
        R.TRIAL_ID: ["a", "a", "a", "b"], R.ROUND: [0, 1, 2, 0],
        R.GARBAGE_ADDED: [0, 500, 400, 0],
        "inverted_diversity_features": [None, 2.5, 3.0, None],
        "inverted_diversity_pixels": [None, 4.0, 5.0, None],
        "inverted_frechet": [None, 30.0, 20.0, None],
    })
    ood = pd.DataFrame([
        {R.TRIAL_ID: t, R.ROUND: r, R.OOD_SET: s, R.SPLIT: split, R.SCORE: score, R.AUROC: v}
        for t, r, s, split, score, v in [
            ("a", 0, "mnist", R.TEST, "p_garbage", 0.80),
            ("a", 1, "mnist", R.TEST, "p_garbage", 0.85),
            ("a", 2, "mnist", R.TEST, "p_garbage", 0.90),
            ("a", 2, "mnist", R.TEST, "ue", 0.10),  # another score: ignored
            ("a", 2, "mnist", R.VAL, "p_garbage", 0.10),  # val: ignored
            ("a", 0, "cifar10", R.TEST, "p_garbage", 0.95),
            ("a", 2, "cifar10", R.TEST, "p_garbage", 0.93),
            ("b", 0, "mnist", R.TEST, "p_garbage", 0.5),  # another trial: ignored
        ]])
    return rounds, ood


def test_the_table_shows_the_measures_and_the_auroc_change_since_round_0() -> None:
    rounds, ood = _frames()
    text = "".join(inversion_rounds_section(rounds, ood, "a", Objective.parse("p_garbage:auroc")))
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert lines[0] == ("| round | added | diversity (features) | diversity (pixels) | "
                        "Fréchet to ID val | ΔAUROC cifar10 | ΔAUROC mnist |")
    assert lines[1] == "| 0 | 0 | – | – | – | 0.0000 | 0.0000 |"
    assert lines[2] == "| 1 | 500 | 2.5000 | 4.0000 | 30.0000 | – | 0.0500 |"
    assert lines[3] == "| 2 | 400 | 3.0000 | 5.0000 | 20.0000 | -0.0200 | 0.1000 |"


def test_an_unknown_trial_gives_no_section() -> None:
    rounds, ood = _frames()
    assert inversion_rounds_section(rounds, ood, "zz", Objective.parse("p_garbage:auroc")) == []


@pytest.mark.parametrize("missing", ["inverted_frechet", "inverted_diversity_pixels"])
def test_studies_recorded_before_the_measures_show_dashes(missing: str) -> None:
    rounds, ood = _frames()
    text = "".join(inversion_rounds_section(rounds.drop(columns=missing), ood, "a",
                                            Objective.parse("p_garbage:auroc")))
    assert "| 1 | 500 |" in text and "–" in text
