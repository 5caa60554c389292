"""Pictures a person would rather look at than read: inverted-image grids.

Drawn with Pillow: a study saves one grid per round of every trial, and matplotlib cost
0.07 s per grid plus 0.7 s to import in every worker (a few percent of a quick study's
compute); tiling the images with NumPy and writing the labels with Pillow costs a few ms.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

IMAGE_PX = 80  # about how many pixels each image is drawn at (nearest-neighbour upscaling)
FONT_PX = 13  # height of the class names and the title
LABEL_CHARS = 12  # class names are cut to this many characters


def grid_picture(images: torch.Tensor, classes: Sequence[str], *, title: str = ""
                 ) -> Image.Image:
    """An RGB picture of ``images`` with one row per class, the class name left of each row.

    Args:
        images: uint8 (n * per_class, C, H, W), class-major (all of class 0 first), C in {1, 3}.
        classes: n class names, one per row.
        title: Text above the grid (e.g. "round 2"); "" leaves no title strip.

    Returns:
        A ``PIL.Image`` in mode "RGB", white between and around the images.
    """
    n = len(classes)
    per_class = images.shape[0] // n
    channels, height, width = images.shape[1:]
    scale = max(1, round(IMAGE_PX / max(height, width)))
    rows = images[: n * per_class].view(n * per_class, channels, height, width)
    if scale > 1:
        rows = rows.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    rows = rows.expand(-1, 3, -1, -1) if channels == 1 else rows  # grey drawn as RGB
    tile_h, tile_w = rows.shape[2:]
    pad = max(2, tile_h // 14)  # px of white between images
    tiles = F.pad(rows.reshape(n, per_class, 3, tile_h, tile_w), (0, pad, 0, pad), value=255)
    tiled = tiles.permute(0, 3, 1, 4, 2).reshape(n * (tile_h + pad), per_class * (tile_w + pad),
                                                 3)  # rows of images, RGB last
    font = ImageFont.load_default(size=FONT_PX)
    names = [str(c)[:LABEL_CHARS] for c in classes]
    draw_probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max(int(draw_probe.textlength(name, font=font)) for name in names) + 2 * pad
    title_h = FONT_PX + 2 * pad if title else 0
    picture = Image.new("RGB", (label_w + pad + tiled.shape[1], title_h + pad + tiled.shape[0]),
                        "white")
    picture.paste(Image.fromarray(tiled.contiguous().numpy()), (label_w + pad, title_h + pad))
    draw = ImageDraw.Draw(picture)
    for i, name in enumerate(names):  # right-aligned, centred on its row
        centre_y = title_h + pad + i * (tile_h + pad) + tile_h / 2
        draw.text((label_w, centre_y), name, fill="black", font=font, anchor="rm")
    if title:
        draw.text((picture.width / 2, pad), title, fill="black", font=font, anchor="mt")
    return picture


def save_grid(images: torch.Tensor, classes: Sequence[str], path: str | os.PathLike, *,
              title: str = "") -> None:
    """Save :func:`grid_picture` of ``images`` (same arguments) as a PNG at ``path``."""
    grid_picture(images, classes, title=title).save(path, format="PNG")
