"""netinv.metrics: hand-computed cases; ``fpr95`` takes ID as the positive class,
``fpr95_ood_positive`` OOD (OpenOOD v1.5, pytorch-ood)."""

from __future__ import annotations

import numpy as np
import pytest

from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from netinv.metrics import (
    METRIC_NAMES,
    OOD_GROUPS,
    auroc,
    average_precision,
    fpr_at_tpr,
    fpr_at_tpr_ood_positive,
    group_means,
    ood_group,
    ood_metrics,
)


def test_perfect_separation() -> None:
    metrics = ood_metrics(np.array([0.1, 0.2, 0.3]), np.array([0.8, 0.9]))
    assert set(metrics) == set(METRIC_NAMES)
    assert metrics == {"auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0, "fpr95": 0.0,
                       "fpr95_ood_positive": 0.0}


def test_reversed_scores_are_worst() -> None:
    metrics = ood_metrics(np.array([0.8, 0.9]), np.array([0.1, 0.2]))
    assert metrics["auroc"] == 0.0
    assert metrics["fpr95"] == 1.0
    assert metrics["fpr95_ood_positive"] == 1.0


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
    # OOD positive: 95% of 2 OOD images -> both flagged: threshold 0.3; ID flagged (>= 0.3):
    # 0.4, 0.35, 0.8 -> 3/4, where the ID-positive convention gave 1/2
    assert metrics["fpr95_ood_positive"] == pytest.approx(0.75)


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


def test_fpr95_ood_positive_on_twenty_ood_images() -> None:
    ood_scores = np.arange(1, 21) / 20  # 0.05 .. 1.00; 95% -> 19 flagged -> threshold 0.10
    id_scores = np.array([0.0, 0.05, 0.1, 0.5])  # flagged when >= 0.10: 0.1, 0.5
    assert fpr_at_tpr_ood_positive(id_scores, ood_scores) == pytest.approx(2 / 4)
    # the ID-positive convention on the same scores: threshold = 19th of 4 ID -> all 4 accepted
    # at <= 0.5, OOD accepted: 0.05 .. 0.50 -> 10 / 20
    assert fpr_at_tpr(id_scores, ood_scores) == pytest.approx(10 / 20)


