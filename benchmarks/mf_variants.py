"""Mean-field-family variants for the gap study of ``benchmarks.mrf_peers`` (why MF stops ~2 % above the
optimum of triplepoint4, and what closes part of it), built only from the public solvers' options.

Each variant chains solver runs, warm-starting every run from the previous marginals (``init=q``), and
returns one `SolverResult` whose trace is the concatenation of the runs' traces on one clock (wall seconds
since the variant started, so model rebuilds between runs are counted). Temperatures are in units of the
energy scale s (`mrf.solvers.energy_scale`), step sizes η in units of 1/s, like the solvers' defaults.

* `icm_polish`: ICM from a result's labels (only strict single-variable improvements).
* `annealed_mean_field`: deterministic annealing, mean-field at a decreasing temperature sequence.
* `pmf_eta_schedule`: proximal mean-field with its default β schedule split into stages of different η.
* `noisy_mean_field`: annealing with noise — each stage runs mean-field on θ + σ_k·ξ_k (fresh Gaussian ξ_k,
  σ_k decreasing linearly to 0), then a last stage on the true θ; the noise lets boundaries take the
  energy-neutral steps (plateau moves) that a deterministic fixed point never takes.
* `best_of_restarts`: the best of several runs from random initial marginals (seconds add up).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from mrf import BetaSchedule
from mrf.model import MRF
from mrf.result import SolverResult, Trace
from mrf.solvers import energy_scale, icm, mean_field, proximal_mean_field
from mrf.solvers.proximal_mean_field import BETA0, BETA_CAP, ETA  # the solver's defaults


def _extend(trace: Trace, r: SolverResult, offset: float, skip_first: bool) -> None:
    """Append r's trace shifted by ``offset`` seconds (without its initial state when ``skip_first``)."""
    start = 1 if skip_first else 0
    for e, f, t in zip(r.trace.energy[start:], r.trace.free_energy[start:], r.trace.seconds[start:], strict=True):
        trace.append(e, f, t + offset)


def _stitch(parts: Sequence[tuple[SolverResult, float]], final: SolverResult, method: str) -> SolverResult:
    """One result from runs (result, start offset in seconds): traces concatenated on a common clock (the
    initial state of every run after the first is dropped: it is the previous run's last state)."""
    trace = Trace()
    for k, (r, offset) in enumerate(parts):
        _extend(trace, r, offset, skip_first=k > 0)
    n_iter = sum(r.n_iter for r, _ in parts)
    return SolverResult(final.labels, final.marginals, final.energy, trace, n_iter, final.converged, method)


def icm_polish(m: MRF, result: SolverResult, method: str | None = None) -> SolverResult:
    """``result`` followed by ICM from its labels (result's seconds + ICM's seconds)."""
    polished = icm(m, init=result.labels)
    offset = result.trace.seconds[-1] if len(result.trace) else 0.0
    return _stitch([(result, 0.0), (polished, offset)], polished, method or f"{result.method}+icm")


def annealed_mean_field(
    m: MRF, temperatures: Sequence[float], sweeps: int, *, schedule: str = "colour", init="uniform"
) -> SolverResult:
    """Mean-field at T = τ_k·s for each τ_k in ``temperatures``, ``sweeps`` sweeps each (tol 1e-7)."""
    s = energy_scale(m)
    start, q, parts = time.perf_counter(), init, []
    for tau in temperatures:
        offset = time.perf_counter() - start
        r = mean_field(m, schedule=schedule, temperature=tau * s, init=q, max_iter=sweeps, tol=1e-7)
        parts.append((r, offset))
        q = r.marginals
    return _stitch(parts, parts[-1][0], f"mf-{schedule}-annealed")


