"""The solvers: brute-force checks on tiny models, the guarantees of each update rule, the options and
their errors, scale invariance of the defaults, and the quality bar on triplepoint4."""

import importlib
import itertools
from pathlib import Path

import numpy as np
import pytest

import mrf
from mrf import BetaSchedule, reference
from mrf.projections import aux_step, project, proximal_step

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TRIPLEPOINT4 = SHARED / "mrf_benchmarks" / "opengm" / "inpainting-n4" / "triplepoint4-plain-ring.h5"
OPTIMUM = 484.5907

SOLVER_CONFIGS = [
    ("icm", {}),
    ("icm", {"order": "colour"}),
    ("icm", {"order": "random", "seed": 3, "init": "random"}),
    ("mean_field", {}),
    ("mean_field", {"schedule": "sequential"}),
    ("mean_field", {"schedule": "colour", "init": "random", "seed": 1}),
    ("proximal_mean_field", {}),
    ("proximal_mean_field", {"schedule": "parallel", "max_iter": 200}),
    ("proximal_mean_field", {"projection": "sparsemax", "max_iter": 100}),
    ("proximal_mean_field", {"projection": "hardmax", "max_iter": 100}),
    ("proximal_mean_field", {"form": "aux", "max_iter": 100}),
    ("proximal_mean_field", {"form": "aux", "jacobian": "pmf_repo", "max_iter": 100}),
]


def tiny_models():
    """≤ 10 variables: a Potts cycle with a chord, a padded table model, a 3×3 Potts grid."""
    rng = np.random.default_rng(0)
    cycle = np.array([[i, (i + 1) % 8] for i in range(8)] + [[0, 4]])
    potts = mrf.MRF(rng.normal(size=(8, 3)), cycle, potts=rng.uniform(0.2, 1.5, len(cycle)))
    edges = np.array([p for p in itertools.combinations(range(6), 2)])[::2]
    counts = np.array([3, 2, 3, 1, 2, 3])
    table = mrf.MRF(rng.normal(size=(6, 3)), edges, tables=rng.normal(size=(len(edges), 3, 3)), n_labels=counts)
    grid = mrf.grid(rng.normal(size=(3, 3, 2)), 0.7)
    return [potts, table, grid]


@pytest.fixture(scope="module")
def small():
    return tiny_models()


def brute_force_minimum(m):
    return min(m.energy(np.array(x)) for x in itertools.product(*[range(c) for c in m.n_labels]))


def is_local_minimum(m, x):
    e = m.energy(x)
    for i in range(m.n_variables):
        for label in range(m.n_labels[i]):
            y = x.copy()
            y[i] = label
            if m.energy(y) < e - 1e-12:
                return False
    return True


@pytest.mark.parametrize("method,options", SOLVER_CONFIGS, ids=lambda v: str(v))
def test_every_solver_reports_its_labels_energy_exactly(small, method, options):
    for m in small:
        r = mrf.solve(m, method, **options)
        assert r.method == method
        assert r.labels.dtype == np.int64 and r.labels.shape == (m.n_variables,)
        assert r.energy == m.energy(r.labels)  # exact, not approximate
        assert r.energy >= brute_force_minimum(m) - 1e-12
        assert np.all(r.labels < m.n_labels)
        np.testing.assert_allclose(r.marginals.sum(axis=1), 1.0, atol=1e-9)
        assert np.all(r.marginals[np.arange(m.n_labels_max)[None] >= m.n_labels[:, None]] == 0)
        assert len(r.trace) == r.n_iter + 1 and 1 <= r.n_iter
        assert r.trace.energy[-1] == pytest.approx(r.energy, abs=1e-9)
        assert np.all(np.diff(r.trace.seconds) >= 0)


def test_icm_ends_in_a_local_minimum_and_never_raises_the_energy(small):
    rng = np.random.default_rng(1)
    for m in small:
        for seed in range(3):
            r = mrf.icm(m, init=rng.integers(0, m.n_labels), order="random", seed=seed)
            assert r.converged and is_local_minimum(m, r.labels)
            assert np.all(np.diff(r.trace.energy) <= 1e-12)
            assert np.all(np.isnan(r.trace.free_energy))


