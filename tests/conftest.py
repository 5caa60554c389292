"""Shared fixtures: where the real data lives, and a scratch cache per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real offline data (``NETINV_DATA``, else ``../shared/data`` beside the repo)."""
    root = Path(os.environ.get("NETINV_DATA", REPO.parent / "shared" / "data"))
    if not (root / "MNIST").is_dir():
        pytest.fail(f"real data not found at {root}: set NETINV_DATA to the shared data folder")
    return root


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> None:
    """One torch thread in the test process: with Ray workers and subprocesses sharing two
    cores, OpenMP's spinning threads made tiny runs ~16x slower (measured, 28 s vs 1.7 s)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
