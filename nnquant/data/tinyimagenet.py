"""TinyImageNet-200 from its official folder of JPEG files (train/<wnid>/images, val/val_annotations.txt)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from nnquant.data._common import check_split, normalize, require_dir

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


_IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}


def _uniform(lo: float, hi: float, g: torch.Generator | None) -> float:
    return lo + (hi - lo) * torch.rand(1, generator=g).item()


def _randint(lo: int, hi: int, g: torch.Generator | None) -> int:
    """Integer in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g).item())


def _random_resized_box(w: int, h: int, g: torch.Generator | None) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box: scale (0.08, 1), ratio (3/4, 4/3), 10 tries, then a centre crop."""
    area = w * h
    for _ in range(10):
        target = area * _uniform(0.08, 1.0, g)
        ratio = math.exp(_uniform(math.log(3 / 4), math.log(4 / 3), g))
        cw, ch = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            top, left = _randint(0, h - ch, g), _randint(0, w - cw, g)
            return left, top, left + cw, top + ch
    cw, ch = w, h  # fallback: the largest centred box whose aspect ratio is within the range
    if w / h < 3 / 4:
        ch = round(w / (3 / 4))
    elif w / h > 4 / 3:
        cw = round(h * 4 / 3)
    left, top = (w - cw) // 2, (h - ch) // 2
    return left, top, left + cw, top + ch


class ImageFileDataset(Dataset):
    """Lazily decoded image files (PIL) + int64 labels; items are normalised float32 (3, 64, 64).

    Train (``augment``): RandomResizedCrop(64) + horizontal flip; otherwise CenterCrop(64). ImageNet mean/std.
    """

    size = 64

    def __init__(
        self,
        paths: list[str],
        labels: torch.Tensor,
        classes: list[str],
        augment: bool = False,
        generator: torch.Generator | None = None,
    ):
        self.paths, self.labels, self.classes = paths, labels, classes
        self.augment, self.generator = augment, generator

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        with Image.open(self.paths[i]) as f:
            img = f.convert("RGB")  # some TinyImageNet images are greyscale
        s = self.size
        if self.augment:
            box = _random_resized_box(img.width, img.height, self.generator)
            img = img.resize((s, s), Image.Resampling.BILINEAR, box=box)
            if torch.rand(1, generator=self.generator).item() < 0.5:
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        else:
            top, left = round((img.height - s) / 2), round((img.width - s) / 2)
            img = img.crop((left, top, left + s, top + s))  # PIL fills outside the image with black
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return normalize(x, IMAGENET_MEAN, IMAGENET_STD), self.labels[i]


def load_tinyimagenet(
    root: str | Path, split: str, augment: bool | None = None, *, generator: torch.Generator | None = None
) -> ImageFileDataset:
    """TinyImageNet-200 from its official folder layout in ``root``: ``wnids.txt``,
    ``train/<wnid>/images/*.JPEG``, ``val/images/*.JPEG`` + ``val/val_annotations.txt``.

    "train" = the 100k training images (RandomResizedCrop(64) + flip unless ``augment=False``); "val" and
    "test" = the official 10k val set (CenterCrop(64)), as in the paper (no test labels exist). Class indices
    follow the sorted wnids (what the reference code's ImageFolder gives). Items: float32 (3, 64, 64), int64.
    """
    check_split(split)
    if augment is None:
        augment = split == "train"
    elif augment and split != "train":
        raise ValueError(f"augmentation is only for the train split, not {split!r}")
    root = require_dir(root)
    wnids_path = root / "wnids.txt"
    if not wnids_path.is_file():
        raise FileNotFoundError(f"missing TinyImageNet class list: {wnids_path}")
    classes = sorted(line.strip() for line in wnids_path.read_text().splitlines() if line.strip())
    index = {wnid: i for i, wnid in enumerate(classes)}

    paths: list[str] = []
    labels: list[int] = []
    if split == "train":
        for wnid in classes:
            folder = root / "train" / wnid / "images"
            if not folder.is_dir():
                raise FileNotFoundError(f"missing TinyImageNet train folder: {folder}")
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
            paths += [str(p) for p in files]
            labels += [index[wnid]] * len(files)
    else:
        ann = root / "val" / "val_annotations.txt"
        if not ann.is_file():
            raise FileNotFoundError(f"missing TinyImageNet val annotations: {ann}")
        for n, line in enumerate(ann.read_text().splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2 or fields[1] not in index:
                raise ValueError(f"{ann}:{n}: expected '<file> <wnid> ...' with a wnid from {wnids_path}")
            image = root / "val" / "images" / fields[0]
            if not image.is_file():
                raise FileNotFoundError(f"{ann}:{n}: missing image {image}")
            paths.append(str(image))
            labels.append(index[fields[1]])
    if not paths:
        raise ValueError(f"{root}: no images found for split {split!r}")
    return ImageFileDataset(paths, torch.tensor(labels, dtype=torch.int64), classes, augment, generator)
