"""The decode cache: each decoded split as two ``.npy`` files and a ``.json``, keyed by what
was decoded.

An entry's name is ``<name>-<split>-<where>-<what>``: ``where`` hashes the source's layout and
resolved folder (two data roots never share an entry), ``what`` hashes the path, size and
modification time (ns) of every file the decoder reads (``decode.inputs``), so a file replaced,
added or removed under the same root is decoded again. Writing a new entry removes the
older ones of the same source. The cache lives in ``cache_dir()``, never inside the data root.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from netinv.datasets.decode import ImageSet
from netinv.datasets.formats import IMAGE_SUFFIXES
from netinv.datasets.sources import Source, xdg_cache_home

logger = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when the decoded format changes; part of every cache key


def cache_dir() -> Path:
    """The folder decoded arrays are cached in; never inside the data root.

    Returns:
        ``NETINV_CACHE`` if set, else ``$XDG_CACHE_HOME/netinv/decoded`` (``XDG_CACHE_HOME``
        defaults to ``~/.cache``). It need not exist yet.
    """
    env = os.environ.get("NETINV_CACHE", "")
    path = Path(env) if env else xdg_cache_home() / "netinv" / "decoded"
    return path.expanduser().resolve()


def fingerprint(files: Sequence[Path], folders: Sequence[Path] = ()) -> str:
    """A hex digest of the path, size and modification time (ns) of each of ``files`` and of
    each image file (``IMAGE_SUFFIXES``) directly in ``folders``.

    Measured on CIFAR-10 train's 50,000 JPEG files: about 0.2 s, against about 12 s to decode
    them (2 CPU cores).
    """
    digest = hashlib.sha256()
    for path in files:
        st = os.stat(path)
        digest.update(os.fsencode(path) + f"\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    for folder in folders:
        digest.update(os.fsencode(folder) + b"/\n")
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        for entry in entries:
            if os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                st = entry.stat()
                line = f"{entry.name}\0{st.st_size}\0{st.st_mtime_ns}\n"
                digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _prefix(source: Source) -> str:
    key = f"v{CACHE_VERSION}|{source.name}|{source.split}|{source.kind}|{source.path.resolve()}"
    label = re.sub(r"[^A-Za-z0-9_.]+", "_", source.name)  # folder:/a/b -> folder_a_b
    label = label if len(label) <= 48 else f"{label[:15]}~{label[-32:]}"  # keep names short
    return f"{label}-{source.split}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _paths(meta_path: Path) -> tuple[Path, Path]:
    stem = meta_path.name.removesuffix(".json")
    return meta_path.with_name(stem + ".images.npy"), meta_path.with_name(stem + ".labels.npy")


def _meta_path(source: Source, key: str) -> Path:
    return cache_dir() / f"{_prefix(source)}-{key[:16]}.json"


def _entries(source: Source) -> list[Path]:
    """The entries (their ``.json``) of ``source`` for any content, newest first."""
    found = cache_dir().glob(f"{_prefix(source)}-*.json")
    return sorted(found, key=_mtime_ns, reverse=True)


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # removed meanwhile by a writer of newer content
        return -1


def read(source: Source, key: str) -> ImageSet | None:
    """The cached split decoded from ``source`` with fingerprint ``key``, else ``None``."""
    return _read_entry(_meta_path(source, key), source.name, key)


def read_any(sources: Sequence[Source]) -> ImageSet | None:
    """The newest cached split of any of ``sources`` (whose files are gone), else ``None``."""
    for source in sources:
        for meta_path in _entries(source):
            cached = _read_entry(meta_path, source.name)
            if cached is not None:
                logger.info(
                    "%s/%s not found at %s; serving its cached copy",
                    source.name,
                    source.split,
                    source.path,
                )
                return cached
    return None


def has_any(sources: Sequence[Source]) -> bool:
    """Whether a cache entry exists for any of ``sources``."""
    return any(_entries(source) for source in sources)


def _read_entry(meta_path: Path, name: str, key: str | None = None) -> ImageSet | None:
    if not meta_path.is_file():  # the json is written last: its presence marks a full entry
        return None
    images_path, labels_path = _paths(meta_path)
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
        or (key is not None and meta.get("fingerprint") != key)
    ):
        logger.warning("ignoring inconsistent cache entry %s", meta_path)
        return None
    return ImageSet(torch.from_numpy(images), torch.from_numpy(labels), name, tuple(meta["classes"]))


def write(source: Source, key: str, data: ImageSet) -> None:
    """Cache ``data`` decoded from ``source`` with fingerprint ``key``; drop older entries.

    A cache that cannot be written only costs speed: the failure is logged, not raised.
    """
    meta_path = _meta_path(source, key)
    images_path, labels_path = _paths(meta_path)
    meta = {
        "name": source.name,
        "split": source.split,
        "kind": source.kind,
        "source": str(source.path),
        "fingerprint": key,
        "shape": list(data.images.shape),
        "classes": list(data.classes),
        "version": CACHE_VERSION,
    }
    try:
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(images_path, lambda f: np.save(f, data.images.numpy(), allow_pickle=False))
        _atomic_write(labels_path, lambda f: np.save(f, data.labels.numpy(), allow_pickle=False))
        _atomic_write(meta_path, lambda f: f.write(json.dumps(meta, indent=1).encode()))
    except OSError as err:
        logger.warning("could not write the decoded-data cache at %s: %s", meta_path.parent, err)
        return
    stem = meta_path.name.removesuffix(".json")
    for old in meta_path.parent.glob(f"{_prefix(source)}-*"):
        # another content's entry is stale; temp files belong to writers still at work
        if not old.name.startswith(stem + ".") and not old.name.endswith(".tmp"):
            try:
                old.unlink(missing_ok=True)
            except OSError as err:
                logger.warning("could not remove the stale cache file %s: %s", old, err)
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
