"""BinaryConnect (Courbariaux et al. 2015) in weight space: w = sign(w̃), straight-through gradient.

Forward sign with sign(0) = −1 (the hardmax tie rule of ``mrf.hardmax``: level index 0 ↔ −1); backward
g_w̃ = g_w · 1[|w̃| ≤ 1] ([S] Eq. 40 in w-space: BinaryConnect is proximal ICM, Proposition 3.1).
All weights and biases of the selected layers are binarized, as in the paper's BC baseline.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from nnquant.layers import Include, QuantizedLayer, replace_module, select_layers

BINARY_LEVELS = (-1.0, 1.0)


def sign(w: torch.Tensor) -> torch.Tensor:
    """sign with sign(0) = −1: values in {−1, 1} only."""
    return torch.where(w > 0, 1.0, -1.0).to(w.dtype)


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w):
        ctx.save_for_backward(w)
        return sign(w)

    @staticmethod
    def backward(ctx, grad):
        (w,) = ctx.saved_tensors
        return grad * (w.abs() <= 1).to(grad.dtype)


def sign_ste(w: torch.Tensor) -> torch.Tensor:
    """sign(w) forward, straight-through gradient 1[|w| ≤ 1] backward."""
    return _SignSTE.apply(w)


class SignLayer(QuantizedLayer):
    """A Linear/Conv whose weight and bias are sign(w̃); latents ``weight_latent``/``bias_latent`` (float, w̃)."""

    def __init__(self, layer: nn.Module):
        super().__init__(layer, torch.tensor(BINARY_LEVELS))
        for key in ("weight", "bias"):
            p = getattr(layer, key)
            if p is not None:
                self.register_parameter(f"{key}_latent", nn.Parameter(p.detach().clone()))

    def quantized_params(self) -> dict[str, torch.Tensor]:
        return {k: sign_ste(w) for k, w in self.latent.items()}

    @torch.no_grad()
    def rounded_params(self) -> dict[str, torch.Tensor]:
        return {k: sign(w.detach()) for k, w in self.latent.items()}

    @torch.no_grad()
    def clip_(self, bound: float) -> None:
        """w̃ ← clamp(w̃, −bound, bound) (the original BinaryConnect's clipping; optional here)."""
        for w in self.latent.values():
            w.clamp_(-bound, bound)


def binarize_model(model: nn.Module, *, include: Include = None) -> nn.Module:
    """A NEW model (deep copy) whose selected Linear/Conv layers are SignLayers (w̃ initialised to the float w)."""
    names = select_layers(model, include)
    bmodel = copy.deepcopy(model)
    for name in names:
        bmodel = replace_module(bmodel, name, SignLayer(bmodel.get_submodule(name)))
    return bmodel
