"""The training protocol of the paper ([P] §5.1, reference code §5.6–5.8) for every method.

Per iteration k = 0 … K−1: lr_k from the schedule, ``method.before_step`` (β_k), a shuffled mini-batch,
cross-entropy, backward, ``method.after_backward`` (optimizer step on ũ). Every ``eval_every`` iterations and
at the end the ROUNDED network (``method.rounded``, eval mode, BN running statistics from training) is
evaluated on the validation split; the best validation accuracy is kept (strictly better replaces, as the
reference); the test accuracy reported is that of the rounded best network. Each evaluation appends a log row
and, with ``checkpoint_dir``, writes ``best.pt`` (if improved) and ``last.pt``; ``resume=True`` continues
from ``last.pt`` bit-identically (same iterates, same log) to the uninterrupted run.

Data-parallel (``parallel``, e.g. ``bridge.distributed.DataParallel`` under torchrun): every rank draws the same
global batches and ``parallel.forward_backward`` runs its share and sums the gradients over the ranks; only the
writer (rank 0) evaluates, writes checkpoints and the log, while the others wait; the selected network and the
history are then broadcast, so every rank returns the same result.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from nnquant.batches import BatchStream
from nnquant.checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from nnquant.evaluate import evaluate
from nnquant.lr_schedule import LRSchedule
from nnquant.methods import Method
from nnquant.train_log import EvalLog

Data = Dataset | DataLoader


@dataclass
class TrainResult:
    """model: the trained module at the best validation iteration (the last one without validation data);
    rounded: ``method.rounded(model)``; accuracies in [0, 1]; history: the logged evaluation rows."""

    model: nn.Module
    rounded: nn.Module
    iterations: int
    best_iteration: int
    best_val_acc: float | None
    best_val_loss: float | None
    test_acc: float | None
    test_loss: float | None
    history: list[dict]
    checkpoint_dir: Path | None


def _positive_int(value, name: str) -> int:
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _nonnegative(value, name: str, positive: bool = False) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and (value > 0 if positive else value >= 0)):
        raise ValueError(f"{name} must be a finite {'positive' if positive else 'non-negative'} number, got {value!r}")
    return float(value)


def _finite(loss: float, k: int, last_path: Path | None) -> float:
    if not math.isfinite(loss):
        kept = f"; the last good checkpoint {last_path} is left untouched" if last_path else ""
        raise FloatingPointError(f"training loss is {loss} at iteration {k}{kept}")
    return loss


def make_optimizer(params, name: str, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam or SGD with PyTorch's coupled L2 weight decay (acting on ũ, as the reference code)."""
    if name == "adam":
        if momentum:
            raise ValueError("momentum is an SGD setting; it must be 0 with optimizer='adam'")
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {name!r}")


