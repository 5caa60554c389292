"""Tests of netinv.datasets.load through load_split and prepare: hostile and damaged files
under the data root fail with an error naming the file, and run nothing."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from netinv.data import prepare
from netinv.datasets import load_split
from tests.helpers.datasets import write_cifar, write_tree

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


# ------------------------------------------------------------------------------------------------
# The user's own folder: trees


def test_tree_without_splits_is_split_per_class_the_same_every_time(
    tmp_path: Path, fresh_cache: Path
) -> None:
    tree = tmp_path / "parts"
    write_tree(tree, {"a": 10, "b": 5, "c": 2})
    name = f"folder:{tree}"
    train, test = (load_split(name, split, test_fraction=0.2) for split in ("train", "test"))
    assert np.bincount(test.labels.numpy()).tolist() == [2, 1, 1]  # round(n*0.2), >= 1 each
    assert np.bincount(train.labels.numpy()).tolist() == [8, 4, 1]
    whole = load_split(name, "all")
    seen = torch.cat([train.images, test.images]).flatten(1)
    assert sorted(map(bytes, seen.numpy())) == sorted(map(bytes, whole.images.flatten(1).numpy()))
    assert torch.equal(load_split(name, "test", test_fraction=0.2).images, test.images)
    assert len(list(fresh_cache.glob("folder_*_parts-all-*.json"))) == 1  # decoded once, cached whole


def test_tree_with_train_and_test_uses_them(tmp_path: Path, fresh_cache: Path) -> None:
    write_tree(tmp_path / "t" / "train", {"a": 3, "b": 4})
    write_tree(tmp_path / "t" / "test", {"a": 1, "b": 2})
    assert len(load_split(f"folder:{tmp_path / 't'}", "train")) == 7
    assert load_split(f"folder:{tmp_path / 't'}", "test").labels.tolist() == [0, 1, 1]


def test_tree_class_of_one_image_cannot_be_split(tmp_path: Path, fresh_cache: Path) -> None:
    write_tree(tmp_path / "t", {"a": 3, "lonely": 1})
    with pytest.raises(ValueError, match=r"at least 2 images; class 'lonely' of folder:.* has 1"):
        load_split(f"folder:{tmp_path / 't'}", "train")


def test_missing_tree_is_named_and_never_served_from_cache(tmp_path: Path,
                                                           fresh_cache: Path) -> None:
    tree = tmp_path / "gone"
    write_tree(tree, {"a": 2, "b": 2})
    assert len(load_split(f"folder:{tree}", "all")) == 4  # cached now
    shutil.rmtree(tree)
    with pytest.raises(FileNotFoundError, match=rf"the folder {tree} does not exist"):
        load_split(f"folder:{tree}", "all")
    with pytest.raises(FileNotFoundError, match=rf"the folder {tree} does not exist"):
        prepare(f"folder:{tree}", ["mnist"], root=tmp_path, download=False)
    with pytest.raises(ValueError, match=r"folder:<absolute path>"):
        load_split("folder:relative/path", "all")
