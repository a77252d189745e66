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

from typing import Any

import numpy as np

from mrf._rows import (
    SMALL_D,
    arange_like,
    concat,
    fused,
    grad_enabled,
    is_torch,
    one_hot_argmax,
    rowsum,
    shifted,
    sigmoid,
    signs2,
    top2_margin,
)
from mrf._validation import positive_finite

PROJECTIONS = ("softmax", "sparsemax", "hardmax")
JACOBIANS = ("true", "pmf_repo", "md_code", "identity", "ste")

Array = Any  # np.ndarray or torch.Tensor
_SPARSEMAX_KERNEL_D = 32  # mrf._projection_kernels.SPARSEMAX_MAX_D (not imported: numba loads on first use)
_VJP_MODES = {"true": 0, "pmf_repo": 1, "md_code": 2}  # the kernels' codes (same reason; a test holds them equal)


def _check_projection(projection: str) -> None:
    if projection not in PROJECTIONS:
        raise ValueError(f"projection must be one of {PROJECTIONS}, got {projection!r}")


# --- projections ---------------------------------------------------------------------------------------


def softmax(x: Array, beta: float = 1.0) -> Array:
    """u = softmax(βx) row-wise along the last axis; stable for any finite β·x (max-shifted).

    Entries equal to −inf (labels a variable does not have) get probability exactly 0.
    """
    positive_finite(beta, "beta")
    u = fused("softmax_rows", (x,), float(beta))
    if u is not None:
        return u
    d = x.shape[-1]
    if is_torch(x):
        if d == 2:  # softmax of two entries is a pair of sigmoids: no reduction, half-width until the last op
            return ((x[..., 1:2] - x[..., 0:1]) * (beta * signs2(x))).sigmoid()
        if d > SMALL_D:
            return (x * beta).softmax(dim=-1)
    e = shifted(x * beta)
    e = e.exp() if is_torch(e) else np.exp(e)
    return e / rowsum(e)


def log_softmax(x: Array, beta: float = 1.0) -> Array:
    """log softmax(βx) row-wise, computed without forming the softmax (finite where softmax underflows)."""
    positive_finite(beta, "beta")
    if is_torch(x):
        return (x * beta).log_softmax(dim=-1)
    z = shifted(beta * x)
    return z - np.log(rowsum(np.exp(z)))


def sparsemax(x: Array, beta: float = 1.0) -> Array:
    """u = argmin_{z∈Δ} ‖z − βx‖² row-wise (Martins & Astudillo 2016): sparse, on the simplex boundary."""
    positive_finite(beta, "beta")
    d = x.shape[-1]
    u = fused("sparsemax_rows", (x,), float(beta)) if d <= _SPARSEMAX_KERNEL_D else None
    if u is not None:
        return u
    if d == 2:  # closed form: u_1 = clip((z_1 − z_0 + 1)/2, 0, 1), u_0 = 1 − u_1 (no sort)
        diff = beta * (x[..., 1:2] - x[..., 0:1])
        signs = arange_like(x, 2) * 2 - 1
        u = (diff * signs + 1) / 2
        return u.clamp(0, 1) if is_torch(u) else np.clip(u, 0, 1)
    z = shifted(beta * x)  # shift-invariant; with the maximum at 0 the first entry is always in the support
    if is_torch(z):
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
    u = fused("hardmax_rows", (x,))
    return u if u is not None else one_hot_argmax(x)


_PROJECT = {"softmax": softmax, "sparsemax": sparsemax, "hardmax": hardmax}


def project(aux: Array, beta: float = 1.0, projection: str = "softmax", jacobian: str | None = None) -> Array:
    """u = P_β(ũ) row-wise, P ∈ {softmax, sparsemax, hardmax}.

    For a torch tensor that requires grad, the result is differentiable and its backward applies
    ``project_vjp`` with ``jacobian`` (default: the projection's true Jacobian; "ste" for hardmax). That
    is how a network layer gets g_ũ = g_u · ∂u/∂ũ with exactly the Jacobian variant the method asks for.
    """
    _check_projection(projection)
    if is_torch(aux) and aux.requires_grad and grad_enabled():
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
    positive_finite(beta, "beta")
    jac = jacobian or default_jacobian(projection)
    _check_jacobian(projection, jac, aux.shape[-1])
    g = grad_u
    if jac == "identity":
        return g
    if projection == "softmax":
        grad_aux = fused("softmax_vjp_rows", (aux, g), float(beta), _VJP_MODES[jac])
        if grad_aux is not None:
            return grad_aux
        if aux.shape[-1] == 2:
            return _softmax_vjp_binary(aux, g, beta, jac)
        u = softmax(aux, beta)
        if jac == "true":
            return beta * u * (g - rowsum(g * u))
        s = softmax(u, beta) if jac == "pmf_repo" else u
        return beta * (g - rowsum(g * s) * s)
    if projection == "sparsemax":
        grad_aux = fused("sparsemax_vjp_rows", (aux, g), float(beta)) if aux.shape[-1] <= _SPARSEMAX_KERNEL_D else None
        if grad_aux is not None:
            return grad_aux
        s = sparsemax(aux, beta) > 0
        s = s.to(g.dtype) if is_torch(g) else s.astype(g.dtype)
        return beta * s * (g - rowsum(g * s) / rowsum(s))
    # hardmax, straight-through (Eq. 40)
    grad_aux = fused("ste_vjp_rows", (aux, g))
    if grad_aux is not None:
        return grad_aux
    d = aux.shape[-1]
    if d == 1:
        return g * 0
    live = top2_margin(aux) <= 1
    live = live.to(g.dtype) if is_torch(g) else live.astype(g.dtype)
    return live * (g - rowsum(g) / d)


def _softmax_vjp_binary(aux: Array, g: Array, beta: float, jac: str) -> Array:
    """The softmax Jacobians for d = 2 on half-width columns (the hot path of binary networks).

    u₁ = σ(t), u₀ = σ(−t) with t = β(ũ₁ − ũ₀). The true Jacobian gives β u ⊙ (g − ⟨g, u⟩1) = β(g₁ − g₀)u₀u₁·(−1, 1);
    the other two are β(g − ⟨g, s⟩s) with s = u (md_code) or s = softmax(βu), whose logit gap is β(u₁ − u₀).
    """
    t = (aux[..., 1:2] - aux[..., 0:1]) * beta
    if jac == "true":
        c = (g[..., 1:2] - g[..., 0:1]) * (beta * sigmoid(t) * sigmoid(-t))
        return concat((-c, c), g.dtype)
    if jac == "pmf_repo":
        t = (sigmoid(t) - sigmoid(-t)) * beta
    s = concat((sigmoid(-t), sigmoid(t)), g.dtype)
    return beta * (g - rowsum(g * s) * s)


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
