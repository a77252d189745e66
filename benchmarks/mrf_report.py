"""Records, tables and figures of ``python -m benchmarks.mrf_peers``: one `Run` per (problem, method).

Written (atomically) to ``benchmarks/results/`` under a stem ("mrf_peers", "mrf_peers_quick" for --quick):
``<stem>.json`` (problems and all runs with their traces), ``<stem>.csv`` (one row per run, no traces),
``<stem>.md`` (the tables), ``<stem>_<problem>_energy_vs_time.png`` (gap to the best known energy, %,
against seconds) and, for stereo, ``<stem>_<problem>_disparity_<method>.png`` (disparity 0 = black ..
L−1 = white; ground truth: unknown = 0).
"""

from __future__ import annotations

import io
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from benchmarks import _common

CSV_COLUMNS = ("problem", "method", "family", "energy", "gap_percent", "seconds", "n_iter", "converged")
CSV_COLUMNS += ("bad_pixel_rate", "note")


@dataclass
class Run:
    """One solver run: ``energy`` = m.energy(labels) (our energy, for peers too); ``gap_percent`` =
    100·(energy − best)/|best| against the problem's best known energy; ``seconds`` = the solver's own
    clock at its last trace point; ``trace_seconds`` / ``trace_energy``: energy of the rounded labels after
    each iteration or sweep; ``bad_pixel_rate``: stereo only. ``family``: "ours", "peer" or "gap-study"."""

    problem: str
    method: str
    family: str
    energy: float
    seconds: float
    n_iter: int
    converged: bool
    gap_percent: float = float("nan")
    bad_pixel_rate: float | None = None
    note: str = ""
    trace_seconds: list[float] = field(default_factory=list)
    trace_energy: list[float] = field(default_factory=list)


def fill_gaps(runs: list[Run], best: float) -> None:
    """Set every run's gap_percent against the best known energy ``best``."""
    for r in runs:
        r.gap_percent = 100.0 * (r.energy - best) / abs(best)


def write_tables(runs: list[Run], problems: list[dict], out_dir: Path, markdown: str, stem: str) -> list[Path]:
    """<stem>.json ({"problems": [...], "runs": [...]}), <stem>.csv and <stem>.md."""
    return [
        _common.write_json(out_dir / f"{stem}.json", {"problems": problems, "runs": [asdict(r) for r in runs]}),
        _common.write_csv(out_dir / f"{stem}.csv", [asdict(r) for r in runs], CSV_COLUMNS),
        _common.write_text(out_dir / f"{stem}.md", markdown),
    ]


def markdown_table(runs: list[Run], stereo: bool = False) -> str:
    """The runs of one problem, best energy first: energy, gap %, seconds, iterations[, bad-pixel %]."""
    head = "| method | family | energy | gap % | seconds | iters |" + (" bad-1 % |" if stereo else "")
    rows = [head, "|---|---|---|---|---|---|" + ("---|" if stereo else "")]
    for r in sorted(runs, key=lambda r: (r.energy, r.seconds)):
        row = f"| {r.method} | {r.family} | {r.energy:.7g} | {r.gap_percent:.3f} | {r.seconds:.3g} | {r.n_iter} |"
        if stereo:
            row += f" {100 * r.bad_pixel_rate:.2f} |" if r.bad_pixel_rate is not None else " |"
        rows.append(row)
    return "\n".join(rows)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _write_bytes(path: Path, data: bytes) -> Path:
    """Write to a temporary name, then rename: an interrupted run never leaves a half-written image."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def _save_png(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format="png")
    return _write_bytes(path, buf.getvalue())


def plot_energy_vs_time(problem: str, runs: list[Run], best: float, out_dir: Path, stem: str) -> Path:
    """Gap to the best known energy (%, symlog) of the rounded labels against solver seconds (log)."""
    plt = _common.pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for r in runs:
        t = np.asarray(r.trace_seconds, dtype=float)
        if t.size == 0:
            continue
        gap = 100.0 * (np.asarray(r.trace_energy, dtype=float) - best) / abs(best)
        style = {"ours": "-", "gap-study": ":", "peer": "--"}[r.family]
        ax.plot(np.maximum(t, 1e-4), gap, style, marker="o" if t.size <= 2 else None, label=r.method, lw=1.2)
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=0.01)
    worst_final = max((r.gap_percent for r in runs if np.isfinite(r.gap_percent)), default=10.0)
    ax.set_ylim(-0.002, max(10.0, 3.0 * worst_final))  # early states of uniform marginals lie far above
    ax.set_xlabel("seconds (solver clock)")
    ax.set_ylabel("gap to best known energy (%)")
    ax.set_title(f"{problem}: energy of the rounded labels vs time (best known {best:.7g})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = _save_png(fig, out_dir / f"{stem}_{_slug(problem)}_energy_vs_time.png")
    plt.close(fig)
    return path


def save_disparity(problem: str, method: str, disparity: np.ndarray, n_labels: int, out_dir: Path, stem: str) -> Path:
    """A grey PNG of an (H, W) disparity map, 0..n_labels−1 → 0..255 (nan, e.g. unknown ground truth → 0)."""
    from PIL import Image

    d = np.nan_to_num(np.asarray(disparity, dtype=float), nan=0.0)
    grey = np.clip(np.rint(255.0 * d / max(n_labels - 1, 1)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG")
    return _write_bytes(out_dir / f"{stem}_{_slug(problem)}_disparity_{_slug(method)}.png", buf.getvalue())
