"""Builders: grid edge sets and energies against hand loops, contrast weights, networkx graphs, factor lists."""

import itertools

import networkx as nx
import numpy as np
import pytest

import mrf
from mrf.grids import grid4_shape


def hand_grid_energy(theta, x, weight, V, offsets):
    """Σ_p θ_p(x_p) + Σ_p Σ_δ weight(p, δ) V[x_p, x_{p+δ}] by explicit loops over pixels and offsets."""
    shape = x.shape
    e = sum(theta[p][x[p]] for p in np.ndindex(shape))
    for d, off in enumerate(offsets):
        for p in np.ndindex(shape):
            q = tuple(a + b for a, b in zip(p, off, strict=True))
            if all(0 <= c < n for c, n in zip(q, shape, strict=True)):
                e += weight(d, p) * V[x[p], x[q]]
    return e


@pytest.mark.parametrize("shape, connectivity", [((4, 5), 4), ((4, 5), 8), ((3, 4, 5), 6), ((3, 4, 5), 26)])
def test_grid_edge_sets(shape, connectivity):
    m = mrf.grid(np.zeros((*shape, 2)), 1.0, connectivity=connectivity)
    sizes = np.array(shape)
    if connectivity in (4, 6):  # Σ over axes of (n_k − 1)·Π_{other} n_j
        expected = sum(np.prod(sizes) // n * (n - 1) for n in sizes)
    else:  # ordered neighbour pairs Π(3n_k − 2) − N, halved
        expected = (np.prod(3 * sizes - 2) - np.prod(sizes)) // 2
    assert m.n_edges == expected and m.grid_shape == shape
    coords = np.stack(np.unravel_index(m.edges, shape), -1)  # (E, 2, ndim)
    step = np.abs(coords[:, 1] - coords[:, 0])
    if connectivity in (4, 6):
        assert np.all(step.sum(1) == 1)
    else:
        assert np.all(step.max(1) == 1)
    assert len({tuple(sorted(e)) for e in m.edges.tolist()}) == m.n_edges  # no duplicates
    _, direction = mrf.grid_edges(shape, connectivity)
    assert np.all(np.diff(direction) >= 0)  # direction by direction
    offsets = mrf.grid_offsets(connectivity, len(shape))
    np.testing.assert_array_equal(coords[:, 1] - coords[:, 0], offsets[direction])


@pytest.mark.parametrize(
    "pairwise, truncation, V",
    [
        ("potts", None, 1 - np.eye(4)),
        ("linear", None, np.abs(np.subtract.outer(np.arange(4), np.arange(4)))),
        ("truncated_linear", 2.0, np.minimum(np.abs(np.subtract.outer(np.arange(4), np.arange(4))), 2.0)),
        ("quadratic", None, np.subtract.outer(np.arange(4), np.arange(4)) ** 2),
        ("truncated_quadratic", 3.5, np.minimum(np.subtract.outer(np.arange(4), np.arange(4)) ** 2, 3.5)),
        (np.arange(16.0).reshape(4, 4), None, np.arange(16.0).reshape(4, 4)),
    ],
)
@pytest.mark.parametrize("connectivity", [4, 8])
def test_grid_energy_matches_hand_loop(pairwise, truncation, V, connectivity):
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(3, 4, 4))
    x = rng.integers(0, 4, (3, 4))
    offsets = mrf.grid_offsets(connectivity)
    m = mrf.grid(theta, 0.7, pairwise, truncation=truncation, connectivity=connectivity)
    assert m.energy(x.ravel()) == pytest.approx(hand_grid_energy(theta, x, lambda d, p: 0.7, V, offsets))
    per_pixel = rng.uniform(0.1, 2, (len(offsets), 3, 4))
    m = mrf.grid(theta, per_pixel, pairwise, truncation=truncation, connectivity=connectivity)
    assert m.energy(x.ravel()) == pytest.approx(hand_grid_energy(theta, x, lambda d, p: per_pixel[d][p], V, offsets))


def test_grid_3d_energy_and_weight_forms():
    rng = np.random.default_rng(1)
    theta = rng.normal(size=(2, 3, 3, 3))
    x = rng.integers(0, 3, (2, 3, 3))
    offsets = mrf.grid_offsets(26, 3)
    length = np.linalg.norm(offsets, axis=1)
    m = mrf.grid(theta, 2.0, connectivity=26, scale_by_distance=True)
    expected = hand_grid_energy(theta, x, lambda d, p: 2.0 / length[d], 1 - np.eye(3), offsets)
    assert m.energy(x.ravel()) == pytest.approx(expected)
    by_call = mrf.grid(theta, lambda i, j: 0.1 * i + 0.01 * j, connectivity=26)
    np.testing.assert_allclose(by_call.weights, 0.1 * by_call.edges[:, 0] + 0.01 * by_call.edges[:, 1])
    per_edge = mrf.grid(theta, by_call.weights, connectivity=26)
    assert per_edge.energy(x.ravel()) == pytest.approx(by_call.energy(x.ravel()))


