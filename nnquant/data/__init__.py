"""Datasets of the paper's experiments (MNIST, Fashion-MNIST, CIFAR-10/100, TinyImageNet-200), no torchvision.

Every loader takes the directory that holds the official files and a split name:

* ``"train"`` / ``"val"``: the paper's fixed split of the official training set (MNIST 50k / 10k,
  CIFAR 45k / 5k: the *last* ``val_size`` images are the validation set, as in the reference code),
* ``"test"``: the official test set (TinyImageNet has no test labels: its official val set is both
  ``"val"`` and ``"test"``, as in the paper).

Items are ``(image, label)`` with ``image`` float32 of shape (C, H, W), already normalised, and ``label`` an
int64 scalar tensor. Nothing is downloaded; bad or missing files raise ``FileNotFoundError``/``ValueError``
naming the path and the problem.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset

from nnquant.data._common import SPLITS
from nnquant.data.cifar import CIFAR_MEAN, CIFAR_STD, CIFARDataset, load_cifar, random_crop_flip
from nnquant.data.mnist import MNIST_STATS, load_mnist, read_idx
from nnquant.data.tinyimagenet import IMAGENET_MEAN, IMAGENET_STD, ImageFileDataset, load_tinyimagenet

DATASET_NAMES = ("mnist", "fashion-mnist", "cifar10", "cifar100", "tinyimagenet")

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "DATASET_NAMES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MNIST_STATS",
    "SPLITS",
    "CIFARDataset",
    "ImageFileDataset",
    "default_data_root",
    "load_cifar",
    "load_dataset",
    "load_mnist",
    "load_tinyimagenet",
    "random_crop_flip",
    "read_idx",
]


def default_data_root(name: str) -> Path | None:
    """``<repo>/../shared/data/<name>`` if that directory exists, else None."""
    path = Path(__file__).resolve().parents[2].parent / "shared" / "data" / name
    return path if path.is_dir() else None


def load_dataset(name: str, root: str | Path | None, split: str, **kw) -> Dataset:
    """Dispatch to the loader of ``name`` (one of ``DATASET_NAMES``); ``root=None`` uses ``default_data_root``."""
    loaders: dict[str, Callable[..., Dataset]] = {
        "mnist": lambda r, s, **k: load_mnist(r, s, variant="mnist", **k),
        "fashion-mnist": lambda r, s, **k: load_mnist(r, s, variant="fashion-mnist", **k),
        "cifar10": lambda r, s, **k: load_cifar(r, s, num_classes=10, **k),
        "cifar100": lambda r, s, **k: load_cifar(r, s, num_classes=100, **k),
        "tinyimagenet": load_tinyimagenet,
    }
    if name not in loaders:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASET_NAMES}")
    if root is None:
        root = default_data_root(name)
        if root is None:
            raise FileNotFoundError(f"no root given for {name!r} and no default directory ../shared/data/{name}")
    return loaders[name](root, split, **kw)
