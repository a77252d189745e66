"""Data-parallel training on torch.distributed: one global mini-batch, split across the ranks.

Launch with ``torchrun --nproc_per_node W -m bridge quantize ...`` (gloo on CPU, nccl on GPU). Every rank draws
the SAME seeded sequence of global mini-batches of ``batch_size`` B; rank r takes the contiguous rows
[⌊rB/W⌋, ⌊(r+1)B/W⌋) and back-propagates its mean loss weighted by n_r / B, so the SUM over ranks of the
gradients (one all_reduce) is the gradient of the global batch's mean loss: each step equals the single-process
step on the same batch up to float rounding. The initial parameters and buffers are broadcast from rank 0 and
every rank applies the same optimizer step to the same reduced gradient, so ũ stays bit-identical on all ranks
(``check_sync=True`` verifies that after every step).

An explicit all_reduce instead of DistributedDataParallel: the methods step ũ (or u, for the PGD forms) from
``.grad`` themselves, and DDP's averaging of per-rank means is the global mean only when shares are equal.

BatchNorm: in training mode the batch statistics are those of the rank's share (local, as DDP without
SyncBatchNorm). The running statistics are averaged over the ranks before each evaluation/checkpoint, so the
evaluated and saved network is the same on every rank.

Rank 0 alone evaluates and writes files (checkpoints, log, exports); the other ranks wait at a barrier.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable

import torch
import torch.distributed as dist
from torch import nn


def launched_by_torchrun() -> bool:
    """True when the environment names a process group (``torchrun`` sets RANK, WORLD_SIZE, MASTER_ADDR, ...)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device: str | torch.device = "cpu") -> DataParallel | None:
    """Join the process group named by the environment (``torchrun``): nccl for a CUDA ``device``, else gloo.

    Returns the ``DataParallel`` of this rank, or None when the environment names no group.
    """
    if dist.is_available() and dist.is_initialized():
        return DataParallel()
    if not launched_by_torchrun():
        return None
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return DataParallel()


class DataParallel:
    """The collectives ``nnquant.train`` calls when it trains on several ranks (see the module docstring)."""

    def __init__(self, *, check_sync: bool = False) -> None:
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("torch.distributed is not initialised: launch with torchrun or call init_distributed()")
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.check_sync = bool(check_sync)

    @property
    def is_writer(self) -> bool:
        """Only rank 0 evaluates and writes files."""
        return self.rank == 0

    def device(self, requested: str | torch.device) -> torch.device:
        """The device of this rank: a plain "cuda" becomes cuda:LOCAL_RANK (one GPU per process)."""
        dev = torch.device(requested)
        if dev.type == "cuda" and dev.index is None:
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", self.rank)))
        return dev

    def barrier(self) -> None:
        dist.barrier()

    def broadcast_object(self, obj):
        """``obj`` of rank 0 on every rank (pickled: keep tensors on the CPU)."""
        box = [obj if self.is_writer else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    @torch.no_grad()
    def broadcast_module(self, module: nn.Module) -> None:
        """Every parameter and buffer of rank 0's ``module`` into the same module on every rank."""
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)

    def shard(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """This rank's contiguous share of the global batch (x, y) and its weight n_r / B."""
        n = len(y)
        lo, hi = n * self.rank // self.world_size, n * (self.rank + 1) // self.world_size
        return x[lo:hi], y[lo:hi], (hi - lo) / n

    def forward_backward(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        params: list[nn.Parameter],
    ) -> float:
        """Forward and backward of this rank's share, gradients summed over the ranks; returns the global mean
        loss of the batch (the same value on every rank, NaN if any rank's loss is NaN)."""
        x, y, weight = self.shard(x, y)
        local = 0.0
        if len(y):  # a rank whose share is empty (a short last batch) contributes zero gradients
            loss = loss_fn(model(x), y) * weight
            local = loss.item()
            loss.backward()
        # which parameters got a gradient on ANY rank: all ranks then reduce (and step) the same set
        flags = [float(p.grad is not None) for p in params]
        meta = torch.tensor([local, *flags], dtype=torch.float64, device=params[0].device)
        dist.all_reduce(meta)
        meta = meta.cpu()
        has_grad = [params[i] for i in range(len(params)) if meta[i + 1] > 0]
        for p in has_grad:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        self._all_reduce_sum([p.grad for p in has_grad])
        return float(meta[0])

    @staticmethod
    def _all_reduce_sum(tensors: Iterable[torch.Tensor]) -> None:
        """Sum each tensor over the ranks, in place: one flat buffer per (dtype, device)."""
        groups: dict[tuple, list[torch.Tensor]] = {}
        for t in tensors:
            groups.setdefault((t.dtype, t.device), []).append(t)
        for group in groups.values():
            flat = torch.cat([t.reshape(-1) for t in group])
            dist.all_reduce(flat)
            offset = 0
            for t in group:
                t.copy_(flat[offset : offset + t.numel()].view_as(t))
                offset += t.numel()

    @torch.no_grad()
    def sync_buffers(self, module: nn.Module) -> None:
        """Average the BatchNorm running statistics over the ranks (they saw different shares)."""
        stats = []
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                stats += [m.running_mean, m.running_var]
        if stats:
            self._all_reduce_sum(stats)
            for t in stats:
                t.div_(self.world_size)

    def after_step(self, module: nn.Module, k: int) -> None:
        """With ``check_sync``: RuntimeError on every rank unless all ranks hold the same parameters."""
        if self.check_sync:
            self.assert_identical(module, k)

    def assert_identical(self, module: nn.Module, k: int) -> None:
        """RuntimeError (raised on every rank) unless every parameter is bit-identical on all ranks."""
        digest = hashlib.sha256()
        for name, p in module.named_parameters():
            digest.update(name.encode())
            digest.update(p.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        digests = [None] * self.world_size
        dist.all_gather_object(digests, digest.hexdigest())
        if len(set(digests)) != 1:
            raise RuntimeError(f"the ranks hold different parameters after iteration {k}: sha256 {digests}")
