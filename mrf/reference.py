"""Vectorized NumPy references of the kernels, for tests and the speed benchmark only."""

from __future__ import annotations

import numpy as np


def linearize(m, q: np.ndarray) -> np.ndarray:
    """g_i(l) = θ_i(l) + Σ_{e=(i,j)} Σ_b θ_e(l, b) q_j(b) + Σ_{e=(j,i)} Σ_a θ_e(a, l) q_j(a)."""
    g = m.unaries.copy()
    i, j = m.edges[:, 0], m.edges[:, 1]
    T = m.edge_tables()
    np.add.at(g, i, np.einsum("eab,eb->ea", T, q[j]))
    np.add.at(g, j, np.einsum("eab,ea->eb", T, q[i]))
    return g


def softmax_update(m, q: np.ndarray, a: float, b: float, damping: float) -> np.ndarray:
    """(1 − λ) q + λ softmax(a q − b g(q)) for all rows at once: the parallel (proximal) mean-field update
    of `kernels.prox_parallel_step` ((a, b) = (0, 1/T): mean-field; (β, βη): `projections.proximal_step`)."""
    from mrf.projections import softmax

    return (1.0 - damping) * q + damping * softmax(a * q - b * linearize(m, q))


def sequential_update(m, q: np.ndarray, order, a: float, b: float, damping: float) -> np.ndarray:
    """The same update applied to one row at a time in ``order``, each with fresh neighbours (Gauss–Seidel)."""
    q = q.copy()
    for i in order:
        q[i] = softmax_update(m, q, a, b, damping)[i]
    return q


def statistics(m, q: np.ndarray, x: np.ndarray) -> tuple[float, float, float]:
    """(E_q, Σ q log q, E(x)) as `kernels.evaluate` returns them."""
    neg_entropy = float(np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0).sum())
    return m.expected_energy(q), neg_entropy, m.energy(x)


def icm_sweep(m, x: np.ndarray, order) -> np.ndarray:
    """ICM in ``order``: x_i ← the first label minimising E with the other labels fixed, moving only on a
    strict decrease of the local energy θ_i(l) + Σ_j θ_ij(l, x_j)."""
    x = x.copy()
    T = m.edge_tables()
    for i in order:
        local = m.unaries[i].copy()
        first, second = m.edges[:, 0] == i, m.edges[:, 1] == i
        local += T[first, :, x[m.edges[first, 1]]].sum(axis=0)
        local += T[second, x[m.edges[second, 0]], :].sum(axis=0)
        best = int(np.argmin(local))
        if local[best] < local[x[i]]:
            x[i] = best
    return x
