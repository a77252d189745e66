"""Dataset loaders: real MNIST/Fashion-MNIST from ../shared/data, small CIFAR/TinyImageNet fixtures in tmp_path."""

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nnquant.data import (
    CIFAR_MEAN,
    CIFAR_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    default_data_root,
    load_cifar,
    load_dataset,
    load_mnist,
    load_tinyimagenet,
    random_crop_flip,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# ------------------------------------------------------------------------------------------ real MNIST files
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_mnist_splits(name):
    root = SHARED_DATA / name
    if not root.is_dir():
        pytest.skip(f"shared data set not present at {root}")
    assert default_data_root(name) == root
    sizes = {"train": 50_000, "val": 10_000, "test": 10_000}
    for split, n in sizes.items():
        x, y = load_dataset(name, root, split).tensors
        assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
        assert y.shape == (n,) and y.dtype == torch.int64
        assert y.min() == 0 and y.max() == 9
        if split == "train":  # the normalisation constants fit the training images
            assert abs(x.mean().item()) < 0.02 and abs(x.std().item() - 1) < 0.02


# ---------------------------------------------------------------------------------------- IDX fixtures
def _idx(magic: int, dims: tuple[int, ...], data: np.ndarray) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + data.astype(np.uint8).tobytes()


def _write_mnist(root: Path, n: int = 20, gz: bool = False, prefix: str = "train") -> np.ndarray:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28))
    labels = rng.integers(0, 10, n)
    files = {
        f"{prefix}-images-idx3-ubyte": _idx(0x803, (n, 28, 28), images),
        f"{prefix}-labels-idx1-ubyte": _idx(0x801, (n,), labels),
    }
    for name, blob in files.items():
        if gz:
            (root / f"{name}.gz").write_bytes(gzip.compress(blob))
        else:
            (root / name).write_bytes(blob)
    return images


@pytest.mark.parametrize("gz", [False, True])
def test_small_idx_split_and_values(tmp_path, gz):
    images = _write_mnist(tmp_path, n=20, gz=gz)
    x_tr, _ = load_mnist(tmp_path, "train", val_size=5).tensors
    x_va, _ = load_mnist(tmp_path, "val", val_size=5).tensors
    assert len(x_tr) == 15 and len(x_va) == 5
    expected = (images[15:] / 255.0 - 0.1307) / 0.3081
    np.testing.assert_allclose(x_va[:, 0].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_truncated_idx(tmp_path):
    _write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated") as err:
        load_mnist(tmp_path, "train", val_size=5)
    assert str(path) in str(err.value)


def test_truncated_gzip(tmp_path):
    _write_mnist(tmp_path, gz=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="labels-idx1"):
        load_mnist(tmp_path, "train", val_size=5)


def test_bad_magic(tmp_path):
    _write_mnist(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03" + path.read_bytes()[4:])
    with pytest.raises(ValueError, match="magic"):
        load_mnist(tmp_path, "val", val_size=5)


def test_count_mismatch(tmp_path):
    _write_mnist(tmp_path, n=20)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(0x801, (19,), np.zeros(19)))
    with pytest.raises(ValueError, match="20 images but .* 19 labels"):
        load_mnist(tmp_path, "train", val_size=5)


def test_missing_dir_and_file(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_mnist(missing, "train")
    _write_mnist(tmp_path)  # has train files, not t10k
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path, "test")
    with pytest.raises(ValueError, match="split"):
        load_mnist(tmp_path, "validation")


# ------------------------------------------------------------------------------------------- CIFAR fixtures
def _cifar_pickle(path: Path, n: int, label_key: bytes, num_classes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = rng.integers(0, num_classes, n).tolist()
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"fixture", b"data": data, label_key: labels}, f)
    return data


