"""Tests of netinv.datasets.cache: entries per source, served when the source is gone, and
decoded again when files are replaced or added."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from netinv.datasets import ImageSet, load_split
from netinv.datasets.cache import fingerprint
from tests.helpers.datasets import write_cifar, write_image_folder

pytestmark = pytest.mark.usefixtures("shared_cache")


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
    write_image_folder(tmp_path / "svhn" / "test", n_per_class=20, size=(32, 32))
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


def _later(path: Path) -> None:
    """Move ``path``'s modification time 10 s on, as a copy made later would have."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000_000))


def test_replaced_and_added_images_are_decoded_again(tmp_path: Path, fresh_cache: Path) -> None:
    split_dir = tmp_path / "cifar10" / "test"
    write_image_folder(split_dir, n_per_class=3, size=(8, 8))
    first = load_split("cifar10", "test", root=tmp_path, download=False)
    assert first.images.shape == (9, 3, 8, 8)

    # Same name, new content and mtime: b_class/0.png is image 3 (a_class sorts first).
    replaced = split_dir / "b_class" / "0.png"
    Image.fromarray(np.full((8, 8, 3), 77, dtype=np.uint8)).save(replaced)
    _later(replaced)
    second = load_split("cifar10", "test", root=tmp_path, download=False)
    assert torch.all(second.images[3] == 77)
    assert not torch.equal(second.images[3], first.images[3])
    assert torch.equal(second.images[:3], first.images[:3])

    # One more image in c_class: one more row, last.
    Image.fromarray(np.full((8, 8, 3), 5, dtype=np.uint8)).save(split_dir / "c_class" / "9.png")
    third = load_split("cifar10", "test", root=tmp_path, download=False)
    assert third.images.shape == (10, 3, 8, 8)
    assert torch.all(third.images[-1] == 5)
    assert third.labels.tolist() == [0] * 3 + [1] * 3 + [2] * 4
    # The stale entries were removed: one entry (images, labels, json) is left.
    assert len(list(fresh_cache.iterdir())) == 3


def test_replaced_pickle_batch_is_decoded_again(tmp_path: Path, fresh_cache: Path) -> None:
    first = write_cifar(tmp_path, "cifar100", n=6, seed=7, splits=("test",))
    assert load_split("cifar100", "test", root=tmp_path, download=False).labels.tolist() == (
        first["test"][1]
    )
    second = write_cifar(tmp_path, "cifar100", n=6, seed=8, splits=("test",))
    _later(tmp_path / "cifar-100-python" / "test")
    again = load_split("cifar100", "test", root=tmp_path, download=False)
    assert torch.equal(again.images, torch.from_numpy(second["test"][0].reshape(-1, 3, 32, 32)))


def test_fingerprint_follows_size_and_mtime(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(b"12345")
    key = fingerprint([path])
    assert fingerprint([path]) == key
    _later(path)
    moved = fingerprint([path])
    assert moved != key
    st = path.stat()
    path.write_bytes(b"123456")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # only the size differs now
    assert fingerprint([path]) not in (key, moved)
