"""netinv.metrics: hand-computed cases; ID is the positive class for FPR@95TPR."""

from __future__ import annotations

import numpy as np
import pytest

from netinv.metrics import METRIC_NAMES, fpr_at_tpr, ood_metrics


def test_perfect_separation() -> None:
    metrics = ood_metrics(np.array([0.1, 0.2, 0.3]), np.array([0.8, 0.9]))
    assert set(metrics) == set(METRIC_NAMES)
    assert metrics == {"auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0, "fpr95": 0.0}


def test_reversed_scores_are_worst() -> None:
    metrics = ood_metrics(np.array([0.8, 0.9]), np.array([0.1, 0.2]))
    assert metrics["auroc"] == 0.0
    assert metrics["fpr95"] == 1.0


def test_hand_computed_overlap() -> None:
    id_scores = np.array([0.1, 0.4, 0.35, 0.8])
    ood_scores = np.array([0.3, 0.9])
    # pairs (ood > id): 0.3 beats 0.1 only (1 of 4); 0.9 beats all 4 -> 5 / 8
    metrics = ood_metrics(id_scores, ood_scores)
    assert metrics["auroc"] == pytest.approx(5 / 8)
    # 95% of 4 ID images -> all 4 accepted: threshold 0.8; OOD accepted: 0.3 -> 1/2
    assert metrics["fpr95"] == pytest.approx(0.5)
    # AUPR-Out (OOD positive) ranks by score: 0.9 (ood) P=1, then 0.8,0.4,0.35 (id), 0.3 (ood)
    # AP = (1/2) * 1 + (1/2) * (2/5) = 0.7
    assert metrics["aupr_out"] == pytest.approx(0.7)


def test_fpr95_threshold_on_twenty_id_images() -> None:
    id_scores = np.arange(20) / 20  # 0.00 .. 0.95; 95% -> 19 accepted -> threshold 0.90
    ood_scores = np.array([0.85, 0.9, 0.92, 1.0])
    assert fpr_at_tpr(id_scores, ood_scores) == pytest.approx(2 / 4)


@pytest.mark.parametrize(("id_scores", "ood_scores", "match"), [
    (np.array([]), np.array([0.1]), "non-empty"),
    (np.array([0.1, np.nan]), np.array([0.1]), "finite"),
    (np.ones((2, 2)), np.array([0.1]), "1-D"),
])
def test_bad_inputs_raise(id_scores: np.ndarray, ood_scores: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ood_metrics(id_scores, ood_scores)
