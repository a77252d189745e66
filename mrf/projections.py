"""Projections onto the simplex, their Jacobians and the proximal mean-field step.

This module is the single home of these operations for the whole project (`bridge` and `nnquant`
import them). Every function takes a NumPy array or a torch tensor (CPU or CUDA) and returns the same
kind; torch is never imported here unless the caller passes a tensor. Rows are along the last axis:
an array of shape (..., d) holds one simplex row u_j ∈ Δ^d per leading index (d = number of labels).
The projections and their Jacobians run as fused Numba kernels (`mrf._projection_kernels`) on C-contiguous
float CPU arrays that need no autograd graph, and as array-library expressions otherwise (CUDA, autograd,
strided); tests hold the two paths equal.

Notation (Ajanthan et al., ICCV 2019): ũ auxiliary (unconstrained) variables, u = P_β(ũ) the projected
point on the simplex, q the levels, g = ∂L/∂u the unary potentials (gradient w.r.t. u), η the step size,
β the inverse temperature.

* softmax:   u = softmax(βũ)                     = argmax_{z∈Δ} ⟨ũ, z⟩ + H(z)/β        (Eq. 11, 12)
* sparsemax: u = argmin_{z∈Δ} ‖z − βũ‖²                                              (Eq. 9)
* hardmax:   u = one-hot(argmax ũ), ties → the first label (sign(0) = −1 for q = [−1, 1])  (Eq. 10)
* proximal step: softmax(β(u^k − ηg)) = argmin_{u∈Δ} η⟨g, u⟩ − ⟨u^k, u⟩ − H(u)/β      (Theorem 3.1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

PROJECTIONS = ("softmax", "sparsemax", "hardmax")
JACOBIANS = ("true", "pmf_repo", "md_code", "identity", "ste")

Array = Any  # np.ndarray or torch.Tensor
_SPARSEMAX_KERNEL_D = 32  # mrf._projection_kernels.SPARSEMAX_MAX_D (not imported: numba loads on first use)
_VJP_MODES = {"true": 0, "pmf_repo": 1, "md_code": 2}  # the kernels' codes (same reason; a test holds them equal)


def _is_torch(x: Array) -> bool:
    return type(x).__module__.startswith("torch")


def _grad_enabled() -> bool:
    import torch  # only reached with a tensor in hand, so torch is already imported

    return torch.is_grad_enabled()


def _check_projection(projection: str) -> None:
    if projection not in PROJECTIONS:
        raise ValueError(f"projection must be one of {PROJECTIONS}, got {projection!r}")


def _check_beta(beta: float) -> None:
    if not (beta > 0 and np.isfinite(beta)):
        raise ValueError(f"beta must be a finite positive number, got {beta!r}")


# --- row-wise primitives (NumPy / torch dispatch) ------------------------------------------------------


def _rowmax(x: Array) -> Array:
    d = x.shape[-1]
    if 1 < d <= _SMALL_D:
        top = _maximum(x[..., 0], x[..., 1])
        for i in range(2, d):
            top = _maximum(top, x[..., i])
        return top[..., None]
    return x.amax(dim=-1, keepdim=True) if _is_torch(x) else x.max(axis=-1, keepdims=True)


def _maximum(a: Array, b: Array) -> Array:
    if _is_torch(a):
        import torch

        return torch.maximum(a, b)
    return np.maximum(a, b)


# Reductions over a short last axis (d = 2..8 labels) are slow in both libraries' generic kernels; adding the
# d strided columns is several times faster (measured: 266k rows × 2, 0.2 ms instead of 0.9 ms in torch).
_SMALL_D = 8


def _rowsum(x: Array) -> Array:
    d = x.shape[-1]
    if 1 < d <= _SMALL_D:
        total = x[..., 0] + x[..., 1]
        for i in range(2, d):
            total = total + x[..., i]
        return total[..., None]
    return x.sum(dim=-1, keepdim=True) if _is_torch(x) else x.sum(axis=-1, keepdims=True)


def _SIGNS2(z: Array) -> Array:
    import torch

    return torch.tensor([-1.0, 1.0], dtype=z.dtype, device=z.device)


def _one_hot_argmax(x: Array) -> Array:
    d = x.shape[-1]
    if d == 2:  # label 1 wins only when strictly larger (ties → label 0)
        one = x[..., 1:2] > x[..., 0:1]
        hot = (one, ~one)[::-1]
        return _concat(hot, x.dtype)
    if 1 < d <= _SMALL_D:  # running comparison over the columns; strict ">" keeps the first maximum on ties
        best = x[..., 0]
        idx = (best.new_zeros if _is_torch(x) else partial(np.zeros, dtype=x.dtype))(best.shape)
        for i in range(1, d):
            better = x[..., i] > best
            best = _where(better, x[..., i], best)
            idx = _where(better, i, idx)
        labels = _arange_like(x, d)
        hot = idx[..., None] == labels
        return hot.to(x.dtype) if _is_torch(x) else hot.astype(x.dtype)
    if _is_torch(x):
        import torch

        idx = x.argmax(dim=-1, keepdim=True)  # first maximum on ties
        return torch.zeros_like(x).scatter_(-1, idx, 1.0)
    idx = x.argmax(axis=-1)[..., None]
    out = np.zeros_like(x)
    np.put_along_axis(out, idx, 1.0, axis=-1)
    return out


def _concat(parts, dtype) -> Array:
    if _is_torch(parts[0]):
        import torch

        return torch.cat(parts, dim=-1).to(dtype)
    return np.concatenate(parts, axis=-1).astype(dtype)


def _top2_margin(x: Array) -> Array:
    """x_(1) − x_(2), the gap between the two largest entries of each row, shape (..., 1)."""
    d = x.shape[-1]
    if d <= _SMALL_D:
        first = _maximum(x[..., 0], x[..., 1])
        second = _minimum(x[..., 0], x[..., 1])
        for i in range(2, d):
            second = _maximum(second, _minimum(first, x[..., i]))
            first = _maximum(first, x[..., i])
        return (first - second)[..., None]
    top2 = x.topk(2, dim=-1).values if _is_torch(x) else -np.partition(-x, 1, axis=-1)[..., :2]
    return top2[..., :1] - top2[..., 1:2]


def _where(cond: Array, a, b: Array) -> Array:
    if _is_torch(cond):
        import torch

        return torch.where(cond, a, b)
    return np.where(cond, a, b)


def _minimum(a: Array, b: Array) -> Array:
    if _is_torch(a):
        import torch

        return torch.minimum(a, b)
    return np.minimum(a, b)


def _arange_like(x: Array, d: int) -> Array:
    if _is_torch(x):
        import torch

        return torch.arange(d, dtype=x.dtype, device=x.device)
    return np.arange(d, dtype=x.dtype)


def _shifted(x: Array) -> Array:
    """x minus its row maximum; rows whose maximum is ±inf or NaN are left for the caller to reject."""
    m = _rowmax(x)
    return x - m


def _kernel_rows(*arrays: Array) -> list | None:
    """(n, d) NumPy views of ``arrays`` for the fused kernels of `mrf._projection_kernels`, or None unless all
    are C-contiguous float32/float64 CPU arrays of one shape and dtype that need no autograd graph."""
    first = arrays[0]
    if first.ndim == 0 or first.shape[-1] == 0 or first.size == 0:
        return None
    views = []
    for a in arrays:
        if a.shape != first.shape or a.dtype != first.dtype:
            return None
        if _is_torch(a):
            import torch

            if a.device.type != "cpu" or a.dtype not in (torch.float32, torch.float64) or not a.is_contiguous():
                return None
            if a.requires_grad and torch.is_grad_enabled():
                return None
            a = a.detach().numpy()
        elif not (a.dtype in (np.float32, np.float64) and a.flags.c_contiguous):
            return None
        views.append(a.reshape(-1, a.shape[-1]))
    return views


def _fused(kernel: str, arrays: tuple, *params) -> Array | None:
    """``mrf._projection_kernels.<kernel>(*rows, *params, out)`` when `_kernel_rows` accepts ``arrays``; the
    result is a new array of the last array's kind, shape and dtype. None: take the array-expression path."""
    rows = _kernel_rows(*arrays)
    if rows is None:
        return None
    from mrf import _projection_kernels as kernels

    like = arrays[-1]
    out = like.new_empty(like.shape) if _is_torch(like) else np.empty_like(like)
    getattr(kernels, kernel)(*rows, *params, (out.numpy() if _is_torch(out) else out).reshape(rows[-1].shape))
    return out


