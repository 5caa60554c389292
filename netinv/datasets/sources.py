"""Where each dataset is looked for under a data root, and how a missing one is downloaded.

A ``Source`` is one place a split may live (its layout ``kind`` and its folder); ``locate``
returns the first that exists, in the order of the table in ``netinv.datasets``. Downloads go
through torchvision's md5-checked ``download_url`` / ``extract_archive`` only: no dataset
class is constructed, so nothing is unpickled while downloading.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from collections.abc import Sequence
from urllib.parse import urljoin
from dataclasses import dataclass
from pathlib import Path

from netinv.config import DATASET_NAMES, FOLDER_PREFIX  # the one list of dataset names

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "test")
WHOLE_TREE = "all"  # the split of a folder: tree without train/ and test/ subfolders
DOWNLOAD_TIMEOUT_S = 20.0  # socket timeout while downloading, seconds

TINYIMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINYIMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"

# torchvision's folder of IDX files (``<root>/<folder>/raw``) and class names, per dataset
MNIST_FOLDERS = {"mnist": "MNIST", "fashionmnist": "FashionMNIST", "kmnist": "KMNIST"}
# DTD (Textures): torchvision's folder, and its partition 1 as each split's list
DTD_FOLDER = ("dtd", "dtd")  # <root>/dtd/dtd/{images,labels}, as torchvision's DTD extracts it
DTD_PARTITION = 1
# Places365: only the official validation set (small, 256x256 JPEGs), as the "test" split
PLACES365_FOLDER = "places365"
PLACES365_FILES = ("categories_places365.txt", "places365_val.txt", "val_256")
IDX_PREFIXES = {"train": "train", "test": "t10k"}


@dataclass(frozen=True)
class CifarLayout:
    """torchvision's CIFAR python-pickle layout: ``<root>/<folder>/{batches, meta}``."""

    folder: str
    train: tuple[str, ...]  # batch files of the train split
    test: tuple[str, ...]  # batch files of the test split
    meta: str  # the file with the class names
    classes_key: str  # key of the class names in ``meta``
    labels_key: str  # key of the labels in each batch


CIFAR_LAYOUTS = {
    "cifar10": CifarLayout(
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "batches.meta",
        "label_names",
        "labels",
    ),
    "cifar100": CifarLayout(
        "cifar-100-python", ("train",), ("test",), "meta", "fine_label_names", "fine_labels"
    ),
}

# Folder names accepted for the image-folder layout (compared lower-case).
_FOLDER_ALIASES = {
    "mnist": ("mnist",),
    "fashionmnist": ("fashionmnist", "fashion-mnist", "fashion_mnist"),
    "cifar10": ("cifar10", "cifar-10"),
    "svhn": ("svhn",),
    "cifar100": ("cifar100", "cifar-100"),
    "tinyimagenet": ("tinyimagenet", "tiny-imagenet", "tiny_imagenet"),
    "kmnist": ("kmnist",),
    "dtd": ("dtd", "textures"),
    "places365": ("places365",),
}
# How each kind of source is named in messages.
_LAYOUT_NAMES = {
    "idx": "torchvision IDX",
    "cifar": "torchvision pickle",
    "svhn": "torchvision .mat",
    "tinyimagenet": "tinyimagenet",
    "dtd": "torchvision DTD",
    "places365": "torchvision Places365 (val_256)",
    "folder": "image folder",
    "tree": "image-folder tree",
}

FIX_HINT = (
    "Fix: put the files at one of these paths, point --data-root / NETINV_DATA at a folder "
    "that has them, or allow downloads (download=True)."
)


class DataUnavailableError(FileNotFoundError):
    """A dataset could not be found or downloaded.

    The message names every path looked at and how to fix it: put the files there, set
    ``--data-root`` / ``NETINV_DATA``, or allow downloads.
    """

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or f"dataset not found. {FIX_HINT}")


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
        root = env if env else xdg_cache_home() / "netinv" / "data"
    return Path(root).expanduser().resolve()


def xdg_cache_home() -> Path:
    """``$XDG_CACHE_HOME``, else ``~/.cache``."""
    env = os.environ.get("XDG_CACHE_HOME", "")
    return Path(env) if env else Path.home() / ".cache"


