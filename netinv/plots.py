"""Pictures a person would rather look at than read: inverted-image grids.

Drawn with matplotlib's object API (``Figure`` + the Agg canvas), so importing this module
neither needs a display nor switches the process's global backend.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


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
    rows = images[: n * per_class].view(n, per_class, *images.shape[1:])  # n, P, C, H, W
    fig = Figure(figsize=(per_class * 0.8, n * 0.8 + 0.4))
    FigureCanvasAgg(fig)  # attaches itself to fig; savefig then renders without pyplot
    axes = fig.subplots(n, per_class, squeeze=False)
    for i in range(n):
        for j in range(per_class):
            ax = axes[i][j]
            img = rows[i, j].permute(1, 2, 0).numpy()  # H, W, C
            ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i][0].set_ylabel(str(classes[i])[:12], rotation=0, ha="right", va="center",
                              fontsize=7)
    fig.tight_layout(pad=0.2)
    if title:  # after tight_layout, in a strip it leaves free, so it never covers the top row
        top = 1 - 0.3 / fig.get_figheight()
        fig.subplots_adjust(top=top)
        fig.suptitle(title, fontsize=9, y=1 - 0.1 / fig.get_figheight())
    fig.savefig(path, dpi=100)