@pytest.mark.parametrize("schedule", ["sequential", "colour"])
def test_sequential_mean_field_never_increases_the_free_energy(small, schedule):
    for m in small:
        for temperature, damping in ((0.3, 1.0), (1.5, 1.0), (0.5, 0.6)):
            r = mrf.mean_field(m, schedule=schedule, temperature=temperature, damping=damping, init="random", seed=2)
            f = np.array(r.trace.free_energy)
            assert np.all(np.diff(f) <= 1e-12 * max(1.0, np.abs(f).max()))
            assert f[-1] == pytest.approx(m.free_energy(r.marginals, temperature), abs=1e-10)


def test_parallel_mean_field_fixed_point_satisfies_the_update(small):
    m = small[0]
    T = 0.8
    r = mrf.mean_field(m, temperature=T, max_iter=2000, tol=1e-12)
    assert r.converged
    np.testing.assert_allclose(r.marginals, mrf.softmax(-reference.linearize(m, r.marginals), 1 / T), atol=1e-10)


def test_pgd_kernel_path_is_proximal_step(small):
    """The Numba PGD iteration equals `proximal_step` applied to NumPy linearizations (parallel schedule)."""
    for m in small:
        eta, beta = 0.3, BetaSchedule(beta0=0.5, rho=1.5, interval=3, cap=20.0)
        r = mrf.proximal_mean_field(m, eta=eta, beta=beta, schedule="parallel", max_iter=25, tol=0)
        u = (np.arange(m.n_labels_max)[None] < m.n_labels[:, None]) / m.n_labels[:, None]
        for k in range(25):
            u = proximal_step(u, reference.linearize(m, u), beta(k), eta)
        np.testing.assert_allclose(r.marginals, u, atol=1e-11)


def test_aux_form_is_aux_step(small):
    m = small[0]
    eta, beta = 0.2, BetaSchedule(beta0=2.0, rho=1.0, interval=1, cap=2.0)
    r = mrf.proximal_mean_field(m, form="aux", eta=eta, beta=beta, schedule="parallel", max_iter=7, tol=0)
    aux = np.zeros(m.unaries.shape)
    for _ in range(7):
        aux = aux_step(aux, reference.linearize(m, project(aux, 2.0)), 2.0, eta)
    np.testing.assert_allclose(r.marginals, project(aux, 2.0), atol=1e-11)


def test_default_beta_schedule_is_scaled_to_the_budget(small):
    """tol can only stop the run once β has reached its cap, which the default schedule does after 90 % of
    max_iter: so a converged run stopped in the last 10 %, whatever the budget."""
    for max_iter in (50, 400):
        r = mrf.proximal_mean_field(small[2], max_iter=max_iter)
        assert 0.9 * max_iter - 1 <= r.n_iter <= max_iter
    defaults = importlib.import_module("mrf.solvers.proximal_mean_field")
    schedule = BetaSchedule.for_budget(1000, beta0=defaults.BETA0, cap=defaults.BETA_CAP)
    assert schedule(0) == defaults.BETA0 and schedule(850) < schedule.cap == schedule(905)


def test_stopping_rules_and_seeds(small):
    m = small[2]
    r = mrf.mean_field(m, max_iter=3, tol=0)
    assert r.n_iter == 3 and not r.converged and len(r.trace) == 4
    r = mrf.mean_field(m, max_iter=10_000, tol=1e-9)
    assert r.converged and r.n_iter < 10_000
    r = mrf.proximal_mean_field(m, max_iter=10_000_000, time_limit=0.05)
    assert not r.converged and r.n_iter < 10_000_000 and r.trace.seconds[-1] < 5
    a, b = (mrf.mean_field(m, init="random", seed=7, max_iter=2) for _ in range(2))
    np.testing.assert_array_equal(a.marginals, b.marginals)
    c = mrf.mean_field(m, init="random", seed=8, max_iter=2)
    assert not np.allclose(a.marginals, c.marginals)
    assert mrf.icm(m, init="random", seed=5).energy == mrf.icm(m, init="random", seed=5).energy


