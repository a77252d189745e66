"""Naive mean-field: q_i(l) ∝ exp(−g_i(l)/T), g_i = θ_i + Σ_j θ_ij q_j (mrf-background.md §4)."""

from __future__ import annotations

from mrf.result import SolverResult
from mrf.solvers import _common as common
from mrf.solvers._softmax_loop import SCHEDULES, run_updates
from mrf.solvers.scale import energy_scale

TEMPERATURE = 0.1  # default T in units of the energy scale s (mrf.solvers.scale)
PARALLEL_DAMPING = 0.5  # default λ of the parallel schedule, which can oscillate undamped


def mean_field(
    m,
    *,
    schedule: str = "parallel",
    damping: float | None = None,
    temperature: float | None = None,
    init=None,
    max_iter: int = 200,
    tol: float = 1e-6,
    time_limit: float | None = None,
    seed=None,
    progress: bool = False,
) -> SolverResult:
    """Minimise the free energy F(q) = E_q − T·H(q) over factorised q; labels = argmax q (the rounded q).

    schedule:
      * "parallel": all q_i at once from the previous q (Jacobi), damped q ← (1−λ) q + λ q_MF. No descent
        guarantee (an undamped run can oscillate on bipartite graphs); damping defaults to 0.5.
      * "sequential": one q_i at a time with fresh neighbours, in index order (Gauss–Seidel); each step
        minimises F over q_i exactly, so F never increases. damping defaults to 1.
      * "colour": the classes of a greedy colouring (checkerboard on a 4-grid) in turn, each in
        parallel — exactly the sequential sweep in that order, so F never increases. damping defaults to 1.
      With damping λ < 1 the sequential and colour schedules still never increase F (F is convex in q_i).
    temperature: T > 0 in the units of the potentials; default 0.1·s, s = `energy_scale(m)` (so scaling
        every potential by κ scales T by κ and leaves the labelling unchanged).
    init: None / "unary" (q_i ∝ exp(−θ_i/T)), "uniform", "wta", "random" (from ``seed``), labels (N,)
        or marginals (N, L).
    max_iter: at most this many updates (sweeps). tol: stop when max |Δq| ≤ tol (converged).
    time_limit: seconds. progress: a tqdm bar.

    The trace records state k (state 0 = init): E(argmax q^k) and F(q^k) at T.
    """
    schedule = common.choice("schedule", schedule, SCHEDULES)
    max_iter, tol, time_limit = common.stopping(max_iter, tol, time_limit)
    if damping is None:
        damping = PARALLEL_DAMPING if schedule == "parallel" else 1.0
    damping = common.positive_float("damping", damping)
    if damping > 1:
        raise ValueError(f"damping must be in (0, 1], got {damping!r}")
    if temperature is None:
        temperature = TEMPERATURE * energy_scale(m)
    temperature = common.positive_float("temperature", temperature)
    q = common.initial_marginals(m, "unary" if init is None else init, seed, temperature)
    run = common.Run("mean_field", max_iter, time_limit, progress)
    q, x, n_iter, converged = run_updates(
        m,
        q,
        run,
        schedule=schedule,
        damping=damping,
        max_iter=max_iter,
        tol=tol,
        coefficients=lambda k: (0.0, 1.0 / temperature, temperature),
    )
    return run.result(m, x, q, n_iter, converged)
