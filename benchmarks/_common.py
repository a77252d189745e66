"""Shared helpers of the network benchmarks (equivalence, paper_table, quant_peers): where results go, how they
are written (atomic JSON/CSV/Markdown), PASS/FAIL check lines, timing and memory, data loading, plotting.

Everything a benchmark writes lands under ``benchmarks/results/`` (``results_dir``); a file is replaced
atomically, so an interrupted run never leaves a half-written result behind.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import resource
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrf._validation import write_atomic

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def results_dir(*parts: str) -> Path:
    """``benchmarks/results/<parts...>``, created if missing."""
    path = RESULTS.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode("utf-8"))
    return path


def _jsonable(x: Any) -> Any:
    """NumPy scalars/arrays and non-finite floats as plain JSON (NaN/inf → null)."""
    if hasattr(x, "tolist"):
        x = x.tolist()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(_jsonable(obj), indent=1, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_csv(path: str | Path, rows: Sequence[dict], columns: Sequence[str] | None = None) -> Path:
    """Rows (dicts) as CSV; columns default to the keys in first-seen order."""
    if columns is None:
        columns = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _jsonable(v) for k, v in row.items()})
    return write_text(path, buf.getvalue())


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A GitHub Markdown table of ``rows`` restricted to ``columns`` (None → empty cell)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = ["" if row.get(c) is None else str(row.get(c)) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --- checks ----------------------------------------------------------------------------------------------


@dataclass
class Check:
    """One verified claim: ``passed`` with a one-line ``detail`` (the measured numbers) and raw ``data``."""

    name: str
    passed: bool
    detail: str
    data: dict = field(default_factory=dict)

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.name}: {self.detail}"


# --- timing and memory -----------------------------------------------------------------------------------


def median_seconds(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def set_threads(n: int) -> None:
    """Torch intra-op threads (the benchmark machine's cores are shared: default 1)."""
    import torch

    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    torch.set_num_threads(n)


def training_step_seconds(
    methods: dict,
    make_model: Callable[[], Any],
    train_data,
    *,
    batch_size: int = 100,
    steps: int = 40,
    repeats: int = 3,
) -> dict[str, float]:
    """Median CPU seconds per training step of each ``nnquant`` Method in ``methods`` ({name: Method}): batch,
    forward, cross-entropy, backward and the method's step (Adam lr 1e-3), as ``nnquant.train`` does them, without
    evaluation. The methods take turns in every repeat (the first round is a warm-up), so a change in machine load
    hits all of them; CPU time of this process (not wall time) keeps other processes' load out of the figure."""
    import torch
    import torch.nn.functional as F

    from nnquant.batches import BatchStream
    from nnquant.train import make_optimizer

    runs = {}
    for name, method in methods.items():
        trained = method.prepare(make_model())
        trained.train()
        opt = make_optimizer(list(method.trainable(trained)), "adam", 1e-3, 0.0, 0.0)
        runs[name] = (method, trained, opt, BatchStream(train_data, batch_size, 0, torch.device("cpu")))
    times: dict[str, list[float]] = {n: [] for n in runs}
    k = 0
    for _ in range(repeats + 1):
        for name, (method, trained, opt, stream) in runs.items():
            t0 = time.process_time()
            for i in range(k, k + steps):
                method.before_step(trained, i)
                x, y = stream.next()
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(trained(x), y)
                loss.item()
                loss.backward()
                method.after_backward(trained, opt, i)
            times[name].append((time.process_time() - t0) / steps)
        k += steps
    return {n: sorted(t[1:])[len(t[1:]) // 2] for n, t in times.items()}


# --- data ------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _load_tensors(dataset: str, split: str):
    """(images, labels, source) of one split, decoded once per process."""
    from nnquant.data import load_mnist

    root = SHARED_DATA / dataset
    if root.is_dir():
        data, source = load_mnist(root, split, variant=dataset), f"{root} ({split})"
    elif dataset == "mnist":
        from bridge.demo_data import load_demo_mnist

        data, source = load_demo_mnist(split), f"bridge.demo_data embedded subset ({split}); {root} absent"
    else:
        raise FileNotFoundError(f"dataset {dataset!r} not found at {root} (and it has no embedded fallback)")
    return (*data.tensors, source)


def missing_full_data(datasets) -> str | None:
    """Why a full-mode run cannot start (a dataset absent from ``../shared/data``), or None. Full-mode results
    must come from the real files, never from the embedded subset that ``load_split`` falls back to."""
    absent = [str(SHARED_DATA / d) for d in datasets if not (SHARED_DATA / d).is_dir()]
    if absent:
        return f"full mode needs the real data at {', '.join(absent)} (the embedded subset serves --quick only)"
    return None


def load_split(dataset: str, split: str, limit: int | None = None, dtype=None):
    """The paper's split (train 50k / val 10k / test 10k) of ``dataset`` ("mnist" | "fashion-mnist") from
    ``../shared/data``; MNIST falls back to the embedded 5k/1k/1k subset (``bridge.demo_data``) when the shared
    files are absent. Returns (TensorDataset, source description); ``limit`` keeps the first ``limit`` items."""
    import torch
    from torch.utils.data import TensorDataset

    x, y, source = _load_tensors(dataset, split)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    if dtype is not None:
        x = x.to(dtype)
    return TensorDataset(x.contiguous(), y.to(torch.int64)), source


# --- plotting --------------------------------------------------------------------------------------------


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    """(mean, sample std (0 for one value), count)."""
    v = [float(x) for x in values]
    if not v:
        return math.nan, math.nan, 0
    m = sum(v) / len(v)
    s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return m, s, len(v)


def mean_std_cell(mean: float, std: float, n: int, *, show_n: bool = True) -> str:
    """A table cell "m ± s (n=k)"; one value has no spread, so it shows as "m (n=1)"; none as "—"."""
    if not n:
        return "—"
    count = f" (n={n})" if show_n else ""
    return f"{mean:.2f}{count}" if n == 1 else f"{mean:.2f} ± {std:.2f}{count}"
