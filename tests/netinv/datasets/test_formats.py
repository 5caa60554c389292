"""Tests of netinv.datasets.formats: restricted unpickling and the IDX reader."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from netinv.datasets.formats import load_data_pickle, natural_key, read_idx


class _WritesFile:
    """A pickle payload that creates ``path`` when unpickled by a plain ``pickle.load``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


class _RunsShell:
    """A pickle payload that runs ``touch path`` through ``os.system`` when unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("payload", [_WritesFile, _RunsShell])
def test_hostile_pickle_is_refused_without_running(tmp_path: Path, payload: type) -> None:
    # Control: the same payload, loaded by plain pickle, does create its file.
    control = tmp_path / "control-marker"
    made = pickle.loads(pickle.dumps({"label_names": payload(control)}))["label_names"]
    getattr(made, "close", lambda: None)()  # the open file of _WritesFile
    assert control.exists()

    marker = tmp_path / "marker"
    path = tmp_path / "batches.meta"
    path.write_bytes(pickle.dumps({"label_names": payload(marker)}))
    with pytest.raises(pickle.UnpicklingError, match="refused") as info:
        load_data_pickle(path)
    assert f"file={path}" in str(info.value)
    assert "global=" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_numpy_arrays_and_plain_values_load_at_every_protocol(
    tmp_path: Path, protocol: int
) -> None:
    value = {
        "data": np.arange(24, dtype=np.uint8).reshape(2, 12),
        "labels": [1, 2],
        "scalar": np.int64(7),
        "names": ("a", b"b", 1.5, True, None),
        "sets": [{1, 2}, frozenset([3])],
    }
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(value, protocol=protocol))
    loaded = load_data_pickle(path)
    assert np.array_equal(loaded["data"], value["data"])
    assert loaded["data"].dtype == np.uint8
    assert loaded["labels"] == [1, 2] and loaded["scalar"] == 7
    assert loaded["names"] == value["names"] and loaded["sets"] == value["sets"]


def test_truncated_pickle_names_file(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": np.zeros(100, np.uint8)})[:-20])
    with pytest.raises(pickle.UnpicklingError, match="data_batch_1"):
        load_data_pickle(path)


def _idx(dims: tuple[int, ...], data: bytes) -> bytes:
    header = bytes((0, 0, 8, len(dims))) + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + data


def test_read_idx_reads_shape_and_values(tmp_path: Path) -> None:
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(_idx((2, 3, 4), bytes(range(24))))
    array = read_idx(path, ndim=3)
    assert array.dtype == np.uint8
    assert array.shape == (2, 3, 4)
    assert array[1, 2, 3] == 23


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (_idx((2, 3), bytes(5)), "declares shape="),  # truncated: shorter than declared
        (_idx((2, 3), bytes(6)) + b"extra", "declares shape="),  # longer than declared
        (b"\x00\x00\x08", "starts with 000008"),  # shorter than the magic
        (_idx((2, 3), bytes(6))[:6], "starts with 00000802"),  # sizes cut off
        (bytes((0, 0, 13, 2)) + bytes(8), "magic 00000802"),  # float32, not uint8
        (_idx((2, 3, 1), bytes(6)), "magic 00000802"),  # 3-D where 2-D is expected
    ],
)
def test_read_idx_rejects_damaged_files(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as info:
        read_idx(path, ndim=2)
    assert str(path) in str(info.value)


def test_natural_key_orders_numbers() -> None:
    names = ["val_10.JPEG", "val_2.JPEG", "val_1.JPEG"]
    assert sorted(names, key=natural_key) == ["val_1.JPEG", "val_2.JPEG", "val_10.JPEG"]


def test_numpy1_pickles_load(tmp_path: Path) -> None:
    # numpy 1.x wrote numpy.core.multiarray where numpy 2.x writes numpy._core.multiarray.
    content = pickle.dumps({"data": np.arange(5, dtype=np.uint8)}, protocol=2)
    assert b"numpy._core" in content
    path = tmp_path / "batch"
    path.write_bytes(content.replace(b"numpy._core", b"numpy.core"))
    assert np.array_equal(load_data_pickle(path)["data"], np.arange(5, dtype=np.uint8))
