"""Datasets of the study: find, download, decode once, cache.

Nine datasets are known (``DATASET_NAMES``). Each is looked for under one data root
(``resolve_data_root``) in the layouts users get from the official downloads, first match wins:

=============  ==============================================================================
mnist          ``<root>/MNIST/raw/*-ubyte`` (torchvision's IDX files), else an image folder
fashionmnist   ``<root>/FashionMNIST/raw/*-ubyte`` (torchvision's IDX files), else an image folder
cifar10        ``<root>/cifar-10-batches-py/`` (torchvision pickles), else an image folder
cifar100       ``<root>/cifar-100-python/`` (torchvision pickles), else an image folder
svhn           ``<root>/svhn/{train,test}_32x32.mat`` (torchvision), else an image folder
tinyimagenet   ``<root>/tiny-imagenet-200/`` (official zip; split "test" is its ``val/``),
               else an image folder
kmnist         ``<root>/KMNIST/raw/*-ubyte`` (torchvision's IDX files), else an image folder
dtd            ``<root>/dtd/dtd/`` (torchvision's DTD, Textures; splits are partition 1's
               lists), decoded at 64x64 (``decode.PHOTO_SIZE``), else an image folder
places365      ``<root>/places365/`` (torchvision's Places365 devkit + ``val_256``): only split
               "test", the official 36,500-image validation set, decoded at 64x64
=============  ==============================================================================

The user's own data is ``folder:<absolute path>`` (the config makes paths absolute): a tree
``<path>/{train,test}/<class>/*`` uses its own splits; a tree ``<path>/<class>/*`` is decoded
whole (split "all") and split per class with a fixed seed (``load.split_tree``). Classes are the
sorted folder names; a tree is greyscale when every image is, else RGB; images of another size
than the tree's most common one are resized to it (a warning says how many). A missing folder,
no class folders, an empty class, an image that does not decode: an error naming the folder or
file. In-memory ID sets: ``memory.from_tensors`` and ``memory.from_dataset``.

An image folder is ``<root>/<name>/<split>/<class>/*.{png,jpg,jpeg,bmp}``; ``<name>`` matches
case-insensitively and also in torchvision's spelling (``CIFAR10``, ``FashionMNIST``, ...).
Classes are the sorted folder names.

A split is decoded once into uint8 ``(N, C, H, W)`` and cached as ``.npy`` files in
``cache_dir()`` (never inside the data root, which may be read-only), keyed by the path, size
and modification time of every file read, so replaced or added files are decoded again; later
loads are one ``np.load``. Missing data is downloaded into the data root when ``download=True``
(torchvision's md5-checked downloaders), else ``DataUnavailableError`` names every path looked
at.

Safe to read from an untrusted data root: IDX files are checked against their headers, CIFAR's
pickles are read by a restricted unpickler that builds numpy arrays and plain values only
(anything else is refused, naming the file, before it runs), SVHN's ``.mat`` files by scipy
(no pickles), images by PIL.

Modules: ``sources`` (where each layout lives, downloads), ``formats`` (IDX, pickles, image
files), ``decode`` (one split into arrays), ``cache`` (the decode cache), ``load``
(``load_split``, ``split_tree``), ``memory`` (in-memory ID sets).
"""

from __future__ import annotations

from netinv.config import DATASET_NAMES
from netinv.datasets.cache import cache_dir
from netinv.datasets.decode import ImageSet
from netinv.datasets.load import ensure_available, load_split, split_tree
from netinv.datasets.memory import from_dataset, from_tensors
from netinv.datasets.sources import SPLITS, DataUnavailableError, resolve_data_root

__all__ = [
    "DATASET_NAMES",
    "SPLITS",
    "DataUnavailableError",
    "ImageSet",
    "cache_dir",
    "ensure_available",
    "from_dataset",
    "from_tensors",
    "load_split",
    "resolve_data_root",
    "split_tree",
]
