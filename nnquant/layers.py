"""Which layers get quantized, and the common base of a quantized layer.

A quantized layer keeps the functional op of the float layer it replaces (F.linear / F.conv1d / F.conv2d with
the same stride, padding, dilation, groups, padding mode) and computes its weight w and bias b from latent
parameters (ũ for u-space methods, w̃ for BinaryConnect). ``to_float_layer`` rebuilds the user's layer type
holding the rounded (exactly quantized) values.

Selection rule: by default ALL learnable parameters are quantized (as the paper), so every module that owns
parameters must be an ``nn.Linear``, ``nn.Conv1d`` or ``nn.Conv2d`` (exact types: a subclass may have its
own forward); any other module owning parameters (LSTM, ConvTranspose2d, affine BatchNorm, Embedding, ...) is an
error naming it. With ``include`` only the selected modules are quantized (each must be supported) and all
other parameters stay float and are trained normally.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from fnmatch import fnmatchcase

import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d)
Include = None | str | Iterable[str] | Callable[[str, nn.Module], bool]


def _label(name: str) -> str:
    return repr(name) if name else "<root>"


class LayerOp:
    """The functional op of a Linear/Conv layer: ``apply(x, w, b)`` and ``build(w, b)`` (a fresh float layer)."""

    def __init__(self, layer: nn.Module):
        if type(layer) not in SUPPORTED:
            raise TypeError(f"cannot quantize a {type(layer).__name__}; supported: {[t.__name__ for t in SUPPORTED]}")
        self.kind = type(layer)
        if self.kind is nn.Linear:
            self.config = {"in_features": layer.in_features, "out_features": layer.out_features}
        else:
            self.config = {
                k: getattr(layer, k)
                for k in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups")
            }
            self.config["padding_mode"] = layer.padding_mode
            self.pad = layer._reversed_padding_repeated_twice  # what nn.Conv*d pads with for non-zero modes

    def apply(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        if self.kind is nn.Linear:
            return F.linear(x, w, b)
        conv = F.conv1d if self.kind is nn.Conv1d else F.conv2d
        c = self.config
        if c["padding_mode"] != "zeros":
            x = F.pad(x, self.pad, mode=c["padding_mode"])
            return conv(x, w, b, c["stride"], 0, c["dilation"], c["groups"])
        return conv(x, w, b, c["stride"], c["padding"], c["dilation"], c["groups"])

    @torch.no_grad()
    def build(self, w: torch.Tensor, b: torch.Tensor | None) -> nn.Module:
        layer = self.kind(**self.config, bias=b is not None, device=w.device, dtype=w.dtype)
        layer.weight.copy_(w)
        if b is not None:
            layer.bias.copy_(b)
        return layer


class QuantizedLayer(nn.Module):
    """Base of the layers that replace a Linear/Conv: weight and bias are functions of latent parameters.

    Subclasses register their latent parameters and implement ``quantized_params`` (the w, b used in the
    forward pass, differentiable w.r.t. the latents) and ``rounded_params`` (the exactly quantized w, b ∈ Q).
    ``levels`` is the buffer q (d,), in the latents' dtype.
    """

    levels: torch.Tensor

    def __init__(self, layer: nn.Module, levels: torch.Tensor):
        super().__init__()
        self.op = LayerOp(layer)
        self.register_buffer("levels", levels.to(device=layer.weight.device, dtype=layer.weight.dtype))

    @property
    def latent(self) -> dict[str, nn.Parameter]:
        """{"weight": latent, "bias": latent} (no "bias" key for a bias-free layer)."""
        return {k: p for k in ("weight", "bias") if (p := getattr(self, f"{k}_latent", None)) is not None}

    def quantized_params(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def rounded_params(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def rounded_weight(self) -> torch.Tensor:
        return self.rounded_params()["weight"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.quantized_params()
        return self.op.apply(x, p["weight"], p.get("bias"))

    def to_float_layer(self) -> nn.Module:
        """A plain nn.Linear/Conv with the rounded values; ``quant_levels`` (a tuple of q) marks it as quantized."""
        p = self.rounded_params()
        layer = self.op.build(p["weight"], p.get("bias"))
        layer.quant_levels = tuple(self.levels.tolist())
        return layer


def _matcher(include: Include) -> Callable[[str, nn.Module], bool] | None:
    if include is None or callable(include):
        return include
    patterns = [include] if isinstance(include, str) else list(include)
    if not patterns or not all(isinstance(p, str) for p in patterns):
        raise TypeError(f"include must be a callable, a name/pattern or a non-empty list of them, got {include!r}")
    return lambda name, _: any(name == p or fnmatchcase(name, p) for p in patterns)


def select_layers(model: nn.Module, include: Include = None) -> list[str]:
    """Names of the modules to quantize (see the module docstring for the rule); errors name the module."""
    match = _matcher(include)
    names, owners = [], {}
    for name, module in model.named_modules():
        own = list(module.parameters(recurse=False))
        if isinstance(module, QuantizedLayer):
            raise ValueError(f"module {_label(name)} is already quantized ({type(module).__name__})")
        wanted = (type(module) in SUPPORTED) if match is None else bool(match(name, module))
        if not wanted:
            if match is None and own:
                raise ValueError(
                    f"module {_label(name)} ({type(module).__name__}) has learnable parameters that cannot be "
                    "quantized; pass include= to choose the layers to quantize (the others then stay float)"
                )
            continue
        if type(module) not in SUPPORTED:
            if match is not None and not own:
                continue  # a pattern like "*" also matches containers; they own nothing to quantize
            raise ValueError(
                f"module {_label(name)} ({type(module).__name__}) cannot be quantized; "
                f"supported layer types: {[t.__name__ for t in SUPPORTED]}"
            )
        for p in own:
            if id(p) in owners:
                raise ValueError(f"modules {_label(owners[id(p)])} and {_label(name)} share a parameter")
            owners[id(p)] = name
        names.append(name)
    if not names:
        raise ValueError(
            f"no quantizable layer in {type(model).__name__} (include={include!r}); "
            f"expected {[t.__name__ for t in SUPPORTED]}"
        )
    return names


def replace_module(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` at ``name`` in ``model`` (in place); returns the model, or ``new`` for the root name ""."""
    if not name:
        return new
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new)
    return model


def quantized_layers(model: nn.Module) -> dict[str, QuantizedLayer]:
    """{name: layer} of every QuantizedLayer in ``model``."""
    return {n: m for n, m in model.named_modules() if isinstance(m, QuantizedLayer)}
