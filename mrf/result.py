"""What every solver returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Trace:
    """Per-iteration record: energy of the current rounded labels, free energy F(q) = E_q − T·H(q) of the
    current marginals at the solver's temperature (nan for ICM), and seconds since the solver started."""

    energy: list[float] = field(default_factory=list)
    free_energy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def append(self, energy: float, free_energy: float, seconds: float) -> None:
        self.energy.append(float(energy))
        self.free_energy.append(float(free_energy))
        self.seconds.append(float(seconds))

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in vars(self).items()}

    def __len__(self) -> int:
        return len(self.energy)


@dataclass
class SolverResult:
    """labels (N,) int64; marginals (N, L) rows on the simplex (one-hot for ICM); energy = m.energy(labels);
    trace per iteration; n_iter iterations run; converged True when the tolerance test stopped the run."""

    labels: np.ndarray
    marginals: np.ndarray
    energy: float
    trace: Trace
    n_iter: int
    converged: bool
    method: str = ""

    def __repr__(self) -> str:
        return (
            f"SolverResult(method={self.method!r}, energy={self.energy:.6g}, n_iter={self.n_iter}, "
            f"converged={self.converged}, seconds={self.trace.seconds[-1] if len(self.trace) else 0.0:.3g})"
        )
