"""Real normalised loaders for the adapter tests: MNIST test (ID) and FashionMNIST test (OOD),
500 images each, through torchvision's ``Normalize`` as a user's pipeline would give them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

MNIST_NORM = ((0.1307,), (0.3081,))  # the usual torchvision MNIST normalisation
COUNT = 500


class Normalized(Dataset):
    """uint8 (N, 1, 28, 28) images as ``ToDtype(float32, scale=True)`` + ``Normalize``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels
        self.transform = v2.Compose([v2.ToDtype(torch.float32, scale=True),
                                     v2.Normalize(*MNIST_NORM)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[i]), int(self.labels[i])


@pytest.fixture(scope="module")
def pixels(data_root: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """name -> (uint8 images, labels): the first COUNT test images of mnist, fashionmnist."""
    from netinv.data import load_split

    out = {}
    for name in ("mnist", "fashionmnist"):
        split = load_split(name, "test", root=data_root, download=False)
        out[name] = (split.images[:COUNT], split.labels[:COUNT])
    return out


@pytest.fixture(scope="module")
def loaders(pixels: dict) -> dict[str, DataLoader]:
    """name -> a DataLoader of normalised (x, y) batches of 128."""
    return {name: DataLoader(Normalized(*pair), batch_size=128) for name, pair in pixels.items()}
