"""Numba kernels: linearization, fused (proximal) mean-field updates, ICM sweeps, energies, colouring.

Every kernel works on rows of variables: q (N, L) marginals (u in the paper's notation), θ (N, L) unaries
with +inf on padded labels (labels l ≥ n_i), and a `Pairwise` structure built once per model by
`pairwise(m)`. Two layouts share one interface:

* CSR adjacency (any graph; kinds potts, matrix and table);
* a 4-neighbour stencil for 2-D potts or symmetric-matrix grids (``grid_shape`` = (H, W)): the edges
  (i, i + 1) and (i, i + W) weigh ``right[i]`` and ``down[i]`` (0 where there is no edge), so no index
  arrays are read and the four neighbours are summed in one pass over the labels.

Loops over variables are split into fixed chunks of ``CHUNK`` rows run in parallel (`prange`); per-chunk
partial sums are added in chunk order, so results do not depend on the number of threads. A chunk's
mean fields go to flat (CHUNK·L) scratch buffers so that the exp / log work vectorizes (`mrf._vecmath`).
Rows are read element-wise (q[j, l]), never as views q[j] (a view costs an atomic reference count in the
hot loop); arg-max is branch-free (a mispredicted branch per label cost more than the rest of the row);
all kernels use error_model="numpy" (Python's zero-division check blocks SIMD). The NumPy references of
these kernels are in `mrf.reference`.
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

import numpy as np
from numba import njit, prange, uint64

from mrf._vecmath import exp_block, sum_block, xlogx_sum_block

POTTS, MATRIX, TABLE = 0, 1, 2
KIND_CODES = {"potts": POTTS, "matrix": MATRIX, "table": TABLE}
CHUNK = 256  # rows per parallel work item (its scratch stays in L1/L2)


class Pairwise(NamedTuple):
    """The pairwise terms of a model in kernel form (see the module docstring); unused arrays have size 0."""

    kind: int
    indptr: np.ndarray  # (N+1,) int64
    neighbour: np.ndarray  # (2E,) int64
    edge: np.ndarray  # (2E,) int64
    first: np.ndarray  # (2E,) bool
    weights: np.ndarray  # (E,)
    matrix: np.ndarray  # (L, L)
    tables: np.ndarray  # (E, L, L) for kind table, else (0, L, L)
    width: int  # W of a stencil layout; 0 = CSR layout
    right: np.ndarray  # (N,) weight of edge (i, i + 1), 0 where absent (stencil layout)
    down: np.ndarray  # (N,) weight of edge (i, i + W), 0 where absent (stencil layout)


_PAIRWISE_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def pairwise(m) -> Pairwise:
    """The kernel form of ``m``'s pairwise terms (cached per model; models are not mutated in place)."""
    s = _PAIRWISE_CACHE.get(m)
    if s is None:
        s = _stencil_pairwise(m) or _csr_pairwise(m)
        _PAIRWISE_CACHE[m] = s
    return s


def _csr_pairwise(m) -> Pairwise:
    indptr, neighbour, edge, first = m.adjacency
    L = m.n_labels_max
    tables = m.tables if m.kind == "table" else np.zeros((0, L, L))
    none = np.zeros(0)
    return Pairwise(KIND_CODES[m.kind], indptr, neighbour, edge, first, m.weights, m.matrix, tables, 0, none, none)


def _stencil_pairwise(m) -> Pairwise | None:
    """The stencil layout when ``m`` is a 2-D grid whose every edge is (i, i+1) or (i, i+W) (either
    orientation, once) and θ_e = w_e·V with V symmetric (potts included); else None."""
    if m.grid_shape is None or len(m.grid_shape) != 2 or m.kind == "table":
        return None
    if not np.array_equal(m.matrix, m.matrix.T):
        return None
    H, W = m.grid_shape
    low, high = m.edges.min(axis=1), m.edges.max(axis=1)
    is_right = (high - low == 1) & (low % W != W - 1)
    is_down = (high - low == W) & ~is_right  # W = 1: a step of 1 is vertical
    if not np.all(is_right | is_down):
        return None
    right, down = np.zeros(m.n_variables), np.zeros(m.n_variables)
    for weights, along in ((right, is_right), (down, is_down)):
        if np.bincount(low[along], minlength=m.n_variables).max(initial=0) > 1:
            return None  # a repeated edge: the CSR layout sums it
        weights[low[along]] = m.weights[along]
    L = m.n_labels_max
    none = np.zeros(0, np.int64)
    return Pairwise(
        KIND_CODES[m.kind], none, none, none, np.zeros(0, bool), m.weights, m.matrix, np.zeros((0, L, L)),
        W, right, down,
    )  # fmt: skip


