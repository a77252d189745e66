"""A network's loss, linearized at u^k, as MRF unary potentials.

At u^k the first-order expansion of the loss is L(u) ≈ L(u^k) + ⟨g, u − u^k⟩ with, for every weight j and
level λ, the unary potential

    θ_{j:λ} = ∂L/∂u_{j:λ} = q_λ · ∂L/∂w_j                      (chain rule through w = u q, [S] Eq. 30)

so each quantized tensor of shape S becomes an MRF with m = prod(S) variables, d = |Q| labels and no
pairwise terms: its (m, d) unary matrix is what the `mrf` proximal step consumes.
"""

from __future__ import annotations

import torch


def unaries_from_grad(grad_w: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """θ = ∂L/∂w ⊗ q: shape (*grad_w.shape, d); ``.reshape(-1, d)`` is the m×d view (no copy)."""
    if levels.ndim != 1:
        raise ValueError(f"levels must be a 1-D tensor of the d quantization levels, got shape {tuple(levels.shape)}")
    return grad_w.unsqueeze(-1) * levels.to(grad_w)


def as_rows(unaries: torch.Tensor) -> torch.Tensor:
    """The (m, d) view of unaries with a trailing level axis (a view, never a copy)."""
    return unaries.view(-1, unaries.shape[-1])
