"""Speed of parallel mean-field on a 512×512, 5-label Potts grid: ``python -m benchmarks.mrf_speed [--quick]``.

Reports, and writes to ``benchmarks/results/mrf_speed.json`` (``results/quick/`` with --quick):

* ns per (variable · label · iteration) of `mrf.mean_field(schedule="parallel")` — the whole solver iteration,
  i.e. the fused Numba update plus the per-iteration trace (E of the rounded labels, F(q)), measured as
  (T(K + 1 iterations) − T(1 iteration)) / K so that a call's set-up does not count — and of the
  update kernel alone, with one Numba thread and with all; the headline figures are those of the faster;
* the ratio to a vectorized NumPy implementation of the same update (`numpy_step`, checked equal to the
  kernel's result) timed in the same process (target ≥ 8×);
* the machine floor of one iteration, measured here: the minimum bytes moved (read q and θ, write the new
  q: 24 bytes per (variable, label)) at the bandwidth of a large NumPy copy, plus one exp per (variable,
  label) at np.exp's throughput (one core; with n threads the exps are split over n cores); the ratio of
  the iteration time to it (target ≤ 3×);
* the first-call time (cache load, or compile when the cache is empty) of the solver in this process, and
  (full run only) a cold compile in a subprocess with an empty Numba cache.

Timings are minima over repeats (the least disturbed run; medians are reported too). On a shared machine
another process on the second core makes multi-threaded numbers worse than single-threaded ones: the
load average at the start is printed and stored.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numba
import numpy as np

import mrf
from benchmarks._common import results_dir, write_json
from mrf import kernels

SIDE, LABELS, WEIGHT, TEMPERATURE, DAMPING = 512, 5, 0.3, 0.3, 0.5
BYTES_PER_ENTRY = 3 * 8  # read q and θ, write the new q (float64); the neighbours' q rows are cache hits


def potts_grid(side: int, seed: int = 0) -> mrf.MRF:
    """A side×side grid, 5 labels, unaries U[0, 1), Potts weight 0.3 on every 4-neighbour edge."""
    rng = np.random.default_rng(seed)
    return mrf.grid(rng.random((side, side, LABELS)), WEIGHT)


def numpy_step(theta: np.ndarray, q: np.ndarray, right: np.ndarray, down: np.ndarray, T: float, damping: float):
    """The parallel mean-field update, vectorized: g = θ + Σ_j w_ij (1 − q_j) over the 4 neighbours with
    shifted slices, q ← (1 − λ) q + λ softmax(−g/T). theta, q: (H, W, L); right (H, W−1), down (H−1, W)."""
    g = theta.copy()
    g[:, :-1] += right[..., None] * (1.0 - q[:, 1:])
    g[:, 1:] += right[..., None] * (1.0 - q[:, :-1])
    g[:-1] += down[..., None] * (1.0 - q[1:])
    g[1:] += down[..., None] * (1.0 - q[:-1])
    g *= -1.0 / T
    g -= g.max(axis=-1, keepdims=True)
    np.exp(g, out=g)
    g /= g.sum(axis=-1, keepdims=True)
    g *= damping
    g += (1.0 - damping) * q
    return g


def timings(fn, repeats: int) -> tuple[float, float]:
    """(min, median) seconds of ``fn()`` over ``repeats`` calls after one warm-up call."""
    fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return min(seconds), float(np.median(seconds))


def machine_floor(entries: int) -> dict:
    """Measured bandwidth (large NumPy copy, bytes read + written) and np.exp throughput (one core each);
    the floor of one iteration moving BYTES_PER_ENTRY·entries bytes and computing ``entries`` exps."""
    big = np.random.default_rng(1).random(2**25)  # 256 MiB, far beyond the caches
    target = np.empty_like(big)
    target[:] = 0.0  # fault the pages in before timing
    copy_s, _ = timings(lambda: np.copyto(target, big), 5)
    bandwidth = 2 * big.nbytes / copy_s
    x = -np.random.default_rng(2).random(entries) * 20
    y = np.empty_like(x)
    exp_s, _ = timings(lambda: np.exp(x, out=y), 10)
    per_exp = exp_s / entries
    memory = BYTES_PER_ENTRY * entries / bandwidth
    return {"bandwidth_GB_s": bandwidth / 1e9, "exp_ns": per_exp * 1e9, "floor_ms": (memory + entries * per_exp) * 1e3}


def cold_compile_seconds() -> float:
    """First mean-field call in a fresh interpreter with an empty Numba cache (what a first install pays)."""
    code = (
        "import time, numpy as np, mrf; m = mrf.grid(np.random.rand(8, 8, 5), 0.3); t = time.perf_counter(); "
        "mrf.mean_field(m, max_iter=2); print(time.perf_counter() - t)"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return float(done.stdout.split()[-1])


def run(quick: bool) -> dict:
    side, iterations, repeats = (256, 20, 5) if quick else (SIDE, 50, 10)
    load = os.getloadavg()[0]
    m = potts_grid(side)
    entries = m.unaries.size
    threads = numba.get_num_threads()

    start = time.perf_counter()
    mrf.mean_field(m, max_iter=1, temperature=TEMPERATURE)
    first_call = time.perf_counter() - start

    s, theta = kernels.pairwise(m), m.unaries
    q = mrf.softmax(-theta, 1 / TEMPERATURE)
    x, q_new, x_new = np.argmax(q, axis=1), np.empty_like(q), np.empty_like(q[:, 0], dtype=np.int64)

    def solver(n_iter: int):
        mrf.mean_field(m, max_iter=n_iter, tol=0.0, temperature=TEMPERATURE, damping=DAMPING)

    def step():
        return kernels.prox_parallel_step(s, theta, q, x, q_new, x_new, 0.0, 1 / TEMPERATURE, DAMPING, True)

    shape = (side, side, LABELS)
    right = s.right.reshape(side, side)[:, :-1].copy()
    down = s.down.reshape(side, side)[:-1].copy()
    theta3, q3 = theta.reshape(shape), q.reshape(shape)
    expected = numpy_step(theta3, q3, right, down, TEMPERATURE, DAMPING)
    step()
    agreement = float(np.abs(expected.reshape(q.shape) - q_new).max())
    numpy_best, numpy_median = timings(lambda: numpy_step(theta3, q3, right, down, TEMPERATURE, DAMPING), repeats)
    floor = machine_floor(entries)

    per_threads = {}
    for n in sorted({1, threads}):
        numba.set_num_threads(n)
        # per iteration = (T(K) − T(1)) / (K − 1): the call's set-up (initial q, final evaluation, result) cancels
        once = timings(lambda: solver(1), repeats)
        full = timings(lambda: solver(iterations + 1), max(3, repeats // 3))
        best, median = full[0] - once[0], full[1] - once[1]
        kernel_best, _ = timings(step, repeats)
        floor_n = floor["floor_ms"] - floor["exp_ns"] * 1e-6 * entries * (1 - 1 / n)  # exps split over n cores
        per_threads[str(n)] = {
            "iteration_ms": best / iterations * 1e3,
            "iteration_median_ms": median / iterations * 1e3,
            "ns_per_entry": best / iterations / entries * 1e9,
            "kernel_ns_per_entry": kernel_best / entries * 1e9,
            "speedup_vs_numpy": numpy_best / (best / iterations),
            "floor_ms": floor_n,
            "ratio_to_floor": best / iterations / (floor_n * 1e-3),
        }
    numba.set_num_threads(threads)
    fastest = min(per_threads, key=lambda n: per_threads[n]["iteration_ms"])
    out = {
        "problem": f"{side}x{side} Potts grid, {LABELS} labels, w={WEIGHT}, T={TEMPERATURE}, damping={DAMPING}",
        "entries": entries,
        "iterations_per_timing": iterations,
        "numba_threads": threads,
        "load_average_1min": load,
        "first_call_s": first_call,
        "numpy_step_ms": [numpy_best * 1e3, numpy_median * 1e3],
        "numpy_max_abs_difference": agreement,
        "bandwidth_GB_s": floor["bandwidth_GB_s"],
        "exp_ns": floor["exp_ns"],
        "by_threads": per_threads,
        "fastest_threads": int(fastest),
        **{k: per_threads[fastest][k] for k in ("ns_per_entry", "speedup_vs_numpy", "floor_ms", "ratio_to_floor")},
    }
    if not quick:
        out["cold_compile_s"] = cold_compile_seconds()
    return out


def report(r: dict) -> str:
    lines = [
        f"mrf speed: parallel mean-field, {r['problem']} ({r['entries']:,} variable-labels)",
        f"  load average at start {r['load_average_1min']:.2f} on {os.cpu_count()} cores"
        + ("  (busy machine: the times are upper bounds)" if r["load_average_1min"] > 0.5 else ""),
        f"  machine: copy bandwidth {r['bandwidth_GB_s']:.1f} GB/s, np.exp {r['exp_ns']:.2f} ns",
        f"  NumPy vectorized update: {r['numpy_step_ms'][0]:.2f} ms "
        f"(max |Δq| vs the kernel {r['numpy_max_abs_difference']:.1e})",
    ]
    for n, t in r["by_threads"].items():
        lines.append(
            f"  {n} thread(s): solver iteration {t['iteration_ms']:.2f} ms (median {t['iteration_median_ms']:.2f}), "
            f"{t['ns_per_entry']:.2f} ns per (variable·label·iteration) (kernel {t['kernel_ns_per_entry']:.2f}); "
            f"{t['speedup_vs_numpy']:.1f}x NumPy; floor {t['floor_ms']:.2f} ms, ratio {t['ratio_to_floor']:.2f}x"
        )
    lines += [
        f"  fastest ({r['fastest_threads']} thread(s)): {r['ns_per_entry']:.2f} ns per (variable·label·iteration), "
        f"{r['speedup_vs_numpy']:.1f}x NumPy (target >= 8x), {r['ratio_to_floor']:.2f}x the floor (target <= 3x)",
        f"  first call (compile or cache load): {r['first_call_s']:.2f} s",
    ]
    if "cold_compile_s" in r:
        lines.append(f"  cold compile (empty Numba cache, fresh interpreter): {r['cold_compile_s']:.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mrf_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256×256 grid, fewer repeats, no cold compile")
    args = parser.parse_args(argv)
    r = run(args.quick)
    print(report(r))
    folder = results_dir("quick") if args.quick else results_dir()  # quick runs stay out of git
    path = write_json(folder / "mrf_speed.json", r)
    print(f"  written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
