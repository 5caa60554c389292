"""Datasets of the study: find, decode once, cache, convert to the ID shape, split.

Six datasets are known (``DATASET_NAMES``). Each is looked for under one data root
(``resolve_data_root``) in the layouts users get from the official downloads, first match wins:

=============  ==============================================================================
mnist          ``<root>/MNIST/raw/*-ubyte`` (torchvision), else an image folder
fashionmnist   ``<root>/FashionMNIST/raw/*-ubyte`` (torchvision), else an image folder
cifar10        ``<root>/cifar-10-batches-py/`` (torchvision pickles), else an image folder
cifar100       ``<root>/cifar-100-python/`` (torchvision pickles), else an image folder
svhn           ``<root>/svhn/{train,test}_32x32.mat`` (torchvision), else an image folder
tinyimagenet   ``<root>/tiny-imagenet-200/`` (official zip; split "test" is its ``val/``),
               else an image folder
=============  ==============================================================================

An image folder is ``<root>/<name>/<split>/<class>/*.{png,jpg,jpeg,bmp}``; ``<name>`` matches
case-insensitively and also in torchvision's spelling (``CIFAR10``, ``FashionMNIST``, ...).
Classes are the sorted folder names.

A split is decoded once into uint8 ``(N, C, H, W)`` and cached as ``.npy`` files in
``cache_dir()`` (never inside the data root, which may be read-only); later loads are one
``np.load``. Missing data is downloaded into the data root when ``download=True`` (torchvision's
downloaders, md5-checked), else ``DataUnavailableError`` names every path looked at.

Shapes (design.md, section 1): every OOD set is converted to the ID dataset's shape by
``to_shape``: RGB to greyscale by ITU-R 601 luminance and an antialiased bilinear resize when the
ID set is MNIST-like (1x28x28); channel replication plus resize when the ID set is RGB 32x32.
``prepare`` keeps ID val (held out of ID train) and OOD val apart from the test parts, as OpenOOD
does, so hyperparameters are never chosen on test data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F

from netinv.config import DATASET_NAMES  # the one list of dataset names

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "test")

CACHE_VERSION = 1  # bump when the decoded format changes; part of every cache key
DOWNLOAD_TIMEOUT_S = 20.0  # socket timeout while downloading, seconds
CHUNK_IMAGES = 512  # images per chunk in to_shape (bounds float32 working memory)
DECODE_CHUNK_FILES = 256  # image files per task in the decoding thread pool
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
LUMA_601 = (0.299, 0.587, 0.114)  # ITU-R BT.601 luminance weights for R, G, B

TINYIMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINYIMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"

# Channel count of each dataset's native images.
_NATIVE_CHANNELS = {
    "mnist": 1,
    "fashionmnist": 1,
    "cifar10": 3,
    "svhn": 3,
    "cifar100": 3,
    "tinyimagenet": 3,
}
# Folder names accepted for the image-folder layout (compared lower-case).
_FOLDER_ALIASES = {
    "mnist": ("mnist",),
    "fashionmnist": ("fashionmnist", "fashion-mnist", "fashion_mnist"),
    "cifar10": ("cifar10", "cifar-10"),
    "svhn": ("svhn",),
    "cifar100": ("cifar100", "cifar-100"),
    "tinyimagenet": ("tinyimagenet", "tiny-imagenet", "tiny_imagenet"),
}
_TORCHVISION_LOADERS = {
    "mnist": "torchvision.datasets.MNIST",
    "fashionmnist": "torchvision.datasets.FashionMNIST",
    "cifar10": "torchvision.datasets.CIFAR10",
    "cifar100": "torchvision.datasets.CIFAR100",
    "svhn": "torchvision.datasets.SVHN",
}

_FIX_HINT = (
    "Fix: put the files at one of these paths, point --data-root / NETINV_DATA at a folder "
    "that has them, or allow downloads (download=True)."
)


class DataUnavailableError(FileNotFoundError):
    """A dataset could not be found or downloaded.

    The message names every path looked at and how to fix it: put the files there, set
    ``--data-root`` / ``NETINV_DATA``, or allow downloads.
    """

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or f"dataset not found. {_FIX_HINT}")


@dataclass(frozen=True)
class ImageSet:
    """One split of one dataset, decoded.

    Attributes:
        images: uint8, shape (N, C, H, W), the dataset's native shape (MNIST 1x28x28,
            CIFAR/SVHN 3x32x32, TinyImageNet 3x64x64) or an image folder's own size.
        labels: int64, shape (N,), values in [0, len(classes)).
        name: Dataset name, one of ``DATASET_NAMES``.
        classes: Class names; ``labels`` index into it.
    """

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor) -> ImageSet:
        """The images at ``index`` (int64, shape (M,)), as a new ``ImageSet``."""
        return ImageSet(self.images[index], self.labels[index], self.name, self.classes)


@dataclass(frozen=True)
class PreparedData:
    """Everything one study needs from the data, already split and shaped.

    Attributes:
        shape: ID image shape (C, H, W); every OOD tensor has this shape too.
        n_classes: n, the number of ID classes (without the garbage class).
        classes: ID class names, length n.
        mean: Per-channel mean of ``id_train`` pixels scaled to [0, 1].
        std: Per-channel std of ``id_train`` pixels scaled to [0, 1].
        id_train: ID train split minus the held-out validation part (and capped by
            ``train_limit``).
        id_val: The held-out part of the ID train split.
        id_test: The ID test split (capped by ``test_limit``).
        ood: OOD name -> {"val": uint8 (N, *shape), "test": uint8 (M, *shape)}.
    """

    shape: tuple[int, int, int]
    n_classes: int
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    id_train: ImageSet
    id_val: ImageSet
    id_test: ImageSet
    ood: dict[str, dict[str, torch.Tensor]]


# ------------------------------------------------------------------------------------------------
# Locations


def resolve_data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder datasets are read from (and downloaded into).

    Args:
        root: Explicit data root. ``None`` means the environment variable ``NETINV_DATA``,
            else ``$XDG_CACHE_HOME/netinv/data`` (``XDG_CACHE_HOME`` defaults to ``~/.cache``).

    Returns:
        The absolute path; it need not exist.
    """
    if root is None or str(root) == "":
        env = os.environ.get("NETINV_DATA", "")
        root = env if env else _xdg_cache_home() / "netinv" / "data"
    return Path(root).expanduser().resolve()


