"""study.plots: figures drawn without touching matplotlib's global backend or pyplot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import sys, matplotlib
before = matplotlib.get_backend()
import study.plots
print(before, matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""


def test_import_leaves_the_backend_alone() -> None:
    env = {**os.environ, "MPLBACKEND": "pdf", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["pdf", "pdf", "False"]


def test_figures_are_pngs(tmp_path: Path) -> None:
    from study import plots

    trials = pd.DataFrame({"order": [0, 1, 2], "objective": [0.5, np.nan, 0.7],
                           "status": ["completed", "running", "stopped"]})
    plots.optimisation_history(trials, tmp_path / "h.png", label="ue:auroc", minimize=False)
    rng = np.random.default_rng(0)
    plots.roc_curves(rng.normal(size=50), {"a": rng.normal(1, size=40)}, tmp_path / "r.png",
                     title="t")
    plots.compose_images([("one", tmp_path / "h.png"), ("two", tmp_path / "r.png")],
                         tmp_path / "c.png")
    for name in ("h.png", "r.png", "c.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.size[0] > 100
    with Image.open(tmp_path / "c.png") as composed, Image.open(tmp_path / "h.png") as h:
        assert composed.size[0] >= h.size[0]  # side by side, each at its own resolution
