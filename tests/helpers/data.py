"""Where the real offline data lives, and what a test that needs it does when it is missing."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data"  # ../shared/data beside the checkout
MARKER = "MNIST"  # a folder every real data root has


def real_data_root(env: Mapping[str, str] = os.environ) -> Path:
    """``NETINV_DATA``, else ``../shared/data`` beside the checkout (it need not exist)."""
    return Path(env.get("NETINV_DATA") or DEFAULT_DATA)


def in_ci(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the tests run in CI (``CI`` set to anything but empty, 0, false or no)."""
    return env.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_data(root: Path, env: Mapping[str, str] = os.environ) -> Path:
    """``root`` if it holds the real data; else one line saying what to set: a failure in CI
    (every test must run there), a skip elsewhere (e.g. a clone without ../shared/data)."""
    if (root / MARKER).is_dir():
        return root
    message = (f"this test needs the real offline data (MNIST, FashionMNIST, CIFAR-10, "
               f"TinyImageNet) and found none at {root}: set NETINV_DATA to the data folder "
               f"(the project's shared/data)")
    if in_ci(env):
        pytest.fail(message + " (CI=true: missing data is a failure)", pytrace=False)
    pytest.skip(message)
    return root  # unreachable: skip raises