# --- row helpers (inlined into the kernels) ------------------------------------------------------------

_HELPER = {"cache": True, "error_model": "numpy", "inline": "always"}
_KERNEL = {"cache": True, "error_model": "numpy", "parallel": True}


@njit(**_HELPER)
def _stencil_neighbours(s, i):
    """(w_right, w_left, w_down, w_up, j_right, j_left, j_down, j_up) of grid variable i; an absent
    neighbour gets weight 0 and index i, so that reading it is safe and adds nothing."""
    n, W = s.right.shape[0], s.width
    wr = s.right[i]
    wl = s.right[i - 1] if i >= 1 else 0.0
    wd = s.down[i]
    wu = s.down[i - W] if i >= W else 0.0
    jr = i + 1 if wr != 0.0 and i + 1 < n else i
    jl = i - 1 if wl != 0.0 else i
    jd = i + W if wd != 0.0 and i + W < n else i
    ju = i - W if wu != 0.0 else i
    return wr, wl, wd, wu, jr, jl, jd, ju


@njit(**_HELPER)
def _add_neighbour(s, w, e, forward_edge, q, j, out, r):
    """out[a, r] += Σ_b θ_e(a, b) q_j(b) for the CSR edge e = (i, j) (forward_edge) or e = (j, i)."""
    L = q.shape[1]
    j = uint64(j)
    if s.kind == POTTS:
        for a in range(L):
            out[a, r] += w - w * q[j, a]
    elif s.kind == MATRIX:
        for a in range(L):
            acc = 0.0
            for b in range(L):
                acc += (s.matrix[a, b] if forward_edge else s.matrix[b, a]) * q[j, b]
            out[a, r] += w * acc
    else:
        for a in range(L):
            acc = 0.0
            for b in range(L):
                acc += (s.tables[e, a, b] if forward_edge else s.tables[e, b, a]) * q[j, b]
            out[a, r] += acc


@njit(**_HELPER)
def _field_row(i, s, theta, q, g, p, t, r, tmp):
    """Column r of label-major blocks: g[l, r] = g_i(l) = θ_i(l) + Σ_j Σ_b θ_ij(l, b) q_j(b), the mean
    field of i (∂E_q/∂q_i(l)); p[l, r] = q_i(l); t[l, r] = θ_i(l). ``tmp``: scratch of ≥ L entries.

    Stencil: with m = Σ_j w_ij q_j, Potts gives g_i = θ_i + Σ_j w_ij − m and a symmetric matrix
    g_i = θ_i + V m (one L×L product per row, not per edge). Indices are cast to uint64: Numba then
    drops its negative-index wrap-around code (a fifth of the row's time).
    """
    L = q.shape[1]
    ui = uint64(i)
    if s.width > 0 and s.kind == POTTS:  # the hot case: copies and field in one pass over the labels
        wr, wl, wd, wu, jr, jl, jd, ju = _stencil_neighbours(s, i)
        ur, ul, ud, uu = uint64(jr), uint64(jl), uint64(jd), uint64(ju)
        total = wr + wl + wd + wu
        for l in range(L):
            theta_l = theta[ui, l]
            p[l, r] = q[ui, l]
            t[l, r] = theta_l
            g[l, r] = theta_l + total - (wr * q[ur, l] + wl * q[ul, l] + wd * q[ud, l] + wu * q[uu, l])
        return
    for l in range(L):
        p[l, r] = q[ui, l]
        t[l, r] = theta[ui, l]
    if s.width > 0:  # symmetric matrix
        wr, wl, wd, wu, jr, jl, jd, ju = _stencil_neighbours(s, i)
        ur, ul, ud, uu = uint64(jr), uint64(jl), uint64(jd), uint64(ju)
        for b in range(L):
            tmp[b] = wr * q[ur, b] + wl * q[ul, b] + wd * q[ud, b] + wu * q[uu, b]
        for a in range(L):
            acc = theta[ui, a]
            for b in range(L):
                acc += s.matrix[a, b] * tmp[b]
            g[a, r] = acc
    else:
        for l in range(L):
            g[l, r] = theta[ui, l]
        for k in range(s.indptr[i], s.indptr[i + 1]):
            e = s.edge[k]
            _add_neighbour(s, s.weights[e], e, s.first[k], q, s.neighbour[k], g, r)


