"""netinv.plots: inverted-image grids drawn with Pillow, one row per class."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from netinv.plots import grid_picture, save_grid


def test_import_needs_no_matplotlib() -> None:
    # a study worker saves a grid every round; matplotlib's import alone took 0.7 s per worker
    code = "import sys, netinv.plots; print('matplotlib' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert proc.stdout.strip() == "False"


def test_grid_has_one_row_per_class_in_class_order() -> None:
    # every image of class i is one flat grey level, so a row's pixels say which class it shows
    levels = [10, 120, 240]
    images = torch.tensor(levels, dtype=torch.uint8).repeat_interleave(4)  # 3 classes x 4
    images = images[:, None, None, None].expand(-1, 1, 28, 28).contiguous()
    picture = np.asarray(grid_picture(images, ["zero", "one", "garbage"], title="round 1"))
    assert picture.ndim == 3 and picture.shape[2] == 3
    right = picture[:, -picture.shape[1] // 3:, 0]  # a band through the last images
    seen = [v for v in np.unique(right) if v in levels]
    assert seen == levels  # every class level is drawn
    first_row = {level: np.flatnonzero((right == level).any(axis=1)).min() for level in levels}
    assert first_row[10] < first_row[120] < first_row[240]  # class-major, top to bottom
    rows = np.flatnonzero((right == 120).any(axis=1))  # the middle class's image rows
    first_image_x = np.flatnonzero((picture[rows[0], :, 0] == 120))[0]
    label_strip = picture[rows.min():rows.max(), :first_image_x - 1]
    assert (label_strip < 128).any()  # the class name is written left of its row


def test_save_grid_writes_a_png_for_grey_and_rgb(tmp_path: Path) -> None:
    grey = torch.randint(0, 256, (3 * 4, 1, 28, 28), dtype=torch.uint8)
    save_grid(grey, ["zero", "one", "garbage"], tmp_path / "grey.png", title="round 1")
    rgb = torch.randint(0, 256, (2 * 3, 3, 32, 32), dtype=torch.uint8)
    save_grid(rgb, ["cat", "garbage"], tmp_path / "rgb.png")
    with Image.open(tmp_path / "grey.png") as png, Image.open(tmp_path / "rgb.png") as png_rgb:
        assert png.format == png_rgb.format == "PNG"
        assert png_rgb.width > png_rgb.height  # 2 rows of 3
        colours = np.asarray(png_rgb.convert("RGB"))
    assert (colours[..., 0] != colours[..., 1]).any()  # colour images stay in colour
