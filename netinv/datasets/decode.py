"""Decode one located split into uint8 arrays: ``decode(source)``, and ``inputs(source)``, the
files it reads (which key the decode cache)."""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from netinv.datasets.formats import (
    GREY_MODES,
    IMAGE_SUFFIXES,
    decode_files,
    image_files,
    image_headers,
    load_data_pickle,
    natural_key,
    read_idx,
)
from netinv.datasets.sources import CIFAR_LAYOUTS, DataUnavailableError, Source, idx_files

logger = logging.getLogger(__name__)

# Channel count of each dataset's native images.
NATIVE_CHANNELS = {
    "mnist": 1,
    "fashionmnist": 1,
    "cifar10": 3,
    "svhn": 3,
    "cifar100": 3,
    "tinyimagenet": 3,
    "kmnist": 1,
    "dtd": 3,
    "places365": 3,
}
# Sets of large or mixed-size photos, decoded at this (H, W) (antialiased bilinear, aspect
# ratio not kept), as large as TinyImageNet's images: the cache stays small (Places365's
# 36,500 images: 450 MB), and every ID shape up to 64x64 is reached by downscaling.
PHOTO_SIZE = (64, 64)
# Class names as torchvision's MNIST and FashionMNIST give them.
IDX_CLASSES = {
    "mnist": tuple(
        f"{d} - {w}"
        for d, w in enumerate(
            ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
        )
    ),
    "fashionmnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                     "Sneaker", "Bag", "Ankle boot"),
    "kmnist": ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
}


Split = tuple[np.ndarray, np.ndarray, tuple[str, ...]]  # images (N, C, H, W), labels, classes


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
class _Listing:
    """The image files of a folder layout, their labels and the class names."""

    files: list[Path]
    labels: list[int]
    classes: tuple[str, ...]


def inputs(source: Source) -> tuple[list[Path], list[Path]]:
    """What ``decode(source)`` reads: files, and folders whose image files it reads.

    Returns:
        (files, folders), each in a fixed order; the cache key is made of them.
    """
    if source.kind == "idx":
        return list(idx_files(source.path / "raw", source.split)), []
    if source.kind in ("folder", "tree"):
        return [], _class_dirs(source.path) if source.path.is_dir() else []
    if source.kind == "dtd":
        return list(source.required[:1]), _class_dirs(source.path / "images")
    if source.kind == "places365":
        *files, images = source.required
        return list(files), [images]
    if source.kind == "tinyimagenet":
        wnids_file = source.path / "wnids.txt"
        if source.split == "test":
            annotations = source.path / "val" / "val_annotations.txt"
            return [wnids_file, annotations], [source.path / "val" / "images"]
        folders = [source.path / "train" / wnid / "images" for wnid in _wnids(wnids_file)]
        return [wnids_file], folders
    return list(source.required), []  # cifar, svhn: the required files are the files read


def decode(source: Source) -> ImageSet:
    """Decode the split at ``source`` into an ``ImageSet`` in the dataset's native shape.

    Raises:
        ValueError: A file is damaged, inconsistent or cannot be decoded (it is named).
        pickle.UnpicklingError: A CIFAR pickle refers to anything but numpy arrays and plain
            values.
    """
    images, labels, classes = _READERS[source.kind](source)
    return ImageSet(
        torch.from_numpy(np.ascontiguousarray(images)),
        torch.from_numpy(np.asarray(labels, dtype=np.int64)),
        source.name,
        tuple(classes),
    )


def _read_idx_split(source: Source) -> Split:
    images_file, labels_file = idx_files(source.path / "raw", source.split)
    images = read_idx(images_file, ndim=3)  # (N, H, W)
    labels = read_idx(labels_file, ndim=1)  # (N,)
    classes = IDX_CLASSES[source.name]
    _check_labels(labels, len(images), len(classes), labels_file)
    return images[:, None], labels, classes  # (N, 1, H, W)