def check_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is one of ``DATASET_NAMES`` or ``folder:<path>``."""
    if is_folder_spec(name):
        if not folder_root(name).is_absolute():
            raise ValueError(
                f"a folder dataset must be folder:<absolute path> (the config resolves relative "
                f"and ~ paths); got name={name!r}"
            )
        return
    if name not in DATASET_NAMES:
        raise ValueError(
            f"unknown dataset name={name!r}; choose one of: {', '.join(DATASET_NAMES)} or "
            f"{FOLDER_PREFIX}PATH"
        )


def check_split(split: str, name: str = "") -> None:
    """Raise ``ValueError`` unless ``split`` is one of ``SPLITS`` (or ``"all"`` for a folder
    dataset: its whole tree)."""
    if split not in SPLITS and not (split == WHOLE_TREE and is_folder_spec(name)):
        raise ValueError(f"split must be one of: {', '.join(SPLITS)}; got split={split!r}")
    if name == "places365" and split != "test":
        raise ValueError("places365 is read as an OOD set: its split 'test' is the official "
                         f"36,500-image val_256 set (the train set is 24 GB); got split={split!r}")


def is_folder_spec(name: str) -> bool:
    """Whether ``name`` is a user's image-folder tree, ``folder:<path>``."""
    return name.startswith(FOLDER_PREFIX)


def folder_root(name: str) -> Path:
    """The folder of ``folder:<path>``."""
    return Path(name[len(FOLDER_PREFIX):])


def dataset_label(name: str) -> str:
    """How results name a dataset: a built-in name as it is, ``folder:<path>`` as
    ``folder:<its last folder name>`` (no ``/``: records key sets as ``<set>/<split>``)."""
    return f"{FOLDER_PREFIX}{folder_root(name).name}" if is_folder_spec(name) else name


def has_split_folders(tree: Path) -> bool:
    """Whether a user's tree holds ``train/`` and ``test/`` subfolders (its own splits)."""
    return (tree / "train").is_dir() and (tree / "test").is_dir()


def tree_split(name: str, split: str) -> str:
    """The split to read for ``split`` of ``name``: a folder tree without its own train/ and
    test/ is read whole (``"all"``) and split afterwards; anything else as asked."""
    if is_folder_spec(name) and not has_split_folders(folder_root(name)):
        return WHOLE_TREE
    return split


@dataclass(frozen=True)
class Source:
    """One place a split may be found: how to read it (``kind``) and where (``path``)."""

    name: str
    split: str
    kind: str  # "idx", "cifar", "svhn", "tinyimagenet", "folder" or "tree" (a folder: path)
    path: Path  # the folder that identifies the source (part of the cache key)
    required: tuple[Path, ...]  # files/folders that must all exist

    def exists(self) -> bool:
        """Whether the split can be read from here."""
        if self.kind == "folder":
            return self.path.is_dir() and any(p.is_dir() for p in self.path.iterdir())
        return all(p.exists() for p in self.required)


def idx_files(raw: Path, split: str) -> tuple[Path, Path]:
    """The (images, labels) IDX files of ``split`` in torchvision's ``raw`` folder."""
    prefix = IDX_PREFIXES[split]
    return raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"


def candidates(name: str, split: str, root: Path) -> list[Source]:
    """Every place ``name``/``split`` may live under ``root``, in lookup order."""
    found: list[Source] = []
    if is_folder_spec(name):  # the user's tree: <tree>/<split>/<class>/* or <tree>/<class>/*
        tree = folder_root(name)
        path = tree if tree_split(name, split) == WHOLE_TREE else tree / split
        return [Source(name, tree_split(name, split), "tree", path, (path,))]
    if name in MNIST_FOLDERS:
        # All four raw files, as torchvision's MNIST demands, so a partial copy is downloaded
        # whole rather than half used.
        raw = root / MNIST_FOLDERS[name] / "raw"
        files = (*idx_files(raw, "train"), *idx_files(raw, "test"))
        found.append(Source(name, split, "idx", raw.parent, files))
    elif name in CIFAR_LAYOUTS:
        layout = CIFAR_LAYOUTS[name]
        base = root / layout.folder
        files = layout.train if split == "train" else layout.test
        required = tuple(base / f for f in (*files, layout.meta))
        found.append(Source(name, split, "cifar", base, required))
    elif name == "svhn":
        path = root / "svhn"
        found.append(Source(name, split, "svhn", path, (path / f"{split}_32x32.mat",)))
    elif name == "dtd":
        base = root.joinpath(*DTD_FOLDER)
        labels = base / "labels" / f"{split}{DTD_PARTITION}.txt"
        found.append(Source(name, split, "dtd", base, (labels, base / "images")))
    elif name == "places365":
        base = root / PLACES365_FOLDER
        found.append(Source(name, split, "places365", base,
                            tuple(base / f for f in PLACES365_FILES)))
    elif name == "tinyimagenet":
        base = root / "tiny-imagenet-200"
        if split == "train":
            required = (base / "wnids.txt", base / "train")
        else:
            required = (base / "wnids.txt", base / "val" / "val_annotations.txt")
            required += (base / "val" / "images",)
        found.append(Source(name, split, "tinyimagenet", base, required))
    aliases = _FOLDER_ALIASES[name]
    folders = [root / alias / split for alias in aliases]  # reported when nothing exists
    if root.is_dir():
        matches = sorted(p for p in root.iterdir() if p.is_dir() and p.name.lower() in aliases)
        if matches:
            folders = [p / split for p in matches]
    found.extend(Source(name, split, "folder", p, (p,)) for p in folders)
    return found


