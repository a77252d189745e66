"""Quantization levels q ∈ ℝ^d (the set Q, |Q| = d) and per-layer level specifications.

A level spec is what users pass as ``levels=``:
  * an int d ≥ 2 → the reference code's levels arange(−⌊d/2⌋, ⌊d/2⌋ + 1) with 0 removed for even d
    (2 → [−1, 1], 3 → [−1, 0, 1], 4 → [−2, −1, 1, 2]);
  * an explicit strictly increasing sequence of finite numbers (at least two);
  * a dict {module name or fnmatch pattern: levels} (an exact name wins, then the first matching pattern in
    dict order; a module that matches no key is an error, add a "*" entry for a default);
  * a callable (name, module) → levels.
Level index λ = 0 is the lowest level, so hardmax ties (→ first label) round to the lowest level.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from fnmatch import fnmatchcase

import torch
from torch import nn

Levels = int | Sequence[float] | torch.Tensor
LevelSpec = Levels | Mapping[str, Levels] | Callable[[str, nn.Module], Levels]


def make_levels(levels: Levels) -> torch.Tensor:
    """q as a float64 tensor of shape (d,), strictly increasing, from a count d or an explicit list."""
    if isinstance(levels, bool):
        raise TypeError(f"levels must be an int count or a sequence of numbers, got {levels!r}")
    if isinstance(levels, int) or (isinstance(levels, torch.Tensor) and levels.dim() == 0):
        d = int(levels)
        if d < 2:
            raise ValueError(f"levels count must be >= 2, got {d}")
        half = d // 2
        q = [float(v) for v in range(-half, half + 1) if not (d % 2 == 0 and v == 0)]
        return torch.tensor(q, dtype=torch.float64)
    if isinstance(levels, (str, bytes)) or not isinstance(levels, (Sequence, torch.Tensor)):
        raise TypeError(f"levels must be an int count or a sequence of numbers, got {type(levels).__name__}")
    try:
        values = [float(v) for v in levels]
    except (TypeError, ValueError) as e:
        raise TypeError(f"levels must contain numbers, got {list(levels)!r}") from e
    if len(values) < 2:
        raise ValueError(f"levels must hold at least 2 values, got {values}")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"levels must be finite, got {values}")
    if len(set(values)) != len(values):
        raise ValueError(f"levels must not contain duplicates, got {values}")
    if any(b <= a for a, b in zip(values[:-1], values[1:], strict=True)):
        raise ValueError(f"levels must be strictly increasing, got {values}")
    return torch.tensor(values, dtype=torch.float64)


def levels_for(spec: LevelSpec, name: str, module: nn.Module) -> torch.Tensor:
    """q (float64, (d,)) for the module called ``name`` under a level spec (see the module docstring)."""
    if isinstance(spec, Mapping):
        if name in spec:
            return make_levels(spec[name])
        for pattern, levels in spec.items():
            if fnmatchcase(name, pattern):
                return make_levels(levels)
        raise ValueError(f"levels: no entry for module {name!r} in {list(spec)}; add its name or a '*' default")
    if callable(spec) and not isinstance(spec, torch.Tensor):
        return make_levels(spec(name, module))
    return make_levels(spec)
