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