def cache_dir() -> Path:
    """The folder decoded arrays are cached in; never inside the data root.

    Returns:
        ``NETINV_CACHE`` if set, else ``$XDG_CACHE_HOME/netinv/decoded`` (``XDG_CACHE_HOME``
        defaults to ``~/.cache``). It need not exist yet.
    """
    env = os.environ.get("NETINV_CACHE", "")
    path = Path(env) if env else _xdg_cache_home() / "netinv" / "decoded"
    return path.expanduser().resolve()


def _xdg_cache_home() -> Path:
    env = os.environ.get("XDG_CACHE_HOME", "")
    return Path(env) if env else Path.home() / ".cache"


@dataclass(frozen=True)
class _Source:
    """One place a split may be found: how to read it (``kind``) and where (``path``)."""

    name: str
    split: str
    kind: str  # "torchvision", "tinyimagenet" or "folder"
    path: Path  # the folder that identifies the source (part of the cache key)
    required: tuple[Path, ...]  # files/folders that must all exist

    def exists(self) -> bool:
        if self.kind == "folder":
            return self.path.is_dir() and any(p.is_dir() for p in self.path.iterdir())
        return all(p.exists() for p in self.required)


def _candidates(name: str, split: str, root: Path) -> list[_Source]:
    """Every place ``name``/``split`` may live under ``root``, in lookup order."""
    train = split == "train"
    found: list[_Source] = []
    if name in ("mnist", "fashionmnist"):
        # torchvision's MNIST checks that all four raw files exist, whatever the split.
        raw = root / ("MNIST" if name == "mnist" else "FashionMNIST") / "raw"
        files = tuple(
            raw / f"{prefix}-{kind}-ubyte"
            for prefix in ("train", "t10k")
            for kind in ("images-idx3", "labels-idx1")
        )
        found.append(_Source(name, split, "torchvision", raw.parent, files))
    elif name in ("cifar10", "cifar100"):
        cls = _torchvision_class(name)
        base = root / cls.base_folder
        files = [f for f, _ in (cls.train_list if train else cls.test_list)]
        required = tuple(base / f for f in [*files, cls.meta["filename"]])
        found.append(_Source(name, split, "torchvision", base, required))
    elif name == "svhn":
        filename = _torchvision_class(name).split_list[split][1]
        found.append(
            _Source(name, split, "torchvision", root / "svhn", (root / "svhn" / filename,))
        )
    elif name == "tinyimagenet":
        base = root / "tiny-imagenet-200"
        if train:
            required = (base / "wnids.txt", base / "train")
        else:
            required = (
                base / "wnids.txt",
                base / "val" / "val_annotations.txt",
                base / "val" / "images",
            )
        found.append(_Source(name, split, "tinyimagenet", base, required))
    aliases = _FOLDER_ALIASES[name]
    folders = [root / alias / split for alias in aliases]  # reported when nothing exists
    if root.is_dir():
        matches = sorted(p for p in root.iterdir() if p.is_dir() and p.name.lower() in aliases)
        if matches:
            folders = [p / split for p in matches]
    found.extend(_Source(name, split, "folder", p, (p,)) for p in folders)
    return found


