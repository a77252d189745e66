"""Learning-rate schedules of [S] Table 4 as pure functions of the iteration index k (resuming needs only k).

* ("step", interval, scale): lr_k = lr0 · scale^n_k, n_k = ⌊k / interval⌋; with the reference code's quirk
  (its StepLR is stepped right after iteration 0) n_k = ⌈k / interval⌉.
* ("multistep", milestones, scale): lr_k = lr0 · scale^{#{m ∈ milestones : m ≤ k}} (milestones in iterations;
  the reference steps its MultiStepLR once per lr interval, which this equals for interval 1).
* None: constant lr0.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LRSchedule:
    kind: str = "constant"
    interval: int = 1
    milestones: tuple[int, ...] = ()
    scale: float = 1.0
    reference_quirks: bool = False

    @classmethod
    def parse(cls, spec: Sequence | None, reference_quirks: bool = False) -> LRSchedule:
        """From ``None``, ("step", interval, scale) or ("multistep", milestones, scale)."""
        if spec is None:
            return cls(reference_quirks=reference_quirks)
        if isinstance(spec, str) or len(spec) != 3:
            raise ValueError(
                f"lr_schedule must be None, ('step', interval, scale) or ('multistep', milestones, scale), got {spec!r}"
            )
        kind, arg, scale = spec
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"lr_schedule scale must be a finite positive number, got {scale!r}")
        if kind == "step":
            if not (isinstance(arg, int) and not isinstance(arg, bool) and arg >= 1):
                raise ValueError(f"lr_schedule step interval must be a positive integer, got {arg!r}")
            return cls("step", interval=arg, scale=float(scale), reference_quirks=reference_quirks)
        if kind == "multistep":
            ms = tuple(arg) if isinstance(arg, Sequence) else None
            if not ms or not all(isinstance(m, int) and m >= 1 for m in ms) or list(ms) != sorted(set(ms)):
                raise ValueError(f"lr_schedule milestones must be strictly increasing positive integers, got {arg!r}")
            return cls("multistep", milestones=ms, scale=float(scale), reference_quirks=reference_quirks)
        raise ValueError(f"lr_schedule kind must be 'step' or 'multistep', got {kind!r}")

    def factor(self, k: int) -> float:
        """lr_k / lr0 at iteration k ≥ 0."""
        if self.kind == "step":
            n = -(-k // self.interval) if self.reference_quirks else k // self.interval
        elif self.kind == "multistep":
            n = bisect.bisect_right(self.milestones, k)
        else:
            n = 0
        return self.scale**n
