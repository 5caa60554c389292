"""``load_split``: find a split, download it if allowed, decode it once and cache it."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from netinv.datasets import cache, sources
from netinv.datasets.decode import ImageSet, decode, inputs
from netinv.datasets.sources import (
    FIX_HINT,
    WHOLE_TREE,
    DataUnavailableError,
    Source,
    check_name,
    check_split,
    ensure_downloadable,
    is_folder_spec,
    locate,
    looked_at,
    resolve_data_root,
)

FOLDER_SPLIT_SEED = 0  # seeds the split of a folder tree without train/ and test/: fixed, so
# every run and every seed of a study sees the same test images

logger = logging.getLogger(__name__)


def load_split(
    name: str,
    split: str,
    *,
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    test_fraction: float = 0.2,
) -> ImageSet:
    """Load one split of one dataset, decoding it only when its files are new or changed.

    The decoded arrays are cached in ``cache_dir()`` under a key made of the name, the split,
    the resolved source path and the path, size and modification time of every file read, so
    two data roots never collide and files replaced or added in place are decoded again. If
    the source has gone but a cache entry for one of its possible locations exists, the
    newest such entry is served.

    Args:
        name: One of ``DATASET_NAMES``, or ``folder:<absolute path>``: the user's tree
            ``<path>/<split>/<class>/*`` or, without train/ and test/, ``<path>/<class>/*``,
            decoded whole and split per class (``test_fraction``, seed ``FOLDER_SPLIT_SEED``).
        split: "train" or "test"; "all" for a folder tree's every image. For tinyimagenet
            "test" is the official ``val/`` set (10,000 images, in ``val_0`` ... ``val_9999``
            order).
        root: Data root; ``None`` means ``resolve_data_root()``'s default.
        download: Download a missing dataset into the data root (torchvision's md5-checked
            downloaders; tinyimagenet from the cs231n zip). ``False`` never touches the network.
        test_fraction: Share of each class of a folder tree without its own splits that is
            its "test" split, in (0, 1); at least one image per class on each side.

    Returns:
        The split; images uint8 (N, C, H, W) in the dataset's native shape, labels int64 (N,).

    Raises:
        ValueError: Unknown name or split, or a data file that is damaged (e.g. a truncated
            IDX file) or whose images cannot be decoded or differ in size; the file is named.
        pickle.UnpicklingError: A CIFAR pickle refers to anything but numpy arrays and plain
            values (nothing in it is run).
        DataUnavailableError: The split is not found and downloads are off, the data root is
            not writable, or the download failed.
    """
    check_name(name)
    check_split(split, name)
    data_root = resolve_data_root(root)
    source, candidates = locate(name, split, data_root)
    if source is None and is_folder_spec(name):
        raise missing_tree(candidates[0])
    if source is None:
        cached = cache.read_any(candidates)
        if cached is not None:
            return cached
        ensure_downloadable(name, split, data_root, candidates, download)
        sources.download(name, split, data_root, candidates)
        source, _ = locate(name, split, data_root)
        if source is None:
            raise DataUnavailableError(
                f"dataset name={name!r} split={split!r}: the download finished but the split is "
                f"still missing; looked at: {looked_at(candidates)}. {FIX_HINT}"
            )
    data = _decoded(source)
    if source.split == WHOLE_TREE and split != WHOLE_TREE:
        return split_tree(data, test_fraction)[split]
    return data


def _decoded(source: Source) -> ImageSet:
    """The split at ``source`` from the cache, else decoded and cached."""
    name, split = source.name, source.split
    key = cache.fingerprint(*inputs(source))  # taken before decoding: a change meanwhile is seen
    cached = cache.read(source, key)
    if cached is not None:
        logger.debug("loaded %s/%s from cache", name, split)
        return cached
    start = time.perf_counter()
    data = decode(source)
    logger.info(
        "decoded %s/%s from %s: %s in %.1f s",
        name,
        split,
        source.path,
        tuple(data.images.shape),
        time.perf_counter() - start,
    )
    cache.write(source, key, data)
    return data


def split_tree(data: ImageSet, test_fraction: float) -> dict[str, ImageSet]:
    """A whole tree split per class into "train" and "test" (seed ``FOLDER_SPLIT_SEED``):
    ``round(n_c * test_fraction)`` test images of each class, clipped to [1, n_c - 1].

    Raises:
        ValueError: ``test_fraction`` outside (0, 1), or a class with fewer than 2 images.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1); got test_fraction={test_fraction}")
    generator = torch.Generator().manual_seed(FOLDER_SPLIT_SEED)
    test: list[torch.Tensor] = []
    for label, cls in enumerate(data.classes):
        members = torch.nonzero(data.labels == label).flatten()
        if len(members) < 2:
            raise ValueError(f"every class of a tree split into train and test needs at least 2 "
                             f"images; class {cls!r} of {data.name} has {len(members)}")
        n_test = min(max(round(len(members) * test_fraction), 1), len(members) - 1)
        test.append(members[torch.randperm(len(members), generator=generator)[:n_test]])
    is_test = torch.zeros(len(data), dtype=torch.bool)
    is_test[torch.cat(test)] = True
    return {"train": data.subset(torch.nonzero(~is_test).flatten()),
            "test": data.subset(torch.nonzero(is_test).flatten())}


def missing_tree(source: Source) -> DataUnavailableError:
    """The error for a ``folder:`` tree that is not there (never served from the cache)."""
    what = "is not a folder" if source.path.exists() else "does not exist"
    return DataUnavailableError(f"dataset name={source.name!r}: the folder {source.path} {what}; "
                                f"pass an existing image-folder tree as folder:PATH")


def ensure_available(
    needed: Sequence[tuple[str, str]], *, root: Path, download: bool
) -> None:
    """Make every (name, split) of ``needed`` loadable without decoding anything yet.

    Each split is located first (its files or a cache entry), so a missing one fails before
    minutes of decoding; what is missing is then downloaded, all up front.

    Raises:
        DataUnavailableError: A split is missing and downloads are off, the data root is not
            writable, or a download failed.
    """
    missing = []
    for name, split in needed:
        source, candidates = locate(name, split, root)
        if source is None and is_folder_spec(name):
            raise missing_tree(candidates[0])
        if source is None and not cache.has_any(candidates):
            ensure_downloadable(name, split, root, candidates, download)
            missing.append((name, split, candidates))
    for name, split, candidates in missing:
        if locate(name, split, root)[0] is None:  # one download may bring several splits
            sources.download(name, split, root, candidates)
