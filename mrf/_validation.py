"""Input checks at the library's edges, so the kernels can trust their input.

Every error names the argument and the problem; nothing is clipped or coerced silently.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def finite_array(x, name: str, *, ndim: int | None = None, shape: tuple | None = None, dtype=np.float64):
    try:
        a = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numeric array: {err}") from None
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{name} must be finite; found {a[tuple(bad)]} at index {tuple(int(b) for b in bad)}")
    return a


def positive_finite(x, name: str) -> float:
    """``x`` as a float, if it is a finite real number > 0 (β, η, a scale); else a ValueError naming ``name``."""
    if isinstance(x, (bool, str, bytes)):
        raise ValueError(f"{name} must be a finite positive number, got {x!r}")
    try:
        value = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite positive number, got {x!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite positive number, got {x!r}")
    return value


def label_counts(n_labels, n: int, L: int) -> np.ndarray:
    if n_labels is None:
        return np.full(n, L, np.int64)
    c = np.asarray(n_labels)
    if c.shape != (n,) or not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"n_labels must be an integer array of shape ({n},), got {c.dtype} {c.shape}")
    if c.min() < 1:
        raise ValueError(f"n_labels must be >= 1 for every variable, got {c.min()} at index {int(c.argmin())}")
    if c.max() > L:
        raise ValueError(f"n_labels must be <= L = {L} (the unaries' second axis), got {c.max()}")
    return c.astype(np.int64)


def edges(e, n: int) -> np.ndarray:
    if e is None:
        return np.zeros((0, 2), np.int64)
    a = np.asarray(e)
    if a.size == 0:
        return np.zeros((0, 2), np.int64)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"edges must have shape (E, 2), got {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"edges must hold integers, got dtype {a.dtype}")
    if a.min() < 0 or a.max() >= n:
        k = int(np.argmax((a < 0).any(1) | (a >= n).any(1)))
        raise ValueError(f"edges must index variables 0..{n - 1}; edge {k} is {a[k].tolist()}")
    loops = np.flatnonzero(a[:, 0] == a[:, 1])
    if loops.size:
        raise ValueError(f"edges must not contain self-loops; edge {loops[0]} is {a[loops[0]].tolist()}")
    return a.astype(np.int64)


def edge_weights(w, E: int, name: str) -> np.ndarray:
    a = finite_array(w, name)
    if a.ndim == 0:
        return np.full(E, float(a))
    if a.shape != (E,):
        raise ValueError(f"{name} must be a scalar or have shape ({E},) (one per edge), got {a.shape}")
    return a.copy()


def labels(x, n_labels: np.ndarray) -> np.ndarray:
    a = np.asarray(x)
    if a.shape != n_labels.shape:
        raise ValueError(f"labels must have shape {n_labels.shape}, got {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"labels must be integers, got dtype {a.dtype}")
    bad = np.flatnonzero((a < 0) | (a >= n_labels))
    if bad.size:
        i = bad[0]
        raise ValueError(f"labels[{i}] = {a[i]} is outside 0..{n_labels[i] - 1}")
    return a.astype(np.int64)


def marginals(q, n_labels: np.ndarray, L: int, atol: float = 1e-6) -> np.ndarray:
    a = np.asarray(q, dtype=np.float64)
    if a.shape != (n_labels.size, L):
        raise ValueError(f"marginals must have shape ({n_labels.size}, {L}), got {a.shape}")
    if not np.all(np.isfinite(a)) or a.min() < -atol:
        raise ValueError("marginals must be finite and non-negative")
    dev = np.abs(a.sum(1) - 1).max()
    if dev > atol:
        raise ValueError(f"marginals rows must sum to 1 (max deviation {dev:.3g})")
    if np.any(a[np.arange(L)[None, :] >= n_labels[:, None]] > atol):
        raise ValueError("marginals put mass on labels a variable does not have (l >= n_labels[i])")
    return a


def umask() -> int:
    """The process's file-creation mask (os.umask can only be read by setting it; it is restored at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; on success fsync it and move it onto ``path``
    (os.replace), on failure delete it, so a user's file is never left half-written or lost to a crash. Refuses
    an existing ``path`` unless ``overwrite``. The file gets the user's usual mode (0o666 less the umask)."""
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"directory {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if not overwrite and path.exists():  # created by someone else while we were writing
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        with open(tmp, "rb+") as f:  # the data must be on disk before the rename makes it visible
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes the file private
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable; best effort (not every platform can open a directory)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def write_atomic(path, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` through ``atomic_output``: an interrupted write leaves the old file intact."""
    with atomic_output(path, overwrite) as tmp:
        tmp.write_bytes(data)
