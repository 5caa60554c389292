"""study.tables: the primitives its tables and the reports build on."""

from __future__ import annotations

import pandas as pd

from study.tables import max_concurrent


def _times(*spans: tuple[int, int]) -> tuple[list[pd.Timestamp], list[pd.Timestamp]]:
    stamp = pd.Timestamp("2026-01-01", tz="UTC")
    return ([stamp + pd.Timedelta(seconds=a) for a, _ in spans],
            [stamp + pd.Timedelta(seconds=b) for _, b in spans])


def test_max_concurrent_counts_overlaps_not_touching_spans() -> None:
    assert max_concurrent(*_times((0, 10), (10, 20), (20, 30))) == 1
    assert max_concurrent(*_times((0, 10), (5, 20), (6, 8), (15, 30))) == 3
    # plain numbers work alike (benchmarks/gpu_check.py passes seconds)
    assert max_concurrent([0.0, 1.0, 2.0], [3.0, 1.5, 4.0]) == 2
    assert max_concurrent([], []) == 0
