"""Proximal mean-field (Ajanthan et al., ICCV 2019) on an MRF, with β annealing and hardmax rounding.

PGD form (Eq. 14): u ← P_β(u − η g), g = ∂E_u/∂u = θ_i + Σ_j θ_ij u_j (`MRF.linearize`). With softmax this
is argmin_{u∈Δ} η⟨g, u⟩ − ⟨u^k, u⟩ − H(u)/β (Theorem 3.1): a mean-field step at temperature 1/(βη) plus a
proximal term; as β grows it becomes proximal ICM, u ← hardmax(u − η g) (Eq. 18).
Auxiliary form (Eq. 17): ũ ← ũ − η · g·∂u/∂ũ with u = P_β(ũ) (`mrf.projections.aux_step`).
"""

from __future__ import annotations

import numpy as np

from mrf import kernels
from mrf.projections import JACOBIANS, PROJECTIONS, aux_step, project, proximal_step
from mrf.result import SolverResult
from mrf.schedule import BetaSchedule
from mrf.solvers import _common as common
from mrf.solvers._softmax_loop import record_state, run_updates
from mrf.solvers.scale import energy_scale

FORMS = ("pgd", "aux")
SCHEDULES = ("parallel", "colour")
# Defaults, tuned on triplepoint4 and the astronaut K=5 segmentation (benchmarks/problems.py) and kept
# unit-free with the energy scale s (mrf.solvers.scale): η = ETA/s, so η·g and every iteration do not
# depend on the units of the potentials; β is dimensionless (it multiplies u ∈ Δ). The first steps are
# mean-field at T₀ = 1/(β₀η) = START_TEMPERATURE·s (just above where Potts neighbours start to agree); at
# β = BETA_CAP the steps are proximal ICM: a label moves only if it lowers the local energy by > s/ETA.
ETA = 30.0
START_TEMPERATURE = 0.13
BETA0 = 1.0 / (START_TEMPERATURE * ETA)
BETA_CAP = 100.0


def proximal_mean_field(
    m,
    *,
    form: str = "pgd",
    projection: str = "softmax",
    jacobian: str | None = None,
    eta: float | None = None,
    beta: BetaSchedule | None = None,
    schedule: str = "colour",
    init=None,
    max_iter: int = 1000,
    tol: float = 1e-6,
    time_limit: float | None = None,
    seed=None,
    progress: bool = False,
) -> SolverResult:
    """Anneal β_k while stepping u ← P_{β_k}(u − η g(u)); labels = argmax u (hardmax rounding, Eq. 10).

    form: "pgd" (u on the simplex, Eq. 14; `mrf.projections.proximal_step`) or "aux" (unconstrained ũ,
        u = P_β(ũ), plain gradient steps through the Jacobian ``jacobian``, Eq. 17).
    projection: "softmax" (proximal mean-field), "sparsemax" (PGD) or "hardmax" (proximal ICM).
    jacobian: the Jacobian variant of the aux form (see `mrf.projections.project_vjp`); None = the
        projection's own. Only used with form="aux".
    eta: step size η > 0 in inverse units of the potentials; default 30/s, s = `energy_scale(m)`.
    beta: a `BetaSchedule`; default `BetaSchedule.for_budget(max_iter, beta0=1/(0.13·30), cap=100)`: β
        grows geometrically so that the temperature 1/(βη) falls from 0.13·s to s/3000, reached after 90 %
        of the iterations (the last ones are proximal ICM steps).
    schedule: "colour" (the classes of a greedy colouring — the checkerboard on a 4-grid — in turn, each in
        parallel with fresh neighbours) or "parallel" (all rows from the previous u).
    init: None / "uniform", "unary" (softmax(−θ/T) at T = 1/(β₀η)), "wta", "random" (from ``seed``),
        labels (N,) or marginals (N, L).
    max_iter: iterations (sweeps); the default β schedule is scaled to it. tol: stop when max |Δu| ≤ tol
        once β has reached its cap (converged). time_limit: seconds. progress: a tqdm bar.

    The trace records state k (state 0 = init): E(argmax u^k) and F(u^k) = E_u − T·H(u) at the iteration's
    temperature T = 1/(β η).
    """
    form = common.choice("form", form, FORMS)
    projection = common.choice("projection", projection, PROJECTIONS)
    schedule = common.choice("schedule", schedule, SCHEDULES)
    if jacobian is not None:
        if form != "aux":
            raise ValueError(f"jacobian is only used with form='aux', got jacobian={jacobian!r} with form={form!r}")
        common.choice("jacobian", jacobian, JACOBIANS)
    max_iter, tol, time_limit = common.stopping(max_iter, tol, time_limit)
    eta = ETA / energy_scale(m) if eta is None else common.positive_float("eta", eta)
    if beta is None:
        beta = BetaSchedule.for_budget(max_iter, beta0=BETA0, cap=BETA_CAP)
    elif not isinstance(beta, BetaSchedule):
        raise TypeError(f"beta must be a mrf.BetaSchedule or None, got {type(beta).__name__}")
    u = common.initial_marginals(m, "uniform" if init is None else init, seed, 1.0 / (beta(0) * eta))
    converge_from = _first_capped_iteration(beta, max_iter)
    run = common.Run("proximal_mean_field", max_iter, time_limit, progress)
    if form == "pgd" and projection == "softmax":
        u, x, n_iter, converged = run_updates(
            m,
            u,
            run,
            schedule=schedule,
            damping=1.0,
            max_iter=max_iter,
            tol=tol,
            coefficients=lambda k: (beta(k), beta(k) * eta, 1.0 / (beta(k) * eta)),
            converge_from=converge_from,
        )
    else:
        u, x, n_iter, converged = _numpy_updates(
            m, u, run, form, projection, jacobian, eta, beta, schedule, max_iter, tol, converge_from
        )
    return run.result(m, x, u, n_iter, converged)


