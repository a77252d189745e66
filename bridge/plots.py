"""Training curves of a quantization run as a PNG: training loss, validation accuracy of the rounded net, β."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from nnquant.checkpoint import write_atomic


def plot_training_curves(history: Sequence[Mapping], path: str | Path, title: str = "") -> None:
    """Write a 3-panel PNG to ``path`` (atomically) from the rows of ``nnquant.train`` (``TrainResult.history``):
    train_loss (mean over the iterations since the previous row), val_acc (the hardmax-rounded network, %) and
    beta (log scale), each against the iteration. Rows without a value (no validation data, PICM's β) are left out.
    """
    if not history:
        raise ValueError("history is empty: there is nothing to plot")
    # matplotlib only here, and the Agg canvas directly: no pyplot, no global backend switch
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    panels = (
        ("train_loss", "training loss", 1.0, "linear"),
        ("val_acc", "val. accuracy, rounded net (%)", 100.0, "linear"),
        ("beta", "β", 1.0, "log"),
    )
    for ax, (key, label, scale, yscale) in zip(axes, panels, strict=True):
        points = [(row["iteration"], row[key] * scale) for row in history if row.get(key) is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker="." if len(points) < 50 else None)
            ax.set_yscale(yscale)
        else:
            ax.text(0.5, 0.5, f"no {label}", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("iteration")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    write_atomic(path, buf.getvalue())