def _read_cifar_split(source: Source) -> Split:
    """CIFAR-10/100 python pickles, read by the restricted unpickler (never torchvision's)."""
    layout = CIFAR_LAYOUTS[source.name]
    meta_file = source.path / layout.meta
    meta = load_data_pickle(meta_file)
    classes = meta.get(layout.classes_key) if isinstance(meta, dict) else None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError(
            f"a CIFAR meta file must hold a dict whose {layout.classes_key!r} is a list of class "
            f"names; file={meta_file} holds {type(meta).__name__}"
        )
    rows: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for name in layout.train if source.split == "train" else layout.test:
        path = source.path / name
        batch = load_data_pickle(path)
        data = batch.get("data") if isinstance(batch, dict) else None
        batch_labels = batch.get(layout.labels_key) if isinstance(batch, dict) else None
        if (
            not isinstance(data, np.ndarray)
            or data.dtype != np.uint8
            or data.ndim != 2
            or data.shape[1] != 3 * 32 * 32
            or not isinstance(batch_labels, list)
        ):
            raise ValueError(
                "a CIFAR batch must hold a dict with 'data' (uint8, shape (N, 3072)) and "
                f"{layout.labels_key!r} (a list of N ints); file={path} does not"
            )
        batch_labels = np.asarray(batch_labels)
        _check_labels(batch_labels, len(data), len(classes), path)
        rows.append(data.reshape(-1, 3, 32, 32))
        labels.append(batch_labels)
    return np.concatenate(rows), np.concatenate(labels), tuple(classes)


def _read_svhn_split(source: Source) -> Split:
    """SVHN's .mat file through torchvision's loader (scipy; not a pickle), presence-checked
    instead of md5-checked so that small self-made files load too."""
    import torchvision.datasets as tvd

    class _SVHN(tvd.SVHN):
        def _check_integrity(self) -> bool:
            return os.path.isfile(os.path.join(self.root, self.filename))

    ds = _SVHN(str(source.path), split=source.split, download=False)
    return ds.data, ds.labels, tuple(str(d) for d in range(10))  # data (N, 3, 32, 32)


def _read_image_split(source: Source) -> Split:
    """An image folder or TinyImageNet: list the files, then decode them in a thread pool."""
    if source.kind == "folder":
        listing = _list_folder(source.path)
    else:
        listing = _list_tinyimagenet(source.path, source.split)
    images = decode_files(listing.files, channels=NATIVE_CHANNELS[source.name])
    return images, np.asarray(listing.labels, dtype=np.int64), listing.classes


def _read_dtd(source: Source) -> Split:
    """DTD as torchvision reads it: ``labels/<split>1.txt`` lists ``<class>/<file>.jpg``;
    classes are the sorted names listed. Decoded at ``PHOTO_SIZE``."""
    list_file = source.required[0]
    rows = [line.strip().split("/") for line in list_file.read_text().splitlines() if line.strip()]
    if not rows or any(len(row) != 2 for row in rows):
        raise ValueError(f"a DTD list must hold one <class>/<file> per line; file={list_file} "
                         f"does not")
    classes = sorted({cls for cls, _ in rows})
    index = {cls: i for i, cls in enumerate(classes)}
    files = [source.path / "images" / cls / name for cls, name in rows]
    images = decode_files(files, channels=3, size=PHOTO_SIZE)
    return images, np.asarray([index[cls] for cls, _ in rows], dtype=np.int64), tuple(classes)


def _read_places365(source: Source) -> Split:
    """Places365's val_256 as torchvision reads it: ``places365_val.txt`` lists ``<file>
    <class index>``; ``categories_places365.txt`` lists ``/<l>/<name> <index>``. Decoded at
    ``PHOTO_SIZE``."""
    categories, file_list, folder = source.required
    pairs = [line.split() for line in categories.read_text().splitlines() if line.strip()]
    rows = [line.split() for line in file_list.read_text().splitlines() if line.strip()]
    if any(len(p) != 2 for p in pairs) or not rows or any(len(r) != 2 for r in rows):
        raise ValueError(f"Places365's lists must hold '<name> <index>' lines; {categories} or "
                         f"{file_list} does not")
    by_index = {int(i): name for name, i in pairs}
    classes = tuple(by_index[i] for i in range(len(by_index)))
    labels = np.asarray([int(i) for _, i in rows], dtype=np.int64)
    _check_labels(labels, len(rows), len(classes), file_list)
    images = decode_files([folder / name.lstrip("/") for name, _ in rows], channels=3,
                          size=PHOTO_SIZE)
    return images, labels, classes


def _read_tree(source: Source) -> Split:
    """A user's ``folder:`` tree ``<path>/<class>/*``: classes are the sorted folder names;
    greyscale when every image is, else RGB; images of another size than the tree's most
    common (H, W) are resized to it (a warning says how many)."""
    listing = _list_tree(source.path)
    headers = image_headers(listing.files)  # (mode, (H, W)) per file, names a bad file
    channels = 1 if all(mode in GREY_MODES for mode, _ in headers) else 3
    sizes = Counter(size for _, size in headers)
    size = sizes.most_common(1)[0][0]  # ties: the size seen first
    if len(sizes) > 1:
        odd = len(headers) - sizes[size]
        logger.warning("%s: %d of %d images are not %dx%d (the most common size); they are "
                       "resized to it", source.path, odd, len(headers), *size)
    images = decode_files(listing.files, channels=channels, size=size)
    return images, np.asarray(listing.labels, dtype=np.int64), listing.classes


