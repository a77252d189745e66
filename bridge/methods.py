"""The quantization methods of the paper, each a thin adapter over the `mrf` proximal mean-field step.

Aux-variable forms (Eq. 17; a torch optimizer on ũ, the backward of `mrf.project` applies `mrf.project_vjp`):
    PMF   softmax,   Jacobian "pmf_repo" (reference code), "true" or "identity"; β annealed
    PGD   sparsemax, true Jacobian; β annealed exactly like PMF
    PICM  hardmax,   straight-through Jacobian (Eq. 40); ≡ BinaryConnect with η_u = η_w / 2 (Prop. 3.1)
PGD forms (no auxiliary variables: the parameter is u ∈ Δ^m itself, its gradient is the unaries θ):
    PMF wo ũ    u ← softmax(β(u − ηθ)) = `mrf.proximal_step` (Eq. 14, Theorem 3.1)
    MEAN_FIELD  u ← softmax(−βηθ): plain mean-field on the linearized loss (no proximal term)
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

import mrf
from nnquant.methods import USpaceMethod
from nnquant.uspace import uspace_layers

METHODS = ("pmf", "pgd", "picm", "pmf_wo_aux", "mean_field")


@dataclasses.dataclass
class ProximalPGDForm(USpaceMethod):
    """u^{k+1} = P_β(u^k − η θ^k) on the simplex, θ^k = ∂L/∂u at u^k, η = the optimizer's current lr.

    ``proximal=False`` drops the proximal term −⟨u^k, u⟩ of Eq. 15: u^{k+1} = P_β(−η θ^k), plain mean-field.
    Parameters that are not quantized are still stepped by the optimizer.
    """

    projection: str = "none"
    step_projection: str = "softmax"
    proximal: bool = True
    name = "pgd_form"

    def __post_init__(self) -> None:
        if self.projection != "none":
            raise ValueError("a PGD-form method stores u itself: projection must be 'none'")
        super().__post_init__()

    @torch.no_grad()
    def after_backward(self, trained: nn.Module, optimizer: torch.optim.Optimizer, k: int) -> None:
        beta, eta = self.beta_at(k), optimizer.param_groups[0]["lr"]
        for layer in uspace_layers(trained).values():
            for u in layer.latent.values():
                if u.grad is None:
                    continue
                theta = u.grad  # the unaries of this tensor's MRF: θ_{j:λ} = q_λ ∂L/∂w_j
                step = (
                    mrf.proximal_step(u, theta, beta, eta, self.step_projection)
                    if self.proximal
                    else (mrf.project(-eta * theta, beta, self.step_projection))
                )
                u.copy_(step)
                u.grad = None  # so the optimizer below leaves u alone
        optimizer.step()


def make_method(
    method: str = "pmf",
    levels=2,
    *,
    beta: mrf.BetaSchedule | None = None,
    jacobian: str | None = None,
    include=None,
) -> USpaceMethod:
    """The method called ``method`` (one of METHODS) on ``levels`` with β schedule ``beta``.

    Defaults follow the paper: PMF uses the reference code's Jacobian ("pmf_repo"); PICM has no β.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    beta = beta if beta is not None else mrf.BetaSchedule(rho=1.2, interval=100)
    common = {"levels": levels, "include": include}
    if method == "pmf":
        return USpaceMethod(projection="softmax", jacobian=jacobian or "pmf_repo", beta=beta, **common)
    if method == "pgd":
        return USpaceMethod(projection="sparsemax", jacobian=jacobian or "true", beta=beta, **common)
    if method == "picm":
        return USpaceMethod(projection="hardmax", jacobian=jacobian or "ste", beta=None, **common)
    if jacobian is not None:
        raise ValueError(f"method {method!r} has no Jacobian (it updates u directly), got jacobian={jacobian!r}")
    return ProximalPGDForm(beta=beta, proximal=method == "pmf_wo_aux", **common)