def _first_capped_iteration(beta: BetaSchedule, max_iter: int) -> int:
    """The first k < max_iter with β_k = cap (max_iter if none): tol may stop the run only from there.
    β_k is non-decreasing in k, so a bisection finds it."""
    lo, hi = 0, max_iter  # invariant: β_k < cap for k < lo; k = hi is capped or the end
    while lo < hi:
        mid = (lo + hi) // 2
        if beta(mid) >= beta.cap:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _initial_aux(m, u: np.ndarray, beta0: float, projection: str) -> np.ndarray:
    """ũ⁰ with P_β₀(ũ⁰) = u⁰: log(u⁰)/β₀ for softmax (zero entries floored at 1e-300, so they can recover),
    u⁰/β₀ for sparsemax and hardmax (P(u⁰) = u⁰ on the simplex); −inf on padded labels."""
    valid = common.valid_labels(m)
    aux = np.log(np.maximum(u, 1e-300)) if projection == "softmax" else u.copy()
    return np.where(valid, aux / beta0, -np.inf)


def _numpy_updates(m, u, run, form, projection, jacobian, eta, beta, schedule, max_iter, tol, converge_from):
    """Sparsemax / hardmax projections and the aux form: `proximal_step` / `aux_step` row blocks on Numba
    linearizations, one colour class at a time (schedule "colour") or all rows at once ("parallel")."""
    s, theta = kernels.pairwise(m), m.unaries
    if schedule == "colour":
        order, offsets = common.colour_classes(m)
    else:
        order, offsets = np.arange(m.n_variables, dtype=np.int64), np.array([0, m.n_variables])
    valid = common.valid_labels(m)
    aux = _initial_aux(m, u, beta(0), projection) if form == "aux" else None
    x = np.argmax(u, axis=1)

    def sweep(k: int) -> float:
        b, change = beta(k), 0.0
        for c in range(len(offsets) - 1):
            rows = order[offsets[c] : offsets[c + 1]]
            g = np.empty((len(rows), m.n_labels_max))
            kernels.linearize_rows(s, theta, u, rows, g)
            if aux is None:
                new = proximal_step(u[rows], g, b, eta, projection)
            else:  # padded labels: g = +inf there, but u = 0 and ũ = −inf stay put with g = 0
                aux[rows] = aux_step(aux[rows], np.where(valid[rows], g, 0.0), b, eta, projection, jacobian)
                new = project(aux[rows], b, projection)
            change = max(change, float(np.abs(new - u[rows]).max(initial=0.0)))
            u[rows] = new
        x[:] = np.argmax(u, axis=1)
        record_state(run, s, theta, u, x, 1.0 / (b * eta), run.seconds())
        return change

    with common.threads_for(m):
        record_state(run, s, theta, u, x, 1.0 / (beta(0) * eta), run.seconds())
        n_iter, converged = run.iterate(sweep, max_iter, tol, converge_from)
    return u, x, n_iter, converged
