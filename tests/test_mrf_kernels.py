"""The Numba kernels against the NumPy references (mrf.reference, mrf.projections) on small random models:
potts / matrix / table pairwise terms, padded label counts, CSR graphs and 2-D grid stencils."""

import itertools

import numpy as np
import pytest

import mrf
from mrf import _vecmath, kernels, reference
from mrf.projections import proximal_step, softmax
from mrf.solvers._common import colour_classes

TOL = dict(rtol=1e-12, atol=1e-12)


def random_graph_model(rng, kind, padded, n=13, L=4, n_edges=30):
    edges = rng.integers(0, n, (n_edges, 2))
    edges = edges[edges[:, 0] != edges[:, 1]]
    theta = rng.normal(size=(n, L))
    counts = rng.integers(1, L + 1, n) if padded else None
    if padded:
        counts[0] = L
    if kind == "potts":
        return mrf.MRF(theta, edges, potts=rng.uniform(-1, 2, len(edges)), n_labels=counts)
    if kind == "matrix":
        V = rng.normal(size=(L, L))
        return mrf.MRF(theta, edges, matrix=V, weights=rng.uniform(0.1, 2, len(edges)), n_labels=counts)
    return mrf.MRF(theta, edges, tables=rng.normal(size=(len(edges), L, L)), n_labels=counts)


def random_grid_model(rng, kind, shape=(5, 7), L=3):
    unaries = rng.normal(size=(*shape, L))
    weights = rng.uniform(0, 1, len(mrf.grid_edges(shape, 4)[0]))
    weights[::5] = 0.0  # absent edges in the stencil
    pairwise = "potts" if kind == "potts" else "truncated_linear"
    return mrf.grid(unaries, weights, pairwise, truncation=None if kind == "potts" else 1.5)


@pytest.fixture(scope="module")
def models():
    rng = np.random.default_rng(0)
    out = [random_graph_model(rng, k, p) for k, p in itertools.product(("potts", "matrix", "table"), (False, True))]
    out += [random_grid_model(rng, k) for k in ("potts", "matrix")]
    return out


def random_marginals(rng, m):
    q = rng.exponential(size=m.unaries.shape) * (np.arange(m.n_labels_max) < m.n_labels[:, None])
    return q / q.sum(axis=1, keepdims=True)


def test_layouts_cover_the_test_models(models):
    kinds = [m.kind for m in models]
    assert {"potts", "matrix", "table"} <= set(kinds)
    assert any(np.any(m.n_labels < m.n_labels_max) for m in models)
    stencils = [kernels.pairwise(m).width > 0 for m in models]
    assert stencils == [False] * 6 + [True, True]


def test_stencil_only_for_axis_edges_of_2d_grids():
    rng = np.random.default_rng(1)
    u = rng.normal(size=(4, 5, 3))
    assert kernels.pairwise(mrf.grid(u, 0.5)).width == 5
    assert kernels.pairwise(mrf.grid(u, 0.5, connectivity=8)).width == 0
    assert kernels.pairwise(mrf.grid(rng.normal(size=(2, 3, 4, 2)), 0.5)).width == 0
    asymmetric = np.arange(9.0).reshape(3, 3)
    assert kernels.pairwise(mrf.grid(u, 0.5, asymmetric)).width == 0


def test_linearize_matches_reference(models):
    rng = np.random.default_rng(2)
    for m in models:
        q = random_marginals(rng, m)
        g, ref = kernels.linearize(m, q), reference.linearize(m, q)
        np.testing.assert_array_equal(np.isinf(g), np.isinf(ref))  # padded labels stay +inf
        np.testing.assert_allclose(g, ref, **TOL)
        rows = rng.permutation(m.n_variables)[:5]
        part = np.empty((5, m.n_labels_max))
        kernels.linearize_rows(kernels.pairwise(m), m.unaries, q, rows, part)
        np.testing.assert_allclose(part, ref[rows], **TOL)


def test_stencil_equals_csr_layout(models):
    rng = np.random.default_rng(3)
    for m in models[-2:]:
        q = random_marginals(rng, m)
        x = rng.integers(0, m.n_labels_max, m.n_variables)
        stencil, csr = kernels.pairwise(m), kernels._csr_pairwise(m)
        g1, g2 = np.empty_like(q), np.empty_like(q)
        rows = np.arange(m.n_variables)
        kernels.linearize_rows(stencil, m.unaries, q, rows, g1)
        kernels.linearize_rows(csr, m.unaries, q, rows, g2)
        np.testing.assert_allclose(g1, g2, **TOL)
        assert kernels.energy(stencil, m.unaries, x) == pytest.approx(kernels.energy(csr, m.unaries, x), abs=1e-12)
        x1, x2 = x.copy(), x.copy()
        kernels.icm_sequential_sweep(stencil, m.unaries, x1, rows)
        kernels.icm_sequential_sweep(csr, m.unaries, x2, rows)
        np.testing.assert_array_equal(x1, x2)


def test_softmax_rows_equals_projections_softmax():
    rng = np.random.default_rng(4)
    for L, n in ((1, 3), (2, 7), (5, 40)):
        rows = rng.normal(scale=300, size=(n, L))  # large logits: the max shift matters
        rows[rng.random((n, L)) < 0.3] = -np.inf
        rows[:, 0] = rng.normal(size=n)  # every row keeps one finite entry
        z = np.ascontiguousarray(rows.T)  # label-major block: row r is z[:, r]
        scratch = [np.empty(n) for _ in range(3)]
        kernels.softmax_rows(z, n, *scratch)
        expected = softmax(rows)
        np.testing.assert_allclose(z.T, expected, **TOL)
        assert np.all(z.T[np.isinf(rows)] == 0)  # absent labels get exactly 0 (below e^-708 too: < 1e-307)


