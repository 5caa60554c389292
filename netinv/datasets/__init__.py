"""Datasets of the study: find, download, decode once, cache.

Six datasets are known (``DATASET_NAMES``). Each is looked for under one data root
(``resolve_data_root``) in the layouts users get from the official downloads, first match wins:

=============  ==============================================================================
mnist          ``<root>/MNIST/raw/*-ubyte`` (torchvision's IDX files), else an image folder
fashionmnist   ``<root>/FashionMNIST/raw/*-ubyte`` (torchvision's IDX files), else an image folder
cifar10        ``<root>/cifar-10-batches-py/`` (torchvision pickles), else an image folder
cifar100       ``<root>/cifar-100-python/`` (torchvision pickles), else an image folder
svhn           ``<root>/svhn/{train,test}_32x32.mat`` (torchvision), else an image folder
tinyimagenet   ``<root>/tiny-imagenet-200/`` (official zip; split "test" is its ``val/``),
               else an image folder
=============  ==============================================================================

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
(``load_split``).
"""

from __future__ import annotations

from netinv.config import DATASET_NAMES
from netinv.datasets.cache import cache_dir
from netinv.datasets.decode import ImageSet
from netinv.datasets.load import ensure_available, load_split
from netinv.datasets.sources import SPLITS, DataUnavailableError, resolve_data_root

__all__ = [
    "DATASET_NAMES",
    "SPLITS",
    "DataUnavailableError",
    "ImageSet",
    "cache_dir",
    "ensure_available",
    "load_split",
    "resolve_data_root",
]