# --- projections ---------------------------------------------------------------------------------------


def softmax(x: Array, beta: float = 1.0) -> Array:
    """u = softmax(βx) row-wise along the last axis; stable for any finite β·x (max-shifted).

    Entries equal to −inf (labels a variable does not have) get probability exactly 0.
    """
    _check_beta(beta)
    fused = _fused("softmax_rows", (x,), float(beta))
    if fused is not None:
        return fused
    d = x.shape[-1]
    if _is_torch(x):
        if d == 2:  # softmax of two entries is a pair of sigmoids: no reduction, half-width until the last op
            return ((x[..., 1:2] - x[..., 0:1]) * (beta * _SIGNS2(x))).sigmoid()
        if d > _SMALL_D:
            return (x * beta).softmax(dim=-1)
    e = _shifted(x * beta)
    e = e.exp() if _is_torch(e) else np.exp(e)
    return e / _rowsum(e)


def log_softmax(x: Array, beta: float = 1.0) -> Array:
    """log softmax(βx) row-wise, computed without forming the softmax (finite where softmax underflows)."""
    _check_beta(beta)
    if _is_torch(x):
        return (x * beta).log_softmax(dim=-1)
    z = _shifted(beta * x)
    return z - np.log(_rowsum(np.exp(z)))


def sparsemax(x: Array, beta: float = 1.0) -> Array:
    """u = argmin_{z∈Δ} ‖z − βx‖² row-wise (Martins & Astudillo 2016): sparse, on the simplex boundary."""
    _check_beta(beta)
    d = x.shape[-1]
    fused = _fused("sparsemax_rows", (x,), float(beta)) if d <= _SPARSEMAX_KERNEL_D else None
    if fused is not None:
        return fused
    if d == 2:  # closed form: u_1 = clip((z_1 − z_0 + 1)/2, 0, 1), u_0 = 1 − u_1 (no sort)
        diff = beta * (x[..., 1:2] - x[..., 0:1])
        signs = _arange_like(x, 2) * 2 - 1
        u = (diff * signs + 1) / 2
        return u.clamp(0, 1) if _is_torch(u) else np.clip(u, 0, 1)
    z = _shifted(beta * x)  # shift-invariant; with the maximum at 0 the first entry is always in the support
    if _is_torch(z):
        import torch

        zs = torch.sort(z, dim=-1, descending=True).values
        k = torch.arange(1, d + 1, dtype=z.dtype, device=z.device)
        cs = zs.cumsum(dim=-1)
        support = (1 + k * zs > cs).to(z.dtype)
        rho = support.sum(dim=-1, keepdim=True).clamp(min=1)  # ≥ 1 for every finite row; NaN rows below
        tau = (torch.gather(cs, -1, rho.long() - 1) - 1) / rho
        tau = torch.where(z.isnan().any(dim=-1, keepdim=True), torch.nan, tau)
        return torch.clamp(z - tau, min=0)
    zs = -np.sort(-z, axis=-1)
    k = np.arange(1, d + 1, dtype=z.dtype)
    cs = np.cumsum(zs, axis=-1)
    rho = np.maximum(np.sum(1 + k * zs > cs, axis=-1, keepdims=True), 1)
    tau = (np.take_along_axis(cs, rho - 1, axis=-1) - 1) / rho
    tau = np.where(np.isnan(z).any(axis=-1, keepdims=True), np.nan, tau)
    return np.maximum(z - tau, 0)


