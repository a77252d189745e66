"""The solvers: ICM, mean-field and proximal mean-field, each returning a `mrf.result.SolverResult`."""

from __future__ import annotations

from mrf.result import SolverResult
from mrf.solvers.icm import icm
from mrf.solvers.mean_field import mean_field
from mrf.solvers.proximal_mean_field import proximal_mean_field
from mrf.solvers.scale import energy_scale

METHODS = {"icm": icm, "mean_field": mean_field, "proximal_mean_field": proximal_mean_field}


def solve(m, method: str = "proximal_mean_field", **options) -> SolverResult:
    """Run ``method`` ("icm", "mean_field" or "proximal_mean_field") on ``m`` with its keyword options."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    return METHODS[method](m, **options)


__all__ = ["METHODS", "energy_scale", "icm", "mean_field", "proximal_mean_field", "solve"]