def locate(name: str, split: str, data_root: Path) -> tuple[Source | None, list[Source]]:
    """The first existing source of ``name``/``split`` (or ``None``), and all candidates."""
    sources = candidates(name, split, data_root)
    for source in sources:
        if source.exists():
            return source, sources
    return None, sources


def looked_at(sources: Sequence[Source]) -> str:
    """The paths of ``sources`` with their layouts, for error messages."""
    paths: list[str] = []
    for source in sources:
        shown = source.path if source.kind == "folder" else source.required[0].parent
        text = f"{shown} ({_LAYOUT_NAMES[source.kind]} layout)"
        if text not in paths:
            paths.append(text)
    return "; ".join(paths)


# ------------------------------------------------------------------------------------------------
# Downloads


def ensure_downloadable(
    name: str, split: str, data_root: Path, sources: Sequence[Source], download: bool
) -> None:
    """Raise ``DataUnavailableError`` unless a download into ``data_root`` may be tried."""
    looked = looked_at(sources)
    if not download:
        raise DataUnavailableError(
            f"dataset name={name!r} split={split!r} not found and downloads are off "
            f"(download=False); looked at: {looked}. {FIX_HINT}"
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


@dataclass(frozen=True)
class _Archive:
    """One official file: its mirrors, name, md5, the folder it goes in, and whether to unpack."""

    urls: tuple[str, ...]
    filename: str
    md5: str
    folder: Path
    extract: bool = True


def _archives(name: str, split: str, data_root: Path) -> list[_Archive]:
    """The official files that bring ``name``/``split`` (read from torchvision's classes)."""
    import torchvision.datasets as tvd

    if name == "tinyimagenet":
        return [_Archive((TINYIMAGENET_URL,), "tiny-imagenet-200.zip", TINYIMAGENET_MD5, data_root)]
    if name in MNIST_FOLDERS:
        cls = {"mnist": tvd.MNIST, "fashionmnist": tvd.FashionMNIST, "kmnist": tvd.KMNIST}[name]
        raw = data_root / MNIST_FOLDERS[name] / "raw"
        return [
            _Archive(tuple(m + filename for m in cls.mirrors), filename, md5, raw)
            for filename, md5 in cls.resources
        ]
    if name in CIFAR_LAYOUTS:
        cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
        return [_Archive((cls.url,), cls.filename, cls.tgz_md5, data_root)]
    if name == "dtd":  # what torchvision's DTD._download fetches, into <root>/dtd
        filename = tvd.DTD._URL.rsplit("/", 1)[-1]
        return [_Archive((tvd.DTD._URL,), filename, tvd.DTD._MD5, data_root / DTD_FOLDER[0])]
    if name == "places365":  # Places365.download_devkit + download_images (val, small)
        places = tvd.Places365
        return [_Archive((urljoin(places._BASE_URL, file),), file, md5,
                         data_root / PLACES365_FOLDER)
                for file, md5 in (places._DEVKIT_META["standard"],
                                  places._IMAGES_META[("val", True)])]
    url, filename, md5 = tvd.SVHN.split_list[split]
    return [_Archive((url,), filename, md5, data_root / "svhn", extract=False)]


def download(name: str, split: str, data_root: Path, sources: Sequence[Source]) -> None:
    """Download ``name`` into ``data_root``; any failure becomes ``DataUnavailableError``."""
    from torchvision.datasets.utils import download_url, extract_archive

    archives = _archives(name, split, data_root)
    what = f"{archives[0].urls[0]} (torchvision.datasets.utils.download_url)"
    logger.info("downloading %s/%s into %s from %s", name, split, data_root, what)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        for archive in archives:
            for i, url in enumerate(archive.urls):  # mirrors in order; the last error counts
                try:
                    download_url(url, str(archive.folder), archive.filename, archive.md5)
                    break
                except Exception:
                    if i == len(archive.urls) - 1:
                        raise
            if archive.extract:
                extract_archive(str(archive.folder / archive.filename), str(archive.folder))
    except Exception as err:  # network, HTTP, md5 and archive errors alike
        raise DataUnavailableError(
            f"dataset name={name!r} split={split!r} not found and its download from {what} into "
            f"{data_root} failed: {type(err).__name__}: {err}; looked at: {looked_at(sources)}. "
            f"{FIX_HINT}"
        ) from err
    finally:
        socket.setdefaulttimeout(previous)