def test_vectorized_exp_and_xlogx():
    rng = np.random.default_rng(5)
    x = np.concatenate([-rng.exponential(30, 2000), [0.0, -1e-300, -707.9, -708.5, -800.0, -np.inf]])
    y = x.copy()
    _vecmath.exp_block(y, len(y), np.empty(len(y), np.int64))
    expected = np.exp(x)
    np.testing.assert_allclose(y, expected, rtol=2e-15, atol=1e-300)
    assert y[-1] == 0.0 and y[-2] == 0.0
    p = np.concatenate([rng.random(3000) ** 4, [0.0, 1.0, 1e-310, 0.5]])
    total = _vecmath.xlogx_sum_block(p, len(p), np.empty(len(p)), np.empty(len(p)))
    keep = p >= 1e-300
    assert total == pytest.approx((p[keep] * np.log(p[keep])).sum(), rel=1e-13)


@pytest.mark.parametrize("coefficients", [(0.0, 1 / 0.7, 0.5), (3.0, 3.0 * 0.4, 1.0)], ids=["mean-field", "proximal"])
def test_parallel_step_is_the_reference_update_and_evaluates_the_state(models, coefficients):
    a, b, damping = coefficients
    rng = np.random.default_rng(6)
    for m in models:
        q = random_marginals(rng, m)
        x = rng.integers(0, m.n_labels)
        q_new, x_new = np.empty_like(q), np.empty_like(x)
        stats = kernels.prox_parallel_step(kernels.pairwise(m), m.unaries, q, x, q_new, x_new, a, b, damping, True)
        expected = reference.softmax_update(m, q, a, b, damping)
        np.testing.assert_allclose(q_new, expected, **TOL)
        if a > 0:  # the PGD form of proximal mean-field: P_β(u − η g) with β = a, η = b / a
            g = reference.linearize(m, q)
            np.testing.assert_allclose(q_new, proximal_step(q, g, a, b / a), **TOL)
        np.testing.assert_array_equal(x_new, np.argmax(q_new, axis=1))
        np.testing.assert_allclose(stats[:3], reference.statistics(m, q, x), rtol=1e-12, atol=1e-10)
        assert stats[3] == pytest.approx(np.abs(q_new - q).max(), abs=1e-15)


def test_sequential_and_colour_sweeps_match_the_reference(models):
    rng = np.random.default_rng(7)
    a, b, damping = 2.0, 1.5, 0.8
    for m in models:
        s, q = kernels.pairwise(m), random_marginals(rng, m)
        order = rng.permutation(m.n_variables)
        seq, x = q.copy(), np.zeros(m.n_variables, np.int64)
        kernels.prox_sequential_sweep(s, m.unaries, seq, x, order, a, b, damping)
        np.testing.assert_allclose(seq, reference.sequential_update(m, q, order, a, b, damping), **TOL)
        np.testing.assert_array_equal(x, np.argmax(seq, axis=1))
        colour_order, offsets = colour_classes(m)
        col = q.copy()
        change = kernels.prox_colour_sweep(s, m.unaries, col, x, colour_order, offsets, a, b, damping)
        np.testing.assert_allclose(col, reference.sequential_update(m, q, colour_order, a, b, damping), **TOL)
        assert change == pytest.approx(np.abs(col - q).max(), abs=1e-15)


def test_evaluate_and_energy(models):
    rng = np.random.default_rng(8)
    for m in models:
        s, q = kernels.pairwise(m), random_marginals(rng, m)
        x = np.argmax(q, axis=1)
        q_before, x_before = q.copy(), x.copy()
        stats = kernels.evaluate(s, m.unaries, q, x)
        np.testing.assert_array_equal(q, q_before)
        np.testing.assert_array_equal(x, x_before)
        np.testing.assert_allclose(stats, reference.statistics(m, q, x), rtol=1e-12, atol=1e-10)
        assert kernels.energy(s, m.unaries, x) == pytest.approx(m.energy(x), rel=1e-13, abs=1e-12)


def test_icm_sweeps_match_the_reference(models):
    rng = np.random.default_rng(9)
    for m in models:
        s = kernels.pairwise(m)
        x0 = rng.integers(0, m.n_labels)
        order = rng.permutation(m.n_variables)
        x = x0.copy()
        moves = kernels.icm_sequential_sweep(s, m.unaries, x, order)
        np.testing.assert_array_equal(x, reference.icm_sweep(m, x0, order))
        assert moves == np.count_nonzero(x != x0)
        colour_order, offsets = colour_classes(m)
        x = x0.copy()
        kernels.icm_colour_sweep(s, m.unaries, x, colour_order, offsets)
        np.testing.assert_array_equal(x, reference.icm_sweep(m, x0, colour_order))


def test_greedy_colouring_is_proper(models):
    for m in models:
        indptr, neighbour, _, _ = m.adjacency
        colour = kernels.greedy_colouring(indptr, neighbour)
        assert np.all(colour[m.edges[:, 0]] != colour[m.edges[:, 1]])
        assert colour.max() <= np.diff(indptr).max()
    checkerboard = kernels.greedy_colouring(*mrf.grid(np.zeros((4, 6, 2)), 1.0).adjacency[:2])
    np.testing.assert_array_equal(checkerboard.reshape(4, 6), np.indices((4, 6)).sum(axis=0) % 2)