def hardmax(x: Array, beta: float = 1.0) -> Array:
    """u = one-hot(argmax x) row-wise; ties go to the first label (level −1 for q = [−1, 1]).

    β is accepted for a uniform signature and ignored (hardmax is the β → ∞ limit of softmax).
    """
    fused = _fused("hardmax_rows", (x,))
    return fused if fused is not None else _one_hot_argmax(x)


_PROJECT = {"softmax": softmax, "sparsemax": sparsemax, "hardmax": hardmax}


def project(aux: Array, beta: float = 1.0, projection: str = "softmax", jacobian: str | None = None) -> Array:
    """u = P_β(ũ) row-wise, P ∈ {softmax, sparsemax, hardmax}.

    For a torch tensor that requires grad, the result is differentiable and its backward applies
    ``project_vjp`` with ``jacobian`` (default: the projection's true Jacobian; "ste" for hardmax). That
    is how a network layer gets g_ũ = g_u · ∂u/∂ũ with exactly the Jacobian variant the method asks for.
    """
    _check_projection(projection)
    if _is_torch(aux) and aux.requires_grad and _grad_enabled():
        from mrf._torch_projection import projection_function

        jac = jacobian or default_jacobian(projection)
        _check_jacobian(projection, jac, aux.shape[-1])
        return projection_function().apply(aux, float(beta), projection, jac)
    return _PROJECT[projection](aux, beta)