def test_init_options(small):
    m = small[1]
    labels = np.array([2, 1, 0, 0, 1, 2])
    assert mrf.icm(m, init=labels, max_iter=1).trace.energy[0] == pytest.approx(m.energy(labels))
    q = mrf.mean_field(m, init=labels, max_iter=1).trace
    assert q.energy[0] == pytest.approx(m.energy(labels))
    one_hot = np.eye(3)[labels]
    assert mrf.proximal_mean_field(m, init=one_hot, max_iter=1).trace.energy[0] == pytest.approx(m.energy(labels))
    for init in ("uniform", "unary", "wta", "random"):
        mrf.mean_field(m, init=init, max_iter=2)
        mrf.proximal_mean_field(m, init=init, max_iter=2)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda m: mrf.solve(m, "graph_cut"), "method must be one of"),
        (lambda m: mrf.icm(m, max_iter=0), "max_iter must be a positive integer"),
        (lambda m: mrf.mean_field(m, max_iter=2.5), "max_iter must be a positive integer"),
        (lambda m: mrf.mean_field(m, tol=-1), "tol must be"),
        (lambda m: mrf.mean_field(m, time_limit=0), "time_limit must be"),
        (lambda m: mrf.mean_field(m, schedule="random"), "schedule must be one of"),
        (lambda m: mrf.mean_field(m, damping=1.5), "damping must be in"),
        (lambda m: mrf.mean_field(m, damping=0), "damping must be"),
        (lambda m: mrf.mean_field(m, temperature=-1.0), "temperature must be"),
        (lambda m: mrf.mean_field(m, init="best"), "init must be one of"),
        (lambda m: mrf.mean_field(m, init=np.ones((2, 2))), "marginals must have shape"),
        (lambda m: mrf.icm(m, init=np.zeros(3, int)), "labels must have shape"),
        (lambda m: mrf.icm(m, order=np.zeros(9, int)), "order must visit every variable"),
        (lambda m: mrf.icm(m, order="spiral"), "order must be one of"),
        (lambda m: mrf.proximal_mean_field(m, eta=0), "eta must be"),
        (lambda m: mrf.proximal_mean_field(m, eta=-0.1), "eta must be"),
        (lambda m: mrf.proximal_mean_field(m, projection="argmax"), "projection must be one of"),
        (lambda m: mrf.proximal_mean_field(m, form="mirror"), "form must be one of"),
        (lambda m: mrf.proximal_mean_field(m, schedule="sequential"), "schedule must be one of"),
        (lambda m: mrf.proximal_mean_field(m, jacobian="true"), "jacobian is only used with form='aux'"),
        (lambda m: mrf.proximal_mean_field(m, form="aux", jacobian="ste"), "not defined for projection"),
        (lambda m: mrf.proximal_mean_field(m, beta=2.0), "beta must be a mrf.BetaSchedule"),
    ],
)
def test_bad_options_fail_with_a_clear_error(small, call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(small[2])


def test_progress_bar_runs(small, capsys):
    r = mrf.proximal_mean_field(small[0], max_iter=20, progress=True)
    assert r.n_iter <= 20


def scaled(m, factor):
    tables = None if m.kind != "table" else m.tables * factor
    unaries = np.where(np.isinf(m.unaries), 0.0, m.unaries) * factor
    if m.kind == "potts":
        return mrf.MRF(unaries, m.edges, potts=m.weights * factor, n_labels=m.n_labels, grid_shape=m.grid_shape)
    return mrf.MRF(unaries, m.edges, tables=tables, n_labels=m.n_labels, grid_shape=m.grid_shape)


def test_defaults_are_scale_invariant():
    rng = np.random.default_rng(4)
    smooth = np.cumsum(np.cumsum(rng.normal(size=(24, 24, 4)), axis=0), axis=1) / 10  # blobby unaries
    models = [mrf.grid(smooth, 0.8), tiny_models()[1]]
    for m in models:
        assert mrf.energy_scale(scaled(m, 1000.0)) == pytest.approx(1000.0 * mrf.energy_scale(m))
        for solver in (mrf.proximal_mean_field, mrf.mean_field):
            base = solver(m).labels
            for factor in (1000.0, 0.001):
                np.testing.assert_array_equal(solver(scaled(m, factor)).labels, base)


@pytest.fixture(scope="module")
def triplepoint4():
    if not TRIPLEPOINT4.is_file():
        pytest.fail(f"shared benchmark file missing: {TRIPLEPOINT4}")
    return mrf.read_opengm(TRIPLEPOINT4)


def test_triplepoint4_quality(triplepoint4):
    m = triplepoint4
    icm = mrf.icm(m)
    assert icm.n_iter == 1 and icm.energy == pytest.approx(534.8561, abs=1e-3)  # WTA is already ICM-stable
    mean_field = mrf.mean_field(m)
    pmf = mrf.proximal_mean_field(m)
    assert OPTIMUM - 1e-3 <= pmf.energy <= 1.025 * OPTIMUM
    assert pmf.energy <= mean_field.energy
    assert pmf.trace.seconds[-1] < 30