def _list_tree(path: Path) -> _Listing:
    """The image files of a user's tree, checked: it exists, has class folders, none empty."""
    if not path.is_dir():
        raise DataUnavailableError(f"a folder dataset must be an existing folder; {path} "
                                   f"{'is not a folder' if path.exists() else 'does not exist'}")
    class_dirs = _class_dirs(path)
    if not class_dirs:
        loose = len(image_files(path))
        hint = f" ({loose} images lie in it directly: move them into {path}/<class>/)"
        raise ValueError(f"an image-folder tree must hold one folder per class, "
                         f"<tree>/<class>/*{{{','.join(IMAGE_SUFFIXES)}}}; found no class "
                         f"folders in {path}{hint if loose else ''}")
    halves = [p.name for p in class_dirs if p.name in ("train", "test")]
    if len(halves) == 1:
        raise ValueError(f"an image-folder tree with its own splits must have both train/ and "
                         f"test/ (each <split>/<class>/*); {path} has only {halves[0]}/")
    files: list[Path] = []
    labels: list[int] = []
    for label, folder in enumerate(class_dirs):
        found = image_files(folder)
        if not found:
            raise ValueError(f"every class folder must hold at least one image "
                             f"({', '.join(IMAGE_SUFFIXES)}); {folder} holds none")
        files.extend(found)
        labels.extend([label] * len(found))
    return _Listing(files, labels, tuple(p.name for p in class_dirs))


def _check_labels(labels: np.ndarray, n_images: int, n_classes: int, path: Path) -> None:
    if labels.shape != (n_images,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"a split must have one integer label per image ({n_images}); file={path} has "
            f"labels of shape {labels.shape} and dtype {labels.dtype}"
        )
    if n_images and not 0 <= int(labels.min()) <= int(labels.max()) < n_classes:
        raise ValueError(
            f"labels must lie in [0, {n_classes}); file={path} has labels in "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )


def _list_folder(path: Path) -> _Listing:
    """``<path>/<class>/<image>``: classes are the sorted folder names."""
    class_dirs = _class_dirs(path)
    files: list[Path] = []
    labels: list[int] = []
    for label, folder in enumerate(class_dirs):
        found = image_files(folder)
        files.extend(found)
        labels.extend([label] * len(found))
    if not files:
        raise DataUnavailableError(
            f"an image folder must hold images ({', '.join(IMAGE_SUFFIXES)}) in class folders; "
            f"found none under {path}"
        )
    return _Listing(files, labels, tuple(p.name for p in class_dirs))


def _class_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir())


def _wnids(wnids_file: Path) -> list[str]:
    return sorted(line.strip() for line in wnids_file.read_text().split() if line)


def _list_tinyimagenet(base: Path, split: str) -> _Listing:
    """The official zip's layout; split "test" is its ``val/`` set, in ``val_N`` order."""
    wnids_file = base / "wnids.txt"
    wnids = _wnids(wnids_file)
    index = {wnid: i for i, wnid in enumerate(wnids)}
    files: list[Path] = []
    labels: list[int] = []
    if split == "test":
        annotations = base / "val" / "val_annotations.txt"
        rows = [line.split("\t") for line in annotations.read_text().splitlines() if line.strip()]
        rows.sort(key=lambda row: natural_key(row[0]))
        for row in rows:
            if row[1] not in index:
                raise ValueError(
                    f"every wnid in {annotations} must be listed in {wnids_file}; "
                    f"got wnid={row[1]!r} for file={row[0]!r}"
                )
            files.append(base / "val" / "images" / row[0])
            labels.append(index[row[1]])
        return _Listing(files, labels, tuple(wnids))
    for wnid in wnids:
        found = image_files(base / "train" / wnid / "images")
        files.extend(found)
        labels.extend([index[wnid]] * len(found))
    return _Listing(files, labels, tuple(wnids))


_READERS = {
    "idx": _read_idx_split,
    "cifar": _read_cifar_split,
    "svhn": _read_svhn_split,
    "folder": _read_image_split,
    "tinyimagenet": _read_image_split,
    "tree": _read_tree,
    "dtd": _read_dtd,
    "places365": _read_places365,
}