@njit(**_HELPER)
def _pair_value(s, e, w, a, b):
    """θ_e(a, b) for the edge e of weight w."""
    if s.kind == POTTS:
        return w if a != b else 0.0
    if s.kind == MATRIX:
        return w * s.matrix[a, b]
    return s.tables[e, a, b]


@njit(**_HELPER)
def _label_pair_energy(i, s, x):
    """Σ θ_e(x_i, x_j) over the edges e whose first endpoint is i (so that every edge is counted once)."""
    if s.width > 0:
        total = 0.0
        if s.right[i] != 0.0:
            total += _pair_value(s, 0, s.right[i], x[i], x[i + 1])
        if s.down[i] != 0.0:
            total += _pair_value(s, 0, s.down[i], x[i], x[i + s.width])
        return total
    total = 0.0
    for k in range(s.indptr[i], s.indptr[i + 1]):
        if s.first[k]:
            e = s.edge[k]
            total += _pair_value(s, e, s.weights[e], x[i], x[s.neighbour[k]])
    return total


@njit(**_HELPER)
def _label_field(i, s, theta, x, out):
    """out[l] = θ_i(l) + Σ_j θ_ij(l, x_j): the energy of x_i = l given the neighbours' labels x."""
    L = out.shape[0]
    for l in range(L):
        out[l] = theta[i, l]
    if s.width > 0:
        wr, wl, wd, wu, jr, jl, jd, ju = _stencil_neighbours(s, i)  # V is symmetric here
        for a in range(L):
            out[a] += (
                _pair_value(s, 0, wr, a, x[jr]) + _pair_value(s, 0, wl, a, x[jl])
                + _pair_value(s, 0, wd, a, x[jd]) + _pair_value(s, 0, wu, a, x[ju])
            )  # fmt: skip
        return
    for k in range(s.indptr[i], s.indptr[i + 1]):
        e, j = s.edge[k], s.neighbour[k]
        for a in range(L):
            if s.first[k]:
                out[a] += _pair_value(s, e, s.weights[e], a, x[j])
            else:
                out[a] += _pair_value(s, e, s.weights[e], x[j], a)


@njit(cache=True, error_model="numpy")
def softmax_rows(z, n_rows, work, top, total):
    """Row-wise softmax, in place, of the rows r < n_rows of a label-major block z (L, ≥ n_rows): row r is
    z[:, r]. The one Numba softmax of the project, tested equal to `mrf.projections.softmax`: max-shifted,
    −inf entries get exactly 0. Every loop runs over rows, so it vectorizes.
    ``work``, ``top``, ``total``: float scratch of ≥ n_rows entries.
    """
    L = z.shape[0]
    bits = work.view(np.int64)
    for r in range(n_rows):
        top[r] = z[0, r]
    for l in range(1, L):
        for r in range(n_rows):
            top[r] = max(top[r], z[l, r])
    for l in range(L):
        for r in range(n_rows):
            z[l, r] -= top[r]
        exp_block(z[l], n_rows, bits)
    for r in range(n_rows):
        total[r] = z[0, r]
    for l in range(1, L):
        for r in range(n_rows):
            total[r] += z[l, r]
    for l in range(L):
        for r in range(n_rows):
            z[l, r] /= total[r]


