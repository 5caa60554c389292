"""In-memory ID sets for ``netinv.data.prepare``: uint8 tensors with labels and class names, or
a torch ``Dataset`` of (image, label) pairs, turned into an ``ImageSet`` once.

    from netinv.data import from_dataset, from_tensors, prepare
    parts = from_tensors(images, labels, ["ok", "scratch"])  # uint8 (N, C, H, W)
    parts = from_dataset(torchvision.datasets.ImageFolder("/data/parts"))  # PIL or tensors
    data = prepare(parts, ["tinyimagenet"])  # split into train/test like a folder tree
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from netinv.datasets.decode import ImageSet


def from_tensors(images: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray |
                 Sequence[int], classes: Sequence[str], *, name: str = "memory") -> ImageSet:
    """An ID set from uint8 images (N, C, H, W), C in {1, 3}, int labels (N,) in
    [0, len(classes)), and the class names.

    Raises:
        TypeError: images not uint8, labels not integers, class names not strings.
        ValueError: a wrong shape, an empty set, a label out of range, repeated class names.
    """
    images = torch.as_tensor(images)
    labels = torch.as_tensor(labels)
    if images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 pixels in [0, 255]; got dtype={images.dtype}")
    if images.dim() != 4 or images.shape[1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(f"images must have shape (N, C, H, W) with N >= 1 and C in {{1, 3}}; "
                         f"got shape={tuple(images.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(f"labels must be integers; got dtype={labels.dtype}")
    classes = tuple(classes)
    if not all(isinstance(c, str) for c in classes) or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct strings; got classes={list(classes)}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape (N,) = ({images.shape[0]},); got "
                         f"shape={tuple(labels.shape)}")
    lo, hi = int(labels.min()), int(labels.max())
    if not 0 <= lo <= hi < len(classes):
        raise ValueError(f"labels must lie in [0, {len(classes)}) (one per class name); got "
                         f"labels in [{lo}, {hi}]")
    return ImageSet(images.contiguous(), labels.to(torch.int64), name, classes)


def from_dataset(dataset: Any, *, classes: Sequence[str] | None = None,
                 name: str = "dataset") -> ImageSet:
    """An ID set from a map-style torch ``Dataset`` whose items are (image, label), read once.

    Images may be PIL images (any mode; greyscale kept as 1 channel, anything else RGB) or
    tensors (C, H, W) / (H, W): uint8, or float in [0, 1] (rounded to 8 bits). All must share
    one size and channel count (resize in the dataset's transform otherwise).

    Args:
        dataset: Supports ``len`` and ``dataset[i]``.
        classes: Class names; None = ``dataset.classes`` if it has them, else "0", "1", ...

    Raises:
        TypeError: An item is not (image, label), or an image of another type.
        ValueError: Images of different sizes or channels, or float pixels outside [0, 1]; the
            item's index is named.
    """
    images: list[torch.Tensor] = []
    labels: list[int] = []
    for i in range(len(dataset)):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(f"dataset items must be (image, label); item {i} is "
                            f"{type(item).__name__}")
        image = _pixels(item[0], i)
        if images and image.shape != images[0].shape:
            raise ValueError(f"all images must share one (C, H, W); item 0 has "
                             f"{tuple(images[0].shape)}, item {i} has {tuple(image.shape)}")
        images.append(image)
        labels.append(int(item[1]))
    if classes is None:
        classes = getattr(dataset, "classes", None) or [str(c) for c in range(max(labels) + 1)]
    return from_tensors(torch.stack(images), torch.tensor(labels), classes, name=name)


def _pixels(image: Any, index: int) -> torch.Tensor:
    """One image as uint8 (C, H, W), C in {1, 3}."""
    from PIL import Image

    if isinstance(image, Image.Image):
        grey = image.mode in ("1", "L", "LA", "I", "I;16", "F")
        array = np.asarray(image.convert("L" if grey else "RGB"))
        array = array[:, :, None] if array.ndim == 2 else array
        return torch.from_numpy(array.transpose(2, 0, 1).copy())  # (C, H, W), writable
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"dataset images must be PIL images or tensors; item {index} is "
                        f"{type(image).__name__}")
    x = image.unsqueeze(0) if image.dim() == 2 else image
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"tensor images must be (C, H, W) with C in {{1, 3}} or (H, W); item "
                         f"{index} has shape={tuple(image.shape)}")
    if x.is_floating_point():
        lo, hi = float(x.min()), float(x.max())
        if not (0.0 <= lo and hi <= 1.0):
            raise ValueError(f"float images must lie in [0, 1] (undo Normalize first); item "
                             f"{index} has min={lo:.4g}, max={hi:.4g}")
        x = (x * 255).round()
    return x.to(torch.uint8)
