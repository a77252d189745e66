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

import gzip
import math
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset, TensorDataset

SPLITS = ("train", "val", "test")
DATASET_NAMES = ("mnist", "fashion-mnist", "cifar10", "cifar100", "tinyimagenet")

# (mean, std) of the pixel values in [0, 1]. MNIST: the reference code's values. Fashion-MNIST: its own
# statistics over the 60k training images (the reference code has no Fashion-MNIST).
MNIST_STATS = {"mnist": (0.1307, 0.3081), "fashion-mnist": (0.2860, 0.3530)}
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

_IDX_IMAGES, _IDX_LABELS = 0x00000803, 0x00000801  # IDX magic: 0, 0, dtype 0x08 (uint8), number of dims


def default_data_root(name: str) -> Path | None:
    """``<repo>/../shared/data/<name>`` if that directory exists, else None."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data" / name
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


# --------------------------------------------------------------------------------------------- common helpers
def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def _require_dir(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset directory not found: {root}")
    return root


def _train_val_slice(n: int, split: str, val_size: int, where: Path) -> slice:
    """The paper's fixed split of an official training set: first n - val_size / last val_size items."""
    if not 0 < val_size < n:
        raise ValueError(f"{where}: val_size={val_size} must be in (0, {n}) for a training set of {n} items")
    return slice(0, n - val_size) if split == "train" else slice(n - val_size, n)


def _normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(..., C, H, W) in [0, 1] -> per-channel standardised."""
    m = torch.tensor(mean, dtype=x.dtype).view(-1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(-1, 1, 1)
    return (x - m) / s


# ---------------------------------------------------------------------------------------------- MNIST (IDX)
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
    _check_split(split)
    if variant not in MNIST_STATS:
        raise ValueError(f"unknown MNIST variant {variant!r}; expected one of {tuple(MNIST_STATS)}")
    root = _require_dir(root)
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

    sel = slice(None) if split == "test" else _train_val_slice(len(images), split, val_size, img_path)
    # Convert only the selected slice: one float tensor, no copy of the full set.
    x = torch.from_numpy(images[sel].astype(np.float32)).unsqueeze(1).div_(255.0)
    mean, std = MNIST_STATS[variant]
    x.sub_(mean).div_(std)
    y = torch.from_numpy(labels[sel].astype(np.int64))
    return TensorDataset(x, y)


# ------------------------------------------------------------------------------------------------- CIFAR
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
        return _normalize(x, CIFAR_MEAN, CIFAR_STD), self.labels[i]


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
    _check_split(split)
    if num_classes not in (10, 100):
        raise ValueError(f"num_classes must be 10 or 100, got {num_classes}")
    if augment is None:
        augment = split == "train"
    elif augment and split != "train":
        raise ValueError(f"augmentation is only for the train split, not {split!r}")
    root = _require_dir(root)
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
        sel = _train_val_slice(len(images), split, val_size, root)
        images, labels = images[sel], labels[sel]
    return CIFARDataset(torch.from_numpy(images.copy()), torch.from_numpy(labels), augment, generator)


# ---------------------------------------------------------------------------------------------- TinyImageNet
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
        return _normalize(x, IMAGENET_MEAN, IMAGENET_STD), self.labels[i]


def load_tinyimagenet(
    root: str | Path, split: str, augment: bool | None = None, *, generator: torch.Generator | None = None
) -> ImageFileDataset:
    """TinyImageNet-200 from its official folder layout in ``root``: ``wnids.txt``,
    ``train/<wnid>/images/*.JPEG``, ``val/images/*.JPEG`` + ``val/val_annotations.txt``.

    "train" = the 100k training images (RandomResizedCrop(64) + flip unless ``augment=False``); "val" and
    "test" = the official 10k val set (CenterCrop(64)), as in the paper (no test labels exist). Class indices
    follow the sorted wnids (what the reference code's ImageFolder gives). Items: float32 (3, 64, 64), int64.
    """
    _check_split(split)
    if augment is None:
        augment = split == "train"
    elif augment and split != "train":
        raise ValueError(f"augmentation is only for the train split, not {split!r}")
    root = _require_dir(root)
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
