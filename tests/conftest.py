"""Shared fixtures: where the real data lives, and a scratch cache per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.data import real_data_root, require_data

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real offline data (``NETINV_DATA``, else ``../shared/data`` beside the repo). When
    it is missing the test fails in CI and is skipped elsewhere, with one line naming
    NETINV_DATA (``tests.helpers.data.require_data``)."""
    return require_data(real_data_root())


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> None:
    """One torch thread in the test process: with Ray workers and subprocesses sharing two
    cores, OpenMP's spinning threads made tiny runs ~16x slower (measured, 28 s vs 1.7 s)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