# --- Jacobians: g ↦ g · ∂u/∂ũ (all Jacobians here are symmetric, so this is also J g) -------------------


def default_jacobian(projection: str) -> str:
    """The true Jacobian for softmax and sparsemax; the straight-through estimator (Eq. 40) for hardmax."""
    _check_projection(projection)
    return "ste" if projection == "hardmax" else "true"


def _check_jacobian(projection: str, jacobian: str, d: int) -> None:
    if jacobian not in JACOBIANS:
        raise ValueError(f"jacobian must be one of {JACOBIANS}, got {jacobian!r}")
    allowed = {
        "softmax": ("true", "pmf_repo", "md_code", "identity"),
        "sparsemax": ("true", "identity"),
        "hardmax": ("ste", "identity"),
    }[projection]
    if jacobian not in allowed:
        raise ValueError(f"jacobian={jacobian!r} is not defined for projection={projection!r}; use one of {allowed}")
    if d < 1:
        raise ValueError(f"rows must have at least one label, got last axis of size {d}")


def project_vjp(
    aux: Array, grad_u: Array, beta: float = 1.0, projection: str = "softmax", jacobian: str | None = None
) -> Array:
    """g_ũ = g_u · ∂u/∂ũ at ũ = ``aux`` for u = P_β(ũ); ``aux`` and ``grad_u`` have shape (..., d).

    jacobian:
      * "true": softmax β(diag(u) − uuᵀ); sparsemax β(diag(s) − ssᵀ/|s|), s = 1[u > 0].
      * "pmf_repo": the reference code's softmax variant β(I − ssᵀ) with s = softmax(β·softmax(βũ))
        (a second softmax; "works slightly better than the true derivative"). Default of method PMF.
      * "md_code": β(I − uuᵀ), the mirror-descent follow-up's code.
      * "identity": the straight-through estimator g_ũ = g_u (md-softmax-s).
      * "ste" (hardmax): Eq. 40 generalised to d labels: 1[ũ_(1) − ũ_(2) ≤ 1]·(I − 11ᵀ/d), where ũ_(1), ũ_(2)
        are the two largest entries. For d = 2 this is exactly ½·1[|ũ_{−1} − ũ_{+1}| ≤ 1]·[[1, −1], [−1, 1]].
    """
    _check_projection(projection)
    _check_beta(beta)
    jac = jacobian or default_jacobian(projection)
    _check_jacobian(projection, jac, aux.shape[-1])
    g = grad_u
    if jac == "identity":
        return g
    if projection == "softmax":
        fused = _fused("softmax_vjp_rows", (aux, g), float(beta), _VJP_MODES[jac])
        if fused is not None:
            return fused
        if aux.shape[-1] == 2:
            return _softmax_vjp_binary(aux, g, beta, jac)
        u = softmax(aux, beta)
        if jac == "true":
            return beta * u * (g - _rowsum(g * u))
        s = softmax(u, beta) if jac == "pmf_repo" else u
        return beta * (g - _rowsum(g * s) * s)
    if projection == "sparsemax":
        fused = _fused("sparsemax_vjp_rows", (aux, g), float(beta)) if aux.shape[-1] <= _SPARSEMAX_KERNEL_D else None
        if fused is not None:
            return fused
        s = sparsemax(aux, beta) > 0
        s = s.to(g.dtype) if _is_torch(g) else s.astype(g.dtype)
        return beta * s * (g - _rowsum(g * s) / _rowsum(s))
    # hardmax, straight-through (Eq. 40)
    fused = _fused("ste_vjp_rows", (aux, g))
    if fused is not None:
        return fused
    d = aux.shape[-1]
    if d == 1:
        return g * 0
    live = _top2_margin(aux) <= 1
    live = live.to(g.dtype) if _is_torch(g) else live.astype(g.dtype)
    return live * (g - _rowsum(g) / d)


