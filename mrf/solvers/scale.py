"""The energy scale s of a model: the unit in which the solvers' default temperature and step size are set.

s is the median, over the variables that have edges, of c_i = Σ_{e ∋ i} (max θ_e − min θ_e): the total
pairwise contrast a variable feels (for Potts, the sum of its incident |w_e|). The coupling, not the
unaries, decides how hard a labelling problem is for mean-field: a variable whose unaries dominate is
decided at any temperature, while the temperature at which neighbours start to agree is set by c_i.
Without pairwise contrast, s is the median unary contrast max_l θ_i(l) − min_l θ_i(l) (finite labels),
and 1 if that is 0 too.

s is homogeneous of degree 1 in the potentials (multiplying every θ by κ > 0 multiplies s by κ), so a
temperature T = τ·s and a step η = η₀/s make the solvers' iterations, and their labellings, independent
of the units of the energy.
"""

from __future__ import annotations

import numpy as np


def edge_contrast(m) -> np.ndarray:
    """(E,) max − min of every pairwise table θ_e over the labels both endpoints have."""
    if m.n_edges == 0:
        return np.zeros(0)
    if m.kind == "potts":
        return np.abs(m.weights) * (m.n_labels_max > 1)
    if m.kind == "matrix":
        return np.abs(m.weights) * (m.matrix.max() - m.matrix.min())
    L = m.n_labels_max
    valid_a = np.arange(L)[None, :] < m.n_labels[m.edges[:, 0]][:, None]
    valid_b = np.arange(L)[None, :] < m.n_labels[m.edges[:, 1]][:, None]
    valid = valid_a[:, :, None] & valid_b[:, None, :]
    high = np.where(valid, m.tables, -np.inf).max(axis=(1, 2))
    low = np.where(valid, m.tables, np.inf).min(axis=(1, 2))
    return high - low


def energy_scale(m) -> float:
    """The energy scale s > 0 of ``m`` (see the module docstring), in the units of the potentials."""
    contrast = edge_contrast(m)
    if np.any(contrast > 0):
        per_variable = np.bincount(m.edges.ravel(), weights=np.repeat(contrast, 2), minlength=m.n_variables)
        return float(np.median(per_variable[per_variable > 0]))
    finite = np.where(np.isfinite(m.unaries), m.unaries, np.nan)
    spread = np.nanmax(finite, axis=1) - np.nanmin(finite, axis=1)
    return float(np.median(spread[spread > 0])) if np.any(spread > 0) else 1.0
