"""The pairwise MRF: E(x) = Σ_i θ_i(x_i) + Σ_(i,j)∈E θ_ij(x_i, x_j).

Labels are 0..L−1 with L = max label count. A variable i with fewer labels n_i < L is padded: its unaries
θ_i(l) for l ≥ n_i are +inf (no solver can pick them; their marginals are exactly 0) and the pairwise
entries that touch a padded label are 0 (they are always multiplied by a zero marginal).

Pairwise terms come in three forms, all stored with per-edge weights w_e:
* "potts":  θ_e(a, b) = w_e · [a ≠ b]
* "matrix": θ_e(a, b) = w_e · V[a, b], one L×L matrix V shared by all edges
* "table":  θ_e(a, b) = T_e[a, b], a full (E, L, L) table (w_e = 1)
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from mrf import _validation as check

PAIRWISE_KINDS = ("potts", "matrix", "table")


class MRF:
    """A pairwise MRF with unaries θ (N, L), edges (E, 2) and pairwise terms (see module docstring).

    Parameters
    ----------
    unaries : (N, L) array of finite energies θ_i(l).
    edges : (E, 2) integer array of variable pairs (i, j), i ≠ j, 0 ≤ i, j < N.
    potts : (E,) weights or a scalar: θ_e(a, b) = w_e [a ≠ b].
    matrix, weights : an (L, L) matrix V and (E,) weights (default 1): θ_e(a, b) = w_e V[a, b].
    tables : (E, L, L) explicit tables T_e[a, b] (a = label of edges[e, 0]).
    n_labels : optional (N,) label counts n_i ≤ L; labels ≥ n_i are padded with +inf unaries.
    grid_shape : the (H, W) or (D, H, W) shape when variables are the pixels of a grid (set by
        `mrf.grid`); solvers use it for colourings, plots for label maps. Purely descriptive.

    Exactly one of potts / matrix / tables may be given; none means no pairwise terms (E must be 0 then,
    unless edges is omitted).
    """

    def __init__(
        self,
        unaries,
        edges=None,
        *,
        potts=None,
        matrix=None,
        weights=None,
        tables=None,
        n_labels=None,
        grid_shape: tuple[int, ...] | None = None,
    ) -> None:
        theta = check.finite_array(unaries, "unaries", ndim=2, dtype=np.float64)
        n, L = theta.shape
        if n < 1 or L < 1:
            raise ValueError(f"unaries must have shape (N, L) with N, L >= 1, got {theta.shape}")
        self.n_labels = check.label_counts(n_labels, n, L)
        theta = theta.copy()
        theta[np.arange(L)[None, :] >= self.n_labels[:, None]] = np.inf
        self.unaries = theta
        self.edges = check.edges(edges, n)
        E = len(self.edges)

        given = [name for name, v in (("potts", potts), ("matrix", matrix), ("tables", tables)) if v is not None]
        if len(given) > 1:
            raise ValueError(f"give exactly one pairwise form, got {given}")
        if not given and E:
            raise ValueError(f"edges has {E} edges but no pairwise form was given (pass potts=, matrix= or tables=)")
        if weights is not None and matrix is None:
            raise ValueError("weights is only used with matrix=; pass potts weights as potts=")
        self.tables = None
        if tables is not None:
            self.kind = "table"
            self.tables = check.finite_array(tables, "tables", shape=(E, L, L), dtype=np.float64).copy()
            self.weights = np.ones(E)
            self.matrix = np.zeros((L, L))
        elif matrix is not None:
            self.kind = "matrix"
            self.matrix = check.finite_array(matrix, "matrix", shape=(L, L), dtype=np.float64).copy()
            self.weights = check.edge_weights(1.0 if weights is None else weights, E, "weights")
        else:
            self.kind = "potts"
            self.matrix = 1.0 - np.eye(L)
            self.weights = check.edge_weights(0.0 if potts is None else potts, E, "potts")
        self._zero_padded_pairwise()
        self.grid_shape = None if grid_shape is None else tuple(int(s) for s in grid_shape)
        if self.grid_shape is not None and (min(self.grid_shape) < 1 or int(np.prod(self.grid_shape)) != n):
            raise ValueError(f"grid_shape {self.grid_shape} must be positive sizes holding N = {n} variables")

    def _zero_padded_pairwise(self) -> None:
        if np.all(self.n_labels == self.n_labels[0]) and self.n_labels[0] == self.n_labels_max:
            return
        if self.kind != "table":  # a shared matrix cannot be zeroed per variable: materialise the tables
            self.tables = self.weights[:, None, None] * self.matrix[None]
            self.kind, self.weights = "table", np.ones(len(self.edges))
        L = self.n_labels_max
        i, j = self.edges[:, 0], self.edges[:, 1]
        dead_a = np.arange(L)[None, :] >= self.n_labels[i][:, None]
        dead_b = np.arange(L)[None, :] >= self.n_labels[j][:, None]
        self.tables[dead_a[:, :, None] | dead_b[:, None, :]] = 0.0

    # --- sizes ------------------------------------------------------------------------------------------

    @property
    def n_variables(self) -> int:
        return self.unaries.shape[0]

    @property
    def n_labels_max(self) -> int:
        return self.unaries.shape[1]

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    def __repr__(self) -> str:
        grid = f", grid_shape={self.grid_shape}" if self.grid_shape else ""
        return f"MRF(N={self.n_variables}, L={self.n_labels_max}, E={self.n_edges}, pairwise={self.kind!r}{grid})"

    def edge_tables(self) -> np.ndarray:
        """(E, L, L) pairwise tables θ_e(a, b) for every edge, whatever the stored form."""
        if self.kind == "table":
            return self.tables
        return self.weights[:, None, None] * self.matrix[None]

    @cached_property
    def adjacency(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """CSR adjacency (indptr (N+1,), neighbour (2E,), edge id (2E,), first (2E,) bool).

        Entry k of variable i says: i meets ``neighbour[k]`` through edge ``edge[k]``, and i is that edge's
        first endpoint iff ``first[k]`` (then θ_e(x_i, ·), else θ_e(·, x_i)).
        """
        n, E = self.n_variables, self.n_edges
        src = np.concatenate([self.edges[:, 0], self.edges[:, 1]])
        dst = np.concatenate([self.edges[:, 1], self.edges[:, 0]])
        eid = np.concatenate([np.arange(E), np.arange(E)])
        first = np.concatenate([np.ones(E, bool), np.zeros(E, bool)])
        order = np.argsort(src, kind="stable")
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
        return indptr, dst[order].astype(np.int64), eid[order].astype(np.int64), first[order]

    # --- energies (NumPy reference; solvers use the Numba kernels in mrf.kernels) -----------------------

    def energy(self, labels) -> float:
        """E(x) for one labelling x of shape (N,) with 0 ≤ x_i < n_i."""
        x = check.labels(labels, self.n_labels)
        e = self.unaries[np.arange(self.n_variables), x].sum()
        i, j = self.edges[:, 0], self.edges[:, 1]
        if self.kind == "table":
            return float(e + self.tables[np.arange(self.n_edges), x[i], x[j]].sum())
        return float(e + (self.weights * self.matrix[x[i], x[j]]).sum())

    def expected_energy(self, q) -> float:
        """E_q[E(x)] = Σ_i ⟨q_i, θ_i⟩ + Σ_e q_iᵀ θ_e q_j for marginals q (N, L) on the simplex rows."""
        q = check.marginals(q, self.n_labels, self.n_labels_max)
        unary = np.where(q > 0, q * np.where(np.isinf(self.unaries), 0.0, self.unaries), 0.0).sum()
        i, j = self.edges[:, 0], self.edges[:, 1]
        if self.kind == "table":
            pair = np.einsum("ea,eab,eb->", q[i], self.tables, q[j])
        else:
            pair = (self.weights * np.einsum("ea,ab,eb->e", q[i], self.matrix, q[j])).sum()
        return float(unary + pair)

    def free_energy(self, q, temperature: float = 1.0) -> float:
        """F(q) = E_q[E(x)] − T·H(q), H(q) = −Σ q log q: T·KL(q ‖ P) up to the constant −T log Z."""
        q = check.marginals(q, self.n_labels, self.n_labels_max)
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature!r}")
        neg_entropy = np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0).sum()
        return self.expected_energy(q) + temperature * neg_entropy

    def linearize(self, q) -> np.ndarray:
        """∂E_q/∂q (N, L): the mean field θ_i + Σ_j θ_ij q_j each variable feels (+inf on padded labels)."""
        q = check.marginals(q, self.n_labels, self.n_labels_max)
        from mrf import kernels

        return kernels.linearize(self, q)
