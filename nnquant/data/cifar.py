"""CIFAR-10 and CIFAR-100 from the official Python pickle batches, with the paper's crop-and-flip augmentation."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from nnquant.data._common import check_split, normalize, require_dir, train_val_slice

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


def random_crop_flip(images: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """RandomCrop(H×W, padding) + RandomHorizontalFlip(0.5) on a batch (N, C, H, W), vectorised.

    Pads with zeros like torchvision does on the raw image, so apply it *before* normalisation.
    """
    n, _, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    top = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator)
    flip = torch.rand(n, 1, generator=generator) < 0.5
    rows = top + torch.arange(h)  # (N, H)
    cols = left + torch.arange(w)  # (N, W)
    cols = torch.where(flip, cols.flip(1), cols)  # a flipped crop reads its columns backwards
    out = padded[torch.arange(n)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


class CIFARDataset(Dataset):
    """uint8 images (N, 3, 32, 32) kept as one tensor; items are normalised float32 (3, 32, 32) + int64 label.

    With ``augment`` each item gets ``random_crop_flip`` (padding 4) drawn from ``generator`` (or the global
    RNG). A generator is copied into every DataLoader worker, so with ``num_workers > 0`` prefer the global RNG,
    which DataLoader seeds per worker.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        augment: bool = False,
        generator: torch.Generator | None = None,
    ):
        self.images, self.labels = images, labels
        self.augment, self.generator = augment, generator

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[i].float().div_(255.0)
        if self.augment:
            x = random_crop_flip(x[None], 4, self.generator)[0]
        return normalize(x, CIFAR_MEAN, CIFAR_STD), self.labels[i]


def _read_cifar_pickle(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """One official CIFAR python pickle -> uint8 images (N, 3, 32, 32), int64 labels (N,)."""
    if not path.is_file():
        raise FileNotFoundError(f"missing CIFAR file: {path}")
    try:  # the official files are pickles (only load files you trust)
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except Exception as e:  # pickle raises many types on corrupt input
        raise ValueError(f"{path}: not a readable CIFAR pickle ({type(e).__name__}: {e})") from e
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a dict, got {type(d).__name__}")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or label_key not in d:
        raise ValueError(f"{path}: missing key 'data' or {label_key!r} (keys: {sorted(d)})")
    data, labels = np.asarray(d["data"]), np.asarray(d[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    if labels.shape != (len(data),):
        raise ValueError(f"{path}: {len(data)} images but {labels.size} labels")
    # Rows are the R, G, B planes of 32×32 each, row-major: a plain reshape gives (N, 3, 32, 32).
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar(
    root: str | Path,
    split: str,
    num_classes: int = 10,
    augment: bool | None = None,
    *,
    val_size: int = 5_000,
    generator: torch.Generator | None = None,
) -> CIFARDataset:
    """CIFAR-10/100 from the official python pickles.

    Files: CIFAR-10 ``data_batch_1..5`` + ``test_batch`` (key ``labels``) in ``root`` or
    ``root/cifar-10-batches-py``; CIFAR-100 ``train`` + ``test`` (key ``fine_labels``) in ``root`` or
    ``root/cifar-100-python``.

    Split: "train" = official training images 0 .. n - ``val_size`` - 1 (0..44,999), "val" = the last
    ``val_size`` (45,000..49,999), "test" = the test set. ``val_size`` can be lowered for small files.

    ``augment`` (default: True for "train" only) = RandomCrop(32, padding=4) + horizontal flip, then
    normalisation with mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010). The reference code
    also augments its validation images (it reuses the train dataset object); we deliberately do not:
    augmentation on "val" or "test" is refused.

    Items: float32 (3, 32, 32), int64 label.
    """
    check_split(split)
    if num_classes not in (10, 100):
        raise ValueError(f"num_classes must be 10 or 100, got {num_classes}")
    if augment is None:
        augment = split == "train"
    elif augment and split != "train":
        raise ValueError(f"augmentation is only for the train split, not {split!r}")
    root = require_dir(root)
    if num_classes == 10:
        subdir, label_key = "cifar-10-batches-py", "labels"
        names = ["test_batch"] if split == "test" else [f"data_batch_{i}" for i in range(1, 6)]
    else:
        subdir, label_key = "cifar-100-python", "fine_labels"
        names = ["test"] if split == "test" else ["train"]
    if (root / subdir).is_dir():
        root = root / subdir

    parts = [_read_cifar_pickle(root / name, label_key) for name in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{root}: labels out of range 0..{num_classes - 1}")
    if split != "test":
        sel = train_val_slice(len(images), split, val_size, root)
        images, labels = images[sel], labels[sel]
    return CIFARDataset(torch.from_numpy(images.copy()), torch.from_numpy(labels), augment, generator)
