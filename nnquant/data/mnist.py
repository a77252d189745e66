"""MNIST and Fashion-MNIST from their official IDX files (gzip-compressed or not)."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from nnquant.data._common import check_split, require_dir, train_val_slice

# (mean, std) of the pixel values in [0, 1]. MNIST: the reference code's values. Fashion-MNIST: its own
# statistics over the 60k training images (the reference code has no Fashion-MNIST).
MNIST_STATS = {"mnist": (0.1307, 0.3081), "fashion-mnist": (0.2860, 0.3530)}
_IDX_IMAGES, _IDX_LABELS = 0x00000803, 0x00000801  # IDX magic: 0, 0, dtype 0x08 (uint8), number of dims


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """Read an IDX file (raw or gzip) with uint8 data and the expected ``magic``; returns a read-only array."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # truncated/corrupt gzip stream
        raise ValueError(f"{path}: cannot read IDX file ({e})") from e
    if len(raw) < 4:
        raise ValueError(f"{path}: truncated IDX file ({len(raw)} bytes, no header)")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: bad IDX magic number 0x{found:08x}, expected 0x{magic:08x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, expected {header})")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(dims)
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "trailing bytes in"
        raise ValueError(f"{path}: {problem} IDX file: {len(raw)} bytes, header dims {dims} need {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find_idx(root: Path, stem: str) -> Path:
    for path in (root / stem, root / f"{stem}.gz"):
        if path.is_file():
            return path
    raise FileNotFoundError(f"missing IDX file: neither {root / stem} nor {root / stem}.gz exists")


def load_mnist(root: str | Path, split: str, *, variant: str = "mnist", val_size: int = 10_000) -> TensorDataset:
    """MNIST or Fashion-MNIST from the official IDX files (``{train,t10k}-{images-idx3,labels-idx1}-ubyte``,
    raw or ``.gz``) in ``root``.

    ``split``: "train" = first 60k - ``val_size`` (50,000) official training images, "val" = the last
    ``val_size`` (10,000), "test" = the official t10k set. ``variant`` ("mnist" | "fashion-mnist") picks the
    normalisation: (0.1307, 0.3081) for MNIST as in the reference code, (0.2860, 0.3530) for Fashion-MNIST.
    No augmentation (as in the paper).

    Returns a ``TensorDataset`` of images float32 (N, 1, 28, 28) and labels int64 (N,), both one tensor each.
    """
    check_split(split)
    if variant not in MNIST_STATS:
        raise ValueError(f"unknown MNIST variant {variant!r}; expected one of {tuple(MNIST_STATS)}")
    root = require_dir(root)
    prefix = "t10k" if split == "test" else "train"
    img_path = _find_idx(root, f"{prefix}-images-idx3-ubyte")
    lbl_path = _find_idx(root, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(img_path, _IDX_IMAGES), read_idx(lbl_path, _IDX_LABELS)
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{img_path}: images are {images.shape[1:]}, expected (28, 28)")
    if len(images) != len(labels):
        raise ValueError(f"{img_path} has {len(images)} images but {lbl_path} has {len(labels)} labels")
    if len(labels) and labels.max() > 9:
        raise ValueError(f"{lbl_path}: label {labels.max()} out of range 0..9")

    sel = slice(None) if split == "test" else train_val_slice(len(images), split, val_size, img_path)
    # Convert only the selected slice: one float tensor, no copy of the full set.
    x = torch.from_numpy(images[sel].astype(np.float32)).unsqueeze(1).div_(255.0)
    mean, std = MNIST_STATS[variant]
    x.sub_(mean).div_(std)
    y = torch.from_numpy(labels[sel].astype(np.int64))
    return TensorDataset(x, y)
