"""Training methods: how the loop builds, steps and rounds a network (Float REF, BinaryConnect, u-space).

The protocol used by ``nnquant.train``, per iteration k = 0, 1, ...:
    method.before_step(trained, k, reference_quirks=...)   # e.g. β ← β_k
    loss = loss_fn(trained(x), y); loss.backward()
    method.after_backward(trained, optimizer, k)            # default optimizer.step()
and ``method.rounded(trained)`` is the exactly quantized network that is evaluated, selected and exported.
A PGD-form method overrides ``after_backward`` to set u ← mrf.proximal_step(u, u.grad, β_k, η) with
η = optimizer.param_groups[0]["lr"] (the optimizer then only carries the learning-rate schedule).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable

import torch
from torch import nn

import mrf
from nnquant.binaryconnect import SignLayer, binarize_model
from nnquant.layers import Include, quantized_layers
from nnquant.levels import LevelSpec
from nnquant.rounding import round_model
from nnquant.uspace import check_projection, quantize_model, set_beta


class Method:
    """Float training; subclasses quantize. ``name`` identifies the method in checkpoints."""

    name = "float"

    def prepare(self, model: nn.Module) -> nn.Module:
        """The module to train, built from the float ``model`` (which is never modified)."""
        return copy.deepcopy(model)

    def trainable(self, trained: nn.Module) -> Iterable[nn.Parameter]:
        """The parameters the optimizer updates (for u-space methods: the ũ and the non-quantized floats)."""
        return [p for p in trained.parameters() if p.requires_grad]

    def beta_at(self, k: int, reference_quirks: bool = False) -> float | None:
        """β used at iteration k (None for methods without β)."""
        return None

    def before_step(self, trained: nn.Module, k: int, *, reference_quirks: bool = False) -> None:
        """Called before the forward pass of iteration k."""

    def after_backward(self, trained: nn.Module, optimizer: torch.optim.Optimizer, k: int) -> None:
        """Called after loss.backward() of iteration k: the parameter update."""
        optimizer.step()

    def rounded(self, trained: nn.Module) -> nn.Module:
        """The exactly quantized network (a plain torch model) for evaluation, test and export."""
        return trained

    def state_dict(self) -> dict:
        """Mutable method state saved in checkpoints (none here: schedules are functions of k)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"method {self.name!r} has no state, got keys {sorted(state)}")


class Float(Method):
    """REF: the float network trained as is; ``rounded`` is the trained module itself."""


@dataclasses.dataclass
class BinaryConnect(Method):
    """w = sign(w̃) (sign(0) = −1) with the straight-through gradient 1[|w̃| ≤ 1]; all weights and biases of the
    selected layers (default: all, as the paper). ``clip``: optional w̃ ← clamp(w̃, −clip, clip) after each step."""

    include: Include = None
    clip: float | None = None
    name = "binaryconnect"

    def __post_init__(self) -> None:
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"clip must be positive or None, got {self.clip!r}")

    def prepare(self, model: nn.Module) -> nn.Module:
        return binarize_model(model, include=self.include)

    def after_backward(self, trained: nn.Module, optimizer: torch.optim.Optimizer, k: int) -> None:
        optimizer.step()
        if self.clip is not None:
            for layer in quantized_layers(trained).values():
                if isinstance(layer, SignLayer):
                    layer.clip_(self.clip)

    def rounded(self, trained: nn.Module) -> nn.Module:
        return round_model(trained)


@dataclasses.dataclass
class USpaceMethod(Method):
    """The auxiliary-variable method ([P] Eq. 17, Alg. 1): an optimizer on ũ, u = P_{β_k}(ũ), w = u q, rounded
    by hardmax. ``beta``: the β schedule (None → constant β = 1, e.g. for hardmax/PICM). With
    ``reference_quirks`` the schedule's first multiplication happens right after iteration 0 (the reference)."""

    levels: LevelSpec = 2
    projection: str = "softmax"
    jacobian: str | None = None
    beta: mrf.BetaSchedule | None = dataclasses.field(default_factory=mrf.BetaSchedule)
    include: Include = None
    init: str = "reference"
    name = "uspace"

    def __post_init__(self) -> None:
        check_projection(self.projection, self.jacobian)
        if self.beta is not None and not isinstance(self.beta, mrf.BetaSchedule):
            raise TypeError(f"beta must be an mrf.BetaSchedule or None, got {type(self.beta).__name__}")

    def prepare(self, model: nn.Module) -> nn.Module:
        return quantize_model(
            model,
            self.levels,
            include=self.include,
            projection=self.projection,
            jacobian=self.jacobian,
            init=self.init,
            beta=self.beta_at(0),
        )

    def beta_at(self, k: int, reference_quirks: bool = False) -> float:
        if self.beta is None:
            return 1.0
        schedule = dataclasses.replace(self.beta, update_at_zero=True) if reference_quirks else self.beta
        return schedule(k)

    def before_step(self, trained: nn.Module, k: int, *, reference_quirks: bool = False) -> None:
        set_beta(trained, self.beta_at(k, reference_quirks))

    def rounded(self, trained: nn.Module) -> nn.Module:
        return round_model(trained)