def _looked_at(sources: Sequence[_Source]) -> str:
    paths: list[str] = []
    for source in sources:
        shown = source.path if source.kind == "folder" else source.required[0].parent
        text = f"{shown} ({'image folder' if source.kind == 'folder' else source.kind} layout)"
        if text not in paths:
            paths.append(text)
    return "; ".join(paths)


def _torchvision_class(name: str) -> type:
    import torchvision.datasets as tvd

    return {
        "mnist": tvd.MNIST,
        "fashionmnist": tvd.FashionMNIST,
        "cifar10": tvd.CIFAR10,
        "cifar100": tvd.CIFAR100,
        "svhn": tvd.SVHN,
    }[name]


# ------------------------------------------------------------------------------------------------
# Cache


def _cache_paths(source: _Source) -> tuple[Path, Path, Path]:
    key = f"v{CACHE_VERSION}|{source.name}|{source.split}|{source.kind}|{source.path.resolve()}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    stem = cache_dir() / f"{source.name}-{source.split}-{digest}"
    return (
        stem.with_name(stem.name + ".images.npy"),
        stem.with_name(stem.name + ".labels.npy"),
        stem.with_name(stem.name + ".json"),
    )


def _read_cache(source: _Source) -> ImageSet | None:
    images_path, labels_path, meta_path = _cache_paths(source)
    if not meta_path.is_file():  # the json is written last: its presence marks a full entry
        return None
    try:
        meta = json.loads(meta_path.read_text())
        images = np.load(images_path, allow_pickle=False)
        labels = np.load(labels_path, allow_pickle=False)
    except (OSError, ValueError) as err:
        logger.warning("ignoring unreadable cache entry %s: %s", meta_path, err)
        return None
    if (
        images.dtype != np.uint8
        or labels.dtype != np.int64
        or list(images.shape) != meta.get("shape")
        or labels.shape != (images.shape[0],)
    ):
        logger.warning("ignoring inconsistent cache entry %s", meta_path)
        return None
    return ImageSet(
        torch.from_numpy(images), torch.from_numpy(labels), source.name, tuple(meta["classes"])
    )


def _write_cache(source: _Source, data: ImageSet) -> None:
    images_path, labels_path, meta_path = _cache_paths(source)
    meta = {
        "name": source.name,
        "split": source.split,
        "kind": source.kind,
        "source": str(source.path),
        "shape": list(data.images.shape),
        "classes": list(data.classes),
        "version": CACHE_VERSION,
    }
    try:
        images_path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(images_path, lambda f: np.save(f, data.images.numpy(), allow_pickle=False))
        _atomic_write(labels_path, lambda f: np.save(f, data.labels.numpy(), allow_pickle=False))
        _atomic_write(meta_path, lambda f: f.write(json.dumps(meta, indent=1).encode()))
    except OSError as err:  # a read-only cache only costs speed
        logger.warning("could not write the decoded-data cache at %s: %s", images_path.parent, err)
        return
    logger.info("cached %s/%s in %s", source.name, source.split, meta_path.with_suffix(""))


def _atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write via a temp file in the same folder plus ``os.replace``, so readers never see
    a half-written file (several Ray trials on one node may decode at once)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache may be shared by several users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------------------
# Loading


def _check_name(name: str) -> None:
    if name not in DATASET_NAMES:
        raise ValueError(
            f"unknown dataset name={name!r}; choose one of: {', '.join(DATASET_NAMES)}"
        )


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of: {', '.join(SPLITS)}; got split={split!r}")


