"""Top-1 accuracy and mean loss of a network on a Dataset or DataLoader (eval mode: BN running statistics)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nnquant.batches import dataset_len, fetch


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Dataset | DataLoader,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> tuple[float, float]:
    """(mean loss, top-1 accuracy in [0, 1]) over ``data`` in order; the model's train/eval mode is restored.

    ``loss_fn`` returns the batch mean; the result is weighted by batch size, i.e. the mean over samples.
    """
    n = dataset_len(data, "evaluation data")
    was_training = model.training
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    try:
        if isinstance(data, DataLoader):
            batches = ((b[0], b[1]) for b in data)
        else:
            batches = (fetch(data, torch.arange(i, min(i + batch_size, n))) for i in range(0, n, batch_size))
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            out = model(x)
            total_loss += float(loss_fn(out, y)) * len(y)
            correct += int((out.argmax(dim=-1) == y).sum())
            seen += len(y)
    finally:
        model.train(was_training)
    return total_loss / seen, correct / seen
