"""Fused Numba kernels for the row-wise projections (softmax, sparsemax, hardmax) and their Jacobian-vector
products, one pass per array.

`mrf.projections` calls these for C-contiguous float32/float64 rows on the CPU (NumPy arrays, or CPU torch
tensors through a zero-copy NumPy view) and keeps its array-library expressions for everything else (CUDA,
autograd, other dtypes); tests hold the two paths equal. Why: rows of d = 2 or 3 interleaved labels make every
array-library op a strided half-width pass (≈ 4 ns a row each), and a binary LeNet-300 step made about twenty
of them, more than the whole float network's forward and backward.

Softmax works in chunks of rows whose exponents go to a flat float64 buffer so that `exp_block` vectorizes
(`mrf._vecmath`); d = 2 needs one exponential a row (softmax of two labels is a sigmoid of their gap).
Arithmetic is in float64 whatever the storage dtype; results are written in the storage dtype. The kernels
are single-threaded on purpose: tried with `prange`, Numba's OpenMP workers kept spinning between calls on the
cores torch's own threads use, and a float LeNet-300 step in the same process took 7× the CPU time.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mrf._vecmath import exp_block

TRUE, PMF_REPO, MD_CODE = 0, 1, 2
VJP_MODES = {"true": TRUE, "pmf_repo": PMF_REPO, "md_code": MD_CODE}
CHUNK = 512  # rows per chunk: the float64 scratch stays in L1/L2
_JIT = {"cache": True, "error_model": "numpy"}


@njit(**_JIT)
def _softmax_planes(z, n, d, beta, work, acc):
    """Rows 0 ≤ r < n of logits stored label-major (z[l·CHUNK + r]) ← softmax(β·) in place; −inf gives 0.

    Label-major planes make every loop run over contiguous rows, so each one vectorizes."""
    for l in range(d):  # βx − max βx, rounded as the array-expression path rounds it
        for r in range(n):
            z[l * CHUNK + r] *= beta
    for r in range(n):
        acc[r] = z[r]
    for l in range(1, d):
        for r in range(n):
            acc[r] = max(acc[r], z[l * CHUNK + r])
    for l in range(d):
        for r in range(n):
            z[l * CHUNK + r] -= acc[r]
        exp_block(z[l * CHUNK :], n, work)
    for r in range(n):
        acc[r] = z[r]
    for l in range(1, d):
        for r in range(n):
            acc[r] += z[l * CHUNK + r]
    for r in range(n):
        acc[r] = 1.0 / acc[r]
    for l in range(d):
        for r in range(n):
            z[l * CHUNK + r] *= acc[r]


@njit(**_JIT)
def _chunk_softmax(x, lo, hi, beta, z, work, acc):
    """z[l·CHUNK + i − lo] = softmax(β x[i])_l for rows lo ≤ i < hi."""
    d = x.shape[1]
    for i in range(lo, hi):
        for l in range(d):
            z[l * CHUNK + i - lo] = x[i, l]
    _softmax_planes(z, hi - lo, d, beta, work, acc)


@njit(**_JIT)
def _chunk_gap(gap, n, z, work):
    """z[k] = e^{−|gap_k|} for logit gaps βx₁ − βx₀: the smaller of the two probabilities over the larger."""
    for k in range(n):
        z[k] = -abs(gap[k])
    exp_block(z, n, work)


@njit(**_JIT)
def softmax_rows(x, beta, out):
    """out = softmax(β x) row-wise; x, out (n, d) C-contiguous, same dtype."""
    n, d = x.shape
    z, work, gap = np.empty(CHUNK * d), np.empty(CHUNK * d, np.int64), np.empty(CHUNK)
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        if d == 2:
            for i in range(lo, hi):
                gap[i - lo] = beta * np.float64(x[i, 1]) - beta * np.float64(x[i, 0])
            _chunk_gap(gap, hi - lo, z, work)
            for i in range(lo, hi):
                e = z[i - lo]
                big = 1.0 / (1.0 + e)
                up = gap[i - lo] > 0
                out[i, 1] = big if up else e * big
                out[i, 0] = e * big if up else big
        else:
            _chunk_softmax(x, lo, hi, beta, z, work, gap)
            for i in range(lo, hi):
                for l in range(d):
                    out[i, l] = z[l * CHUNK + i - lo]


@njit(**_JIT)
def softmax_vjp_rows(x, g, beta, mode, out):
    """out = g · ∂u/∂x for u = softmax(βx), row-wise; ``mode`` a code of VJP_MODES (see ``project_vjp``).

    TRUE: β u ⊙ (g − ⟨g, u⟩1); MD_CODE: β(g − ⟨g, s⟩s) with s = u; PMF_REPO: the same with s = softmax(βu).
    """
    n, d = x.shape
    z, work, gap = np.empty(CHUNK * d), np.empty(CHUNK * d, np.int64), np.empty(CHUNK)
    s = np.empty(d)
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        if d == 2:  # s₁ = σ(gap), s₀ = σ(−gap); u₁ − u₀ = sign(gap)(1 − e)/(1 + e)
            for i in range(lo, hi):
                gap[i - lo] = beta * np.float64(x[i, 1]) - beta * np.float64(x[i, 0])
            _chunk_gap(gap, hi - lo, z, work)
            if mode == PMF_REPO:
                for k in range(hi - lo):
                    e = z[k]
                    gap[k] = beta * ((1.0 - e) / (1.0 + e) if gap[k] > 0 else (e - 1.0) / (1.0 + e))
                _chunk_gap(gap, hi - lo, z, work)
            for i in range(lo, hi):
                e = z[i - lo]
                big = 1.0 / (1.0 + e)
                up = gap[i - lo] > 0
                s[1] = big if up else e * big
                s[0] = e * big if up else big
                _vjp_row(g, i, s, beta, mode, out)
        else:
            _chunk_softmax(x, lo, hi, beta, z, work, gap)
            if mode == PMF_REPO:
                _softmax_planes(z, hi - lo, d, beta, work, gap)
            for i in range(lo, hi):
                for l in range(d):
                    s[l] = z[l * CHUNK + i - lo]
                _vjp_row(g, i, s, beta, mode, out)


@njit(cache=True, error_model="numpy", inline="always")
def _vjp_row(g, i, s, beta, mode, out):
    r = 0.0
    for l in range(s.shape[0]):
        r += g[i, l] * s[l]
    for l in range(s.shape[0]):
        out[i, l] = beta * s[l] * (g[i, l] - r) if mode == TRUE else beta * (g[i, l] - r * s[l])


# --- sparsemax and hardmax: no exponentials, one pass -----------------------------------------------------

SPARSEMAX_MAX_D = 32  # the support test below is O(d²) a row; wider rows keep the array-library sort


@njit(cache=True, error_model="numpy", inline="always")
def _sparsemax_row(x, i, beta, z):
    """z ← βx[i] − max βx[i]; returns τ with sparsemax(βx[i]) = max(z − τ, 0).

    Sort-free: label j is in the support iff 1 + k_j z_j > Σ_{z_m ≥ z_j} z_m with k_j = #{m : z_m ≥ z_j}, the
    sorted test of Martins & Astudillo evaluated at j's rank (tied labels get the same answer); branch-free
    selects, because for d = 3 a sort's mispredicted branches cost more than the d² comparisons."""
    d = x.shape[1]
    top = beta * x[i, 0]
    for l in range(1, d):
        top = max(top, beta * x[i, l])
    nan = False
    for l in range(d):
        z[l] = beta * x[i, l] - top
        nan = nan or z[l] != z[l]
    size, total = 0.0, 0.0
    for j in range(d):
        k, above = 0.0, 0.0
        for m in range(d):
            ge = z[m] >= z[j]
            k += 1.0 if ge else 0.0
            above += z[m] if ge else 0.0
        inside = 1.0 + k * z[j] > above
        size += 1.0 if inside else 0.0
        total += z[j] if inside else 0.0
    return np.nan if nan else (total - 1.0) / size  # a NaN entry makes the whole row NaN, as the sort path does