def load_split(
    name: str,
    split: str,
    *,
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> ImageSet:
    """Load one split of one dataset, decoding it only the first time.

    The decoded arrays are cached in ``cache_dir()`` under a key made of the name, the split
    and the resolved source path, so two data roots never collide. If the source has gone
    but a cache entry for one of its possible locations exists, the cache is served. The
    cache is not invalidated when source files change in place: delete the entry to re-decode.

    Args:
        name: One of ``DATASET_NAMES``.
        split: "train" or "test". For tinyimagenet "test" is the official ``val/`` set
            (10,000 images, in ``val_0`` ... ``val_9999`` order).
        root: Data root; ``None`` means ``resolve_data_root()``'s default.
        download: Download a missing dataset into the data root (torchvision's downloaders;
            tinyimagenet from the cs231n zip). ``False`` never touches the network.

    Returns:
        The split; images uint8 (N, C, H, W) in the dataset's native shape, labels int64 (N,).

    Raises:
        ValueError: Unknown name or split, or an image folder whose images cannot be decoded
            or differ in size.
        DataUnavailableError: The split is not found and downloads are off, the data root is
            not writable, or the download failed.
    """
    _check_name(name)
    _check_split(split)
    data_root = resolve_data_root(root)
    source, sources = _locate(name, split, data_root)
    if source is not None:
        cached = _read_cache(source)
        if cached is not None:
            logger.debug("loaded %s/%s from cache", name, split)
            return cached
    else:
        cached = _cached_any(sources)
        if cached is not None:
            return cached
        _ensure_downloadable(name, split, data_root, sources, download)
        _download(name, split, data_root, sources)
        source, _ = _locate(name, split, data_root)
        if source is None:
            raise DataUnavailableError(
                f"dataset name={name!r} split={split!r}: the download finished but the split is "
                f"still missing; looked at: {_looked_at(sources)}. {_FIX_HINT}"
            )
    start = time.perf_counter()
    data = _decode(source)
    logger.info(
        "decoded %s/%s from %s: %s in %.1f s",
        name,
        split,
        source.path,
        tuple(data.images.shape),
        time.perf_counter() - start,
    )
    _write_cache(source, data)
    return data


def _locate(name: str, split: str, data_root: Path) -> tuple[_Source | None, list[_Source]]:
    sources = _candidates(name, split, data_root)
    for source in sources:
        if source.exists():
            return source, sources
    return None, sources


def _cached_any(sources: Sequence[_Source]) -> ImageSet | None:
    for source in sources:
        cached = _read_cache(source)
        if cached is not None:
            logger.info(
                "%s/%s not found at %s; serving its cached copy",
                source.name,
                source.split,
                source.path,
            )
            return cached
    return None


def _available(name: str, split: str, data_root: Path) -> tuple[bool, list[_Source]]:
    """Whether the split can be loaded without downloading (source or cache present)."""
    source, sources = _locate(name, split, data_root)
    if source is not None:
        return True, sources
    return any(_cache_paths(s)[2].is_file() for s in sources), sources


def _ensure_downloadable(
    name: str, split: str, data_root: Path, sources: Sequence[_Source], download: bool
) -> None:
    """Raise ``DataUnavailableError`` unless a download into ``data_root`` may be tried."""
    looked = _looked_at(sources)
    if not download:
        raise DataUnavailableError(
            f"dataset name={name!r} split={split!r} not found and downloads are off "
            f"(download=False); looked at: {looked}. {_FIX_HINT}"
        )
    if not _writable(data_root):
        raise DataUnavailableError(
            f"dataset name={name!r} split={split!r} not found and the data root {data_root} is "
            f"not writable, so it cannot be downloaded there; looked at: {looked}. Fix: put the "
            "files at one of these paths, or point --data-root / NETINV_DATA at a writable folder "
            "(downloads go there)."
        )


def _writable(path: Path) -> bool:
    """Whether files can be created under ``path`` (or its nearest existing ancestor).

    A folder whose permission bits grant nobody write access counts as read-only even for
    root, so a shared read-only copy of the data is never written into.
    """
    while not path.exists():
        if path.parent == path:
            return False
        path = path.parent
    mode = path.stat().st_mode
    writable_bits = mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    return path.is_dir() and bool(writable_bits) and os.access(path, os.W_OK | os.X_OK)


def _download(name: str, split: str, data_root: Path, sources: Sequence[_Source]) -> None:
    """Download ``name`` into ``data_root``; any failure becomes ``DataUnavailableError``."""
    if name == "tinyimagenet":
        what = f"{TINYIMAGENET_URL} (torchvision.datasets.utils.download_and_extract_archive)"
    else:
        what = f"{_TORCHVISION_LOADERS[name]}(download=True)"
    logger.info("downloading %s/%s into %s via %s", name, split, data_root, what)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        data_root.mkdir(parents=True, exist_ok=True)
        if name == "tinyimagenet":
            from torchvision.datasets.utils import download_and_extract_archive

            download_and_extract_archive(
                TINYIMAGENET_URL,
                download_root=str(data_root),
                filename="tiny-imagenet-200.zip",
                md5=TINYIMAGENET_MD5,
            )
        elif name == "svhn":
            _torchvision_class(name)(str(data_root / "svhn"), split=split, download=True)
        else:
            _torchvision_class(name)(str(data_root), train=split == "train", download=True)
    except Exception as err:  # network, HTTP, md5 and archive errors alike
        raise DataUnavailableError(
            f"dataset name={name!r} split={split!r} not found and its download via {what} into "
            f"{data_root} failed: {type(err).__name__}: {err}; looked at: {_looked_at(sources)}. "
            f"{_FIX_HINT}"
        ) from err
    finally:
        socket.setdefaulttimeout(previous)


def _decode(source: _Source) -> ImageSet:
    if source.kind == "folder":
        return _decode_folder(source)
    if source.kind == "tinyimagenet":
        return _decode_tinyimagenet(source)
    return _decode_torchvision(source)


def _decode_torchvision(source: _Source) -> ImageSet:
    """Read torchvision's on-disk layouts.

    MNIST/FashionMNIST go through torchvision's own class (it checks file presence only).
    CIFAR-10/100 and SVHN go through subclasses whose integrity checks test that the
    requested split's files exist instead of comparing md5 sums: torchvision's CIFAR check
    demands train AND test files, and md5 sums would reject every file that is not the
    official one (e.g. small self-made test data). Downloads still verify md5 (``_download``
    uses the unmodified classes).
    """
    name, train = source.name, source.split == "train"
    root = str(source.path.parent)
    if name in ("mnist", "fashionmnist"):
        ds = _torchvision_class(name)(root, train=train, download=False)
        images = ds.data.unsqueeze(1)  # (N, 1, 28, 28)
        labels = ds.targets
        classes = tuple(ds.classes)
    elif name in ("cifar10", "cifar100"):
        ds = _unchecked(name)(root, train=train, download=False)
        images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        labels = torch.as_tensor(ds.targets)
        classes = tuple(ds.classes)
    else:  # svhn
        ds = _unchecked(name)(str(source.path), split=source.split, download=False)
        images = torch.from_numpy(np.ascontiguousarray(ds.data))  # already (N, 3, 32, 32)
        labels = torch.from_numpy(ds.labels)
        classes = tuple(str(d) for d in range(10))
    return ImageSet(images.contiguous(), labels.to(torch.int64), name, classes)


def _unchecked(name: str) -> type:
    """torchvision's CIFAR10/CIFAR100/SVHN with presence checks instead of md5 checks."""
    base = _torchvision_class(name)
    if name == "svhn":

        class _SVHN(base):  # type: ignore[misc, valid-type]
            def _check_integrity(self) -> bool:
                return os.path.isfile(os.path.join(self.root, self.filename))

        return _SVHN

    class _CIFAR(base):  # type: ignore[misc, valid-type]
        def _check_integrity(self) -> bool:
            files = self.train_list if self.train else self.test_list
            folder = os.path.join(self.root, self.base_folder)
            return all(os.path.isfile(os.path.join(folder, f)) for f, _ in files)

        def _load_meta(self) -> None:
            path = os.path.join(self.root, self.base_folder, self.meta["filename"])
            with open(path, "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    return _CIFAR


def _decode_tinyimagenet(source: _Source) -> ImageSet:
    base = source.path
    wnids = sorted(line.strip() for line in (base / "wnids.txt").read_text().split() if line)
    index = {wnid: i for i, wnid in enumerate(wnids)}
    files: list[Path] = []
    labels: list[int] = []
    if source.split == "test":
        annotations = base / "val" / "val_annotations.txt"
        rows = [line.split("\t") for line in annotations.read_text().splitlines() if line.strip()]
        rows.sort(key=lambda row: _natural_key(row[0]))
        for row in rows:
            if row[1] not in index:
                raise ValueError(
                    f"every wnid in {annotations} must be listed in {base / 'wnids.txt'}; "
                    f"got wnid={row[1]!r} for file={row[0]!r}"
                )
            files.append(base / "val" / "images" / row[0])
            labels.append(index[row[1]])
    else:
        for wnid in wnids:
            folder = base / "train" / wnid / "images"
            found = sorted(
                (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                key=lambda p: _natural_key(p.name),
            )
            files.extend(found)
            labels.extend([index[wnid]] * len(found))
    images = _decode_files(files, channels=3)
    return ImageSet(images, torch.tensor(labels, dtype=torch.int64), source.name, tuple(wnids))


def _decode_folder(source: _Source) -> ImageSet:
    classes = sorted(p.name for p in source.path.iterdir() if p.is_dir())
    files: list[Path] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        found = sorted(
            (p for p in (source.path / cls).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
            key=lambda p: _natural_key(p.name),
        )
        files.extend(found)
        labels.extend([label] * len(found))
    if not files:
        raise DataUnavailableError(
            f"an image folder must hold images ({', '.join(IMAGE_SUFFIXES)}) in class folders; "
            f"found none under {source.path}"
        )
    images = _decode_files(files, channels=_NATIVE_CHANNELS[source.name])
    return ImageSet(images, torch.tensor(labels, dtype=torch.int64), source.name, tuple(classes))


def _natural_key(text: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _decode_files(files: Sequence[Path], channels: int) -> torch.Tensor:
    """Decode image files into one uint8 (N, channels, H, W) tensor, in a thread pool.

    Raises:
        ValueError: A file cannot be decoded, or its size differs from the first file's.
    """
    if not files:
        raise ValueError("a split must hold at least one image file; got none")
    chunks = [files[i : i + DECODE_CHUNK_FILES] for i in range(0, len(files), DECODE_CHUNK_FILES)]
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = pool.map(lambda chunk: [_decode_one(p, channels) for p in chunk], chunks)
        decoded = [img for part in parts for img in part]
    first = decoded[0].shape
    for path, img in zip(files, decoded, strict=True):
        if img.shape != first:
            raise ValueError(
                f"all images of one split must share one size; file={files[0]} has (H, W)="
                f"{first[:2]}, but file={path} has (H, W)={img.shape[:2]}"
            )
    stacked = np.stack(decoded)  # (N, H, W, C)
    return torch.from_numpy(np.ascontiguousarray(stacked.transpose(0, 3, 1, 2)))


def _decode_one(path: Path, channels: int) -> np.ndarray:
    """One image file as uint8 (H, W, channels), converted by PIL ("L": ITU-R 601 luminance;
    "RGB": grey replicated, alpha dropped, palette expanded; 16-bit grey keeps its high byte).

    (torchvision.io's decoders are deprecated since torchvision 0.29, so PIL decodes.)
    """
    from PIL import Image

    try:
        with Image.open(path) as pil:
            if pil.mode.startswith("I;16"):
                pil = Image.fromarray((np.asarray(pil).astype(np.uint16) >> 8).astype(np.uint8))
            target = "L" if channels == 1 else "RGB"
            array = np.asarray(pil if pil.mode == target else pil.convert(target))
    except Exception as err:
        raise ValueError(
            f"every image file must decode; cannot decode file={path}: {err}"
        ) from err
    return array[:, :, None] if array.ndim == 2 else array


# ------------------------------------------------------------------------------------------------
# Shapes, statistics, splits


def to_shape(images: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Convert images to another (C, H, W): channels first, then size.

    3 -> 1 channels by ITU-R 601 luminance (0.299 R + 0.587 G + 0.114 B); 1 -> 3 by
    replication. A different size is reached with an antialiased bilinear resize
    (``align_corners=False``); a non-square source is stretched, not cropped. Results are
    rounded and clamped back to uint8. Works in chunks of ``CHUNK_IMAGES`` images.

    Args:
        images: uint8, shape (N, C, H, W), C in {1, 3}.
        shape: Target (C', H', W'), C' in {1, 3}, H', W' >= 1.

    Returns:
        uint8, shape (N, C', H', W'). The input itself when it already has that shape.

    Raises:
        TypeError: ``images`` is not uint8.
        ValueError: ``images`` is not 4-D, or a channel count is not 1 or 3, or the target
            size is not positive.
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8; got dtype={images.dtype}")
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            "images must have shape (N, C, H, W) with C in {1, 3}; "
            f"got shape={tuple(images.shape)}"
        )
    c_out, h_out, w_out = (int(s) for s in shape)
    if c_out not in (1, 3) or h_out < 1 or w_out < 1:
        raise ValueError(
            f"shape must be (C, H, W) with C in {{1, 3}}, H, W >= 1; got shape={shape}"
        )
    if tuple(images.shape[1:]) == (c_out, h_out, w_out):
        return images
    out = torch.empty((images.shape[0], c_out, h_out, w_out), dtype=torch.uint8)
    weights = torch.tensor(LUMA_601, dtype=torch.float32).view(1, 3, 1, 1)
    resize = tuple(images.shape[2:]) != (h_out, w_out)
    for start in range(0, images.shape[0], CHUNK_IMAGES):
        x = images[start : start + CHUNK_IMAGES].to(torch.float32)  # (B, C, H, W)
        if x.shape[1] == 3 and c_out == 1:
            x = (x * weights).sum(dim=1, keepdim=True)  # (B, 1, H, W)
        if resize:
            x = F.interpolate(
                x, size=(h_out, w_out), mode="bilinear", antialias=True, align_corners=False
            )
        x = x.round_().clamp_(0, 255).to(torch.uint8)
        out[start : start + CHUNK_IMAGES] = x  # (B, 1, H', W') broadcasts over 3 channels
    return out


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images scaled to [0, 1].

    Exact: computed in float64 from each channel's 256-bin histogram. The std is the
    population std (divide by the pixel count), as the usual MNIST 0.1307 / 0.3081 are.

    Args:
        images: uint8, shape (N, C, H, W), N >= 1.

    Returns:
        (mean, std), each a tuple of C floats in [0, 1].

    Raises:
        TypeError: ``images`` is not uint8.
        ValueError: ``images`` is not 4-D or is empty.
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8; got dtype={images.dtype}")
    if images.dim() != 4 or images.numel() == 0:
        raise ValueError(
            f"images must be non-empty with shape (N, C, H, W); got shape={tuple(images.shape)}"
        )
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means: list[float] = []
    stds: list[float] = []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].reshape(-1), minlength=256).to(torch.float64)
        total = counts.sum()
        mean = (counts * values).sum() / total
        var = (counts * (values - mean) ** 2).sum() / total
        means.append(float(mean))
        stds.append(float(var.sqrt()))
    return tuple(means), tuple(stds)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(n)`` at random into a validation part and a test part.

    Args:
        n: Number of items, >= 2.
        val_fraction: Share of items in the validation part, in (0, 1); the part has
            ``round(n * val_fraction)`` items.
        seed: Seed of the ``torch.Generator`` drawing the permutation.

    Returns:
        (val_idx, test_idx): int64, sorted, disjoint, together ``range(n)``.

    Raises:
        ValueError: ``val_fraction`` is outside (0, 1), or either part would be empty.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1); got val_fraction={val_fraction}")
    n_val = round(n * val_fraction)
    if not 0 < n_val < n:
        raise ValueError(
            "both parts must be non-empty (0 < round(n * val_fraction) < n); "
            f"got n={n}, val_fraction={val_fraction}"
        )
    return _permuted_split(n, n_val, seed)


def _permuted_split(n: int, n_first: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=generator)
    return perm[:n_first].sort().values, perm[n_first:].sort().values


def _balanced_subset(labels: torch.Tensor, limit: int, seed: int) -> torch.Tensor:
    """Indices (sorted) of ``limit`` items drawn at random, as class-balanced as possible."""
    n = labels.shape[0]
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=generator)
    grouped = torch.argsort(labels[perm], stable=True)  # positions in perm, grouped by class
    _, counts = torch.unique_consecutive(labels[perm][grouped], return_counts=True)
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    rank = torch.empty(n, dtype=torch.int64)
    rank[grouped] = torch.arange(n) - starts  # rank of each perm position within its class
    order = torch.argsort(rank * n + torch.arange(n))  # round-robin over classes
    return perm[order[:limit]].sort().values


# ------------------------------------------------------------------------------------------------
# Everything a study needs


def prepare(
    id_name: str,
    ood_names: Sequence[str],
    *,
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    id_val_size: int = 5000,
    ood_val_fraction: float = 0.5,
    seed: int = 0,
    train_limit: int | None = None,
    test_limit: int | None = None,
) -> PreparedData:
    """Load the ID set and the OOD sets, split them and convert the OOD sets to the ID shape.

    All names and arguments are checked, and every needed split is located (or, with
    ``download=True``, downloaded), before anything is decoded.

    ID: the train split minus a seeded held-out part of ``id_val_size`` images is
    ``id_train`` (then capped to ``train_limit``, class-balanced); the held-out part is
    ``id_val``; the test split is ``id_test`` (capped to ``test_limit``). Mean and std are
    taken on the final ``id_train``.

    OOD: each set's test split (capped to ``test_limit``, class-balanced) is converted with
    ``to_shape`` to the ID shape, then split once by ``split_indices(n, ood_val_fraction,
    seed)`` into "val" and "test".

    Args:
        id_name: In-distribution dataset, one of ``DATASET_NAMES``.
        ood_names: OOD datasets, distinct, from ``DATASET_NAMES``, not containing ``id_name``.
        root: Data root; ``None`` means ``resolve_data_root()``'s default.
        download: Download missing datasets into the data root.
        id_val_size: Images held out of the ID train split, 0 < id_val_size < N_train.
        ood_val_fraction: Share of each OOD set used for validation, in (0, 1).
        seed: Seed of every split and subset.
        train_limit: Cap on ``id_train`` images, >= 1; ``None`` means no cap.
        test_limit: Cap on ``id_test`` images and on each OOD set before its val/test
            split, >= 2; ``None`` means no cap.

    Returns:
        The prepared data; see ``PreparedData``.

    Raises:
        TypeError: ``ood_names`` is a single string instead of a sequence of names.
        ValueError: An unknown or repeated name, ``id_name`` among ``ood_names``, or an
            argument out of range.
        DataUnavailableError: A needed split is missing and cannot be downloaded.
    """
    if isinstance(ood_names, str):
        raise TypeError(f"ood_names must be a sequence of names; got ood_names={ood_names!r}")
    _check_name(id_name)
    for name in ood_names:
        _check_name(name)
    if id_name in ood_names:
        raise ValueError(
            f"ood_names must not contain the ID dataset; got id_name={id_name!r}, "
            f"ood_names={list(ood_names)}"
        )
    if len(set(ood_names)) != len(ood_names):
        raise ValueError(f"ood_names must be distinct; got ood_names={list(ood_names)}")
    if not 0.0 < ood_val_fraction < 1.0:
        raise ValueError(
            f"ood_val_fraction must lie in (0, 1); got ood_val_fraction={ood_val_fraction}"
        )
    if train_limit is not None and train_limit < 1:
        raise ValueError(f"train_limit must be >= 1 or None; got train_limit={train_limit}")
    if test_limit is not None and test_limit < 2:
        raise ValueError(f"test_limit must be >= 2 or None; got test_limit={test_limit}")

    # Locate everything first, so a missing split fails before minutes of decoding; then
    # download what is missing, all up front.
    data_root = resolve_data_root(root)
    needed = [(id_name, "train"), (id_name, "test")] + [(name, "test") for name in ood_names]
    missing = []
    for name, split in needed:
        available, sources = _available(name, split, data_root)
        if not available:
            _ensure_downloadable(name, split, data_root, sources, download)
            missing.append((name, split, sources))
    for name, split, sources in missing:
        if not _available(name, split, data_root)[0]:  # one download may bring several splits
            _download(name, split, data_root, sources)
    load = dict(root=data_root, download=download)

    # ID train -> id_train + id_val.
    full_train = load_split(id_name, "train", **load)
    n_train = len(full_train)
    if not 0 < id_val_size < n_train:
        raise ValueError(
            f"id_val_size must satisfy 0 < id_val_size < {n_train} (the {id_name} train "
            f"split); got id_val_size={id_val_size}"
        )
    val_idx, train_idx = _permuted_split(n_train, id_val_size, seed)
    id_val = full_train.subset(val_idx)
    id_train = full_train.subset(train_idx)
    if train_limit is not None and train_limit < len(id_train):
        id_train = id_train.subset(_balanced_subset(id_train.labels, train_limit, seed))
    mean, std = channel_stats(id_train.images)
    shape = tuple(int(s) for s in id_train.images.shape[1:])

    id_test = _capped(load_split(id_name, "test", **load), test_limit, seed)
    if tuple(id_test.images.shape[1:]) != shape:
        raise ValueError(
            f"the ID train and test splits must share one shape; got train shape={shape}, "
            f"test shape={tuple(id_test.images.shape[1:])}"
        )

    ood: dict[str, dict[str, torch.Tensor]] = {}
    for name in ood_names:
        ood_set = _capped(load_split(name, "test", **load), test_limit, seed)
        images = to_shape(ood_set.images, shape)  # (N, *shape)
        val, test = split_indices(images.shape[0], ood_val_fraction, seed)
        ood[name] = {"val": images[val], "test": images[test]}
    logger.info(
        "prepared %s (train %d, val %d, test %d, shape %s) with OOD %s",
        id_name,
        len(id_train),
        len(id_val),
        len(id_test),
        shape,
        {k: (len(v["val"]), len(v["test"])) for k, v in ood.items()},
    )
    return PreparedData(
        shape=shape,  # type: ignore[arg-type]
        n_classes=len(full_train.classes),
        classes=full_train.classes,
        mean=mean,
        std=std,
        id_train=id_train,
        id_val=id_val,
        id_test=id_test,
        ood=ood,
    )


def _capped(data: ImageSet, limit: int | None, seed: int) -> ImageSet:
    if limit is None or limit >= len(data):
        return data
    return data.subset(_balanced_subset(data.labels, limit, seed))
