"""Checkpoint files: round trip, atomic replacement, RNG capture, clear errors for bad files."""

import hashlib
import io
import os
import random

import numpy as np
import pytest
import torch

import nnquant.checkpoint as ckpt
from nnquant.checkpoint import CheckpointError, capture_rng, load_checkpoint, restore_rng, save_checkpoint


def test_round_trip(tmp_path):
    state = {"iteration": 3, "model": {"w": torch.randn(4, 2)}, "history": [{"a": 1.5, "b": None}], "t": (1, "x")}
    save_checkpoint(tmp_path / "c.pt", state)
    back = load_checkpoint(tmp_path / "c.pt")
    assert back["iteration"] == 3 and back["history"] == state["history"] and back["format"] == ckpt.FORMAT
    assert torch.equal(back["model"]["w"], state["model"]["w"])


def test_failed_write_leaves_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"iteration": 1})
    good = path.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"iteration": 2, "model": {"w": torch.zeros(1000)}})
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert load_checkpoint(path)["iteration"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary file left behind


def test_unserialisable_state_leaves_old_file_intact(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"iteration": 1})
    good = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 (whatever pickle raises, the old file must survive)
        save_checkpoint(path, {"iteration": 2, "bad": lambda: None})
    assert path.read_bytes() == good


@pytest.mark.parametrize("damage", ["truncate", "flip", "header", "empty", "foreign"])
def test_corrupt_files_raise_clear_error(tmp_path, damage):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"iteration": 1, "model": {"w": torch.randn(100)}})
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "flip":
        raw[-200] ^= 0xFF
    elif damage == "header":
        raw[:8] = b"XXXXXXXX"
    elif damage == "empty":
        raw = bytearray()
    else:
        torch.save({"model": {}}, path)
        raw = bytearray(path.read_bytes())
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=str(path.name)):
        load_checkpoint(path)


def test_missing_and_wrong_format(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    # a valid envelope around something that is not an nnquant checkpoint dict
    buf = io.BytesIO()
    torch.save([1, 2, 3], buf)
    payload = buf.getvalue()
    (tmp_path / "list.pt").write_bytes(ckpt.MAGIC + hashlib.sha256(payload).digest() + payload)
    with pytest.raises(CheckpointError, match="not an nnquant checkpoint"):
        load_checkpoint(tmp_path / "list.pt")


def test_rng_capture_restore_survives_a_file(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)  # noqa: NPY002
    random.seed(3)
    save_checkpoint(tmp_path / "r.pt", {"rng": capture_rng()})
    expected = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    torch.rand(10), np.random.rand(10), random.random()  # noqa: NPY002
    restore_rng(load_checkpoint(tmp_path / "r.pt")["rng"])
    again = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]


def test_write_atomic_replaces_existing_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    ckpt.write_atomic(path, b"new")
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["f.bin"]