@njit(**_HELPER)
def _block_fields(s, theta, q, rows, lo, hi, g, p, t, tmp):
    """Label-major (L, CHUNK) blocks of the rows i = rows[lo + r], r < hi − lo: g[l, r] = g_i(l), the mean
    field; p[l, r] = q_i(l); t[l, r] = θ_i(l)."""
    for r in range(hi - lo):
        _field_row(rows[lo + r], s, theta, q, g, p, t, r, tmp)


@njit(**_HELPER)
def _block_statistics(p, t, g, n_rows, work, work2):
    """(Σ p(t + g)/2, Σ p log p) over the rows r < n_rows of blocks of q rows p, unaries t, fields g.

    Summed over all rows the first is E_q = Σ⟨q_i, θ_i⟩ + Σ_e q_iᵀθ_e q_j, because g_i − θ_i counts each
    edge from both ends. Zero-probability entries (maybe θ = +inf) are skipped. work, work2: scratch.
    """
    expected_energy = neg_entropy = 0.0
    for l in range(p.shape[0]):
        for r in range(n_rows):
            work[r] = 0.5 * p[l, r] * (t[l, r] + g[l, r]) if p[l, r] > 0.0 else 0.0
        expected_energy += sum_block(work, n_rows)
        neg_entropy += xlogx_sum_block(p[l], n_rows, work, work2)
    return expected_energy, neg_entropy


@njit(**_HELPER)
def _block_update(q_dst, x_dst, rows, lo, hi, p, g, a, b, damping, work, top, total, best):
    """q_dst_i = (1 − λ) q_i + λ softmax(a q_i − b g_i), x_dst_i = argmax q_dst_i for the rows
    i = rows[lo + r] of label-major blocks (p = q rows, g = mean fields, overwritten); returns the
    largest change |q_dst_i(l) − q_i(l)|.

    (a, b) = (0, 1/T) is the mean-field update q_i ∝ exp(−g_i/T); (a, b) = (β, βη) is the proximal step
    P_β(u_i − η g_i) with softmax (Eq. 14). +inf entries of g (padded labels) get probability 0.
    """
    R, L = hi - lo, p.shape[0]
    for l in range(L):
        for r in range(R):
            g[l, r] = a * p[l, r] - b * g[l, r]
    softmax_rows(g, R, work, top, total)
    for r in range(R):
        total[r] = 0.0  # the largest change of row r
    for l in range(L):
        for r in range(R):
            g[l, r] = (1.0 - damping) * p[l, r] + damping * g[l, r]
            total[r] = max(total[r], abs(g[l, r] - p[l, r]))
            q_dst[uint64(rows[lo + r]), l] = g[l, r]
    for r in range(R):
        top[r] = g[0, r]
        best[r] = 0
    for l in range(1, L):  # branch-free arg-max; ties keep the lower label
        for r in range(R):
            best[r] = l if g[l, r] > top[r] else best[r]
            top[r] = max(top[r], g[l, r])
    change = 0.0
    for r in range(R):
        x_dst[rows[lo + r]] = best[r]
        change = max(change, total[r])
    return change


@njit(**_HELPER)
def _scratch(L):
    """Per-chunk scratch: label-major (L, CHUNK) blocks g (fields), p (q rows), t (unaries); (CHUNK,)
    buffers work, work2, top, total and best (int64); tmp (L,)."""
    blocks = np.empty((3, L, CHUNK))
    rows = np.empty((4, CHUNK))
    return (blocks[0], blocks[1], blocks[2], rows[0], rows[1], rows[2], rows[3], np.empty(CHUNK, np.int64), np.empty(L))


# --- linearization -------------------------------------------------------------------------------------