def _sigmoid(x: Array) -> Array:
    if _is_torch(x):
        return x.sigmoid()
    from scipy.special import expit

    return expit(x)


def _softmax_vjp_binary(aux: Array, g: Array, beta: float, jac: str) -> Array:
    """The softmax Jacobians for d = 2 on half-width columns (the hot path of binary networks).

    u₁ = σ(t), u₀ = σ(−t) with t = β(ũ₁ − ũ₀). The true Jacobian gives β u ⊙ (g − ⟨g, u⟩1) = β(g₁ − g₀)u₀u₁·(−1, 1);
    the other two are β(g − ⟨g, s⟩s) with s = u (md_code) or s = softmax(βu), whose logit gap is β(u₁ − u₀).
    """
    t = (aux[..., 1:2] - aux[..., 0:1]) * beta
    if jac == "true":
        c = (g[..., 1:2] - g[..., 0:1]) * (beta * _sigmoid(t) * _sigmoid(-t))
        return _concat((-c, c), g.dtype)
    if jac == "pmf_repo":
        t = (_sigmoid(t) - _sigmoid(-t)) * beta
    s = _concat((_sigmoid(-t), _sigmoid(t)), g.dtype)
    return beta * (g - _rowsum(g * s) * s)


# --- the proximal mean-field step ----------------------------------------------------------------------


def proximal_step(u: Array, unaries: Array, beta: float, eta: float, projection: str = "softmax") -> Array:
    """u^{k+1} = P_β(u^k − η g): the PGD form of proximal mean-field (Eq. 14).

    With softmax this is argmin_{u∈Δ} η⟨g, u⟩ − ⟨u^k, u⟩ − H(u)/β (Theorem 3.1): a mean-field update on the
    unaries g at temperature 1/β plus the proximal term −⟨u^k, u⟩; with hardmax it is proximal ICM (Eq. 18).
    ``u`` and ``unaries`` have shape (..., d); +inf unaries (absent labels) get probability 0.
    """
    if not eta > 0:
        raise ValueError(f"eta must be positive, got {eta!r}")
    return project(u - eta * unaries, beta, projection)


def aux_step(
    aux: Array,
    unaries: Array,
    beta: float,
    eta: float,
    projection: str = "softmax",
    jacobian: str | None = None,
) -> Array:
    """ũ^{k+1} = ũ^k − η · g · ∂u/∂ũ: the auxiliary-variable form (Eq. 17) with a plain gradient step.

    ``unaries`` g = ∂E/∂u at u = P_β(ũ^k). Returns the new ũ; the caller projects it when it needs u.
    Networks use a torch optimizer (Adam, SGD) on ũ with ``project_vjp`` instead of this plain step.
    """
    if not eta > 0:
        raise ValueError(f"eta must be positive, got {eta!r}")
    return aux - eta * project_vjp(aux, unaries, beta, projection, jacobian)


# --- the β schedule ------------------------------------------------------------------------------------


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
        _check_beta(self.beta0)
        _check_beta(self.cap)
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
