"""Tests of netinv.datasets.memory: in-memory ID sets from tensors or a torch Dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from netinv.data import from_dataset, from_tensors


class _Pairs(Dataset):
    """(image, label) items, as a user's Dataset yields them."""

    def __init__(self, items: list) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def test_from_tensors_keeps_pixels_labels_and_names() -> None:
    images = torch.randint(0, 256, (6, 3, 8, 10), dtype=torch.uint8)
    data = from_tensors(images, [0, 1, 2, 0, 1, 2], ["a", "b", "c"], name="parts")
    assert torch.equal(data.images, images) and data.labels.dtype == torch.int64
    assert data.classes == ("a", "b", "c") and data.name == "parts"


@pytest.mark.parametrize(("images", "labels", "classes", "error", "match"), [
    (torch.zeros(2, 1, 4, 4), [0, 1], ["a", "b"], TypeError, r"uint8.*dtype=torch.float32"),
    (torch.zeros(2, 2, 4, 4, dtype=torch.uint8), [0, 1], ["a", "b"], ValueError,
     r"C in \{1, 3\}; got shape=\(2, 2, 4, 4\)"),
    (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), [0, 2], ["a", "b"], ValueError,
     r"labels must lie in \[0, 2\).*\[0, 2\]"),
    (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), [0.0, 1.0], ["a", "b"], TypeError,
     r"labels must be integers"),
    (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), [0, 1], ["a", "a"], ValueError,
     r"distinct strings"),
    (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), [0], ["a", "b"], ValueError,
     r"shape \(N,\) = \(2,\)"),
])
def test_from_tensors_refuses_bad_input(images, labels, classes, error: type,
                                        match: str) -> None:
    with pytest.raises(error, match=match):
        from_tensors(images, labels, classes)


def test_from_dataset_reads_pil_and_tensor_images_once() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 6, 5), dtype=np.uint8)
    pil = _Pairs([(Image.fromarray(p, mode="L"), i % 2) for i, p in enumerate(pixels)])
    data = from_dataset(pil, classes=["x", "y"])
    assert torch.equal(data.images[:, 0], torch.from_numpy(pixels))  # grey PIL -> 1 channel
    floats = _Pairs([(torch.from_numpy(p).float()[None] / 255, i) for i, p in enumerate(pixels)])
    assert torch.equal(from_dataset(floats).images, data.images)  # [0, 1] floats -> same pixels
    assert from_dataset(floats).classes == ("0", "1", "2")


def test_from_dataset_takes_its_class_names() -> None:
    items = _Pairs([(torch.zeros(3, 4, 4, dtype=torch.uint8), 1)] * 2)
    items.classes = ["cat", "dog"]
    assert from_dataset(items).classes == ("cat", "dog")


@pytest.mark.parametrize(("items", "error", "match"), [
    ([(torch.zeros(1, 4, 4), 0), (torch.zeros(1, 5, 4), 0)], ValueError,
     r"item 0 has \(1, 4, 4\), item 1 has \(1, 5, 4\)"),
    ([(torch.full((1, 4, 4), 2.0), 0)], ValueError, r"\[0, 1\] \(undo Normalize first\); item 0"),
    ([("a.png", 0)], TypeError, r"PIL images or tensors; item 0 is str"),
    ([torch.zeros(1, 4, 4)], TypeError, r"\(image, label\); item 0 is Tensor"),
])
def test_from_dataset_names_the_bad_item(items: list, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        from_dataset(_Pairs(items))
