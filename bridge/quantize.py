"""`quantize_net`: a float model + data in, an exactly quantized model of the same architecture out."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import mrf
from bridge.distributed import DataParallel, init_distributed
from bridge.methods import make_method
from nnquant.layers import select_layers
from nnquant.levels import make_levels
from nnquant.train import TrainResult, train


def paper_defaults(iterations: int) -> dict:
    """The paper's MNIST settings ([S] Table 4) scaled to ``iterations``: Adam, lr 1e-3 × 0.2 every 35 % of the
    run (7k of 20k), no weight decay, and β ← ρβ scaled so that β reaches its cap 10⁴ at 90 % of the run (as the
    reference code's tuned hyperparameters do)."""
    return {
        "optimizer": "adam",
        "lr": 1e-3,
        "weight_decay": 0.0,
        "lr_schedule": ("step", max(1, round(0.35 * iterations)), 0.2),
        "beta": mrf.BetaSchedule.for_budget(iterations),
    }


def _check_batches(model: nn.Module, data: Dataset | DataLoader, name: str, device: torch.device) -> None:
    """One batch through the float model, so a wrong shape fails here with the argument named."""
    if isinstance(data, DataLoader):
        x, y = next(iter(data))[:2]
    else:
        x, y = data[0][:2]
        y = torch.as_tensor(y)
        if y.dim() != 0:
            raise ValueError(f"{name} items must hold a scalar class label, got a label of shape {tuple(y.shape)}")
        x, y = x.unsqueeze(0), y.reshape(1)
    if y.dim() != 1 or y.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"{name} must yield integer class labels of shape (batch,), got {y.dtype} {tuple(y.shape)}")
    probe = copy.deepcopy(model).to(device).eval()  # the user's model stays where and as it is
    try:
        with torch.no_grad():
            out = probe(x.to(device))
    except RuntimeError as err:
        raise ValueError(f"{name} yields inputs of shape {tuple(x.shape)} that the model cannot take: {err}") from None
    if out.dim() != 2 or out.shape[0] != x.shape[0]:
        raise ValueError(f"the model maps {name} inputs to shape {tuple(out.shape)}; expected (batch, classes)")
    if int(y.max()) >= out.shape[1] or int(y.min()) < 0:
        raise ValueError(
            f"{name} has labels in [{int(y.min())}, {int(y.max())}] but the model has {out.shape[1]} classes"
        )


def _data_parallel(distributed: bool | DataParallel | None, device: str | torch.device) -> DataParallel | None:
    if isinstance(distributed, DataParallel) or distributed is False:
        return distributed or None
    if distributed is None:
        return DataParallel() if torch.distributed.is_available() and torch.distributed.is_initialized() else None
    if distributed is not True:
        raise TypeError(f"distributed must be None, a bool or a DataParallel, got {type(distributed).__name__}")
    parallel = init_distributed(device)
    if parallel is None:
        raise RuntimeError("distributed=True needs torch.distributed: launch with torchrun (RANK, WORLD_SIZE set)")
    return parallel


def quantize_net(
    model: nn.Module,
    train_data: Dataset | DataLoader,
    val_data: Dataset | DataLoader | None = None,
    *,
    levels=2,
    method: str = "pmf",
    iterations: int,
    batch_size: int = 100,
    test_data: Dataset | DataLoader | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    eval_every: int | None = None,
    checkpoint_dir: str | Path | None = None,
    log_path: str | Path | None = None,
    progress: bool = True,
    jacobian: str | None = None,
    resume: bool = False,
    distributed: bool | DataParallel | None = None,
    **overrides,
) -> tuple[nn.Module, TrainResult]:
    """Quantize every parameter of ``model`` to ``levels`` (2 → {−1, 1}, 3 → {−1, 0, 1}, or a level list).

    method: "pmf" (default), "pgd", "picm", "pmf_wo_aux", "mean_field" (`bridge.methods`). Defaults are the
    paper's (`paper_defaults`); any of optimizer, lr, momentum, weight_decay, lr_schedule, beta (an
    `mrf.BetaSchedule`), reference_quirks can be overridden by keyword. With ``val_data`` the rounded network is
    evaluated every ``eval_every`` iterations (default iterations // 20) and the best one is returned; without
    it, the last. Returns (quantized_model, history): the user's architecture as a plain torch module whose
    quantized parameters hold exactly level values, and the `nnquant.train.TrainResult` (accuracies, log rows).
    ``model`` is not modified. ``resume=True`` continues the run saved in ``checkpoint_dir``.

    distributed: None → data-parallel when torch.distributed is initialised (e.g. under torchrun); True → join
    the group named by the environment (error if there is none); False → one process; or a
    `bridge.distributed.DataParallel`. ``batch_size`` is the global batch; rank 0 alone writes files.
    """
    settings = paper_defaults(iterations) if isinstance(iterations, int) and iterations >= 1 else {}
    unknown = set(overrides) - {
        "optimizer",
        "lr",
        "momentum",
        "weight_decay",
        "lr_schedule",
        "beta",
        "reference_quirks",
    }
    if unknown:
        raise TypeError(f"quantize_net got unexpected keyword arguments {sorted(unknown)}")
    settings.update(overrides)
    beta = settings.pop("beta", None)
    if not isinstance(levels, Mapping) and not (callable(levels) and not isinstance(levels, torch.Tensor)):
        make_levels(levels)  # a bad level list fails here, before any file is written
    select_layers(model)  # every module owning parameters must be quantizable: else an error naming it
    qmethod = make_method(method, levels, beta=beta, jacobian=jacobian)
    parallel = _data_parallel(distributed, device)
    dev = parallel.device(device) if parallel is not None else torch.device(device)
    for name, data in (("train_data", train_data), ("val_data", val_data), ("test_data", test_data)):
        if data is not None:
            _check_batches(model, data, name, dev)
    result = train(
        model,
        train_data,
        val_data,
        test_data,
        method=qmethod,
        iterations=iterations,
        batch_size=batch_size,
        eval_every=eval_every or max(1, iterations // 20),
        checkpoint_dir=checkpoint_dir,
        log_path=log_path,
        device=dev,
        seed=seed,
        progress=progress,
        resume=resume,
        parallel=parallel,
        **settings,
    )
    return result.rounded, result
