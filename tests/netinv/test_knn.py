"""netinv.knn: the k-th nearest-neighbour distance on L2-normalised features."""

from __future__ import annotations

import pytest
import torch

from netinv.knn import check_bank, knn_distance, normalize_features


def test_distance_to_the_kth_nearest_bank_row() -> None:
    bank = normalize_features(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    # a query along +x: distances 0 (same direction), sqrt(2) (orthogonal), 2 (opposite)
    query = torch.tensor([[5.0, 0.0]])  # the length does not matter: features are normalised
    assert knn_distance(bank, query, 1).item() == pytest.approx(0.0, abs=1e-6)
    assert knn_distance(bank, query, 2).item() == pytest.approx(2 ** 0.5)
    assert knn_distance(bank, query, 3).item() == pytest.approx(2.0)


def test_matches_a_brute_force_sort_in_chunks() -> None:
    generator = torch.Generator().manual_seed(0)
    bank = normalize_features(torch.randn(300, 16, generator=generator))
    queries = torch.randn(2500, 16, generator=generator)  # more than one query chunk
    expected = torch.cdist(normalize_features(queries), bank).sort(dim=1).values[:, 4]
    got = knn_distance(bank.half(), queries, 5)  # a float16 bank, as a saved detector holds
    assert got.shape == (2500,) and got.dtype == torch.float32
    assert torch.allclose(got, expected, atol=2e-3)


def test_a_float16_bank_keeps_small_distances() -> None:
    # near-duplicates of bank rows at k = 1: distances ~0.01-0.1, where float16's rounding of
    # a row's length is amplified by sqrt(2 - 2 cos) unless the bank is renormalised
    generator = torch.Generator().manual_seed(2)
    features = torch.randn(500, 64, generator=generator).abs()  # ReLU-like, all positive
    bank = normalize_features(features)
    queries = features + 0.01 * torch.randn(500, 64, generator=generator).abs()
    exact = knn_distance(bank, queries, 1)
    stored = knn_distance(bank.half(), queries, 1)
    assert exact.max() < 0.1
    assert (stored - exact).abs().max() < 1e-3
    assert knn_distance(bank.half(), features, 1).max() < 1e-3  # a bank row itself: about 0


def test_k_beyond_the_bank_is_refused() -> None:
    with pytest.raises(ValueError, match=r"integer in \[1, 3\].*k=4"):
        knn_distance(normalize_features(torch.randn(3, 2)), torch.randn(1, 2), 4)


def test_far_queries_score_higher() -> None:
    generator = torch.Generator().manual_seed(1)
    centre = torch.randn(32, generator=generator)
    id_features = centre + 0.3 * torch.randn(500, 32, generator=generator)
    bank = normalize_features(id_features[:400])
    near = knn_distance(bank, id_features[400:], 10)
    far = knn_distance(bank, torch.randn(100, 32, generator=generator), 10)
    assert far.min() > near.max()


@pytest.mark.parametrize(("bank", "k", "dim", "match"), [
    (torch.zeros(5), 1, None, "2-D float tensor"),
    (torch.zeros(5, 4, dtype=torch.long), 1, None, "2-D float tensor"),
    (torch.zeros(5, 4), 1, 8, "width F=8"),
    (torch.zeros(5, 4), 6, None, r"integer in \[1, 5\].*k=6"),
    (torch.zeros(5, 4), 0, None, r"k=0"),
    (torch.full((5, 4), float("nan")), 1, None, "finite"),
    (torch.full((5, 4), 1e3), 1, None, "L2-normalised .* 5 rows of length 2000"),
])
def test_bad_banks_are_refused(bank: torch.Tensor, k: int, dim: int | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_bank(bank, k, dim)
