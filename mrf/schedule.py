"""The annealing schedule of the inverse temperature β (the paper's β ← ρβ every ``interval`` iterations)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mrf._validation import positive_finite


@dataclass(frozen=True)
class BetaSchedule:
    """β_k = min(β0 · ρ^n_k, cap) with n_k = ⌊k / interval⌋ (β multiplied by ρ every ``interval`` steps).

    ``update_at_zero=True`` reproduces the reference code, which multiplies right after iteration 0:
    n_k = ⌈k / interval⌉ (k = 0 uses β0, k = 1..I use β0ρ, ...). β is a pure function of the iteration
    index, so a resumed run needs nothing but k.
    """

    beta0: float = 1.0
    rho: float = 1.2
    interval: int = 100
    cap: float = 1e4
    update_at_zero: bool = False

    def __post_init__(self) -> None:
        positive_finite(self.beta0, "beta0")
        positive_finite(self.cap, "cap")
        if not (self.rho >= 1 and np.isfinite(self.rho)):
            raise ValueError(f"rho must be a finite number >= 1, got {self.rho!r}")
        if not (isinstance(self.interval, (int, np.integer)) and self.interval >= 1):
            raise ValueError(f"interval must be a positive integer, got {self.interval!r}")
        if self.cap < self.beta0:
            raise ValueError(f"cap ({self.cap}) must be >= beta0 ({self.beta0})")

    def __call__(self, k: int) -> float:
        if k < 0:
            raise ValueError(f"iteration index must be >= 0, got {k}")
        n = -(-k // self.interval) if self.update_at_zero else k // self.interval
        if self.rho == 1:
            return float(self.beta0)
        # compare exponents, not powers, so a huge n cannot overflow
        n_cap = math.log(self.cap / self.beta0) / math.log(self.rho)
        return float(self.cap) if n >= n_cap else float(self.beta0 * self.rho**n)

    @classmethod
    def for_budget(
        cls,
        iterations: int,
        *,
        beta0: float = 1.0,
        cap: float = 1e4,
        interval: int | None = None,
        reach: float = 0.9,
        update_at_zero: bool = False,
    ) -> BetaSchedule:
        """The schedule whose β reaches ``cap`` after ``reach``·iterations (the tuned settings of the paper's
        code do this: e.g. ρ = 1.1 every 1000 of 100k iterations reaches 10⁴ at ≈95.6k).

        interval defaults to max(1, iterations // 200), i.e. 100 for the paper's 20k MNIST iterations.
        """
        if not (isinstance(iterations, (int, np.integer)) and iterations >= 1):
            raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
        if not 0 < reach <= 1:
            raise ValueError(f"reach must be in (0, 1], got {reach!r}")
        interval = max(1, iterations // 200) if interval is None else interval
        steps = max(1.0, reach * iterations / interval)
        rho = (cap / beta0) ** (1.0 / steps)
        return cls(beta0=beta0, rho=rho, interval=interval, cap=cap, update_at_zero=update_at_zero)