def pmf_eta_schedule(
    m: MRF, eta_factors: Sequence[float], max_iter: int = 1000, *, schedule: str = "colour"
) -> SolverResult:
    """Proximal mean-field with its default β schedule for ``max_iter`` iterations, split into
    len(eta_factors) equal stages; stage k uses η = eta_factors[k] × the default η (ETA/s) and continues β
    where the previous stage stopped (so the temperature 1/(βη) jumps by the factor between stages)."""
    eta0 = ETA / energy_scale(m)
    full = BetaSchedule.for_budget(max_iter, beta0=BETA0, cap=BETA_CAP)
    per_stage = max_iter // len(eta_factors)
    start, u, parts = time.perf_counter(), "uniform", []
    for k, factor in enumerate(eta_factors):
        beta = BetaSchedule(beta0=full(k * per_stage), rho=full.rho, interval=full.interval, cap=full.cap)
        offset = time.perf_counter() - start
        r = proximal_mean_field(m, eta=factor * eta0, beta=beta, init=u, max_iter=per_stage, schedule=schedule)
        parts.append((r, offset))
        u = r.marginals
    return _stitch(parts, parts[-1][0], "pmf-eta-x" + "-".join(f"{f:.3g}" for f in eta_factors))


def noisy_mean_field(
    m: MRF,
    *,
    sigma0: float = 0.3,
    temperature: float = 0.05,
    stages: int = 200,
    sweeps: int = 3,
    final_sweeps: int = 50,
    init: SolverResult | None = None,
    seed: int = 0,
) -> SolverResult:
    """Colour mean-field at T = temperature·s on θ + σ_k ξ_k, σ_k = sigma0·s·(1 − k/stages), ``sweeps``
    sweeps per stage, then ``final_sweeps`` on the true θ. Starts from ``init``'s marginals (its seconds and
    trace come first) or from the unary marginals. The trace records each stage's labels scored with the TRUE
    energy, then the final run's states."""
    s = energy_scale(m)
    rng = np.random.default_rng(seed)
    start, trace, n_iter = time.perf_counter(), Trace(), 0
    t0, q = 0.0, "unary"
    if init is not None:
        _extend(trace, init, 0.0, skip_first=False)
        t0, q, n_iter = init.trace.seconds[-1], init.marginals, init.n_iter
    T = temperature * s
    for k in range(stages):
        sigma = sigma0 * s * (1.0 - k / stages)
        noisy = MRF(m.unaries + sigma * rng.standard_normal(m.unaries.shape), m.edges, **_pairwise_kwargs(m))
        r = mean_field(noisy, schedule="colour", temperature=T, init=q, max_iter=sweeps)
        trace.append(m.energy(r.labels), np.nan, t0 + time.perf_counter() - start)  # the TRUE energy
        q, n_iter = r.marginals, n_iter + r.n_iter
    offset = t0 + time.perf_counter() - start
    final = mean_field(m, schedule="colour", temperature=T, init=q, max_iter=final_sweeps)
    _extend(trace, final, offset, skip_first=True)
    method = f"mf-noisy(sigma0={sigma0:g}s,T={temperature:g}s,{stages}x{sweeps})"
    return SolverResult(
        final.labels, final.marginals, final.energy, trace, n_iter + final.n_iter, final.converged, method
    )


def _pairwise_kwargs(m: MRF) -> dict:
    if m.kind == "potts":
        return {"potts": m.weights, "grid_shape": m.grid_shape}
    if m.kind == "matrix":
        return {"matrix": m.matrix, "weights": m.weights, "grid_shape": m.grid_shape}
    return {"tables": m.tables, "grid_shape": m.grid_shape}


def best_of_restarts(m: MRF, solver: Callable[..., SolverResult], seeds: Sequence[int], method: str) -> SolverResult:
    """The lowest-energy result of ``solver(m, init="random", seed=k)`` over ``seeds``; its trace is the
    running best energy after each restart against the summed seconds."""
    trace, best, elapsed = Trace(), None, 0.0
    for seed in seeds:
        r = solver(m, init="random", seed=seed)
        elapsed += r.trace.seconds[-1]
        if best is None or r.energy < best.energy:
            best = r
        trace.append(best.energy, np.nan, elapsed)
    return SolverResult(best.labels, best.marginals, best.energy, trace, len(seeds), best.converged, method)
