"""Fixtures of the netinv tests: decoded-data caches that never touch the user's ~/.cache."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One decoded-data cache for the whole session: each real split is decoded once."""
    return tmp_path_factory.mktemp("netinv-cache")


@pytest.fixture
def shared_cache(monkeypatch: pytest.MonkeyPatch, session_cache: Path) -> Path:
    """``NETINV_CACHE`` set to the session's cache (use with ``pytest.mark.usefixtures``)."""
    monkeypatch.setenv("NETINV_CACHE", str(session_cache))
    return session_cache


@pytest.fixture
def fresh_cache(monkeypatch: pytest.MonkeyPatch, shared_cache: Path, tmp_path: Path) -> Path:
    """``NETINV_CACHE`` set to an empty folder of this test (overrides ``shared_cache``)."""
    path = tmp_path / "fresh-cache"
    monkeypatch.setenv("NETINV_CACHE", str(path))
    return path
