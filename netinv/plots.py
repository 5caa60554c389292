"""Pictures a person would rather look at than read: inverted-image grids.

Drawn with matplotlib's object API (``Figure`` + the Agg canvas), so importing this module
neither needs a display nor switches the process's global backend.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

LABEL_MARGIN_IN = 0.9  # inches left of the grid for the class names
TITLE_STRIP_IN = 0.3  # inches above the grid for the title


def save_grid(images: torch.Tensor, classes: Sequence[str], path: str | os.PathLike, *,
              title: str = "") -> None:
    """Save a PNG grid with one row per class.

    Args:
        images: uint8 (n * per_class, C, H, W), class-major (all of class 0 first), C in {1, 3}.
        classes: n class names, one per row.
        path: Output PNG path.
        title: Figure title (e.g. "round 2").
    """
    n = len(classes)
    per_class = images.shape[0] // n
    channels, height, width = images.shape[1:]
    rows = images[: n * per_class].view(n, per_class, channels, height, width)  # n, P, C, H, W
    # one tiled picture on one axes: a figure of n * P subplots took ~0.5 s per grid (quiet
    # 2-core machine), most of a quick trial's per-round overhead
    pad = max(1, height // 14)  # px of white between images
    tiles = F.pad(rows, (0, pad, 0, pad), value=255)  # n, P, C, H + pad, W + pad
    grid = tiles.permute(0, 3, 1, 4, 2).reshape(n * (height + pad), per_class * (width + pad),
                                                channels)  # rows of images, C last
    grid = F.pad(grid.permute(2, 0, 1), (pad, 0, pad, 0), value=255).permute(1, 2, 0).numpy()
    fig = Figure(figsize=(per_class * 0.8, n * 0.8 + 0.4))
    FigureCanvasAgg(fig)  # attaches itself to fig; savefig then renders without pyplot
    left = min(LABEL_MARGIN_IN, 0.3 * fig.get_figwidth()) / fig.get_figwidth()
    top = (TITLE_STRIP_IN if title else 0.05) / fig.get_figheight()
    ax = fig.add_axes((left, 0.02, 1 - left - 0.01, 1 - top - 0.02))
    ax.imshow(grid[..., 0] if channels == 1 else grid, cmap="gray", vmin=0, vmax=255,
              interpolation="nearest")
    ax.set_xticks([])
    centres = [pad + i * (height + pad) + height / 2 for i in range(n)]
    ax.set_yticks(centres, [str(c)[:12] for c in classes], fontsize=7)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:  # in the strip above the axes, so it never covers the top row
        fig.suptitle(title, fontsize=9, y=1 - 0.1 / fig.get_figheight())
    fig.savefig(path, dpi=100)