@njit(cache=True, inline="always")
def _clip01(v):
    return 0.0 if v <= 0.0 else (1.0 if v >= 1.0 else v)  # NaN stays NaN


@njit(**_JIT)
def sparsemax_rows(x, beta, out):
    """out = sparsemax(βx) row-wise (d = 2 in closed form: u₁ = clip((β(x₁ − x₀) + 1)/2, 0, 1))."""
    n, d = x.shape
    z = np.empty(d)
    for i in range(n):
        if d == 2:
            gap = beta * (np.float64(x[i, 1]) - np.float64(x[i, 0]))
            out[i, 1] = _clip01((gap + 1.0) / 2.0)
            out[i, 0] = _clip01((1.0 - gap) / 2.0)
        else:
            tau = _sparsemax_row(x, i, beta, z)
            for l in range(d):
                v = z[l] - tau
                out[i, l] = 0.0 if v <= 0.0 else v  # not max(): NaN must stay NaN


@njit(**_JIT)
def sparsemax_vjp_rows(x, g, beta, out):
    """out = β s ⊙ (g − ⟨g, s⟩/|s|), s = 1[sparsemax(βx) > 0], row-wise (the true Jacobian)."""
    n, d = x.shape
    z, s = np.empty(d), np.empty(d)
    for i in range(n):
        if d == 2:
            gap = beta * (np.float64(x[i, 1]) - np.float64(x[i, 0]))
            s[1] = 1.0 if gap + 1.0 > 0 else 0.0
            s[0] = 1.0 if 1.0 - gap > 0 else 0.0
        else:
            tau = _sparsemax_row(x, i, beta, z)
            for l in range(d):
                s[l] = 1.0 if z[l] - tau > 0 else 0.0
        dot, size = 0.0, 0.0
        for l in range(d):
            dot += g[i, l] * s[l]
            size += s[l]
        for l in range(d):
            out[i, l] = beta * s[l] * (g[i, l] - dot / size)


@njit(**_JIT)
def hardmax_rows(x, out):
    """out = one-hot(argmax x) row-wise; the first maximum wins ties."""
    n, d = x.shape
    for i in range(n):
        best, top = 0, x[i, 0]
        for l in range(1, d):  # branch-free: on random rows a branch here mispredicts half the time
            better = x[i, l] > top
            best = l if better else best
            top = x[i, l] if better else top
        for l in range(d):
            out[i, l] = 1.0 if l == best else 0.0


@njit(**_JIT)
def ste_vjp_rows(x, g, out):
    """out = 1[x₍₁₎ − x₍₂₎ ≤ 1]·(g − mean g) row-wise: Eq. 40's straight-through estimator for d labels."""
    n, d = x.shape
    for i in range(n):
        if d == 1:
            out[i, 0] = 0.0
            continue
        first, second = max(x[i, 0], x[i, 1]), min(x[i, 0], x[i, 1])
        for l in range(2, d):
            second = max(second, min(first, x[i, l]))
            first = max(first, x[i, l])
        live = 1.0 if first - second <= 1 else 0.0
        mean = 0.0
        for l in range(d):
            mean += g[i, l]
        mean /= d
        for l in range(d):
            out[i, l] = live * (g[i, l] - mean)
