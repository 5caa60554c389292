"""Tests of netinv.datasets.sources: data roots, layouts looked at, and downloads."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import torchvision.datasets as tvd

from netinv.datasets import DATASET_NAMES, DataUnavailableError, cache_dir, load_split
from netinv.datasets import resolve_data_root, sources
from tests.helpers.datasets import (
    http_server,
    write_cifar,
    write_dtd_archive,
    write_idx_archives,
    write_places365_archives,
)

pytestmark = pytest.mark.usefixtures("shared_cache")


def test_resolve_data_root_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NETINV_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_root(tmp_path / "explicit") == (tmp_path / "explicit").resolve()
    assert resolve_data_root() == (tmp_path / "env").resolve()
    monkeypatch.delenv("NETINV_DATA")
    assert resolve_data_root() == (tmp_path / "xdg" / "netinv" / "data").resolve()
    monkeypatch.delenv("NETINV_CACHE")
    assert cache_dir() == (tmp_path / "xdg" / "netinv" / "decoded").resolve()


@pytest.mark.parametrize(("name", "cls"), [("cifar10", tvd.CIFAR10), ("cifar100", tvd.CIFAR100)])
def test_cifar_layouts_match_torchvision(name: str, cls: type) -> None:
    layout = sources.CIFAR_LAYOUTS[name]
    assert layout.folder == cls.base_folder
    assert list(layout.train) == [f for f, _ in cls.train_list]
    assert list(layout.test) == [f for f, _ in cls.test_list]
    assert (layout.meta, layout.classes_key) == (cls.meta["filename"], cls.meta["key"])


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
        "kmnist": tmp_path / "KMNIST" / "raw",
        "dtd": tmp_path / "dtd" / "dtd" / "labels",
        "places365": tmp_path / "places365",
    }[name]
    assert str(native) in message
    assert "NETINV_DATA" in message
    assert not any(tmp_path.iterdir())  # nothing was written into the data root


def test_cifar100_missing_split_is_unavailable(tmp_path: Path, fresh_cache: Path) -> None:
    write_cifar(tmp_path, "cifar100", n=8, seed=3, splits=("test",))
    assert len(load_split("cifar100", "test", root=tmp_path, download=False)) == 8
    with pytest.raises(DataUnavailableError, match="cifar-100-python"):
        load_split("cifar100", "train", root=tmp_path, download=False)


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
    monkeypatch.setattr(sources, "TINYIMAGENET_URL", UNREACHABLE + "tiny-imagenet-200.zip")
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
# The named OOD sets that torchvision downloads: small archives in their official formats,
# served over HTTP to the real download_url / extract_archive


def test_kmnist_downloads_and_decodes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                      fresh_cache: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    written = write_idx_archives(served, n=12, seed=1)
    monkeypatch.setattr(tvd.KMNIST, "resources", [(f, md5) for f, (md5, _) in written.items()])
    with http_server(served) as url:
        monkeypatch.setattr(tvd.KMNIST, "mirrors", [url])
        data = load_split("kmnist", "test", root=tmp_path / "root", download=True)
    assert data.images.shape == (12, 1, 28, 28) and data.labels.tolist() == [i % 10 for i in
                                                                           range(12)]
    assert data.classes[:3] == ("o", "ki", "su")
    assert (tmp_path / "root" / "KMNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()


def test_dtd_downloads_and_decodes_mixed_sizes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                               fresh_cache: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    filename, md5 = write_dtd_archive(served, per_class=4, seed=2)
    with http_server(served) as url:
        monkeypatch.setattr(tvd.DTD, "_URL", url + filename)
        monkeypatch.setattr(tvd.DTD, "_MD5", md5)
        data = load_split("dtd", "test", root=tmp_path / "root", download=True)
    ours = tvd.DTD(str(tmp_path / "root"), split="test", partition=1)  # torchvision's own reader
    assert data.classes == tuple(ours.classes) and data.labels.tolist() == ours._labels
    assert data.images.shape == (6, 3, 64, 64)  # mixed sizes, decoded at PHOTO_SIZE


def test_places365_downloads_its_val_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                         fresh_cache: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    md5s = write_places365_archives(served, n=5, seed=3)
    places = tvd.Places365
    with http_server(served) as url:
        monkeypatch.setattr(places, "_BASE_URL", url)
        monkeypatch.setattr(places, "_DEVKIT_META", {"standard": (
            places._DEVKIT_META["standard"][0], md5s[places._DEVKIT_META["standard"][0]])})
        val = places._IMAGES_META[("val", True)][0]
        monkeypatch.setattr(places, "_IMAGES_META", {("val", True): (val, md5s[val])})
        data = load_split("places365", "test", root=tmp_path / "root", download=True)
    assert data.images.shape == (5, 3, 64, 64) and data.labels.tolist() == [0, 1, 2, 0, 1]
    assert data.classes == ("/a/airfield", "/b/bakery/shop", "/c/canyon")
    with pytest.raises(ValueError, match="places365 is read as an OOD set.*split='train'"):
        load_split("places365", "train", root=tmp_path / "root", download=False)