def train(
    model: nn.Module,
    train_data: Data,
    val_data: Data | None = None,
    test_data: Data | None = None,
    *,
    method: Method,
    iterations: int,
    batch_size: int = 100,
    optimizer: str = "adam",
    lr: float = 1e-3,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    lr_schedule: tuple | None = None,
    eval_every: int = 100,
    eval_batch_size: int | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool = True,
    log_path: str | Path | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    reference_quirks: bool = False,
    parallel=None,
) -> TrainResult:
    """Train ``model`` (never modified) with ``method`` for ``iterations`` mini-batches; see the module docstring.

    lr_schedule: None, ("step", interval, scale) or ("multistep", milestones, scale) (``LRSchedule``).
    reference_quirks: the reference code's lr and β updates right after iteration 0.
    parallel: None (one process) or an object with the methods of ``bridge.distributed.DataParallel``.
    Raises FloatingPointError naming the iteration on a non-finite loss (files already written are kept);
    FileExistsError rather than overwrite checkpoints or a log of another run (pass resume=True to continue).
    """
    if not isinstance(method, Method):
        raise TypeError(f"method must be an nnquant.methods.Method, got {type(method).__name__}")
    iterations = _positive_int(iterations, "iterations")
    batch_size = _positive_int(batch_size, "batch_size")
    eval_every = _positive_int(eval_every, "eval_every")
    eval_batch_size = _positive_int(eval_batch_size or max(batch_size, 256), "eval_batch_size")
    lr = _nonnegative(lr, "lr", positive=True)
    momentum = _nonnegative(momentum, "momentum")
    weight_decay = _nonnegative(weight_decay, "weight_decay")
    schedule = LRSchedule.parse(lr_schedule, reference_quirks)
    dev = torch.device(device)
    config = {
        "method": f"{type(method).__qualname__}:{method.name}",
        "batch_size": batch_size,
        "seed": seed,
        "optimizer": optimizer,
        "lr": lr,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "lr_schedule": repr(schedule),
        "eval_every": eval_every,
        "reference_quirks": bool(reference_quirks),
    }

    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    last_path = ckpt_dir / "last.pt" if ckpt_dir else None
    best_path = ckpt_dir / "best.pt" if ckpt_dir else None
    if resume and ckpt_dir is None:
        raise ValueError("resume=True needs checkpoint_dir")
    resuming = bool(resume) and last_path.is_file()
    if ckpt_dir is not None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        if not resuming:
            for p in (last_path, best_path):
                if p.exists():
                    raise FileExistsError(f"{p} exists; pass resume=True to continue that run or use a new directory")
    if log_path is not None and Path(log_path).exists() and not resuming:
        raise FileExistsError(f"log file {log_path} exists; choose a new log_path or resume the run")
    writer = parallel is None or parallel.is_writer
    if parallel is not None:
        parallel.barrier()  # every rank has checked the files before rank 0 writes any

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seed the global RNG user code may use)
    random.seed(seed)
    trained = method.prepare(model).to(dev)
    trained.train()
    if parallel is not None:
        parallel.broadcast_module(trained)  # the same ũ⁰ on every rank, whatever each rank's float model
    params = list(method.trainable(trained))
    if not params:
        raise ValueError(f"method {method.name!r} returned no trainable parameters")
    opt = make_optimizer(params, optimizer, lr, momentum, weight_decay)
    stream = BatchStream(train_data, batch_size, seed, dev)

    k, history = 0, []
    best = {"iteration": 0, "val_acc": None, "val_loss": None}
    best_state: dict | None = None  # in memory when there is no checkpoint_dir
    if resuming:
        ckpt = load_checkpoint(last_path)
        diff = {key: (ckpt["config"].get(key), v) for key, v in config.items() if ckpt["config"].get(key) != v}
        if diff:
            raise ValueError(f"cannot resume {last_path}: settings differ (checkpoint, now): {diff}")
        if ckpt["iteration"] > iterations:
            raise ValueError(f"{last_path} is at iteration {ckpt['iteration']} > iterations={iterations}")
        trained.load_state_dict(ckpt["model"])
        method.load_state_dict(ckpt["method"])
        opt.load_state_dict(ckpt["optimizer"])
        stream.load_state(ckpt["data"])
        restore_rng(ckpt["rng"])  # after the stream: replaying a DataLoader epoch draws from the global RNG
        k, history, best = ckpt["iteration"], ckpt["history"], ckpt["best"]
    log = EvalLog(log_path, history) if log_path is not None and writer else None

    def snapshot() -> dict:
        return {"model": trained.state_dict(), "method": method.state_dict()}

    pbar = tqdm(
        total=iterations, initial=k, disable=not (progress and writer), desc=f"train {method.name}", dynamic_ncols=True
    )
    loss_sum, loss_count = 0.0, 0
    try:
        while k < iterations:
            lr_k = lr * schedule.factor(k)
            for group in opt.param_groups:
                group["lr"] = lr_k
            method.before_step(trained, k, reference_quirks=reference_quirks)
            x, y = stream.next()
            opt.zero_grad(set_to_none=True)
            if parallel is None:
                loss = loss_fn(trained(x), y)
                value = _finite(loss.item(), k, last_path)
                loss.backward()
            else:  # the global batch's loss, checked after the reduction so that every rank stops together
                value = _finite(parallel.forward_backward(trained, x, y, loss_fn, params), k, last_path)
            method.after_backward(trained, opt, k)
            if parallel is not None:
                parallel.after_step(trained, k)
            loss_sum, loss_count, k = loss_sum + value, loss_count + 1, k + 1
            pbar.update(1)
            if k % eval_every and k != iterations:
                continue

            row = {
                "iteration": k,
                "epoch": stream.epoch,
                "train_loss": loss_sum / loss_count,
                "val_loss": None,
                "val_acc": None,
                "beta": method.beta_at(k - 1, reference_quirks),
                "lr": lr_k,
            }
            loss_sum, loss_count = 0.0, 0
            if parallel is not None:
                parallel.sync_buffers(trained)
                if not writer:
                    parallel.barrier()  # while rank 0 evaluates and writes
                    continue
            if val_data is not None:
                row["val_loss"], row["val_acc"] = evaluate(
                    method.rounded(trained), val_data, loss_fn=loss_fn, batch_size=eval_batch_size, device=dev
                )
                if best["val_acc"] is None or row["val_acc"] > best["val_acc"]:
                    best = {"iteration": k, "val_acc": row["val_acc"], "val_loss": row["val_loss"]}
                    if best_path is not None:
                        save_checkpoint(best_path, {"kind": "best", "iteration": k, **best, **snapshot()})
                    else:
                        best_state = copy.deepcopy(snapshot())
            else:
                best = {"iteration": k, "val_acc": None, "val_loss": None}
            history.append(row)
            if last_path is not None:
                state = {
                    "kind": "last",
                    "iteration": k,
                    "config": config,
                    **snapshot(),
                    "optimizer": opt.state_dict(),
                    "lr_schedule": repr(schedule),
                    "data": stream.state(),
                    "rng": capture_rng(),
                    "best": best,
                    "history": history,
                }
                save_checkpoint(last_path, state)
            if log is not None:
                log.append(row)
            pbar.set_postfix(loss=f"{row['train_loss']:.4f}", val_acc=row["val_acc"], beta=row["beta"])
            if parallel is not None:
                parallel.barrier()
    finally:
        pbar.close()

    if val_data is not None and writer:  # select the best validation iterate
        chosen = load_checkpoint(best_path, map_location=dev) if best_path is not None else best_state
        if chosen is not None:
            trained.load_state_dict(chosen["model"])
            method.load_state_dict(chosen["method"])
    if parallel is not None:
        parallel.broadcast_module(trained)
        method.load_state_dict(parallel.broadcast_object(method.state_dict()))
    rounded = method.rounded(trained)
    test_loss = test_acc = None
    if test_data is not None and writer:
        test_loss, test_acc = evaluate(rounded, test_data, loss_fn=loss_fn, batch_size=eval_batch_size, device=dev)
    if parallel is not None:
        history, best, test_loss, test_acc = parallel.broadcast_object((history, best, test_loss, test_acc))
    return TrainResult(
        model=trained,
        rounded=rounded,
        iterations=k,
        best_iteration=best["iteration"],
        best_val_acc=best["val_acc"],
        best_val_loss=best["val_loss"],
        test_acc=test_acc,
        test_loss=test_loss,
        history=history,
        checkpoint_dir=ckpt_dir,
    )
