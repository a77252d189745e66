"""Packed export: ⌈log2 d⌉ bits per weight, exact round trip, size against the float32 state dict, bad files."""

import math

import pytest
import torch
from torch import nn

from nnquant.binaryconnect import binarize_model
from nnquant.export import export_packed, load_packed, pack, packed_size_report
from nnquant.models import LeNet5
from nnquant.rounding import count_levels, round_model
from nnquant.uspace import quantize_model


def _trained_bn(qmodel: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    """Give the BN layers non-trivial running statistics (a few training-mode forwards)."""
    with torch.no_grad():
        for _ in range(3):
            qmodel(torch.randn(16, *shape))
    return qmodel.eval()


def test_binary_lenet5_round_trip_and_size(tmp_path):
    torch.manual_seed(0)
    q = _trained_bn(quantize_model(LeNet5(), 2), (1, 28, 28))
    rounded = round_model(q)
    counts = count_levels(q)
    assert counts["features.0.weight"] == 2 and counts["classifier.1.weight"] == 2  # exactly the two levels
    assert all(n <= 2 for n in counts.values())

    report = export_packed(q, tmp_path / "lenet5.nnq")
    size = (tmp_path / "lenet5.nnq").stat().st_size
    assert report["packed_bytes"] == size

    n_quantized = sum(p.numel() for p in rounded.parameters())
    n_buffers = sum(b.numel() for n, b in rounded.named_buffers() if b.is_floating_point())
    assert n_quantized == 431_080  # conv 20@5×5, conv 50@5×5, FC 800→500, FC 500→10, with biases
    float32 = report["float32_bytes"]
    # 1 bit per weight: the quantized payload is 1/32 of its float32 bytes; the BN running statistics (1140
    # float32) are stored exactly, which bounds the whole-file ratio by 32·(m + b)/(m + 32b) ≈ 29.6 here.
    assert float32 >= 4 * (n_quantized + n_buffers)
    assert size <= math.ceil(n_quantized / 8) + 4 * n_buffers + 8 * 8 + 4096
    assert size * 29 <= float32

    loaded = load_packed(tmp_path / "lenet5.nnq", LeNet5()).eval()
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(loaded(x), rounded(x))
    assert torch.equal(loaded(x), rounded.eval()(x))
    for key, value in rounded.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert count_levels(loaded) == counts


def test_binary_lenet5_without_bn_buffers_is_over_30x_smaller():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10),
    )  # fmt: skip
    report = packed_size_report(quantize_model(model, 2))
    assert report["ratio"] >= 30


def test_ternary_uses_two_bits_and_round_trips(tmp_path):
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    q = quantize_model(model, {"0": 3, "2": [-0.5, 0.0, 0.25, 1.0, 2.0]})  # 3 levels: 2 bits; 5 levels: 3 bits
    export_packed(q, tmp_path / "t.nnq")
    size = (tmp_path / "t.nnq").stat().st_size
    payload = math.ceil(64 * 256 * 2 / 8) + math.ceil(256 * 2 / 8) + math.ceil(2560 * 3 / 8) + math.ceil(10 * 3 / 8)
    assert payload <= size <= payload + 4096
    loaded = load_packed(tmp_path / "t.nnq", model)
    assert loaded[0].quant_levels == (-1.0, 0.0, 1.0)
    assert sorted(torch.unique(loaded[2].weight).tolist()) == [-0.5, 0.0, 0.25, 1.0, 2.0]
    x = torch.randn(3, 64)
    assert torch.equal(loaded(x), round_model(q)(x))


def test_plain_model_needs_levels_and_values_must_be_in_q(tmp_path):
    lin = nn.Linear(8, 4)
    with pytest.raises(ValueError, match="pass levels="):
        pack(lin)
    with pytest.raises(ValueError, match="outside its levels"):
        pack(lin, levels=2)
    with torch.no_grad():
        lin.weight.copy_(torch.sign(lin.weight))
        lin.bias.fill_(-1.0)
    export_packed(lin, tmp_path / "l.nnq", levels=2)
    back = load_packed(tmp_path / "l.nnq", nn.Linear(8, 4))
    assert torch.equal(back.weight, lin.weight) and torch.equal(back.bias, lin.bias)
    # a BinaryConnect model exports as is
    b = binarize_model(nn.Linear(8, 4))
    export_packed(b, tmp_path / "b.nnq")
    assert torch.equal(load_packed(tmp_path / "b.nnq", nn.Linear(8, 4)).weight, b.rounded_weight())


def test_bad_files_and_mismatched_skeleton(tmp_path):
    q = quantize_model(nn.Linear(16, 8), 2)
    path = tmp_path / "m.nnq"
    export_packed(q, path)
    good = path.read_bytes()
    with pytest.raises(ValueError, match="missing"):
        load_packed(path, nn.Sequential(nn.Linear(16, 8)))
    with pytest.raises(ValueError, match="shape"):
        load_packed(path, nn.Linear(16, 9))
    for damaged, match in [(good[: len(good) - 3], "checksum"), (b"NOTPACK!" + good[8:], "not an nnquant"),
                           (good[:10], "header")]:  # fmt: skip
        path.write_bytes(damaged)
        with pytest.raises(ValueError, match=match):
            load_packed(path, nn.Linear(16, 8))
    with pytest.raises(FileNotFoundError):
        load_packed(tmp_path / "absent.nnq", nn.Linear(16, 8))
