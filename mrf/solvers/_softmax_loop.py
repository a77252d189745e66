"""The iteration shared by mean-field and proximal mean-field with softmax: the Numba kernels' update

    q_i ← (1 − λ) q_i + λ softmax(a_k q_i − b_k g_i(q)),   g_i = θ_i + Σ_j θ_ij q_j,

with (a_k, b_k) = (0, 1/T) for mean-field and (β_k, β_k η) for the PGD form of proximal mean-field, run
in one of three schedules: "parallel" (Jacobi; the kernel also evaluates the state it starts from, so the
per-iteration trace costs no extra pass), "sequential" (Gauss–Seidel in index order) or "colour" (the
colour classes of a greedy colouring in turn, each class in parallel: exact block coordinate descent).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mrf import kernels
from mrf.solvers import _common as common

SCHEDULES = ("parallel", "sequential", "colour")


def run_updates(
    m,
    q: np.ndarray,
    run: common.Run,
    *,
    schedule: str,
    damping: float,
    max_iter: int,
    tol: float,
    coefficients: Callable[[int], tuple[float, float, float]],
    converge_from: int = 0,
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Iterate from q (N, L) (not modified); returns (q, x = argmax q, n_iter, converged).

    coefficients(k) = (a_k, b_k, T_k) for iteration k = 0, 1, ...; the trace records state k (state 0 =
    q) with E(argmax q) and F(q) = E_q − T·H(q) at the temperature T of the iteration that produced it
    (T_0 for state 0). The run stops when max |Δq| ≤ tol at an iteration k ≥ converge_from (converged),
    after max_iter iterations, or past the run's time limit.
    """
    s, theta = kernels.pairwise(m), m.unaries
    q = np.array(q, dtype=np.float64, order="C")
    x = np.argmax(q, axis=1)
    temperature = coefficients(0)[2]
    with common.threads_for(m):
        if schedule == "parallel":
            q_new, x_new = np.empty_like(q), np.empty_like(x)
            produced_at = run.seconds()

            def step(k: int) -> float:  # the kernel also evaluates state k, produced at `produced_at`
                nonlocal q, x, q_new, x_new, produced_at, temperature
                a, b, next_temperature = coefficients(k)
                energy_q, neg_entropy, energy_x, change = kernels.prox_parallel_step(
                    s, theta, q, x, q_new, x_new, a, b, damping, True
                )
                run.record(energy_x, energy_q + temperature * neg_entropy, produced_at)
                q, q_new, x, x_new = q_new, q, x_new, x
                produced_at, temperature = run.seconds(), next_temperature
                return change

            n_iter, converged = run.iterate(step, max_iter, tol, converge_from)
            record_state(run, s, theta, q, x, temperature, produced_at)
            return q, x, n_iter, converged

        order = common.colour_classes(m) if schedule == "colour" else None
        visit = np.arange(m.n_variables, dtype=np.int64)

        def sweep(k: int) -> float:
            a, b, temperature = coefficients(k)
            if order is not None:
                change = kernels.prox_colour_sweep(s, theta, q, x, *order, a, b, damping)
            else:
                change = kernels.prox_sequential_sweep(s, theta, q, x, visit, a, b, damping)
            record_state(run, s, theta, q, x, temperature, run.seconds())
            return change

        record_state(run, s, theta, q, x, temperature, run.seconds())
        n_iter, converged = run.iterate(sweep, max_iter, tol, converge_from)
    return q, x, n_iter, converged


def record_state(run: common.Run, s, theta, q: np.ndarray, x: np.ndarray, temperature: float, seconds: float) -> None:
    """Trace E(x) and F(q) = E_q − T·H(q) at ``temperature`` for x = argmax q (one evaluation pass)."""
    energy_q, neg_entropy, energy_x = kernels.evaluate(s, theta, q, x)
    run.record(energy_x, energy_q + temperature * neg_entropy, seconds)
