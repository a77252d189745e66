"""Plots of solver runs: energy / free energy against time, and the label map of a grid model.

matplotlib is imported inside the functions, so ``import mrf`` does not need it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mrf import _validation as check
from mrf.result import SolverResult


def plot_trace(
    results: SolverResult | Mapping[str, SolverResult],
    ax=None,
    free_energy: bool = True,
    *,
    log_time: bool = False,
):
    """Energy E(x) of the rounded labels (solid) and free energy F(q) = E_q − T·H(q) (dashed, where the
    solver has one) against seconds, for one result or a {name: result} mapping. Returns the Axes.

    The y axis spans the values reached after the first 10 % of every run (an initial labelling far above
    the rest would otherwise flatten the curves); ``log_time`` puts seconds on a log axis.
    """
    import matplotlib.pyplot as plt

    if isinstance(results, SolverResult):
        results = {results.method or "result": results}
    if not results:
        raise ValueError("results must hold at least one SolverResult")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    shown = []
    for name, r in results.items():
        if not isinstance(r, SolverResult):
            raise TypeError(f"results[{name!r}] must be a SolverResult, got {type(r).__name__}")
        t, e = np.asarray(r.trace.seconds), np.asarray(r.trace.energy)
        (line,) = ax.plot(t, e, label=f"{name}: E = {r.energy:.6g}")
        shown.append(e[len(e) // 10 :])
        f = np.asarray(r.trace.free_energy)
        if free_energy and np.isfinite(f).any():
            ax.plot(t, f, ls="--", color=line.get_color(), alpha=0.7, label=f"{name}: F(q)")
            shown.append(f[len(f) // 10 :][np.isfinite(f[len(f) // 10 :])])
    values = np.concatenate(shown)
    if values.size:
        low, high = values.min(), values.max()
        pad = 0.05 * (high - low) if high > low else 0.05 * max(abs(high), 1.0)
        ax.set_ylim(low - pad, high + pad)
    if log_time:
        ax.set_xscale("log")
    ax.set_xlabel("seconds")
    ax.set_ylabel("energy")
    ax.legend(fontsize="small")
    return ax


def plot_labels(m, labels, ax=None, *, depth: int | None = None, cmap: str = "tab10"):
    """The labelling of a grid model (``m.grid_shape`` (H, W), or (D, H, W) showing slice ``depth``,
    default the middle one) as an image with one colour per label. Returns the Axes."""
    import matplotlib.pyplot as plt

    if m.grid_shape is None:
        raise ValueError("plot_labels needs a grid model (m.grid_shape is None); build it with mrf.grid")
    x = check.labels(labels, m.n_labels).reshape(m.grid_shape)
    if x.ndim == 3:
        depth = x.shape[0] // 2 if depth is None else depth
        if not 0 <= depth < x.shape[0]:
            raise ValueError(f"depth must be in 0..{x.shape[0] - 1}, got {depth}")
        x = x[depth]
    if ax is None:
        _, ax = plt.subplots()
    ax.imshow(x, cmap=cmap, interpolation="nearest", vmin=0, vmax=max(m.n_labels_max - 1, 1))
    ax.set_axis_off()
    return ax
