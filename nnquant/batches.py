"""Training mini-batches as a resumable stream: shuffled epochs that restart, restorable at any batch.

A Dataset is shuffled by a seeded torch.Generator (one permutation per epoch); a DataLoader is used as given.
The stream's state is (epoch, batch index, RNG state at the start of the epoch): restoring it regenerates the
epoch's order and skips to the batch (for a DataLoader by drawing and discarding batches, so its sampler and
workers see the same RNG as in the uninterrupted run). A Dataset's own ``generator`` (e.g. augmentation of
``nnquant.data.CIFARDataset``) is saved and restored too.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset, default_collate


def fetch(dataset: Dataset, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch (x, y) of ``dataset`` at indices ``idx`` (a plain TensorDataset is indexed in one go; a
    subclass may have its own per-item ``__getitem__``)."""
    if type(dataset) is TensorDataset:
        x, y = dataset[idx][:2]
        return x, y
    x, y = default_collate([dataset[i] for i in idx.tolist()])[:2]
    return x, y


def dataset_len(data: Dataset | DataLoader, name: str) -> int:
    try:
        n = len(data)
    except TypeError as e:
        raise TypeError(f"{name} must be a sized Dataset or DataLoader, got {type(data).__name__}") from e
    if n == 0:
        raise ValueError(f"{name} is empty")
    return n


def _own_generator(data: Dataset | DataLoader) -> torch.Generator | None:
    dataset = data.dataset if isinstance(data, DataLoader) else data
    g = getattr(dataset, "generator", None)
    return g if isinstance(g, torch.Generator) else None


class BatchStream:
    """Endless mini-batches over ``data``: ``next()`` → (x, y) on ``device``; ``state()``/``load_state()``."""

    def __init__(self, data: Dataset | DataLoader, batch_size: int, seed: int, device: torch.device):
        self.data, self.batch_size, self.device = data, batch_size, device
        self.loader = isinstance(data, DataLoader)
        self.n = dataset_len(data, "train_data")
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch, self.batch = -1, 0
        self._start_state: dict = {}
        self._it: Iterator | None = None
        self._order: torch.Tensor | None = None

    def _rng_snapshot(self) -> dict:
        own = _own_generator(self.data)
        return {
            "generator": self.generator.get_state(),
            "torch": torch.get_rng_state(),  # a DataLoader's sampler and workers draw from it
            "dataset_generator": own.get_state() if own is not None else None,
        }

    def _start_epoch(self) -> None:
        self.epoch, self.batch = self.epoch + 1, 0
        self._start_state = self._rng_snapshot()
        if self.loader:
            self._it = iter(self.data)
        else:
            self._order = torch.randperm(self.n, generator=self.generator)

    def _batches_per_epoch(self) -> int:
        return self.n if self.loader else -(-self.n // self.batch_size)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.epoch < 0 or self.batch >= self._batches_per_epoch():
            self._start_epoch()
        if self.loader:
            try:
                batch = next(self._it)
            except StopIteration:  # a loader shorter than its len(): start the next epoch
                self._start_epoch()
                batch = next(self._it)
            x, y = batch[0], batch[1]
        else:
            idx = self._order[self.batch * self.batch_size : (self.batch + 1) * self.batch_size]
            x, y = fetch(self.data, idx)
        self.batch += 1
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def state(self) -> dict:
        own = _own_generator(self.data)
        now = own.get_state() if own is not None else None
        return {"epoch": self.epoch, "batch": self.batch, "epoch_start": self._start_state, "dataset_generator": now}

    def load_state(self, state: dict) -> None:
        """Restore the position; the caller restores the global RNG afterwards (skipping may draw from it)."""
        self.epoch, self.batch = state["epoch"], state["batch"]
        if self.epoch < 0:
            return
        start = state["epoch_start"]
        self.generator.set_state(start["generator"])
        torch.set_rng_state(start["torch"])
        own = _own_generator(self.data)
        self._start_state = start
        if self.loader:  # replay the epoch's batches: that redraws what the sampler and the dataset drew
            if own is not None and start["dataset_generator"] is not None:
                own.set_state(start["dataset_generator"])
            self._it = iter(self.data)
            for _ in range(self.batch):
                next(self._it)
        else:  # skipped batches are never fetched: the dataset's generator resumes where it was
            if own is not None and state["dataset_generator"] is not None:
                own.set_state(state["dataset_generator"])
            self._order = torch.randperm(self.n, generator=self.generator)
