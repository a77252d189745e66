"""nnquant: fully-quantized networks trained as MRF labellings (u-space methods, BinaryConnect, float REF).

>>> import nnquant, mrf
>>> method = nnquant.USpaceMethod(levels=2, projection="softmax", jacobian="pmf_repo",
...                               beta=mrf.BetaSchedule(rho=1.2, interval=100))
>>> result = nnquant.train(model, train_set, val_set, test_set, method=method, iterations=20_000)
>>> nnquant.export_packed(result.rounded, "lenet5-binary.nnq")
"""

from nnquant.binaryconnect import binarize_model, sign, sign_ste
from nnquant.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nnquant.evaluate import evaluate
from nnquant.export import export_packed, load_packed, pack, packed_size_report
from nnquant.layers import QuantizedLayer, quantized_layers, select_layers
from nnquant.levels import levels_for, make_levels
from nnquant.lr_schedule import LRSchedule
from nnquant.methods import BinaryConnect, Float, Method, USpaceMethod
from nnquant.rounding import count_levels, quantized_tensors, round_model
from nnquant.train import TrainResult, train
from nnquant.uspace import (
    USpaceLayer,
    quantize_model,
    set_beta,
    set_projection,
    set_retain_unaries,
    uspace_layers,
)

__all__ = [
    "BinaryConnect",
    "CheckpointError",
    "Float",
    "LRSchedule",
    "Method",
    "QuantizedLayer",
    "TrainResult",
    "USpaceLayer",
    "USpaceMethod",
    "binarize_model",
    "count_levels",
    "evaluate",
    "export_packed",
    "levels_for",
    "load_checkpoint",
    "load_packed",
    "make_levels",
    "pack",
    "packed_size_report",
    "quantize_model",
    "quantized_layers",
    "quantized_tensors",
    "round_model",
    "save_checkpoint",
    "select_layers",
    "set_beta",
    "set_projection",
    "set_retain_unaries",
    "sign",
    "sign_ste",
    "train",
    "uspace_layers",
]
