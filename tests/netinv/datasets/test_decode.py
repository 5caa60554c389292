"""Tests of netinv.datasets.decode: the real offline data, and small data in the users' layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from netinv.data import channel_stats
from netinv.datasets import ImageSet, load_split
from tests.helpers.datasets import write_cifar, write_image_folder, write_svhn, write_tree

pytestmark = pytest.mark.usefixtures("shared_cache")

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


# ------------------------------------------------------------------------------------------------
# Real data


@pytest.mark.parametrize(
    ("name", "mean", "std"),
    [("mnist", 0.1307, 0.3081), ("fashionmnist", 0.2860, 0.3530)],
)
def test_real_mnist_like_train(data_root: Path, name: str, mean: float, std: float) -> None:
    train = load_split(name, "train", root=data_root, download=False)
    assert isinstance(train, ImageSet)
    assert train.name == name
    assert train.images.shape == (60000, 1, 28, 28)
    assert train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64
    assert train.labels.shape == (60000,)
    assert torch.equal(train.labels.unique(), torch.arange(10))
    assert len(train.classes) == 10
    means, stds = channel_stats(train.images)
    assert round(means[0], 4) == mean
    assert round(stds[0], 4) == std


@pytest.mark.parametrize("name", ["mnist", "fashionmnist"])
def test_real_idx_matches_torchvision(data_root: Path, name: str) -> None:
    # Our IDX reader replaces torchvision's MNIST class: same pixels, labels and class names.
    import torchvision.datasets as tvd

    cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
    reference = cls(str(data_root), train=False, download=False)
    ours = load_split(name, "test", root=data_root, download=False)
    assert torch.equal(ours.images[:, 0], reference.data)
    assert torch.equal(ours.labels, reference.targets)
    assert ours.classes == tuple(reference.classes)


def test_real_mnist_test_split(data_root: Path) -> None:
    test = load_split("mnist", "test", root=data_root, download=False)
    assert test.images.shape == (10000, 1, 28, 28)
    assert test.classes[0] == "0 - zero"


def test_real_cifar10_test_image_folder(data_root: Path) -> None:
    test = load_split("cifar10", "test", root=data_root, download=False)
    assert test.images.shape == (10000, 3, 32, 32)
    assert test.images.dtype == torch.uint8
    assert test.classes == CIFAR10_CLASSES
    assert torch.equal(torch.bincount(test.labels), torch.full((10,), 1000))
    # Spot check: the first file of "cat" is the first image labelled 3.
    first_cat = int((test.labels == 3).nonzero()[0])
    cat_files = sorted((data_root / "cifar10" / "test" / "cat").iterdir())
    expected = np.asarray(Image.open(cat_files[0]).convert("RGB")).transpose(2, 0, 1)
    assert np.abs(test.images[first_cat].numpy().astype(int) - expected).max() <= 2


def test_real_tinyimagenet_test(data_root: Path) -> None:
    test = load_split("tinyimagenet", "test", root=data_root, download=False)
    assert test.images.shape == (10000, 3, 64, 64)
    assert test.images.dtype == torch.uint8
    base = data_root / "tiny-imagenet-200"
    wnids = sorted((base / "wnids.txt").read_text().split())
    assert test.classes == tuple(wnids)
    assert len(test.classes) == 200
    assert torch.equal(torch.bincount(test.labels, minlength=200), torch.full((200,), 50))
    annotations = dict(
        line.split("\t")[:2]
        for line in (base / "val" / "val_annotations.txt").read_text().splitlines()
    )
    grey = [
        i for i in range(200) if Image.open(base / "val" / "images" / f"val_{i}.JPEG").mode == "L"
    ]
    assert grey, "the real val set has greyscale images among its first 200"
    for i in [0, 1, 4321, 9999, grey[0]]:
        path = base / "val" / "images" / f"val_{i}.JPEG"
        assert int(test.labels[i]) == wnids.index(annotations[path.name])
        expected = np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1)
        assert np.abs(test.images[i].numpy().astype(int) - expected).max() <= 2
    g = test.images[grey[0]]
    assert torch.equal(g[0], g[1]) and torch.equal(g[1], g[2])


# ------------------------------------------------------------------------------------------------
# Small data written in torchvision's own on-disk formats


@pytest.mark.parametrize("split", ["train", "test"])
def test_svhn_from_generated_mat(tmp_path: Path, fresh_cache: Path, split: str) -> None:
    x, y = write_svhn(tmp_path, split, n=30, seed=1)
    svhn = load_split("svhn", split, root=tmp_path, download=False)
    assert svhn.images.shape == (30, 3, 32, 32)
    assert svhn.images.dtype == torch.uint8
    assert torch.equal(svhn.images, torch.from_numpy(x.transpose(3, 2, 0, 1).copy()))
    expected = torch.from_numpy(y[:, 0].astype(np.int64))
    expected[expected == 10] = 0
    assert torch.equal(svhn.labels, expected)
    assert int(svhn.labels[0]) == 0
    assert svhn.classes == tuple(str(d) for d in range(10))


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar_from_generated_pickles(
    tmp_path: Path, fresh_cache: Path, name: str, split: str
) -> None:
    written = write_cifar(tmp_path, name, n=8, seed=2)
    x, labels = written[split]
    cifar = load_split(name, split, root=tmp_path, download=False)
    assert cifar.images.shape == (len(x), 3, 32, 32)
    assert cifar.images.is_contiguous()
    assert torch.equal(cifar.images, torch.from_numpy(x.reshape(-1, 3, 32, 32)))
    assert cifar.labels.tolist() == labels
    assert cifar.classes == tuple(written["classes"])


def test_cifar_batch_of_wrong_form_is_named(tmp_path: Path, fresh_cache: Path) -> None:
    import pickle

    write_cifar(tmp_path, "cifar10", n=4, seed=3, splits=("test",))
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(pickle.dumps({"data": np.zeros((4, 100), np.uint8), "labels": [0] * 4}))
    with pytest.raises(ValueError, match="test_batch"):
        load_split("cifar10", "test", root=tmp_path, download=False)


# ------------------------------------------------------------------------------------------------
# Image folders


def _mixed_images() -> dict[str, Image.Image]:
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    return {
        "rgb.png": Image.fromarray(rgb),
        "grey.png": Image.fromarray(rgb[:, :, 0]),
        "rgba.png": Image.fromarray(np.dstack([rgb, rgb[:, :, :1]])),
        "palette.png": Image.fromarray(rgb).convert("P"),
        "grey_alpha.png": Image.fromarray(rgb).convert("LA"),
        "photo.bmp": Image.fromarray(rgb),
    }


@pytest.mark.parametrize(
    ("name", "folder", "channels"), [("cifar10", "CIFAR10", 3), ("mnist", "mnist", 1)]
)
def test_image_folder_mixed_modes(
    tmp_path: Path, fresh_cache: Path, name: str, folder: str, channels: int
) -> None:
    images = _mixed_images()
    for cls in ("zebra", "apple"):
        (tmp_path / folder / "train" / cls).mkdir(parents=True)
        for filename, img in images.items():
            img.save(tmp_path / folder / "train" / cls / filename)
    loaded = load_split(name, "train", root=tmp_path, download=False)
    assert loaded.classes == ("apple", "zebra")
    assert loaded.labels.tolist() == [0] * len(images) + [1] * len(images)
    assert loaded.images.shape == (2 * len(images), channels, 12, 12)
    # Files are read in sorted name order within a class.
    pil_mode = "RGB" if channels == 3 else "L"
    for k, filename in enumerate(sorted(images)):
        path = tmp_path / folder / "train" / "apple" / filename
        expected = np.asarray(Image.open(path).convert(pil_mode)).reshape(12, 12, channels)
        got = loaded.images[k].numpy().transpose(1, 2, 0).astype(int)
        assert np.abs(got - expected).max() <= 1, filename
    if channels == 3:
        grey = loaded.images[sorted(images).index("grey.png")]
        assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])


def test_image_folder_rejects_mixed_sizes(tmp_path: Path, fresh_cache: Path) -> None:
    write_image_folder(tmp_path / "cifar10" / "test", n_per_class=2, size=(32, 32))
    odd = tmp_path / "cifar10" / "test" / "c_class" / "odd.png"
    Image.fromarray(np.zeros((30, 32, 3), dtype=np.uint8)).save(odd)
    with pytest.raises(ValueError, match="odd.png"):
        load_split("cifar10", "test", root=tmp_path, download=False)


def test_image_folder_rejects_undecodable_file(tmp_path: Path, fresh_cache: Path) -> None:
    write_image_folder(tmp_path / "cifar10" / "test", n_per_class=2, size=(32, 32))
    bad = tmp_path / "cifar10" / "test" / "a_class" / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        load_split("cifar10", "test", root=tmp_path, download=False)


# ------------------------------------------------------------------------------------------------
# The user's own folder: trees


def test_tree_classes_channels_and_most_common_size(tmp_path: Path, fresh_cache: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    tree = tmp_path / "parts"
    write_tree(tree, {"scratch": 3, "ok": 4}, size=(20, 24), mode="L")
    odd = np.full((30, 30), 200, dtype=np.uint8)
    Image.fromarray(odd).save(tree / "ok" / "9.png")
    data = load_split(f"folder:{tree}", "all")
    assert data.classes == ("ok", "scratch")  # sorted folder names
    assert data.images.shape == (8, 1, 20, 24)  # all grey: 1 channel; the odd one resized
    assert data.labels.tolist() == [0] * 5 + [1] * 3
    assert torch.all(data.images[4] == 200)  # ok/9.png, resized from 30x30, kept its pixels
    assert "1 of 8 images are not 20x24" in caplog.text


def test_tree_with_a_colour_image_is_rgb(tmp_path: Path, fresh_cache: Path) -> None:
    tree = tmp_path / "t"
    write_tree(tree, {"a": 2, "b": 2}, mode="L")
    write_tree(tree, {"c": 1}, mode="RGB")
    assert load_split(f"folder:{tree}", "all").images.shape[1] == 3


@pytest.mark.parametrize(("make", "match"), [
    (lambda t: t.mkdir(), r"found no class folders in .*/t$"),
    (lambda t: write_tree(t / "..", {"t": 2}), r"found no class folders in .*/t \(2 images lie "
                                              r"in it directly: move them into .*/t/<class>/\)"),
    (lambda t: (write_tree(t, {"a": 2}), (t / "b").mkdir()), r"class folder .*/t/b holds none"),
    (lambda t: (write_tree(t, {"a": 2}), (t / "a" / "1.png").write_bytes(b"not a png")),
     r"cannot read file=.*/t/a/1.png"),
    (lambda t: write_tree(t, {"train": 2, "b": 2}), r"must have both train/ and test/.*only "
                                                    r"train/"),
])
def test_bad_trees_are_named(tmp_path: Path, fresh_cache: Path, make, match: str) -> None:
    tree = tmp_path / "t"
    make(tree)
    with pytest.raises(ValueError, match=match):
        load_split(f"folder:{tree}", "all")
