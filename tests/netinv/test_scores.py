"""netinv.scores: every score is higher for more OOD-looking softmax outputs."""

from __future__ import annotations

import math

import pytest
import torch

from netinv.scores import SCORES, energy, msp, p_garbage, score_all, ue, ue_tiered

# K = 3: two ID classes and the garbage class (last)
CONFIDENT_ID = torch.tensor([[20.0, 0.0, 0.0]])
UNIFORM = torch.tensor([[0.0, 0.0, 0.0]])
CONFIDENT_GARBAGE = torch.tensor([[0.0, 0.0, 20.0]])


def test_ue_by_hand() -> None:
    # uniform softmax: numerator 0 -> UE 1; one-hot: UE 0
    assert ue(UNIFORM).item() == pytest.approx(1.0)
    assert ue(CONFIDENT_ID).item() == pytest.approx(0.0, abs=1e-6)
    # p = (0.5, 0.5, 0): sum (p - 1/3)^2 = 2/36 + 1/9 = 1/6; one-hot: 4/9 + 2/9 = 2/3 -> UE = 3/4
    half = torch.log(torch.tensor([[0.5, 0.5, 1e-12]]))
    assert ue(half).item() == pytest.approx(0.75, abs=1e-5)


def test_ue_misses_confident_garbage_but_tiered_ranks_it_highest() -> None:
    assert ue(CONFIDENT_GARBAGE).item() == pytest.approx(0.0, abs=1e-6)
    tiered = ue_tiered(torch.cat([CONFIDENT_ID, UNIFORM, CONFIDENT_GARBAGE]))
    assert tiered[0] < tiered[1] < tiered[2]
    assert tiered[2].item() == pytest.approx(2.0, abs=1e-6)


def test_msp_counts_garbage_mass_against_id() -> None:
    assert msp(CONFIDENT_ID).item() == pytest.approx(0.0, abs=1e-6)
    assert msp(CONFIDENT_GARBAGE).item() == pytest.approx(1.0, abs=1e-6)
    assert msp(UNIFORM).item() == pytest.approx(2 / 3, abs=1e-6)


def test_p_garbage_and_energy_by_hand() -> None:
    assert p_garbage(UNIFORM).item() == pytest.approx(1 / 3)
    # energy over ID logits (0, 0): -log(2)
    assert energy(UNIFORM).item() == pytest.approx(-math.log(2))
    assert energy(CONFIDENT_ID).item() < energy(UNIFORM).item()  # confident ID = less OOD


@pytest.mark.parametrize("name", list(SCORES))
def test_every_score_ranks_confident_id_below_uniform(name: str) -> None:
    scores = SCORES[name](torch.cat([CONFIDENT_ID, UNIFORM]))
    assert scores.shape == (2,)
    assert scores[0] < scores[1]


def test_score_all_has_every_score() -> None:
    out = score_all(torch.randn(5, 11))
    assert set(out) == set(SCORES)
    assert all(v.shape == (5,) and v.dtype == torch.float32 for v in out.values())
