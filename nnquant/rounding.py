"""The exactly quantized network: w* = hardmax(ũ) q ([P] Alg. 1 line 10) as a plain torch model.

``round_model`` swaps every QuantizedLayer for the user's layer type (nn.Linear / nn.Conv) holding the rounded
values; everything else (BN running statistics included) is copied. The rebuilt layers carry a plain attribute
``quant_levels`` (tuple of q) that ``count_levels`` and ``nnquant.export`` read; it is not part of the state
dict, so the rounded model saves and loads like the original architecture.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from nnquant.layers import quantized_layers, replace_module


def round_model(qmodel: nn.Module) -> nn.Module:
    """A new plain model with the architecture of the float model and every quantized tensor in Q."""
    layers = quantized_layers(qmodel)
    if not layers:
        raise ValueError(f"{type(qmodel).__name__} has no quantized layer to round")
    rounded = {name: layer.to_float_layer() for name, layer in layers.items()}
    if "" in rounded:
        return rounded[""]
    # Swap the rounded layers in before copying: the latents (and any retained u with its graph) are not copied.
    try:
        for name, layer in rounded.items():
            replace_module(qmodel, name, layer)
        return copy.deepcopy(qmodel)
    finally:
        for name, layer in layers.items():
            replace_module(qmodel, name, layer)


def quantized_tensors(model: nn.Module) -> dict[str, tuple[torch.Tensor, tuple[float, ...]]]:
    """{state-dict name: (tensor, q)} of the quantized tensors of a u-space/BC model or a rounded model."""
    if quantized_layers(model):
        model = round_model(model)
    out = {}
    for name, module in model.named_modules():
        q = getattr(module, "quant_levels", None)
        if q is None:
            continue
        for key, p in module.named_parameters(recurse=False):
            out[f"{name}.{key}" if name else key] = (p.detach(), tuple(q))
    return out


def count_levels(model: nn.Module) -> dict[str, int]:
    """{name: number of distinct values} per quantized tensor (every parameter of an unmarked plain model)."""
    tensors = quantized_tensors(model)
    if not tensors:
        tensors = {n: (p.detach(), ()) for n, p in model.named_parameters()}
    return {name: int(torch.unique(t).numel()) for name, (t, _) in tensors.items()}
