"""Tiny datasets written in the on-disk layouts users get, for tests of netinv.datasets."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torchvision.datasets as tvd
from PIL import Image


def write_cifar(root: Path, name: str, n: int, seed: int, splits=("train", "test")) -> dict:
    """Pickles in the layout torchvision reads (see torchvision/datasets/cifar.py).

    Returns:
        split -> (data uint8 (N, 3072), labels list), and "classes" -> the class names.
    """
    cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
    base = root / cls.base_folder
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_classes = 10 if name == "cifar10" else 100
    label_key = "labels" if name == "cifar10" else "fine_labels"
    written: dict[str, tuple[np.ndarray, list[int]]] = {}
    for split in splits:
        files = [f for f, _ in (cls.train_list if split == "train" else cls.test_list)]
        rows, labels = [], []
        for f in files:
            x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
            lab = [int(v) for v in rng.integers(0, n_classes, n)]
            entry = {"data": x, label_key: lab, "filenames": [f"{i}.png" for i in range(n)]}
            if name == "cifar100":
                entry["coarse_labels"] = [v // 5 for v in lab]
            with open(base / f, "wb") as fh:
                pickle.dump(entry, fh)
            rows.append(x)
            labels += lab
        written[split] = (np.concatenate(rows), labels)
    names = [f"class_{i:02d}" for i in range(n_classes)]
    meta = {cls.meta["key"]: names}
    if name == "cifar100":
        meta["coarse_label_names"] = [f"super_{i}" for i in range(20)]
    with open(base / cls.meta["filename"], "wb") as fh:
        pickle.dump(meta, fh)
    written["classes"] = names
    return written


def write_image_folder(split_dir: Path, n_per_class: int, size: tuple[int, int]) -> None:
    """``split_dir/{a,b,c}_class/<i>.png``: random RGB images of ``size`` (H, W)."""
    rng = np.random.default_rng(0)
    for cls in ("b_class", "a_class", "c_class"):
        (split_dir / cls).mkdir(parents=True)
        for i in range(n_per_class):
            x = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(x).save(split_dir / cls / f"{i}.png")
