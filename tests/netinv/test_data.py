"""Tests of netinv.data: shapes, statistics, splits, and prepare on real and small data."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
import torch

from netinv import data
from netinv.config import Config
from netinv.data import (
    DataUnavailableError,
    channel_stats,
    from_tensors,
    prepare,
    split_indices,
    to_shape,
)
from tests.helpers.datasets import write_cifar, write_tree

pytestmark = pytest.mark.usefixtures("shared_cache")


def _row_hashes(images: torch.Tensor) -> list[bytes]:
    flat = images.reshape(images.shape[0], -1).numpy()
    return [row.tobytes() for row in flat]


def _duplicates(images: torch.Tensor) -> set[bytes]:
    seen: set[bytes] = set()
    dup: set[bytes] = set()
    for h in _row_hashes(images):
        (dup if h in seen else seen).add(h)
    return dup


# ------------------------------------------------------------------------------------------------
# to_shape, channel_stats, split_indices


@pytest.mark.parametrize(
    ("rgb", "grey"),
    [((255, 0, 0), 76), ((0, 255, 0), 150), ((0, 0, 255), 29), ((255, 255, 255), 255)],
)
def test_to_shape_rgb_to_grey_luminance(rgb: tuple[int, int, int], grey: int) -> None:
    images = torch.tensor(rgb, dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 4, 4).clone()
    out = to_shape(images, (1, 4, 4))
    assert out.dtype == torch.uint8
    assert out.shape == (2, 1, 4, 4)
    assert torch.all(out == grey)


def test_to_shape_grey_to_rgb_replicates() -> None:
    images = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    out = to_shape(images, (3, 8, 8))
    assert out.shape == (5, 3, 8, 8)
    for c in range(3):
        assert torch.equal(out[:, c], images[:, 0])


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ((3, 64, 64), (3, 32, 32)),
        ((3, 64, 64), (1, 28, 28)),
        ((1, 28, 28), (3, 32, 32)),
        ((1, 28, 28), (1, 32, 32)),
        ((3, 32, 32), (1, 28, 28)),
    ],
)
def test_to_shape_resizes(source: tuple[int, int, int], target: tuple[int, int, int]) -> None:
    images = torch.full((3, *source), 200, dtype=torch.uint8)
    images[1] = 7
    out = to_shape(images, target)
    assert out.shape == (3, *target)
    assert out.dtype == torch.uint8
    # A constant image stays constant (and in range) after the antialiased resize.
    assert torch.all(out[0] == 200) and torch.all(out[1] == 7)


def test_to_shape_chunks_match_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    images = torch.randint(0, 256, (10, 3, 64, 64), dtype=torch.uint8)
    whole = to_shape(images, (1, 28, 28))
    monkeypatch.setattr(data, "CHUNK_IMAGES", 3)
    assert torch.equal(to_shape(images, (1, 28, 28)), whole)


def test_to_shape_same_shape_and_errors() -> None:
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(to_shape(images, (3, 8, 8)), images)
    with pytest.raises(TypeError, match="uint8"):
        to_shape(images.float(), (3, 8, 8))
    with pytest.raises(ValueError, match="C in"):
        to_shape(torch.zeros(2, 2, 8, 8, dtype=torch.uint8), (3, 8, 8))
    with pytest.raises(ValueError, match="shape must be"):
        to_shape(images, (2, 8, 8))


def test_channel_stats_hand_computed() -> None:
    images = torch.zeros(2, 2, 2, 2, dtype=torch.uint8)
    images[:, 0, 0] = 255  # channel 0: half the pixels 1.0, half 0.0
    images[:, 1] = 51  # channel 1: constant 0.2
    mean, std = channel_stats(images)
    assert mean == pytest.approx((0.5, 0.2))
    assert std == pytest.approx((0.5, 0.0))


def test_split_indices_partition_and_seed() -> None:
    val, test = split_indices(101, 0.3, seed=0)
    assert val.dtype == torch.int64
    assert len(val) == 30 and len(test) == 71
    assert torch.equal(torch.cat([val, test]).sort().values, torch.arange(101))
    again_val, again_test = split_indices(101, 0.3, seed=0)
    assert torch.equal(val, again_val) and torch.equal(test, again_test)
    other_val, _ = split_indices(101, 0.3, seed=1)
    assert not torch.equal(val, other_val)


@pytest.mark.parametrize(("n", "fraction"), [(10, 0.0), (10, 1.0), (10, -0.5), (1, 0.5), (3, 0.1)])
def test_split_indices_rejects(n: int, fraction: float) -> None:
    with pytest.raises(ValueError, match="val_fraction"):
        split_indices(n, fraction, seed=0)


# ------------------------------------------------------------------------------------------------
# prepare


def test_prepare_real_mnist_against_three_ood_sets(data_root: Path) -> None:
    kwargs = dict(root=data_root, download=False, train_limit=2000, test_limit=1000)
    ood_names = ["fashionmnist", "cifar10", "tinyimagenet"]
    prepared = prepare("mnist", ood_names, **kwargs)
    assert prepared.shape == (1, 28, 28)
    assert prepared.n_classes == 10
    assert len(prepared.classes) == 10
    assert len(prepared.id_train) == 2000
    assert torch.equal(torch.bincount(prepared.id_train.labels), torch.full((10,), 200))
    assert len(prepared.id_val) == 5000
    assert len(prepared.id_test) == 1000
    for split in (prepared.id_train, prepared.id_val, prepared.id_test):
        assert split.images.shape[1:] == (1, 28, 28)
    assert set(_row_hashes(prepared.id_val.images)).isdisjoint(
        _row_hashes(prepared.id_train.images)
    )
    assert abs(prepared.mean[0] - 0.1307) < 0.01
    assert abs(prepared.std[0] - 0.3081) < 0.01
    assert (prepared.mean, prepared.std) == channel_stats(prepared.id_train.images)

    assert set(prepared.ood) == set(ood_names)
    for name, parts in prepared.ood.items():
        assert set(parts) == {"val", "test"}
        assert parts["val"].shape == (500, 1, 28, 28), name
        assert parts["test"].shape == (500, 1, 28, 28), name
        assert parts["val"].dtype == torch.uint8
        both = torch.cat([parts["val"], parts["test"]])
        shared = set(_row_hashes(parts["val"])) & set(_row_hashes(parts["test"]))
        assert shared <= _duplicates(both), f"{name}: val and test overlap"

    again = prepare("mnist", ood_names, **kwargs)
    assert torch.equal(again.id_train.images, prepared.id_train.images)
    assert torch.equal(again.id_val.labels, prepared.id_val.labels)
    for name in ood_names:
        for part in ("val", "test"):
            assert torch.equal(again.ood[name][part], prepared.ood[name][part])

    other = prepare("mnist", ood_names, seed=1, **kwargs)
    assert not torch.equal(other.id_val.images, prepared.id_val.images)
    for name in ood_names:
        assert not torch.equal(other.ood[name]["val"], prepared.ood[name]["val"])


def test_prepare_rgb_id_converts_grey_ood(
    data_root: Path, tmp_path: Path, fresh_cache: Path
) -> None:
    # An RGB ID set (generated CIFAR-100) with the real MNIST as OOD, under one root.
    root = tmp_path / "root"
    write_cifar(root, "cifar100", n=40, seed=5)
    shutil.copytree(data_root / "MNIST", root / "MNIST")
    prepared = prepare(
        "cifar100", ["mnist"], root=root, download=False, id_val_size=10, test_limit=100
    )
    assert prepared.shape == (3, 32, 32)
    assert prepared.n_classes == 100
    assert len(prepared.id_train) == 30 and len(prepared.id_val) == 10
    assert len(prepared.mean) == 3 and len(prepared.std) == 3
    mnist_val = prepared.ood["mnist"]["val"]
    assert mnist_val.shape == (50, 3, 32, 32)
    assert torch.equal(mnist_val[:, 0], mnist_val[:, 1])


@pytest.mark.parametrize(
    ("id_name", "ood_names", "match"),
    [
        ("mnist", ["mnist"], "must not contain the ID dataset"),
        ("mnist", ["cifar10", "cifar10"], "distinct"),
        ("mnist", ["imagenet"], "choose one of"),
        ("imagenet", ["mnist"], "choose one of"),
    ],
)
def test_prepare_validates_names_before_loading(
    tmp_path: Path, id_name: str, ood_names: list[str], match: str
) -> None:
    # The root is empty: a ValueError (not DataUnavailableError) proves names come first.
    with pytest.raises(ValueError, match=match):
        prepare(id_name, ood_names, root=tmp_path, download=False)


def test_prepare_rejects_bad_arguments(data_root: Path) -> None:
    with pytest.raises(ValueError, match="id_val_size"):
        prepare("mnist", [], root=data_root, download=False, id_val_size=60000)
    with pytest.raises(ValueError, match="ood_val_fraction"):
        prepare("mnist", ["cifar10"], root=data_root, download=False, ood_val_fraction=1.0)
    with pytest.raises(TypeError, match="sequence"):
        prepare("mnist", "cifar10", root=data_root, download=False)  # type: ignore[arg-type]


def test_prepare_missing_id_train_fails_before_decoding(
    data_root: Path, fresh_cache: Path
) -> None:
    with pytest.raises(DataUnavailableError, match="svhn") as info:
        prepare("svhn", ["mnist"], root=data_root, download=False)
    assert "split='train'" in str(info.value)
    assert not fresh_cache.exists() or not any(fresh_cache.iterdir())  # nothing decoded


def test_prepare_refuses_download_into_read_only_root_up_front(
    data_root: Path, tmp_path: Path, fresh_cache: Path
) -> None:
    root = tmp_path / "read-only"
    shutil.copytree(data_root / "MNIST", root / "MNIST")
    root.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(DataUnavailableError, match="not writable"):
            prepare("mnist", ["svhn"], root=root, download=True)
    finally:
        root.chmod(stat.S_IRWXU)
    assert not fresh_cache.exists() or not any(fresh_cache.iterdir())  # MNIST not decoded


# ------------------------------------------------------------------------------------------------
# The user's own data: folder: trees and in-memory sets


def test_prepare_folder_id_against_a_folder_and_a_named_ood_set(
    tmp_path: Path, data_root: Path, fresh_cache: Path
) -> None:
    write_tree(tmp_path / "parts", {"bolt": 12, "nut": 8}, size=(20, 24))
    write_tree(tmp_path / "scratches", {"all": 9}, size=(50, 40), seed=1)  # used whole
    config = Config.from_flat({"data/id": f"folder:{tmp_path / 'parts'}",
                               "data/ood": f"folder:{tmp_path / 'scratches'},mnist"})
    prepared = prepare(config.data.id, config.data.ood, root=data_root, download=False,
                       id_val_size=4, test_limit=20, folder_test_fraction=0.25)
    assert prepared.classes == ("bolt", "nut") and prepared.shape == (3, 20, 24)
    assert len(prepared.id_test) == 5 and len(prepared.id_train) + len(prepared.id_val) == 15
    scratches = prepared.ood["folder:scratches"]  # labelled by its folder's name
    assert len(scratches["val"]) + len(scratches["test"]) == 9  # the whole tree
    assert scratches["test"].shape[1:] == (3, 20, 24)
    assert prepared.ood["mnist"]["test"].shape[1:] == (3, 20, 24)
    with pytest.raises(ValueError, match=r"distinct folder names"):
        prepare(config.data.id, [f"folder:{tmp_path / 'a' / 'x'}", f"folder:{tmp_path / 'x'}"],
                root=data_root, download=False)


def test_prepare_in_memory_id_set(data_root: Path) -> None:
    images = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8)
    parts = from_tensors(images, torch.arange(40) % 4, ["a", "b", "c", "d"], name="mine")
    prepared = prepare(parts, ["fashionmnist"], root=data_root, download=False,
                       id_val_size=4, test_limit=10, folder_test_fraction=0.2)
    assert prepared.classes == ("a", "b", "c", "d") and len(prepared.id_test) == 8
    pair = prepare((parts, parts.subset(torch.arange(6))), ["fashionmnist"], root=data_root,
                   download=False, id_val_size=4, test_limit=10)
    assert len(pair.id_test) == 6 and len(pair.id_train) == 36
    with pytest.raises(TypeError, match=r"an ImageSet \(see netinv.data.from_tensors"):
        prepare(images, ["fashionmnist"], root=data_root)  # type: ignore[arg-type]
