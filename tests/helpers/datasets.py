"""Tiny datasets written in the on-disk layouts users get, for tests of netinv.datasets."""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.server
import pickle
import struct
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import scipy.io
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


def write_svhn(root: Path, split: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``<root>/svhn/<split>_32x32.mat`` as torchvision's SVHN reads it: ``X`` (32, 32, 3, N)
    uint8, ``y`` (N, 1) with 10 meaning digit 0 (the first label is 10). Returns (X, y)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)  # SVHN's (H, W, C, N)
    y = rng.integers(1, 11, (n, 1)).astype(np.uint8)  # 10 means digit 0
    y[0, 0] = 10
    (root / "svhn").mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / "svhn" / f"{split}_32x32.mat", {"X": x, "y": y})
    return x, y


def write_image_folder(split_dir: Path, n_per_class: int, size: tuple[int, int]) -> None:
    """``split_dir/{a,b,c}_class/<i>.png``: random RGB images of ``size`` (H, W)."""
    rng = np.random.default_rng(0)
    for cls in ("b_class", "a_class", "c_class"):
        (split_dir / cls).mkdir(parents=True)
        for i in range(n_per_class):
            x = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(x).save(split_dir / cls / f"{i}.png")


# ------------------------------------------------------------------------------------------------
# Small archives in the official formats, served over HTTP to torchvision's real downloaders


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _jpeg(path: Path, rng: np.random.Generator, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path, quality=90)


def write_idx_archives(out: Path, n: int, seed: int) -> dict[str, tuple[str, str]]:
    """KMNIST's four gzipped IDX files (``tvd.KMNIST.resources`` names) of ``n`` 28x28 images.

    Returns:
        file name -> (its md5, ""), in ``resources`` order; the labels are ``i % 10``.
    """
    rng = np.random.default_rng(seed)
    written = {}
    for filename, _ in tvd.KMNIST.resources:
        if "images" in filename:
            body = struct.pack(">IIII", 0x803, n, 28, 28)
            body += rng.integers(0, 256, (n, 28, 28), dtype=np.uint8).tobytes()
        else:
            body = struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n))
        (out / filename).write_bytes(gzip.compress(body))
        written[filename] = (_md5(out / filename), "")
    return written


def write_dtd_archive(out: Path, per_class: int, seed: int) -> tuple[str, str]:
    """``dtd-r1.0.1.tar.gz`` as the VGG site serves it: ``dtd/images/<class>/*.jpg`` of mixed
    sizes and ``dtd/labels/{train,test}1.txt``. Returns (file name, md5)."""
    rng = np.random.default_rng(seed)
    staging = out / "dtd-staging"
    lists: dict[str, list[str]] = {"train": [], "test": []}
    for cls in ("banded", "zigzagged", "dotted"):
        for i in range(per_class):
            name = f"{cls}_{i:04d}.jpg"
            _jpeg(staging / "dtd" / "images" / cls / name, rng, (40 + 7 * i, 52))
            lists["test" if i % 2 else "train"].append(f"{cls}/{name}")
    (staging / "dtd" / "labels").mkdir(parents=True)
    for split, rows in lists.items():
        (staging / "dtd" / "labels" / f"{split}1.txt").write_text("\n".join(rows) + "\n")
    filename = tvd.DTD._URL.rsplit("/", 1)[-1]
    with tarfile.open(out / filename, "w:gz") as tar:
        tar.add(staging / "dtd", arcname="dtd")
    return filename, _md5(out / filename)


def write_places365_archives(out: Path, n: int, seed: int) -> dict[str, str]:
    """Places365's devkit tar (categories, val list) and ``val_256.tar`` of ``n`` 256x256 JPEGs
    (labels ``i % 3`` over 3 categories). Returns file name -> md5."""
    rng = np.random.default_rng(seed)
    staging = out / "places-staging"
    (staging / "val_256").mkdir(parents=True)
    categories = ["/a/airfield 0", "/b/bakery/shop 1", "/c/canyon 2"]
    (staging / "categories_places365.txt").write_text("\n".join(categories) + "\n")
    rows = []
    for i in range(n):
        name = f"Places365_val_{i + 1:08d}.jpg"
        _jpeg(staging / "val_256" / name, rng, (256, 256))
        rows.append(f"{name} {i % 3}")
    (staging / "places365_val.txt").write_text("\n".join(rows) + "\n")
    devkit, _ = tvd.Places365._DEVKIT_META["standard"]
    images, _ = tvd.Places365._IMAGES_META[("val", True)]
    with tarfile.open(out / devkit, "w") as tar:
        for name in ("categories_places365.txt", "places365_val.txt"):
            tar.add(staging / name, arcname=name)
    with tarfile.open(out / images, "w") as tar:
        tar.add(staging / "val_256", arcname="val_256")
    return {devkit: _md5(out / devkit), images: _md5(out / images)}


@contextlib.contextmanager
def http_server(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (a free port) while the block runs; yields its URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # no per-request lines in the test output
        pass


def write_tree(root: Path, per_class: dict[str, int], size: tuple[int, int] = (20, 24),
               mode: str = "RGB", seed: int = 0) -> None:
    """A user's tree ``root/<class>/<i>.png``: ``per_class[c]`` random images of ``size``."""
    rng = np.random.default_rng(seed)
    for cls, count in per_class.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            x = rng.integers(0, 256, (*size, 3) if mode == "RGB" else size, dtype=np.uint8)
            Image.fromarray(x).convert(mode).save(root / cls / f"{i}.png")
