"""Readers of the raw file formats under a data root: IDX, CIFAR's pickles, image files.

Every reader names the file it refuses. Pickles are read by ``load_data_pickle``, a restricted
unpickler that builds numpy arrays and plain values only: a crafted file under a shared data
root (a cluster's, ``NETINV_DATA``) cannot run code.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import re
import struct
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from netinv.progress import track

DECODE_CHUNK_FILES = 256  # image files per task in the decoding thread pool
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")

_PLAIN_TYPES = ("dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int",
                "float", "complex", "bool")
# The globals numpy's array pickles refer to, plus plain builtin types (spelled __builtin__ in
# protocols < 3, as in CIFAR's official Python 2 files). Each builds a value; none runs code.
ALLOWED_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),  # numpy 1.x
        ("numpy._core.multiarray", "_reconstruct"),  # numpy 2.x
        ("numpy.core.multiarray", "scalar"),  # numpy scalars (np.int64(3))
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),  # arrays in protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # bytes in protocols < 3
    }
    | {(module, name) for module in ("builtins", "__builtin__") for name in _PLAIN_TYPES}
)


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle under the data root refers to a global outside ``ALLOWED_GLOBALS``."""


class _DataUnpickler(pickle.Unpickler):
    """An unpickler that resolves only ``ALLOWED_GLOBALS`` and names the file otherwise."""

    def __init__(self, file: io.BufferedIOBase, path: Path) -> None:
        super().__init__(file, encoding="latin1")  # CIFAR's files are Python 2 pickles
        self.path = path

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(
                "a pickle under the data root may hold only numpy arrays and plain values "
                f"(dict, list, str, bytes, numbers); file={self.path} refers to "
                f"global={module}.{name}, which is refused (nothing in the file was run)"
            )
        return super().find_class(module, name)


def load_data_pickle(path: Path) -> object:
    """Unpickle ``path`` allowing only numpy arrays and plain values.

    Raises:
        UnsafePickleError: The file refers to any other global (e.g. ``os.system``); nothing
            in it was run. The message names the file and the global.
        pickle.UnpicklingError: The file is not a complete, valid pickle; the file is named.
    """
    with open(path, "rb") as f:
        try:
            return _DataUnpickler(f, path).load()
        except UnsafePickleError:
            raise
        except Exception as err:  # truncated or garbled: EOFError, ValueError, ...
            raise pickle.UnpicklingError(
                f"a data pickle must be complete and valid; cannot read file={path}: "
                f"{type(err).__name__}: {err}"
            ) from err


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file (MNIST's format) with ``ndim`` dimensions.

    The header's declared shape is checked against the file size before any data is read.

    Args:
        path: The file: magic ``00 00 08 <ndim>``, ``ndim`` big-endian uint32 sizes, then
            the data, one byte per value.
        ndim: Expected number of dimensions (3 for images, 1 for labels).

    Returns:
        uint8 array of the declared shape.

    Raises:
        ValueError: The magic is not uint8 with ``ndim`` dimensions, or the file is shorter or
            longer than its header declares (truncated download); the message names the file.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        header = f.read(4 + 4 * ndim)
        magic = bytes((0, 0, 8, ndim))
        if len(header) < 4 + 4 * ndim or header[:4] != magic:
            raise ValueError(
                f"an IDX file must start with the magic {magic.hex()} (uint8, {ndim}-D) and "
                f"its {ndim} sizes; file={path} starts with {header[:4].hex() or 'nothing'} "
                f"and is {size} bytes long"
            )
        dims = struct.unpack(f">{ndim}I", header[4:])
        expected = len(header) + math.prod(dims)
        if size != expected:
            raise ValueError(
                f"an IDX file must be as long as its header declares; file={path} declares "
                f"shape={dims} ({expected} bytes) but is {size} bytes long (truncated or "
                "damaged: download it again)"
            )
        return np.fromfile(f, dtype=np.uint8).reshape(dims)


_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> list[int | str]:
    """Sort key that orders ``img2`` before ``img10``."""
    parts: list[int | str] = _DIGITS.split(text)
    parts[1::2] = [int(p) for p in parts[1::2]]  # split() puts the digit runs at odd places
    return parts


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, in natural name order."""
    found = [p for p in folder.iterdir() if os.path.splitext(p.name)[1].lower() in IMAGE_SUFFIXES]
    return sorted(found, key=lambda p: natural_key(p.name))


GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})  # PIL modes


def _in_pool(function, files: Sequence[Path], desc: str | None = None) -> list:
    """``[function(p) for p in files]``, in chunks on a thread pool (PIL releases the GIL);
    with ``desc``, a progress bar over the chunks."""
    chunks = [files[i : i + DECODE_CHUNK_FILES] for i in range(0, len(files), DECODE_CHUNK_FILES)]
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = pool.map(lambda chunk: [function(p) for p in chunk], chunks)
        if desc is not None:
            parts = track(parts, desc=desc, total=len(chunks), unit="chunk")
        return [item for part in parts for item in part]


def image_headers(files: Sequence[Path]) -> list[tuple[str, tuple[int, int]]]:
    """The PIL mode and (H, W) of each image file, from its header only (nothing decoded).

    Raises:
        ValueError: A file is not an image PIL can open; the file is named.
    """
    return _in_pool(_header, files)


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    from PIL import Image

    try:
        with Image.open(path) as pil:
            return pil.mode, (pil.height, pil.width)
    except Exception as err:
        raise ValueError(f"every image file must decode; cannot read file={path}: {err}") from err


def decode_files(files: Sequence[Path], channels: int,
                 size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode image files into one uint8 (N, channels, H, W) array, in a thread pool.

    Args:
        files: The image files, at least one.
        channels: 1 (ITU-R 601 luminance) or 3 (RGB).
        size: (H, W) every image is resized to (PIL's antialiased bilinear; aspect ratio not
            kept); None = every image must have the first one's size.

    Raises:
        ValueError: A file cannot be decoded, or (``size`` None) its size differs from the
            first file's.
    """
    if not files:
        raise ValueError("a split must hold at least one image file; got none")
    decoded = _in_pool(lambda p: _decode_one(p, channels, size), files, desc="decode")
    first = decoded[0].shape
    for path, img in zip(files, decoded, strict=True):
        if img.shape != first:
            raise ValueError(
                f"all images of one split must share one size; file={files[0]} has (H, W)="
                f"{first[:2]}, but file={path} has (H, W)={img.shape[:2]}"
            )
    stacked = np.stack(decoded)  # (N, H, W, C)
    return np.ascontiguousarray(stacked.transpose(0, 3, 1, 2))


def _decode_one(path: Path, channels: int, size: tuple[int, int] | None = None) -> np.ndarray:
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
            pil = pil if pil.mode == target else pil.convert(target)
            if size is not None and (pil.height, pil.width) != tuple(size):
                pil = pil.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(pil)
    except Exception as err:
        raise ValueError(
            f"every image file must decode; cannot decode file={path}: {err}"
        ) from err
    return array[:, :, None] if array.ndim == 2 else array
