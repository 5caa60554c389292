"""Tests of netinv.datasets.load through load_split and prepare: hostile and damaged files
under the data root fail with an error naming the file, and run nothing."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from netinv.data import prepare
from netinv.datasets import load_split
from tests.helpers.datasets import write_cifar

pytestmark = pytest.mark.usefixtures("shared_cache")


class _WritesFile:
    """Unpickled by a plain ``pickle.load``, this creates ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def _hostile_cifar(root: Path, name: str, target: str, marker: Path) -> Path:
    """Small CIFAR pickles whose ``target`` ("meta" or "batch") carries a file-writing payload."""
    write_cifar(root, name, n=6, seed=0)
    layout_folder = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
    base = root / layout_folder
    if target == "meta":
        path = base / ("batches.meta" if name == "cifar10" else "meta")
        key = "label_names" if name == "cifar10" else "fine_label_names"
        content = {key: _WritesFile(marker)}
    else:
        path = base / ("test_batch" if name == "cifar10" else "test")
        key = "labels" if name == "cifar10" else "fine_labels"
        content = {"data": np.zeros((6, 3072), np.uint8), key: [0] * 6, "x": _WritesFile(marker)}
    path.write_bytes(pickle.dumps(content))
    return path


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("target", ["meta", "batch"])
def test_hostile_cifar_pickle_is_refused_by_load_split(
    tmp_path: Path, fresh_cache: Path, name: str, target: str
) -> None:
    marker = tmp_path / "payload-ran"
    path = _hostile_cifar(tmp_path / "root", name, target, marker)
    with pytest.raises(pickle.UnpicklingError, match="refused") as info:
        load_split(name, "test", root=tmp_path / "root", download=False)
    assert f"file={path}" in str(info.value)
    assert "builtins.open" in str(info.value) or "io.open" in str(info.value)
    assert not marker.exists()
    assert not fresh_cache.exists() or not list(fresh_cache.glob("*.json"))  # nothing cached


def test_hostile_cifar_meta_is_refused_by_prepare(
    data_root: Path, tmp_path: Path, fresh_cache: Path
) -> None:
    root = tmp_path / "root"
    shutil.copytree(data_root / "MNIST", root / "MNIST")
    marker = tmp_path / "payload-ran"
    path = _hostile_cifar(root, "cifar10", "meta", marker)
    with pytest.raises(pickle.UnpicklingError, match="batches.meta") as info:
        prepare("mnist", ["cifar10"], root=root, download=False, train_limit=100)
    assert str(path) in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["mnist", "fashionmnist"])
def test_truncated_idx_file_is_named(
    data_root: Path, tmp_path: Path, fresh_cache: Path, name: str
) -> None:
    folder = "MNIST" if name == "mnist" else "FashionMNIST"
    shutil.copytree(data_root / folder, tmp_path / folder)
    damaged = tmp_path / folder / "raw" / "t10k-images-idx3-ubyte"
    os.truncate(damaged, damaged.stat().st_size - 784 * 10)  # ten images short
    with pytest.raises(ValueError, match="declares shape=\\(10000, 28, 28\\)") as info:
        load_split(name, "test", root=tmp_path, download=False)
    assert f"file={damaged}" in str(info.value)
    # The train split's files are whole and still load.
    assert len(load_split(name, "train", root=tmp_path, download=False)) == 60000
