"""Iterated conditional modes (Besag 1986): x_i ← argmin_l θ_i(l) + Σ_j θ_ij(l, x_j), one variable at a time."""

from __future__ import annotations

import math

import numpy as np

from mrf import kernels
from mrf.result import SolverResult
from mrf.solvers import _common as common

ORDERS = ("index", "colour", "random")


def icm(
    m,
    *,
    init=None,
    order=None,
    max_iter: int = 100,
    tol: float = 0.0,
    time_limit: float | None = None,
    seed=None,
    progress: bool = False,
) -> SolverResult:
    """Sequential ICM sweeps until a sweep changes no label: then x is a local minimum (no single-variable
    change lowers E). A variable moves only on a strict decrease, so E never increases.

    init: None / "wta" (x_i = argmin θ_i), "random" (from ``seed``) or a labelling (N,).
    order: None / "index" (0..N−1), "colour" (colour classes of a greedy colouring, each class updated in
        parallel — the same moves as a sequential sweep in that order), "random" (a fresh permutation of
        the variables every sweep, from ``seed``) or an explicit permutation (N,) of 0..N−1.
    max_iter: at most this many sweeps. tol: also stop once a sweep lowers E by ≤ tol (0: only when
        nothing moves). time_limit: seconds. progress: a tqdm bar.

    Returns a SolverResult: marginals one-hot, trace[k] = state after k sweeps (free energy nan),
    converged = a sweep moved nothing (a proven local minimum) or lowered E by ≤ tol > 0.
    """
    max_iter, tol, time_limit = common.stopping(max_iter, tol, time_limit)
    x = common.initial_labels(m, init, seed)
    visit = _visiting_order(m, order, seed)
    s, theta = kernels.pairwise(m), m.unaries
    run = common.Run("icm", max_iter, time_limit, progress)
    energies = []

    def sweep(k: int) -> float:
        """One sweep; the change is 0 when nothing moved, else the energy decrease (inf when tol = 0)."""
        if visit[0] == "colour":
            moves = kernels.icm_colour_sweep(s, theta, x, *visit[1])
        else:
            moves = kernels.icm_sequential_sweep(s, theta, x, visit[1]() if visit[0] == "random" else visit[1])
        energies.append(kernels.energy(s, theta, x))
        run.record(energies[-1], math.nan, run.seconds())
        if moves == 0:
            return 0.0
        return energies[-2] - energies[-1] if tol > 0 else math.inf

    with common.threads_for(m):
        energies.append(kernels.energy(s, theta, x))
        run.record(energies[-1], math.nan, run.seconds())
        n_iter, converged = run.iterate(sweep, max_iter, tol)
    return run.result(m, x, common.one_hot(m, x), n_iter, converged)


def _visiting_order(m, order, seed) -> tuple:
    """("fixed", permutation) | ("colour", (order, offsets)) | ("random", draw) after checking ``order``."""
    n = m.n_variables
    if order is None or isinstance(order, str):
        kind = common.choice("order", "index" if order is None else order, ORDERS)
        if kind == "colour":
            return ("colour", common.colour_classes(m))
        if kind == "random":
            rng = common.rng(seed)
            return ("random", lambda: rng.permutation(n).astype(np.int64))
        return ("fixed", np.arange(n, dtype=np.int64))
    perm = np.asarray(order)
    if perm.shape != (n,) or not np.issubdtype(perm.dtype, np.integer):
        raise ValueError(f"order must be a permutation of 0..{n - 1} of shape ({n},), got {perm.dtype} {perm.shape}")
    if not np.array_equal(np.sort(perm), np.arange(n)):
        raise ValueError(f"order must visit every variable 0..{n - 1} exactly once")
    return ("fixed", perm.astype(np.int64))