@pytest.fixture
def cifar10_root(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    train = [_cifar_pickle(folder / f"data_batch_{i}", 60, b"labels", 10, i) for i in range(1, 6)]
    _cifar_pickle(folder / "test_batch", 40, b"labels", 10, 9)
    return tmp_path, np.concatenate(train)


def test_cifar10_splits_and_normalisation(cifar10_root):
    root, train = cifar10_root
    sizes = {"train": 270, "val": 30, "test": 40}
    for split, n in sizes.items():
        ds = load_cifar(root, split, val_size=30)
        assert len(ds) == n
        x, y = ds[0]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    val = load_cifar(root, "val", val_size=30)
    x, _ = val[3]  # val = the last 30 official training images, normalised, not augmented
    raw = torch.from_numpy(train[273].reshape(3, 32, 32)).float() / 255
    expected = (raw - torch.tensor(CIFAR_MEAN).view(3, 1, 1)) / torch.tensor(CIFAR_STD).view(3, 1, 1)
    torch.testing.assert_close(x, expected)
    torch.testing.assert_close(val[3][0], x)  # deterministic
    with pytest.raises(ValueError, match="val_size"):
        load_cifar(root, "train")  # default val_size=5000 does not fit 300 images


def test_cifar_augmentation_train_only(cifar10_root):
    root, _ = cifar10_root
    train = load_cifar(root, "train", val_size=30, generator=torch.Generator().manual_seed(0))
    plain = load_cifar(root, "train", augment=False, val_size=30)
    assert train.augment and not plain.augment and not load_cifar(root, "val", val_size=30).augment
    draws = [train[0][0] for _ in range(8)]
    assert any(not torch.equal(d, plain[0][0]) for d in draws)
    with pytest.raises(ValueError, match="only for the train split"):
        load_cifar(root, "val", augment=True, val_size=30)


def test_random_crop_flip_is_a_padded_crop():
    images = torch.rand(16, 3, 8, 8)
    out = random_crop_flip(images, padding=2, generator=torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for img, pad in zip(out, padded, strict=True):
        crops = [pad[:, t : t + 8, l : l + 8] for t in range(5) for l in range(5)]
        assert any(torch.equal(img, c) or torch.equal(img, c.flip(-1)) for c in crops)


def test_cifar100_in_root(tmp_path):
    _cifar_pickle(tmp_path / "train", 100, b"fine_labels", 100, 0)
    _cifar_pickle(tmp_path / "test", 20, b"fine_labels", 100, 1)
    ds = load_dataset("cifar100", tmp_path, "train", val_size=10)
    assert len(ds) == 90 and len(load_dataset("cifar100", tmp_path, "test")) == 20
    assert ds.labels.max() < 100


def test_cifar_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        load_cifar(tmp_path, "train")
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="test_batch"):
        load_cifar(tmp_path, "test")


# -------------------------------------------------------------------------------------- TinyImageNet fixture
def _write_tiny(root: Path) -> None:
    wnids = ["n02", "n01"]  # unsorted on purpose: class indices follow the sorted wnids
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for k, wnid in enumerate(wnids):
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (64, 64), (50 * k, 100, 200)).save(folder / f"{wnid}_{i}.JPEG")
    (root / "val" / "images").mkdir(parents=True)
    Image.new("RGB", (64, 64), (255, 0, 128)).save(root / "val" / "images" / "val_0.JPEG")
    Image.new("L", (70, 80), 128).save(root / "val" / "images" / "val_1.JPEG")  # greyscale, not 64×64
    (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn02\t0\t0\t10\t10\nval_1.JPEG\tn01\t1\t1\t5\t5\n")


def test_tinyimagenet(tmp_path):
    _write_tiny(tmp_path)
    train = load_tinyimagenet(tmp_path, "train", generator=torch.Generator().manual_seed(0))
    assert len(train) == 6 and train.classes == ["n01", "n02"] and train.labels.tolist() == [0] * 3 + [1] * 3
    x, y = train[0]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and y.item() == 0
    val, test = load_tinyimagenet(tmp_path, "val"), load_dataset("tinyimagenet", tmp_path, "test")
    assert val.paths == test.paths and val.labels.tolist() == [1, 0] and not val.augment
    x0 = val[0][0]
    colour = (torch.tensor([255, 0, 128]) / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(x0[:, 32, 32], colour, atol=0.05, rtol=0)  # JPEG is lossy
    assert val[1][0].shape == (3, 64, 64)  # centre crop of a 70×80 greyscale image
    torch.testing.assert_close(val[1][0], val[1][0])  # no augmentation outside "train"


def test_tinyimagenet_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="wnids.txt"):
        load_tinyimagenet(tmp_path, "train")
    _write_tiny(tmp_path)
    (tmp_path / "val" / "images" / "val_1.JPEG").unlink()
    with pytest.raises(FileNotFoundError, match="val_1.JPEG"):
        load_tinyimagenet(tmp_path, "val")


def test_load_dataset_rejects_unknown(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet", tmp_path, "train")
    assert default_data_root("no-such-dataset") is None
