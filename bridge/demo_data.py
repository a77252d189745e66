"""The embedded default data: a fixed 5k/1k/1k MNIST subset shipped with the package (works offline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from nnquant.data import MNIST_STATS

ASSET = Path(__file__).with_name("assets") / "mnist_subset.npz"


def load_demo_mnist(split: str) -> TensorDataset:
    """split "train" (5,000), "val" or "test" (1,000 each): float32 (N, 1, 28, 28) normalised as MNIST, int64 labels."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    with np.load(ASSET) as f:
        images, labels = f[f"{split}_images"], f[f"{split}_labels"]
    mean, std = MNIST_STATS["mnist"]
    x = (torch.from_numpy(images).float().div_(255).sub_(mean).div_(std)).unsqueeze(1)
    return TensorDataset(x, torch.from_numpy(labels.astype(np.int64)))
