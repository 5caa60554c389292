"""netinv.inverted: the garbage policies on hand-made logits; diversity and Fréchet distance on
hand-made features."""

from __future__ import annotations

import math

import pytest
import torch

from netinv.inverted import frechet_distance, measure, pairwise_diversity, select

# K = 3 (two ID classes + garbage); rows: confident ID, uncertain, confident garbage
PROBS = torch.tensor([[0.95, 0.04, 0.01], [0.40, 0.35, 0.25], [0.01, 0.01, 0.98]])
LOGITS = PROBS.log()


@pytest.mark.parametrize(("policy", "expected"), [
    ("all", [True, True, True]),
    ("none", [False, False, False]),
    ("uncertain", [False, True, False]),
    ("confident", [True, False, False]),
    ("mix", [True, True, False]),
])
def test_policies_select_what_they_say(policy: str, expected: list[bool]) -> None:
    mask = select(LOGITS, policy, ue_threshold=0.5, confidence_threshold=0.9)
    assert mask.tolist() == expected


def test_thresholds_move_the_selection() -> None:
    assert select(LOGITS, "confident", ue_threshold=0.5,
                  confidence_threshold=0.3).tolist() == [True, True, False]
    assert select(LOGITS, "uncertain", ue_threshold=0.0,
                  confidence_threshold=0.9).tolist() == [True, True, True]


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="`policy` must be one of all, uncertain"):
        select(LOGITS, "some", ue_threshold=0.5, confidence_threshold=0.9)


def test_pairwise_diversity_by_hand() -> None:
    # label 0: points 0 and (3, 4) -> distance 5; label 1: identical points -> 0; mean 2.5
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0], [1.0, 1.0], [9.0, 9.0]])
    labels = torch.tensor([0, 0, 1, 1, 2])  # label 2 has one sample: skipped
    assert pairwise_diversity(x, labels) == pytest.approx(2.5)
    assert math.isnan(pairwise_diversity(x[:1], labels[:1]))


def test_frechet_distance_of_identical_sets_is_zero_and_of_shifted_ones_the_shift() -> None:
    a = torch.randn(500, 6, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = torch.tensor([3.0, 0.0, 0.0, 4.0, 0.0, 0.0])
    assert frechet_distance(a, a + shift) == pytest.approx(25.0, rel=1e-6)  # |shift|^2
    assert frechet_distance(a, 2 * a) > 1.0  # covariance differs
    with pytest.raises(ValueError, match=r"a.shape=\(500, 6\), b.shape=\(3, 5\)"):
        frechet_distance(a, torch.zeros(3, 5))


def test_measure_names_the_record_fields() -> None:
    feats = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    images = torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    values = measure(images, torch.arange(20) % 2, feats, feats)
    assert set(values) == {"inverted_diversity_features", "inverted_diversity_pixels",
                           "inverted_frechet"}
    assert values["inverted_frechet"] == pytest.approx(0.0, abs=1e-6)
    assert values["inverted_diversity_pixels"] == pytest.approx(
        pairwise_diversity(images, torch.arange(20) % 2))
