"""Regenerate ``benchmarks/README.md`` and the story picture from the saved results (no benchmark is re-run).

    python -m benchmarks.report

Reads what the benchmarks wrote under ``benchmarks/results/``: ``equivalence/summary.json``,
``paper_table.md`` and ``paper_table/*.json``, ``quant_peers.md``, ``mrf_peers.md``, ``mrf_speed.json``.
A section whose results are missing says so and names the command that produces them.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import _common

RESULTS = _common.RESULTS
README = RESULTS.parent / "README.md"
STORY = RESULTS / "story.png"


def _read(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def _missing(command: str) -> str:
    return f"_No saved results yet: run `{command}`._\n"


def _strip_title(markdown: str) -> str:
    """Drop a results file's own top-level heading; the README gives each section its own."""
    lines = markdown.strip().splitlines()
    lines = lines[1:] if lines and lines[0].startswith("# ") else lines
    return "\n".join("#" + line if line.startswith("##") else line for line in lines).strip() + "\n"


def theory_section() -> str:
    summary = RESULTS / "equivalence" / "summary.json"
    if not summary.is_file():
        return _missing("python -m benchmarks.equivalence")
    data = json.loads(summary.read_text())
    rows = [
        {
            "check": c["name"],
            "result": "PASS" if c["passed"] else "FAIL",
            "detail": c.get("detail", "").replace("|", "\\|"),
        }
        for c in data["checks"]
    ]
    table = _common.markdown_table(rows, ["check", "result", "detail"])
    pictures = "".join(
        f"![{name}](results/equivalence/{name}.png)\n"
        for name in ("theorem31_network", "picm_vs_bc", "beta_limit")
        if (RESULTS / "equivalence" / f"{name}.png").is_file()
    )
    return f"Mode: {data.get('mode', '?')}; MNIST from {data.get('mnist_source', '?')}.\n\n{table}\n{pictures}"


def speed_section() -> str:
    data = _read(RESULTS / "mrf_speed.json")
    if data is None:
        return _missing("python -m benchmarks.mrf_speed")
    s = json.loads(data)
    rows = [
        *(
            {
                "threads": n,
                "ns/entry": f"{t['ns_per_entry']:.2f}",
                "iteration ms": f"{t['iteration_ms']:.2f}",
                "× NumPy (same process)": f"{t['speedup_vs_numpy']:.2f}",
                "floor ms": f"{t['floor_ms']:.2f}",
                "× floor": f"{t['ratio_to_floor']:.1f}",
            }
            for n, t in s["by_threads"].items()
        ),
    ]
    columns = ["threads", "ns/entry", "iteration ms", "× NumPy (same process)", "floor ms", "× floor"]
    notes = (
        f"\nProblem: {s['problem']}. ns/entry = nanoseconds per (variable·label·iteration). NumPy reference step: "
        f"{s['numpy_step_ms'][0]:.1f} ms; measured bandwidth {s['bandwidth_GB_s']:.1f} GB/s, exp {s['exp_ns']:.2f} ns. "
        f"First call (cache load) {s['first_call_s']:.2f} s; cold compile {s['cold_compile_s']:.1f} s. "
        f"1-minute load average during the run: {s['load_average_1min']:.2f} on 2 cores. "
        "Targets: ≥ 8× NumPy and ≤ 3× the floor.\n"
    )
    return _common.markdown_table(rows, columns) + notes


def _histories() -> dict[str, list[dict]]:
    """Validation-accuracy history of the first seed of each method of the full MNIST LeNet-300 binary runs."""
    out = {}
    for path in sorted((RESULTS / "paper_table").glob("mnist-lenet300-*-s0-it20000.json")):
        run = json.loads(path.read_text())
        if run.get("levels") in (2, None) and run.get("history"):
            out[run["method"]] = run["history"]
    return out


def story_picture() -> bool:
    """Rounded-network validation accuracy vs iteration (PMF, PICM, BC, REF) beside energy vs time on
    triplepoint4 (reusing the MRF benchmark's figure as an image). False when neither source exists."""
    histories = _histories()
    energy_png = RESULTS / "mrf_triplepoint4_energy_vs_time.png"
    if not histories and not energy_png.is_file():
        return False
    plt = _common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
    ax = axes[0]
    for method, hist in histories.items():
        ax.plot([h["iteration"] for h in hist], [100 * h["val_acc"] for h in hist], label=method.upper(), lw=1.2)
    ax.set(xlabel="iteration", ylabel="validation accuracy of the rounded net (%)", ylim=(80, 100))
    ax.set_title("MNIST LeNet-300, binary, paper protocol (seed 0)")
    if histories:
        ax.legend()
    if energy_png.is_file():
        axes[1].imshow(plt.imread(energy_png))
    axes[1].axis("off")
    axes[1].set_title("triplepoint4: energy gap vs time")
    fig.tight_layout()
    fig.savefig(STORY, dpi=110)
    plt.close(fig)
    return True


SECTIONS = (
    ("1. Theory: PGD ≡ proximal mean-field, PICM ≡ BinaryConnect", "python -m benchmarks.equivalence", theory_section),
    (
        "2. The paper's Table 2, MNIST rows",
        "python -m benchmarks.paper_table  (resumable; --quick for a one-minute check)",
        lambda: _strip_title(_read(RESULTS / "paper_table.md") or _missing("python -m benchmarks.paper_table")),
    ),
    (
        "3. Quantization peers (torchao PARQ, brevitas)",
        "python -m benchmarks.quant_peers",
        lambda: _strip_title(_read(RESULTS / "quant_peers.md") or _missing("python -m benchmarks.quant_peers")),
    ),
    (
        "4. MRF peers (gco, PyMaxflow, toulbar2) and the triplepoint4 gap study",
        "python -m benchmarks.mrf_peers",
        lambda: _strip_title(_read(RESULTS / "mrf_peers.md") or _missing("python -m benchmarks.mrf_peers")),
    ),
    ("5. Speed of the mean-field kernel", "python -m benchmarks.mrf_speed", speed_section),
)


def main() -> None:
    parts = [
        "# Benchmarks\n",
        "Generated by `python -m benchmarks.report` from the saved results in `results/`; each section names the "
        "command that produced its numbers. Every benchmark has a `--quick` mode (about a minute; its results go "
        "to `results/quick/`, not tracked) and a full mode. Timings are from a shared 2-core machine: compare the "
        "ratios measured side by side in one run, not absolute seconds across runs.\n",
    ]
    if story_picture():
        parts.append(f"![story]({STORY.relative_to(README.parent).as_posix()})\n")
    for title, command, build in SECTIONS:
        parts.append(f"## {title}\n\nCommand: `{command}`\n\n{build()}")
    _common.write_text(README, "\n".join(parts))
    print(f"wrote {README}")


if __name__ == "__main__":
    main()