@njit(**_KERNEL)
def linearize_rows(s, theta, q, rows, g):
    """g[k] = θ_i + Σ_j θ_ij q_j for i = rows[k]; g has shape (len(rows), L); +inf unaries stay +inf."""
    n, L = rows.shape[0], theta.shape[1]
    for c in prange((n + CHUNK - 1) // CHUNK):
        block, p, t, _, _, _, _, _, tmp = _scratch(L)
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        for r in range(hi - lo):
            _field_row(rows[lo + r], s, theta, q, block, p, t, r, tmp)
            for l in range(L):
                g[lo + r, l] = block[l, r]


def linearize(m, q: np.ndarray) -> np.ndarray:
    """∂E_q/∂q (N, L) for a model and marginals q (N, L) whose rows sum to 1: the mean field
    θ_i + Σ_j θ_ij q_j of every variable (+inf on padded labels)."""
    g = np.empty_like(m.unaries)
    rows = np.arange(m.n_variables)
    linearize_rows(pairwise(m), m.unaries, np.ascontiguousarray(q, dtype=np.float64), rows, g)
    return g


# --- mean-field and proximal (softmax) updates ---------------------------------------------------------


@njit(**_KERNEL)
def prox_parallel_step(s, theta, q, x, q_new, x_new, a, b, damping, update):
    """One parallel (Jacobi) update of every row, fused with the evaluation of the current state.

    q_new_i = (1 − λ) q_i + λ softmax(a q_i − b g_i(q)) with λ = damping; x_new = argmax q_new row-wise.
    Returns [E_q(q), Σ q log q, E(x), max |q_new − q|]: expected energy and negative entropy of the current
    marginals, the energy of the current labels x (so a per-iteration trace costs no extra pass), the change.
    With update=False only the evaluation is done (q_new, x_new untouched, change 0): one kernel serves
    both, which halves the compile time of the pair.
    """
    n, L = theta.shape
    rows = np.arange(n)
    n_chunks = (n + CHUNK - 1) // CHUNK
    parts = np.zeros((n_chunks, 4))
    for c in prange(n_chunks):
        g, p, t, work, work2, top, total, best, tmp = _scratch(L)
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        _block_fields(s, theta, q, rows, lo, hi, g, p, t, tmp)
        parts[c, 0], parts[c, 1] = _block_statistics(p, t, g, hi - lo, work, work2)
        if update:
            parts[c, 3] = _block_update(q_new, x_new, rows, lo, hi, p, g, a, b, damping, work, top, total, best)
        energy_x = 0.0
        for i in range(lo, hi):
            energy_x += theta[i, x[i]] + _label_pair_energy(i, s, x)
        parts[c, 2] = energy_x
    return _sum_parts(parts)


@njit(cache=True, error_model="numpy")
def _sum_parts(parts):
    """Column sums of per-chunk partial results in chunk order, except the last column: a maximum."""
    out = np.zeros(parts.shape[1])
    for c in range(parts.shape[0]):
        for k in range(parts.shape[1] - 1):
            out[k] += parts[c, k]
        out[-1] = max(out[-1], parts[c, -1])
    return out


@njit(cache=True, error_model="numpy")
def prox_sequential_sweep(s, theta, q, x, order, a, b, damping):
    """Gauss–Seidel sweep in ``order``: q_i ← (1−λ) q_i + λ softmax(a q_i − b g_i(q)) with fresh neighbours
    (x_i ← argmax q_i). With a = 0 each step minimises F(q) = E_q − T·H(q) over q_i exactly (λ = 1) or moves
    toward that minimiser (λ < 1; F is convex in one row), so F never increases. Returns the largest change.
    """
    g, p, t, work, _, top, total, best, tmp = _scratch(theta.shape[1])
    change = 0.0
    for k in range(order.shape[0]):
        _block_fields(s, theta, q, order, k, k + 1, g, p, t, tmp)
        change = max(change, _block_update(q, x, order, k, k + 1, p, g, a, b, damping, work, top, total, best))
    return change


@njit(**_KERNEL)
def prox_colour_sweep(s, theta, q, x, order, offsets, a, b, damping):
    """One sweep over the colour classes order[offsets[c]:offsets[c + 1]], in place. A class has no
    internal edges, so its rows are updated in parallel with exactly the result of the sequential sweep
    in this order (block coordinate descent). Returns the largest change."""
    L = theta.shape[1]
    change = 0.0
    for colour in range(offsets.shape[0] - 1):
        start, stop = offsets[colour], offsets[colour + 1]
        n_chunks = (stop - start + CHUNK - 1) // CHUNK
        parts = np.zeros(n_chunks)
        for c in prange(n_chunks):
            g, p, t, work, _, top, total, best, tmp = _scratch(L)
            lo, hi = start + c * CHUNK, min(stop, start + (c + 1) * CHUNK)
            _block_fields(s, theta, q, order, lo, hi, g, p, t, tmp)
            parts[c] = _block_update(q, x, order, lo, hi, p, g, a, b, damping, work, top, total, best)
        for c in range(n_chunks):
            change = max(change, parts[c])
    return change


def evaluate(s: Pairwise, theta: np.ndarray, q: np.ndarray, x: np.ndarray) -> np.ndarray:
    """[E_q(q), Σ q log q, E(x)] for marginals q and labels x (the caller's x = argmax q): the evaluation
    half of `prox_parallel_step`, which leaves q and x untouched with update=False."""
    return prox_parallel_step(s, theta, q, x, q, x, 0.0, 0.0, 0.0, False)[:3]


# --- labellings: energy and ICM ------------------------------------------------------------------------


@njit(**_KERNEL)
def energy(s, theta, x):
    """E(x) = Σ_i θ_i(x_i) + Σ_e θ_e(x_i, x_j) for labels x (N,) int64."""
    n = theta.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    parts = np.zeros(n_chunks)
    for c in prange(n_chunks):
        total = 0.0
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            total += theta[i, x[i]] + _label_pair_energy(i, s, x)
        parts[c] = total
    out = 0.0
    for c in range(n_chunks):
        out += parts[c]
    return out


@njit(**_HELPER)
def _icm_block(s, theta, x, order, lo, hi, z):
    """x_i ← argmin_l θ_i(l) + Σ_j θ_ij(l, x_j) for i = order[lo:hi] in turn, moving only on a strict
    decrease (ties keep the current label, so a sweep without moves proves a local minimum). Returns moves."""
    moves = 0
    for k in range(lo, hi):
        i = order[k]
        _label_field(i, s, theta, x, z)
        best = x[i]
        for l in range(z.shape[0]):
            best = l if z[l] < z[best] else best
        if best != x[i]:
            x[i] = best
            moves += 1
    return moves


@njit(cache=True, error_model="numpy")
def icm_sequential_sweep(s, theta, x, order):
    """One ICM sweep visiting the variables in ``order``; returns the number of labels changed."""
    return _icm_block(s, theta, x, order, 0, order.shape[0], np.empty(theta.shape[1]))


@njit(**_KERNEL)
def icm_colour_sweep(s, theta, x, order, offsets):
    """One ICM sweep over the colour classes (in parallel inside a class: its variables do not interact)."""
    moves = 0
    for colour in range(offsets.shape[0] - 1):
        start, stop = offsets[colour], offsets[colour + 1]
        n_chunks = (stop - start + CHUNK - 1) // CHUNK
        parts = np.zeros(n_chunks, np.int64)
        for c in prange(n_chunks):
            z = np.empty(theta.shape[1])
            parts[c] = _icm_block(s, theta, x, order, start + c * CHUNK, min(stop, start + (c + 1) * CHUNK), z)
        moves += parts.sum()
    return moves


# --- colouring -----------------------------------------------------------------------------------------


@njit(cache=True)
def greedy_colouring(indptr, neighbour):
    """colour[i] = the smallest colour no earlier neighbour has, visiting i = 0..N−1: a proper colouring
    with ≤ max degree + 1 colours (on a 4-connected grid in raster order, the checkerboard)."""
    n = indptr.shape[0] - 1
    colour = np.full(n, -1, np.int64)
    max_degree = 0
    for i in range(n):
        max_degree = max(max_degree, indptr[i + 1] - indptr[i])
    taken_by = np.full(max_degree + 1, -1, np.int64)
    for i in range(n):
        for k in range(indptr[i], indptr[i + 1]):
            c = colour[neighbour[k]]
            if c >= 0:
                taken_by[c] = i
        c = 0
        while taken_by[c] == i:
            c += 1
        colour[i] = c
    return colour
