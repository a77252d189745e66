"""u-space parametrization: each quantized weight w_j = ⟨u_j, q⟩ with u_j = P_β(ũ_j) ∈ Δ^d ([P] Eq. 2, 17).

A ``USpaceLayer`` stores ũ of shape (*weight.shape, d) (and (*bias.shape, d)), computes u = mrf.project(ũ, β,
projection, jacobian), w = u q, and calls the float layer's functional op: the same function as the reference
code's d-times-wider layer, d times cheaper. Backward through ``mrf.project`` gives g_ũ = g_u · ∂u/∂ũ with the
chosen Jacobian variant (``mrf.project_vjp``).

projection "none": the stored parameter IS u (on the simplex) and w = u q directly; the PGD-form methods update
it with ``mrf.proximal_step`` and its ``.grad`` is the unaries ∂L/∂u.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

import mrf
from mrf._validation import positive_finite
from nnquant.layers import Include, QuantizedLayer, quantized_layers, replace_module, select_layers
from nnquant.levels import LevelSpec, levels_for

PROJECTIONS = ("softmax", "sparsemax", "hardmax", "none")
INITS = ("reference", "from_float")


def check_projection(projection: str, jacobian: str | None, d: int = 2) -> None:
    """Raise ValueError unless (projection, jacobian) is a valid pair (the checks of ``mrf.project_vjp``)."""
    if projection not in PROJECTIONS:
        raise ValueError(f"projection must be one of {PROJECTIONS}, got {projection!r}")
    if projection == "none":
        if jacobian is not None:
            raise ValueError(f"projection='none' has no Jacobian (u is the parameter), got jacobian={jacobian!r}")
        return
    zeros = np.zeros((1, d))
    mrf.project_vjp(zeros, zeros, 1.0, projection, jacobian)  # validates the pair; the value is discarded


@torch.no_grad()
def init_latent(param: torch.Tensor, levels: torch.Tensor, init: str, out_dim_weight: bool) -> torch.Tensor:
    """ũ^0 of shape (*param.shape, d).

    "reference" (the reference code's ``init_weights``): tensors with ≥ 2 dims get xavier_uniform_ computed on
    the expanded layer whose output channels are out·d, i.e. bound = √(6 / (fan_in + d·fan_out)); 1-D tensors
    (biases) get Normal(0, 0.1). "from_float": ũ_λ = −|w − q_λ| so that hardmax(ũ) q is the level nearest to the
    float weight w (ties → the lower level).
    """
    d = len(levels)
    if init == "from_float":
        return -(param.detach()[..., None] - levels).abs()
    out = torch.empty(*param.shape, d, device=param.device, dtype=param.dtype)
    if out_dim_weight and param.dim() >= 2:
        receptive = math.prod(param.shape[2:])
        fan_in, fan_out = param.shape[1] * receptive, param.shape[0] * d * receptive
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        return out.uniform_(-bound, bound)
    return out.normal_(0.0, 0.1)


class USpaceLayer(QuantizedLayer):
    """A Linear/Conv whose weight and bias are u q with u = P_β(ũ); latents ``weight_latent`` (*w.shape, d)."""

    def __init__(
        self,
        layer: nn.Module,
        levels: torch.Tensor,
        *,
        projection: str = "softmax",
        jacobian: str | None = None,
        beta: float = 1.0,
        init: str = "reference",
    ):
        super().__init__(layer, levels)
        check_projection(projection, jacobian, len(levels))
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.projection, self.jacobian, self.beta = projection, jacobian, positive_finite(beta, "beta")
        self.retain_unaries = False
        self.last_u: dict[str, torch.Tensor] = {}
        for key in ("weight", "bias"):
            p = getattr(layer, key)
            if p is None:
                continue
            aux = init_latent(p, self.levels, init, key == "weight")
            if projection == "none":  # store u itself: the softmax of the initial ũ
                aux = mrf.softmax(aux, self.beta)
            self.register_parameter(f"{key}_latent", nn.Parameter(aux))

    def __getstate__(self) -> dict:
        # the retained u of the last forward belongs to its autograd graph: not copied or pickled
        return {**super().__getstate__(), "last_u": {}}

    def _project(self, aux: torch.Tensor) -> torch.Tensor:
        if self.projection == "none":
            return aux
        return mrf.project(aux, self.beta, self.projection, self.jacobian)

    def quantized_params(self) -> dict[str, torch.Tensor]:
        out = {}
        self.last_u = {}
        for key, aux in self.latent.items():
            u = self._project(aux)
            if self.retain_unaries:
                if u.requires_grad and not u.is_leaf:
                    u.retain_grad()  # u.grad after backward = ∂L/∂u, the MRF unaries
                self.last_u[key] = u
            out[key] = u @ self.levels
        return out

    @torch.no_grad()
    def u(self) -> dict[str, torch.Tensor]:
        """The current projected u (detached), {"weight": (*w.shape, d), "bias": (*b.shape, d)}."""
        return {k: self._project(a.detach()) for k, a in self.latent.items()}

    @torch.no_grad()
    def rounded_params(self) -> dict[str, torch.Tensor]:
        """hardmax(ũ) q: every value is a level (argmax of u is argmax of ũ for every projection)."""
        return {k: mrf.hardmax(a.detach()) @ self.levels for k, a in self.latent.items()}

    def extra_repr(self) -> str:
        q = [round(v, 6) for v in self.levels.tolist()]
        return f"{self.op.kind.__name__}, q={q}, projection={self.projection!r}, jacobian={self.jacobian!r}"


def quantize_model(
    model: nn.Module,
    levels: LevelSpec = 2,
    *,
    include: Include = None,
    projection: str = "softmax",
    jacobian: str | None = None,
    init: str = "reference",
    beta: float = 1.0,
) -> nn.Module:
    """A NEW model (deep copy; ``model`` is untouched) whose selected Linear/Conv layers are USpaceLayers.

    levels: a level spec (``nnquant.levels``); include: which layers (``nnquant.layers.select_layers``; default
    all, and then any other module owning parameters is an error); projection ∈ softmax | sparsemax | hardmax |
    none; jacobian: a variant of ``mrf.project_vjp`` (None → the projection's default); init: "reference" or
    "from_float" (``init_latent``); beta: the initial β (change it with ``set_beta``).
    """
    names = select_layers(model, include)
    check_projection(projection, jacobian)
    qmodel = copy.deepcopy(model)
    for name in names:
        layer = qmodel.get_submodule(name)
        q = levels_for(levels, name, layer)
        new = USpaceLayer(layer, q, projection=projection, jacobian=jacobian, beta=beta, init=init)
        qmodel = replace_module(qmodel, name, new)
    return qmodel


def uspace_layers(model: nn.Module) -> dict[str, USpaceLayer]:
    """{name: layer} of every USpaceLayer in ``model``; ValueError if there is none."""
    layers = {n: m for n, m in quantized_layers(model).items() if isinstance(m, USpaceLayer)}
    if not layers:
        raise ValueError(f"{type(model).__name__} has no u-space layer; build it with quantize_model")
    return layers


def set_beta(model: nn.Module, beta: float) -> None:
    """β of every u-space layer of ``model``."""
    beta = positive_finite(beta, "beta")
    for layer in uspace_layers(model).values():
        layer.beta = beta


def set_projection(model: nn.Module, projection: str, jacobian: str | None = None) -> None:
    """Projection and Jacobian variant of every u-space layer (not to or from "none": that changes what the
    parameter stores; build such a model with ``quantize_model(..., projection="none")``)."""
    layers = uspace_layers(model)
    for name, layer in layers.items():
        check_projection(projection, jacobian, len(layer.levels))
        if (projection == "none") != (layer.projection == "none"):
            raise ValueError(f"cannot switch layer {name!r} from projection={layer.projection!r} to {projection!r}")
    for layer in layers.values():
        layer.projection, layer.jacobian = projection, jacobian


def set_retain_unaries(model: nn.Module, retain: bool = True) -> None:
    """Keep each forward's u as ``layer.last_u[key]`` with ``retain_grad`` so u.grad = ∂L/∂u after backward."""
    for layer in uspace_layers(model).values():
        layer.retain_unaries = bool(retain)
        layer.last_u = {}
