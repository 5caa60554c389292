"""scripts/setup.sh refuses a first install on a disk too full for it, before it creates .venv."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[2] / "scripts" / "setup.sh"


def _run_setup(tmp_path: Path, min_free_gb: str) -> subprocess.CompletedProcess:
    """setup.sh from a copy in an empty project folder (no .venv), with the given threshold."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(SETUP, tmp_path / "scripts" / "setup.sh")
    env = {**os.environ, "NETINV_SETUP_MIN_FREE_GB": min_free_gb, "TMPDIR": str(tmp_path)}
    return subprocess.run(["bash", str(tmp_path / "scripts" / "setup.sh")], env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_disk_without_room_is_named_before_the_venv_is_made(tmp_path: Path) -> None:
    done = _run_setup(tmp_path, str(10**9))  # more GiB than any disk has
    assert done.returncode == 2, done.stderr
    assert str(tmp_path) in done.stderr and "GiB free" in done.stderr
    assert not (tmp_path / ".venv").exists()


@pytest.mark.parametrize("bad", ["eight", "-1", "1.5"])
def test_a_threshold_that_is_not_whole_gib_is_refused(tmp_path: Path, bad: str) -> None:
    done = _run_setup(tmp_path, bad)
    assert done.returncode == 2 and bad in done.stderr
    assert not (tmp_path / ".venv").exists()
