"""Tests of netinv.data: the real offline data, and small data in torchvision's own formats."""

from __future__ import annotations

import pickle
import shutil
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torchvision.datasets as tvd
from PIL import Image

from netinv import data
from netinv.data import (
    DATASET_NAMES,
    DataUnavailableError,
    ImageSet,
    channel_stats,
    load_split,
    prepare,
    resolve_data_root,
    split_indices,
    to_shape,
)

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


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One decoded-data cache for the whole session: each real split is decoded once."""
    return tmp_path_factory.mktemp("netinv-cache")


@pytest.fixture(autouse=True)
def _use_session_cache(monkeypatch: pytest.MonkeyPatch, session_cache: Path) -> None:
    # No test may write into the user's ~/.cache; tests that need a fresh cache override this.
    monkeypatch.setenv("NETINV_CACHE", str(session_cache))


@pytest.fixture
def fresh_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "fresh-cache"
    monkeypatch.setenv("NETINV_CACHE", str(path))
    return path


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


def test_cache_serves_second_load_after_source_is_gone(
    data_root: Path, tmp_path: Path, fresh_cache: Path
) -> None:
    roots = [tmp_path / "root_a", tmp_path / "root_b"]
    for root in roots:
        shutil.copytree(data_root / "MNIST", root / "MNIST")
    first = load_split("mnist", "train", root=roots[0], download=False)
    entries = sorted(p.name for p in fresh_cache.iterdir())
    assert len(entries) == 3
    assert all(e.startswith("mnist-train-") for e in entries)
    assert {Path(e).suffix for e in entries} == {".npy", ".json"}

    # The source is deleted: only the cache can answer now.
    shutil.rmtree(roots[0] / "MNIST")
    second = load_split("mnist", "train", root=roots[0], download=False)
    assert torch.equal(first.images, second.images)
    assert torch.equal(first.labels, second.labels)
    assert first.classes == second.classes

    # Another root gets its own entry, never the first root's.
    load_split("mnist", "train", root=roots[1], download=False)
    assert len(list(fresh_cache.glob("mnist-train-*.json"))) == 2
    assert not list(fresh_cache.glob("*.tmp"))


def test_concurrent_loads_write_one_consistent_entry(tmp_path: Path, fresh_cache: Path) -> None:
    _write_image_folder(tmp_path / "svhn" / "test", n_per_class=20, size=(32, 32))
    results: list[ImageSet] = []

    def worker() -> None:
        results.append(load_split("svhn", "test", root=tmp_path, download=False))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    for r in results[1:]:
        assert torch.equal(r.images, results[0].images)
    assert not list(fresh_cache.glob("*.tmp"))
    cached = load_split("svhn", "test", root=tmp_path, download=False)
    assert torch.equal(cached.images, results[0].images)


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
# Small data written in torchvision's own on-disk formats


def _write_svhn(root: Path, split: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)  # SVHN's (H, W, C, N)
    y = rng.integers(1, 11, (n, 1)).astype(np.uint8)  # 10 means digit 0
    y[0, 0] = 10
    (root / "svhn").mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / "svhn" / f"{split}_32x32.mat", {"X": x, "y": y})
    return x, y


@pytest.mark.parametrize("split", ["train", "test"])
def test_svhn_from_generated_mat(tmp_path: Path, fresh_cache: Path, split: str) -> None:
    x, y = _write_svhn(tmp_path, split, n=30, seed=1)
    svhn = load_split("svhn", split, root=tmp_path, download=False)
    assert svhn.images.shape == (30, 3, 32, 32)
    assert svhn.images.dtype == torch.uint8
    assert torch.equal(svhn.images, torch.from_numpy(x.transpose(3, 2, 0, 1).copy()))
    expected = torch.from_numpy(y[:, 0].astype(np.int64))
    expected[expected == 10] = 0
    assert torch.equal(svhn.labels, expected)
    assert int(svhn.labels[0]) == 0
    assert svhn.classes == tuple(str(d) for d in range(10))


def _write_cifar(root: Path, name: str, n: int, seed: int, splits=("train", "test")) -> dict:
    """Pickles in the layout torchvision reads (see torchvision/datasets/cifar.py)."""
    cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
    base = root / cls.base_folder
    base.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    n_classes = 10 if name == "cifar10" else 100
    label_key = "labels" if name == "cifar10" else "fine_labels"
    written: dict[str, tuple[np.ndarray, list[int]]] = {}
    for split in splits:
        files = [f for f, _ in (cls.train_list if split == "train" else cls.test_list)]
        rows, labels = [], []
        for f in files:
            x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
            lab = [int(v) for v in rng.integers(0, n_classes, n)]
            entry = {"data": x, label_key: lab, "filenames": [f"{i}.png" for i in range(n)]}
            if name == "cifar100":
                entry["coarse_labels"] = [v // 5 for v in lab]
            with open(base / f, "wb") as fh:
                pickle.dump(entry, fh)
            rows.append(x)
            labels += lab
        written[split] = (np.concatenate(rows), labels)
    names = [f"class_{i:02d}" for i in range(n_classes)]
    meta = {cls.meta["key"]: names}
    if name == "cifar100":
        meta["coarse_label_names"] = [f"super_{i}" for i in range(20)]
    with open(base / cls.meta["filename"], "wb") as fh:
        pickle.dump(meta, fh)
    written["classes"] = names
    return written


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar_from_generated_pickles(
    tmp_path: Path, fresh_cache: Path, name: str, split: str
) -> None:
    written = _write_cifar(tmp_path, name, n=8, seed=2)
    x, labels = written[split]
    cifar = load_split(name, split, root=tmp_path, download=False)
    assert cifar.images.shape == (len(x), 3, 32, 32)
    assert cifar.images.is_contiguous()
    assert torch.equal(cifar.images, torch.from_numpy(x.reshape(-1, 3, 32, 32)))
    assert cifar.labels.tolist() == labels
    assert cifar.classes == tuple(written["classes"])


def test_cifar100_missing_split_is_unavailable(tmp_path: Path, fresh_cache: Path) -> None:
    _write_cifar(tmp_path, "cifar100", n=8, seed=3, splits=("test",))
    assert len(load_split("cifar100", "test", root=tmp_path, download=False)) == 8
    with pytest.raises(DataUnavailableError, match="cifar-100-python"):
        load_split("cifar100", "train", root=tmp_path, download=False)


# ------------------------------------------------------------------------------------------------
# Image folders


def _write_image_folder(split_dir: Path, n_per_class: int, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    for cls in ("b_class", "a_class", "c_class"):
        (split_dir / cls).mkdir(parents=True)
        for i in range(n_per_class):
            x = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(x).save(split_dir / cls / f"{i}.png")


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
    _write_image_folder(tmp_path / "cifar10" / "test", n_per_class=2, size=(32, 32))
    odd = tmp_path / "cifar10" / "test" / "c_class" / "odd.png"
    Image.fromarray(np.zeros((30, 32, 3), dtype=np.uint8)).save(odd)
    with pytest.raises(ValueError, match="odd.png"):
        load_split("cifar10", "test", root=tmp_path, download=False)


def test_image_folder_rejects_undecodable_file(tmp_path: Path, fresh_cache: Path) -> None:
    _write_image_folder(tmp_path / "cifar10" / "test", n_per_class=2, size=(32, 32))
    bad = tmp_path / "cifar10" / "test" / "a_class" / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        load_split("cifar10", "test", root=tmp_path, download=False)


# ------------------------------------------------------------------------------------------------
# Roots and errors


def test_resolve_data_root_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NETINV_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_root(tmp_path / "explicit") == (tmp_path / "explicit").resolve()
    assert resolve_data_root() == (tmp_path / "env").resolve()
    monkeypatch.delenv("NETINV_DATA")
    assert resolve_data_root() == (tmp_path / "xdg" / "netinv" / "data").resolve()
    monkeypatch.delenv("NETINV_CACHE")
    assert data.cache_dir() == (tmp_path / "xdg" / "netinv" / "decoded").resolve()


def test_unknown_name_lists_valid_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="choose one of: " + ", ".join(DATASET_NAMES)):
        load_split("imagenet", "test", root=tmp_path, download=False)
    with pytest.raises(ValueError, match="split"):
        load_split("mnist", "val", root=tmp_path, download=False)


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_missing_without_download_names_paths(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataUnavailableError) as info:
        load_split(name, "test", root=tmp_path, download=False)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "download=False" in message
    assert str(tmp_path / name / "test") in message  # the image-folder path
    native = {
        "mnist": tmp_path / "MNIST" / "raw",
        "fashionmnist": tmp_path / "FashionMNIST" / "raw",
        "cifar10": tmp_path / "cifar-10-batches-py",
        "cifar100": tmp_path / "cifar-100-python",
        "svhn": tmp_path / "svhn",
        "tinyimagenet": tmp_path / "tiny-imagenet-200",
    }[name]
    assert str(native) in message
    assert "NETINV_DATA" in message
    assert not any(tmp_path.iterdir())  # nothing was written into the data root


UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: connection refused at once


@pytest.mark.parametrize("name", ["svhn", "mnist", "cifar100", "tinyimagenet"])
def test_failed_download_raises_data_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    # Point torchvision at an unreachable mirror, so the test never downloads for real.
    monkeypatch.setattr(
        tvd.SVHN,
        "split_list",
        {k: [UNREACHABLE + v[1], v[1], v[2]] for k, v in tvd.SVHN.split_list.items()},
    )
    monkeypatch.setattr(tvd.MNIST, "mirrors", [UNREACHABLE])
    monkeypatch.setattr(tvd.CIFAR100, "url", UNREACHABLE + "cifar-100-python.tar.gz")
    monkeypatch.setattr(data, "TINYIMAGENET_URL", UNREACHABLE + "tiny-imagenet-200.zip")
    root = tmp_path / "empty"
    with pytest.raises(DataUnavailableError, match="download") as info:
        load_split(name, "test", root=root, download=True)
    assert info.value.__cause__ is not None
    assert str(root) in str(info.value)
    assert "127.0.0.1" in str(info.value) or "torchvision.datasets" in str(info.value)


def test_download_into_read_only_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "read-only"
    root.mkdir()
    root.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(DataUnavailableError, match="not writable"):
            load_split("svhn", "test", root=root, download=True)
        assert not any(root.iterdir())
    finally:
        root.chmod(stat.S_IRWXU)


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
    _write_cifar(root, "cifar100", n=40, seed=5)
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
