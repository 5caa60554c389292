"""netinv.plots: grids drawn with the object API, without touching matplotlib's backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image


def test_import_leaves_the_global_backend_alone() -> None:
    # a fresh interpreter, so the backend chosen before the import is known and nothing else
    # in the test session has imported netinv.plots already
    code = ("import matplotlib; matplotlib.use('svg'); import netinv.plots; "
            "print(matplotlib.get_backend())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert proc.stdout.strip() == "svg"


def test_grid_png_has_one_row_per_class(tmp_path: Path) -> None:
    from netinv.plots import save_grid

    images = torch.randint(0, 256, (3 * 4, 1, 28, 28), dtype=torch.uint8)  # 3 classes x 4
    path = tmp_path / "grid.png"
    save_grid(images, ["zero", "one", "garbage"], path, title="round 1")
    with Image.open(path) as png:
        width, height = png.size
        pixels = png.convert("L").getextrema()
    assert (width, height) == (4 * 80, int((3 * 0.8 + 0.4) * 100))
    assert pixels[0] < pixels[1]  # not a blank canvas
    rgb = torch.randint(0, 256, (2 * 3, 3, 32, 32), dtype=torch.uint8)
    save_grid(rgb, ["cat", "garbage"], tmp_path / "rgb.png")
    assert (tmp_path / "rgb.png").stat().st_size > 1000
