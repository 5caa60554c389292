"""The built wheel holds what the README uses: the three console commands with --version and
the shipped presets, loadable by name from outside the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from netinv import __version__

REPO = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", "runs",
                              "studies", "docs", "tests", ".*_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the repository (the checkout is left untouched)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    shutil.copytree(REPO, source, ignore=SKIP)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "-w", str(tmp / "dist")], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    log = build.stdout + build.stderr
    assert "SetuptoolsDeprecationWarning" not in log and "License classifiers" not in log, log
    (found,) = (tmp / "dist").glob("netinv_study-*.whl")
    return found


def test_wheel_holds_the_presets_license_and_commands(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(meta).decode()
        entry_points = zf.read(meta.replace("METADATA", "entry_points.txt")).decode()
    assert {"netinv/presets/mnist.pt", "netinv/presets/fashionmnist.pt"} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: MIT" in metadata and "Requires-Python: >=3.11" in metadata
    for command in ("netinv = netinv.cli:main", "netinv-study = study.launch:main",
                    "netinv-analyze = study.analyze:main"):
        assert command in entry_points


@pytest.mark.slow  # about 40 s: pip installs the wheel, then four fresh interpreters start
def test_installed_wheel_loads_a_preset_outside_the_repo(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target),
         str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}  # the wheel's copy, not the checkout's
    code = ("import netinv, torch; from netinv import Detector; d = Detector.load('mnist'); "
            "print(netinv.__file__); print(d(torch.zeros(2, 28, 28, dtype=torch.uint8)).shape)")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    where, shape = run.stdout.splitlines()
    assert where.startswith(str(target)) and shape == "torch.Size([2])"
    for command in ("netinv", "netinv-study", "netinv-analyze"):
        version = subprocess.run([str(target / "bin" / command), "--version"], cwd=tmp_path,
                                 env=env, capture_output=True, text=True, timeout=120)
        assert version.returncode == 0, version.stderr
        assert version.stdout.strip() == f"netinv-study {__version__}"