def sklearn_fpr95(id_scores: np.ndarray, ood_scores: np.ndarray, *, ood_positive: bool,
                  drop_intermediate: bool = True) -> float:
    """FPR@95TPR as OpenOOD computes it: fpr at the first roc_curve point with tpr >= 0.95.

    sklearn's default ``drop_intermediate=True`` drops collinear ROC points, which only matters
    when tied scores make two equal diagonal steps in a row; ``False`` keeps every threshold.
    """
    is_ood = np.r_[np.zeros(len(id_scores)), np.ones(len(ood_scores))]
    scores = np.r_[id_scores, ood_scores]
    labels, ranked = (is_ood, scores) if ood_positive else (1 - is_ood, -scores)
    fpr, tpr, _ = roc_curve(labels, ranked, drop_intermediate=drop_intermediate)
    return float(fpr[np.argmax(tpr >= 0.95)])


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_both_fpr95_match_sklearn_roc_curve(seed: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    # sizes that make 95% fall between and on whole counts; rounding forces ties
    id_scores = rng.normal(0.0, 1.0, size=[40, 97, 200][seed % 3])
    ood_scores = rng.normal(1.0, 1.0, size=[60, 20, 33][seed % 3])
    if ties:
        id_scores, ood_scores = np.round(id_scores, 1), np.round(ood_scores, 1)
    metrics = ood_metrics(id_scores, ood_scores)
    # every threshold kept: equal on tied scores too; sklearn's default drops collinear tie
    # points, so it is compared on untied scores only
    for drop in [False] if ties else [False, True]:
        assert metrics["fpr95"] == pytest.approx(sklearn_fpr95(
            id_scores, ood_scores, ood_positive=False, drop_intermediate=drop), abs=1e-12)
        assert metrics["fpr95_ood_positive"] == pytest.approx(sklearn_fpr95(
            id_scores, ood_scores, ood_positive=True, drop_intermediate=drop), abs=1e-12)
    assert metrics["fpr95"] != metrics["fpr95_ood_positive"]  # the conventions differ here


@pytest.mark.parametrize("decimals", [None, 1, 0])  # untied, tied, a few big tie groups
@pytest.mark.parametrize("seed", range(4))
def test_auroc_and_aupr_match_sklearn(seed: int, decimals: int | None) -> None:
    rng = np.random.default_rng(seed)
    id_scores = rng.normal(0.0, 1.0, size=[50, 333, 7, 1000][seed])
    ood_scores = rng.normal(0.7, 1.5, size=[50, 41, 300, 1][seed])
    if decimals is not None:
        id_scores, ood_scores = np.round(id_scores, decimals), np.round(ood_scores, decimals)
    is_ood = np.r_[np.zeros(len(id_scores)), np.ones(len(ood_scores))]
    scores = np.r_[id_scores, ood_scores]
    metrics = ood_metrics(id_scores, ood_scores)
    assert metrics["auroc"] == pytest.approx(roc_auc_score(is_ood, scores), abs=1e-12)
    assert metrics["aupr_out"] == pytest.approx(average_precision_score(is_ood, scores),
                                                abs=1e-12)
    assert metrics["aupr_in"] == pytest.approx(average_precision_score(1 - is_ood, -scores),
                                               abs=1e-12)


def test_all_tied_scores_are_chance() -> None:
    metrics = ood_metrics(np.full(6, 0.3), np.full(2, 0.3))
    # one threshold takes everything: AUROC 1/2, each AP the positives' share
    assert (metrics["auroc"], metrics["aupr_in"], metrics["aupr_out"]) == (0.5, 0.75, 0.25)


def test_auroc_counts_a_tie_as_half_and_ap_steps_per_distinct_score() -> None:
    # one OOD score ties one of two ID scores: wins 1 + 0.5 of 2 pairs
    assert auroc(np.array([0.2, 0.5]), np.array([0.5])) == 0.75
    # ranked: 0.9 (pos), then {0.5 pos, 0.5 neg} as one threshold: P = 1, then 2/3 at R = 1
    scores = np.array([0.9, 0.5, 0.5])
    assert average_precision(scores, np.array([True, True, False])) == pytest.approx(
        0.5 * 1 + 0.5 * 2 / 3)


def test_ood_groups_place_each_set_once() -> None:
    one_vs_rest = {"mnist", "fashionmnist", "cifar10", "svhn", "cifar100", "tinyimagenet"}
    for id_set in one_vs_rest:  # every other one-vs-rest set has a group
        assert {*OOD_GROUPS[id_set]["near"], *OOD_GROUPS[id_set]["far"]} >= one_vs_rest - {id_set}
    for id_set, groups in OOD_GROUPS.items():
        assert not set(groups["near"]) & set(groups["far"]), id_set
        assert id_set not in {*groups["near"], *groups["far"]}
    assert ood_group("cifar10", "cifar100") == "near"
    assert ood_group("cifar10", "svhn") == "far"
    assert ood_group("cifar10", "dtd") == "far"  # OpenOOD's Textures is named dtd here
    assert ood_group("cifar100", "cifar10") == "near"
    assert ood_group("svhn", "tinyimagenet") == "near"
    assert ood_group("tinyimagenet", "mnist") == "far"
    assert ood_group("mnist", "folder:/data/parts") is None
    assert ood_group("my-own-set", "mnist") is None


def test_group_means_average_within_groups_and_never_over_missing() -> None:
    values = {"mnist": 0.9, "kmnist": 0.7, "cifar10": 0.5, "tinyimagenet": 0.3, "other": 0.0}
    assert group_means("fashionmnist", values) == {"near": pytest.approx(0.8),
                                                    "far": pytest.approx(0.4)}
    assert group_means("fashionmnist", {"mnist": None, "cifar10": 0.5}) == {
        "near": None, "far": 0.5}
    assert group_means("fashionmnist", {"cifar10": float("nan")})["far"] is None
    assert group_means("fashionmnist", {"cifar10": 0.5})["near"] is None  # no near set
