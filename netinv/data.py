"""Shaping, splitting and preparing the study's data (finding and decoding: ``netinv.datasets``).

Shapes (design.md, section 1): every OOD set is converted to the ID dataset's shape by
``to_shape``: RGB to greyscale by ITU-R 601 luminance and an antialiased bilinear resize when the
ID set is MNIST-like (1x28x28); channel replication plus resize when the ID set is RGB 32x32.
``prepare`` keeps ID val (held out of ID train) and OOD val apart from the test parts, as OpenOOD
does, so hyperparameters are never chosen on test data.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from netinv.datasets import (
    DATASET_NAMES,
    DataUnavailableError,
    ImageSet,
    cache_dir,
    ensure_available,
    from_dataset,
    from_tensors,
    load_split,
    resolve_data_root,
    split_tree,
)
from netinv.datasets.sources import check_name, dataset_label, tree_split

# netinv.data is where callers import the dataset names from; they are defined in netinv.datasets
__all__ = [
    "DATASET_NAMES",
    "DataUnavailableError",
    "ImageSet",
    "PreparedData",
    "cache_dir",
    "channel_stats",
    "from_dataset",
    "from_tensors",
    "load_split",
    "prepare",
    "resolve_data_root",
    "split_indices",
    "to_shape",
]

logger = logging.getLogger(__name__)

CHUNK_IMAGES = 512  # images per chunk in to_shape (bounds float32 working memory)
LUMA_601 = (0.299, 0.587, 0.114)  # ITU-R BT.601 luminance weights for R, G, B


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
        ood: OOD label -> {"val": uint8 (N, *shape), "test": uint8 (M, *shape)}; the label
            is the dataset's name, ``folder:<last folder name>`` for a ``folder:`` tree (what
            records call ``ood_set``).
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
    id_name: str | ImageSet | tuple[ImageSet, ImageSet],
    ood_names: Sequence[str],
    *,
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    id_val_size: int = 5000,
    ood_val_fraction: float = 0.5,
    seed: int = 0,
    train_limit: int | None = None,
    test_limit: int | None = None,
    folder_test_fraction: float = 0.2,
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
        id_name: In-distribution dataset: one of ``DATASET_NAMES``; ``folder:<absolute
            path>``, an image-folder tree (see ``load_split``); or an in-memory set, an
            ``ImageSet`` (``from_tensors``, ``from_dataset``; split into train and test like
            a tree without its own splits) or a (train, test) pair of them.
        ood_names: OOD datasets, distinct, from ``DATASET_NAMES`` or ``folder:<path>`` trees
            (a tree without train/ and test/ is used whole, else its test/), not containing
            ``id_name``.
        root: Data root; ``None`` means ``resolve_data_root()``'s default.
        download: Download missing datasets into the data root.
        id_val_size: Images held out of the ID train split, 0 < id_val_size < N_train.
        ood_val_fraction: Share of each OOD set used for validation, in (0, 1).
        seed: Seed of every split and subset.
        train_limit: Cap on ``id_train`` images, >= 1; ``None`` means no cap.
        test_limit: Cap on ``id_test`` images and on each OOD set before its val/test
            split, >= 2; ``None`` means no cap.
        folder_test_fraction: Share of each class of an ID tree (or in-memory set) without
            its own splits that is its test split, in (0, 1); fixed seed, the same every run.

    Returns:
        The prepared data; see ``PreparedData``.

    Raises:
        TypeError: ``ood_names`` is a single string instead of a sequence of names.
        ValueError: An unknown or repeated name, ``id_name`` among ``ood_names``, an
            argument out of range, or a damaged data file (named; see ``load_split``).
        pickle.UnpicklingError: A CIFAR pickle refers to anything but numpy arrays and plain
            values (nothing in it is run).
        DataUnavailableError: A needed split is missing and cannot be downloaded.
    """
    # (half of this function is its docstring; the body is three phases read top to bottom)
    in_memory = not isinstance(id_name, str)
    id_label = _in_memory_name(id_name) if in_memory else id_name
    _check_arguments(id_label, ood_names, ood_val_fraction, train_limit, test_limit, in_memory)
    # Locate everything first, so a missing split fails before minutes of decoding; then
    # download what is missing, all up front.
    data_root = resolve_data_root(root)
    needed = [] if in_memory else [(id_name, "train"), (id_name, "test")]
    needed += [(name, tree_split(name, "test")) for name in ood_names]
    ensure_available(needed, root=data_root, download=download)
    load = dict(root=data_root, download=download, test_fraction=folder_test_fraction)

    # ID train -> id_train + id_val; ID test -> id_test.
    if in_memory:
        full_train, full_test = _in_memory_splits(id_name, folder_test_fraction)
    else:
        full_train = load_split(id_name, "train", **load)
        full_test = load_split(id_name, "test", **load)
    id_train, id_val = _split_id_train(full_train, id_val_size, train_limit, seed)
    mean, std = channel_stats(id_train.images)
    shape = tuple(int(s) for s in id_train.images.shape[1:])
    id_test = _capped(full_test, test_limit, seed)
    if tuple(id_test.images.shape[1:]) != shape:
        raise ValueError(
            f"the ID train and test splits must share one shape; got train shape={shape}, "
            f"test shape={tuple(id_test.images.shape[1:])}"
        )

    # OOD test splits -> the ID shape -> val + test.
    ood: dict[str, dict[str, torch.Tensor]] = {}
    for name in ood_names:
        ood_set = _capped(load_split(name, tree_split(name, "test"), **load), test_limit, seed)
        images = to_shape(ood_set.images, shape)  # (N, *shape)
        val, test = split_indices(images.shape[0], ood_val_fraction, seed)
        ood[dataset_label(name)] = {"val": images[val], "test": images[test]}
    logger.info(
        "prepared %s (train %d, val %d, test %d, shape %s) with OOD %s",
        id_label,
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


def _split_id_train(
    full_train: ImageSet, id_val_size: int, train_limit: int | None, seed: int
) -> tuple[ImageSet, ImageSet]:
    """(id_train, id_val): a seeded held-out part of ``id_val_size`` images is id_val; the
    rest, capped class-balanced to ``train_limit``, is id_train."""
    n_train = len(full_train)
    if not 0 < id_val_size < n_train:
        raise ValueError(
            f"id_val_size must satisfy 0 < id_val_size < {n_train} (the {full_train.name} train "
            f"split); got id_val_size={id_val_size}"
        )
    val_idx, train_idx = _permuted_split(n_train, id_val_size, seed)
    id_train = full_train.subset(train_idx)
    if train_limit is not None and train_limit < len(id_train):
        id_train = id_train.subset(_balanced_subset(id_train.labels, train_limit, seed))
    return id_train, full_train.subset(val_idx)


def _in_memory_name(id_set: object) -> str:
    """The name of an in-memory ID set (an ``ImageSet`` or a (train, test) pair of them)."""
    if isinstance(id_set, ImageSet):
        return id_set.name
    pair = isinstance(id_set, tuple) and len(id_set) == 2
    if not pair or not all(isinstance(part, ImageSet) for part in id_set):
        raise TypeError(f"id_name must be a dataset name, folder:PATH, an ImageSet (see "
                        f"netinv.data.from_tensors / from_dataset) or a (train, test) pair of "
                        f"ImageSets; got type={type(id_set).__name__}")
    train, test = id_set
    if train.classes != test.classes or train.images.shape[1:] != test.images.shape[1:]:
        raise ValueError(f"the train and test ImageSets must share class names and image shape; "
                         f"got classes {list(train.classes)} vs {list(test.classes)}, shapes "
                         f"{tuple(train.images.shape[1:])} vs {tuple(test.images.shape[1:])}")
    return train.name


def _in_memory_splits(id_set: ImageSet | tuple[ImageSet, ImageSet], test_fraction: float
                      ) -> tuple[ImageSet, ImageSet]:
    """(train, test) of an in-memory ID set: as given, or split like a folder tree."""
    if isinstance(id_set, ImageSet):
        parts = split_tree(id_set, test_fraction)
        return parts["train"], parts["test"]
    return id_set


def _check_arguments(
    id_name: str,
    ood_names: Sequence[str],
    ood_val_fraction: float,
    train_limit: int | None,
    test_limit: int | None,
    in_memory: bool = False,
) -> None:
    """``prepare``'s checks that need no data (``id_val_size`` needs the train split's size)."""
    if isinstance(ood_names, str):
        raise TypeError(f"ood_names must be a sequence of names; got ood_names={ood_names!r}")
    if not in_memory:
        check_name(id_name)
    for name in ood_names:
        check_name(name)
    if id_name in ood_names:
        raise ValueError(
            f"ood_names must not contain the ID dataset; got id_name={id_name!r}, "
            f"ood_names={list(ood_names)}"
        )
    if len(set(ood_names)) != len(ood_names):
        raise ValueError(f"ood_names must be distinct; got ood_names={list(ood_names)}")
    labels = [dataset_label(name) for name in ood_names]
    if len(set(labels)) != len(labels):
        raise ValueError(f"OOD folder trees must end in distinct folder names (results name "
                         f"them folder:<name>); got ood_names={list(ood_names)}")
    if not 0.0 < ood_val_fraction < 1.0:
        raise ValueError(
            f"ood_val_fraction must lie in (0, 1); got ood_val_fraction={ood_val_fraction}"
        )
    if train_limit is not None and train_limit < 1:
        raise ValueError(f"train_limit must be >= 1 or None; got train_limit={train_limit}")
    if test_limit is not None and test_limit < 2:
        raise ValueError(f"test_limit must be >= 2 or None; got test_limit={test_limit}")


def _capped(data: ImageSet, limit: int | None, seed: int) -> ImageSet:
    if limit is None or limit >= len(data):
        return data
    return data.subset(_balanced_subset(data.labels, limit, seed))
