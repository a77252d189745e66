"""Helpers shared by the dataset loaders: split names, the paper's train/val split, normalisation."""

from __future__ import annotations

from pathlib import Path

import torch

SPLITS = ("train", "val", "test")


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def require_dir(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset directory not found: {root}")
    return root


def train_val_slice(n: int, split: str, val_size: int, where: Path) -> slice:
    """The paper's fixed split of an official training set: first n - val_size / last val_size items."""
    if not 0 < val_size < n:
        raise ValueError(f"{where}: val_size={val_size} must be in (0, {n}) for a training set of {n} items")
    return slice(0, n - val_size) if split == "train" else slice(n - val_size, n)


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(..., C, H, W) in [0, 1] -> per-channel standardised."""
    m = torch.tensor(mean, dtype=x.dtype).view(-1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(-1, 1, 1)
    return (x - m) / s
