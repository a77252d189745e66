"""Packed export of a quantized network: ⌈log2 d⌉ bits per quantized weight (1 for binary, 2 for ternary).

File layout: b"NNQPACK1" | header length (8 bytes, little endian) | zlib-compressed JSON header | payload.
The header lists every state-dict entry in order: name, shape, dtype, offset and size in the payload, and for
a quantized tensor its levels q and bits per weight; it also holds the payload's sha256. A quantized tensor is
stored as the level indices λ (w = q_λ) in ``bits`` bit planes per weight, MSB first, ``numpy.packbits``-ed;
every other entry (non-quantized parameters, BN running statistics) as its raw bytes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nnquant.checkpoint import write_atomic
from nnquant.layers import Include, quantized_layers, select_layers
from nnquant.levels import LevelSpec, levels_for
from nnquant.rounding import quantized_tensors, round_model

MAGIC = b"NNQPACK1"
FORMAT = "nnquant-packed"


def _plain_and_levels(model: nn.Module, levels: LevelSpec | None, include: Include) -> tuple[nn.Module, dict]:
    """The plain (rounded) model and {state-dict name: q} of its quantized tensors."""
    if levels is not None:
        plain = round_model(model) if quantized_layers(model) else model
        marks = {}
        for name in select_layers(plain, include):
            module = plain.get_submodule(name)
            q = tuple(levels_for(levels, name, module).tolist())
            for key, _ in module.named_parameters(recurse=False):
                marks[f"{name}.{key}" if name else key] = q
        return plain, marks
    plain = round_model(model) if quantized_layers(model) else model
    marks = {name: q for name, (_, q) in quantized_tensors(plain).items()}
    if not marks:
        raise ValueError(
            f"{type(model).__name__} has no quantized tensors (not built by nnquant); pass levels= (and include=)"
        )
    return plain, marks


def _pack_indices(t: torch.Tensor, q: tuple[float, ...], name: str) -> tuple[bytes, int]:
    values = t.detach().cpu().to(torch.float64).numpy().ravel()
    levels = np.asarray(q, dtype=np.float64)
    idx = np.clip(np.searchsorted(levels, values), 0, len(levels) - 1)
    if not np.array_equal(levels[idx], values):
        bad = values[levels[idx] != values][:5]
        raise ValueError(f"tensor {name!r} holds values outside its levels {list(q)}, e.g. {bad.tolist()}")
    bits = max(1, math.ceil(math.log2(len(levels))))
    planes = (idx[:, None] >> np.arange(bits - 1, -1, -1)) & 1
    return np.packbits(planes.astype(np.uint8).ravel()).tobytes(), bits


def _raw_bytes(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def pack(model: nn.Module, *, levels: LevelSpec | None = None, include: Include = None) -> bytes:
    """The packed file content for a u-space/BC model, a rounded model, or a plain model given ``levels``."""
    plain, marks = _plain_and_levels(model, levels, include)
    entries, chunks, offset = [], [], 0
    for name, t in plain.state_dict().items():
        entry = {"name": name, "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
        if name in marks:
            data, bits = _pack_indices(t, marks[name], name)
            entry.update(levels=list(marks[name]), bits=bits)
        else:
            data = _raw_bytes(t)
        entry.update(offset=offset, nbytes=len(data))
        entries.append(entry)
        chunks.append(data)
        offset += len(data)
    payload = b"".join(chunks)
    header = {"format": FORMAT, "version": 1, "entries": entries, "sha256": hashlib.sha256(payload).hexdigest()}
    head = zlib.compress(json.dumps(header, separators=(",", ":")).encode(), 9)
    return MAGIC + struct.pack("<Q", len(head)) + head + payload


def export_packed(
    model: nn.Module, path: str | Path, *, levels: LevelSpec | None = None, include: Include = None
) -> dict:
    """Write ``pack(model)`` to ``path`` atomically; returns ``packed_size_report``."""
    data = pack(model, levels=levels, include=include)
    write_atomic(path, data)
    return _report(model, len(data))


def _read(path: Path) -> tuple[list[dict], bytes]:
    raw = path.read_bytes()
    start = len(MAGIC) + 8
    if len(raw) < start or raw[: len(MAGIC)] != MAGIC:
        raise ValueError(f"{path} is not an nnquant packed file (bad header)")
    (n,) = struct.unpack("<Q", raw[len(MAGIC) : start])
    try:
        header = json.loads(zlib.decompress(raw[start : start + n]))
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: corrupt packed-file header ({e})") from e
    payload = raw[start + n :]
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path} is not an nnquant packed file")
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise ValueError(f"{path} is corrupt or truncated (checksum mismatch)")
    return header["entries"], payload


def _unpack(entry: dict, payload: bytes) -> torch.Tensor:
    data = payload[entry["offset"] : entry["offset"] + entry["nbytes"]]
    dtype = getattr(torch, str(entry["dtype"]), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"entry {entry['name']!r} has an unknown dtype {entry['dtype']!r}")
    numel = math.prod(entry["shape"])
    if "levels" not in entry:
        return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(dtype).reshape(entry["shape"]).clone()
    bits = entry["bits"]
    planes = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=numel * bits).reshape(numel, bits)
    idx = (planes.astype(np.int64) << np.arange(bits - 1, -1, -1)).sum(axis=1)
    values = np.asarray(entry["levels"], dtype=np.float64)[idx]
    return torch.from_numpy(values).to(dtype).reshape(entry["shape"])


def load_packed(path: str | Path, model_skeleton: nn.Module) -> nn.Module:
    """A new plain model (the skeleton's architecture; a u-space skeleton is rounded first) holding the file's
    values; quantized layers are marked with ``quant_levels``. ValueError on a corrupt or mismatched file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"packed file {path} does not exist")
    entries, payload = _read(path)
    model = round_model(model_skeleton) if quantized_layers(model_skeleton) else copy.deepcopy(model_skeleton)
    expected = model.state_dict()
    names = [e["name"] for e in entries]
    if set(names) != set(expected):
        raise ValueError(
            f"{path} does not fit {type(model).__name__}: missing {sorted(set(expected) - set(names))}, "
            f"unexpected {sorted(set(names) - set(expected))}"
        )
    state = {}
    for e in entries:
        if list(expected[e["name"]].shape) != e["shape"]:
            raise ValueError(f"{path}: {e['name']} has shape {e['shape']}, the model {list(expected[e['name']].shape)}")
        state[e["name"]] = _unpack(e, payload)
    model.load_state_dict(state)
    for e in entries:
        if "levels" in e:
            module_name = e["name"].rpartition(".")[0]
            model.get_submodule(module_name).quant_levels = tuple(e["levels"])
    return model


def _report(model: nn.Module, packed_bytes: int) -> dict:
    plain = round_model(model) if quantized_layers(model) else model
    float32 = sum(t.numel() * (4 if t.is_floating_point() else t.element_size()) for t in plain.state_dict().values())
    return {"packed_bytes": packed_bytes, "float32_bytes": float32, "ratio": float32 / packed_bytes}


def packed_size_report(model: nn.Module, *, levels: LevelSpec | None = None, include: Include = None) -> dict:
    """{"packed_bytes", "float32_bytes" (the state dict with float tensors at 4 bytes each), "ratio"}."""
    return _report(model, len(pack(model, levels=levels, include=include)))
