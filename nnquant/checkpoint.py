"""Checkpoint files: atomic, checksummed, loadable with ``torch.load(weights_only=True)``.

Layout: b"NNQCKPT1" | sha256 of the payload (32 bytes) | payload = torch.save of a dict of tensors and plain
Python values with ``"format": "nnquant-checkpoint"``. A file is written to a temporary file in the same
directory, fsync'ed and moved over the target with ``os.replace`` (``mrf._validation.write_atomic``), so a
failed or interrupted write leaves an existing file intact. ``load_checkpoint`` raises ``CheckpointError`` for
anything else.
"""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path

import numpy as np
import torch

from mrf._validation import write_atomic

MAGIC = b"NNQCKPT1"
FORMAT = "nnquant-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupt or not an nnquant checkpoint."""


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Save ``state`` (tensors and plain Python values only) atomically at ``path``."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **state}, buf)
    payload = buf.getvalue()
    write_atomic(path, MAGIC + hashlib.sha256(payload).digest() + payload)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The state saved by ``save_checkpoint``; CheckpointError naming the file and the problem otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    raw = path.read_bytes()
    head = len(MAGIC) + 32
    if len(raw) < head or raw[: len(MAGIC)] != MAGIC:
        raise CheckpointError(f"{path} is not an nnquant checkpoint (bad header)")
    payload = raw[head:]
    if hashlib.sha256(payload).digest() != raw[len(MAGIC) : head]:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated (checksum mismatch)")
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as e:  # torch.load raises many types on bad input
        raise CheckpointError(f"checkpoint {path} cannot be read: {type(e).__name__}: {e}") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an nnquant checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path} has version {state.get('version')!r}, expected {VERSION}")
    return state


def capture_rng() -> dict:
    """The global RNG states (torch CPU and CUDA, NumPy, Python) in a weights_only-loadable form."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002 (user code may draw from it)
    version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "has_gauss": has_gauss, "gauss": gauss},
        "python": {"version": version, "state": list(py_state), "gauss": py_gauss},
    }


def restore_rng(state: dict) -> None:
    """Set the global RNGs to a ``capture_rng`` state."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))  # noqa: NPY002
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
