"""Decode one located split into uint8 arrays: ``decode(source)``, and ``inputs(source)``, the
files it reads (which key the decode cache)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from netinv.datasets.formats import (
    IMAGE_SUFFIXES,
    decode_files,
    image_files,
    load_data_pickle,
    natural_key,
    read_idx,
)
from netinv.datasets.sources import CIFAR_LAYOUTS, DataUnavailableError, Source, idx_files

# Channel count of each dataset's native images.
NATIVE_CHANNELS = {
    "mnist": 1,
    "fashionmnist": 1,
    "cifar10": 3,
    "svhn": 3,
    "cifar100": 3,
    "tinyimagenet": 3,
}
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
    if source.kind == "folder":
        return [], _class_dirs(source.path)
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
}