def test_grid_bad_input():
    with pytest.raises(ValueError, match="unaries must have shape"):
        mrf.grid(np.zeros((4, 2)), 1.0)
    with pytest.raises(ValueError, match="connectivity must be one of"):
        mrf.grid(np.zeros((3, 3, 2)), 1.0, connectivity=6)
    with pytest.raises(ValueError, match="truncation is required"):
        mrf.grid(np.zeros((3, 3, 2)), 1.0, "truncated_linear")
    with pytest.raises(ValueError, match="truncation is only used"):
        mrf.grid(np.zeros((3, 3, 2)), 1.0, "linear", truncation=2.0)
    with pytest.raises(ValueError, match="truncation must be a finite positive"):
        mrf.grid(np.zeros((3, 3, 2)), 1.0, "truncated_quadratic", truncation=-1.0)
    with pytest.raises(ValueError, match="pairwise must be"):
        mrf.grid(np.zeros((3, 3, 2)), 1.0, "cubic")
    with pytest.raises(ValueError, match="weights must be a scalar"):
        mrf.grid(np.zeros((3, 3, 2)), np.ones(5))
    with pytest.raises(ValueError, match=r"weights\(i, j\) must return shape"):
        mrf.grid(np.zeros((3, 3, 2)), lambda i, j: 1.0)
    with pytest.raises(ValueError, match="potts must be finite"):
        mrf.grid(np.zeros((3, 3, 2)), np.nan)
    with pytest.raises(ValueError, match="unaries must be finite"):
        mrf.grid(np.full((3, 3, 2), np.nan), 1.0)


def test_grid_n_labels_padding():
    theta = np.zeros((2, 2, 3))
    m = mrf.grid(theta, 1.0, n_labels=np.array([[3, 2], [2, 3]]))
    assert m.n_labels.tolist() == [3, 2, 2, 3] and np.isinf(m.unaries[1, 2])


def test_grid4_detection():
    edges, _ = mrf.grid_edges((5, 7), 4)
    assert grid4_shape(35, edges) == (5, 7)
    shuffled = np.random.default_rng(2).permutation(edges)[:, ::-1]
    assert grid4_shape(35, shuffled) == (5, 7)
    assert grid4_shape(35, edges[1:]) is None
    assert grid4_shape(35, mrf.grid_edges((5, 7), 8)[0]) is None
    wrapped = edges.copy()
    wrapped[0] = [6, 7]  # a step of 1 across a row end
    assert grid4_shape(35, wrapped) is None
    assert grid4_shape(4, np.array([[0, 1], [1, 2], [2, 3]])) is None  # a chain is no 2-D grid


def test_contrast_weights():
    rng = np.random.default_rng(3)
    img = rng.uniform(size=(4, 5, 3))
    w = mrf.contrast_weights(img, beta=2.0, connectivity=8, channel_axis=-1)
    edges, _ = mrf.grid_edges((4, 5), 8)
    flat = img.reshape(-1, 3)
    for k in (0, 7, len(edges) - 1):
        i, j = edges[k]
        assert w[k] == pytest.approx(np.exp(-2.0 * np.sum((flat[i] - flat[j]) ** 2)))
    d2 = -np.log(mrf.contrast_weights(img, beta=1.0, channel_axis=-1))  # 4-connected default
    auto = mrf.contrast_weights(img, channel_axis=-1)
    np.testing.assert_allclose(auto, np.exp(-d2 / (2 * d2.mean())))
    np.testing.assert_array_equal(mrf.contrast_weights(np.ones((3, 3))), 1.0)
    gray = mrf.contrast_weights(img[..., 0], beta=1.0)
    assert gray.shape == (4 * 4 + 3 * 5,)
    vol = mrf.contrast_weights(rng.uniform(size=(2, 3, 4)), beta=1.0)
    assert vol.shape == (mrf.grid_edges((2, 3, 4), 6)[0].shape[0],)
    m = mrf.grid(rng.normal(size=(4, 5, 2)), 3.0 * auto)
    np.testing.assert_allclose(m.weights, 3.0 * auto)
    with pytest.raises(ValueError, match="beta must be"):
        mrf.contrast_weights(img[..., 0], beta=-1.0)
    with pytest.raises(ValueError, match="image must be finite"):
        mrf.contrast_weights(np.full((3, 3), np.nan))


def test_from_networkx():
    G = nx.Graph()
    G.add_nodes_from(["c", "a", "b", "d"])
    G.add_edge("a", "b", w=2.0)
    G.add_edge("c", "b", w=0.5)
    G.add_edge("d", "a", w=1.5)
    rng = np.random.default_rng(4)
    lengths = {"a": 3, "b": 2, "c": 3, "d": 1}
    for v, n in lengths.items():
        G.nodes[v]["theta"] = rng.normal(size=n)
    m, nodes = mrf.from_networkx(G, "theta", "w")
    assert nodes == ["c", "a", "b", "d"]
    assert m.n_labels.tolist() == [lengths[v] for v in nodes]
    for x in itertools.product(*[range(lengths[v]) for v in nodes]):
        lab = dict(zip(nodes, x, strict=True))
        e = sum(G.nodes[v]["theta"][lab[v]] for v in nodes)
        e += sum(d["w"] * (lab[u] != lab[v]) for u, v, d in G.edges(data=True))
        assert m.energy(np.array(x)) == pytest.approx(e)
    theta = rng.normal(size=(4, 3))
    m2, _ = mrf.from_networkx(G, theta, 1.0, "linear")
    x = np.array([0, 2, 1, 0])
    pos = {v: k for k, v in enumerate(nodes)}
    e = theta[np.arange(4), x].sum() + sum(abs(x[pos[u]] - x[pos[v]]) for u, v in G.edges)
    assert m2.energy(x) == pytest.approx(e)


def test_from_networkx_errors():
    G = nx.path_graph(3)
    with pytest.raises(ValueError, match="unaries: node 0 has no attribute 'theta'"):
        mrf.from_networkx(G, "theta")
    with pytest.raises(ValueError, match=r"weights: edge \(0, 1\) has no attribute 'w'"):
        mrf.from_networkx(G, np.zeros((3, 2)), "w")
    G.add_edge(1, 1)
    with pytest.raises(ValueError, match="self-loops; found one at node 1"):
        mrf.from_networkx(G, np.zeros((3, 2)))


def test_from_factors_sums_and_detects_potts():
    rng = np.random.default_rng(5)
    counts = np.array([2, 3, 3])
    u0 = rng.normal(size=2)
    potts_a = 0.3 + 1.2 * (1 - np.eye(2, 3))  # c + w[a ≠ b] on (0, 1)
    potts_b = (-0.1 + 0.5 * (1 - np.eye(3, 2))).copy()  # the same pair, reversed orientation
    factors = [((0,), u0), ((0,), u0), ((0, 1), potts_a), ((1, 0), potts_b), ((), np.float64(0.25))]
    m = mrf.from_factors(counts, factors)
    assert m.kind == "table"  # differing label counts materialise the tables
    assert m.n_edges == 1 and m.edges.tolist() == [[0, 1]]
    table = rng.normal(size=(3, 3))
    m2 = mrf.from_factors(counts, [*factors, ((2, 1), table)])
    for x in itertools.product(*[range(c) for c in counts]):
        a, b, c = x
        e = 2 * u0[a] + potts_a[a, b] + potts_b[b, a] + 0.25
        assert m.energy(np.array(x)) == pytest.approx(e)
        assert m2.energy(np.array(x)) == pytest.approx(e + table[c, b])
    same = np.full(3, 3)
    m3 = mrf.from_factors(same, [((0, 1), 0.3 + 1.2 * (1 - np.eye(3))), ((2, 1), 0.5 * (1 - np.eye(3)))])
    assert m3.kind == "potts" and m3.weights.tolist() == [1.2, 0.5]
    assert m3.energy(np.array([0, 0, 0])) == pytest.approx(0.3)


def test_from_factors_errors():
    with pytest.raises(NotImplementedError, match=r"factor 1 on variables \[0, 1, 2\] has order 3"):
        mrf.from_factors(np.array([2, 2, 2]), [((0,), np.zeros(2)), ((0, 1, 2), np.zeros((2, 2, 2)))])
    with pytest.raises(ValueError, match=r"table shape \(3,\), expected \(2,\)"):
        mrf.from_factors(np.array([2, 2]), [((0,), np.zeros(3))])
    with pytest.raises(ValueError, match="variable 5 is outside 0..1"):
        mrf.from_factors(np.array([2, 2]), [((5,), np.zeros(2))])
    with pytest.raises(ValueError, match="repeats a variable"):
        mrf.from_factors(np.array([2, 2]), [((1, 1), np.zeros((2, 2)))])
    with pytest.raises(ValueError, match="non-finite energy"):
        mrf.from_factors(np.array([2, 2]), [((0, 1), np.full((2, 2), np.inf))])
    with pytest.raises(ValueError, match="n_labels must be >= 1"):
        mrf.from_factors(np.array([2, 0]), [])


def test_from_factors_puts_a_shuffled_grid_into_grid_order():
    rng = np.random.default_rng(6)
    H, W, L = 3, 4, 2
    edges, _ = mrf.grid_edges((H, W), 4)
    tables = rng.normal(size=(len(edges), L, L))
    theta = rng.normal(size=(H * W, L))
    factors = [((i,), theta[i]) for i in range(H * W)]
    for k in rng.permutation(len(edges)):  # shuffled, every other factor with reversed scope
        i, j = edges[k]
        factors.append(((i, j), tables[k]) if k % 2 else ((j, i), tables[k].T))
    m = mrf.from_factors(np.full(H * W, L), factors)
    assert m.grid_shape == (H, W)
    np.testing.assert_array_equal(m.edges, edges)
    np.testing.assert_allclose(m.tables, tables)
    for x in rng.integers(0, L, (5, H * W)):
        e = theta[np.arange(H * W), x].sum() + tables[np.arange(len(edges)), x[edges[:, 0]], x[edges[:, 1]]].sum()
        assert m.energy(x) == pytest.approx(e)
