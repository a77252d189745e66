"""The MRF class against brute force on small random models (≤ 6 variables, every labelling enumerated)."""

import itertools

import numpy as np
import pytest

from mrf import MRF, reference

KINDS = ("potts", "matrix", "table")


def random_model(rng, kind, n=5, L=3, padded=False, n_edges=7):
    """A random MRF plus the raw inputs, so energies can be recomputed without the class."""
    counts = rng.integers(1, L + 1, n) if padded else np.full(n, L)
    counts[0] = L  # keep L the real maximum
    theta = rng.normal(size=(n, L))
    pairs = np.array([p for p in itertools.combinations(range(n), 2)])
    edges = pairs[rng.choice(len(pairs), n_edges, replace=False)]
    edges[::2] = edges[::2, ::-1]  # both orientations occur
    raw = {"unaries": theta, "edges": edges, "n_labels": counts}
    if kind == "potts":
        w = rng.normal(size=n_edges)
        raw["pair"] = lambda e, a, b: w[e] * (a != b)
        return MRF(theta, edges, potts=w, n_labels=counts), raw
    if kind == "matrix":
        V, w = rng.normal(size=(L, L)), rng.uniform(0.1, 2, n_edges)
        raw["pair"] = lambda e, a, b: w[e] * V[a, b]
        return MRF(theta, edges, matrix=V, weights=w, n_labels=counts), raw
    T = rng.normal(size=(n_edges, L, L))
    raw["pair"] = lambda e, a, b: T[e, a, b]
    return MRF(theta, edges, tables=T, n_labels=counts), raw


def explicit_energy(raw, x):
    e = sum(raw["unaries"][i, x[i]] for i in range(len(x)))
    return e + sum(raw["pair"](k, x[i], x[j]) for k, (i, j) in enumerate(raw["edges"]))


def labellings(counts):
    return [np.array(x) for x in itertools.product(*[range(c) for c in counts])]


def random_marginals(rng, counts, L):
    q = rng.uniform(0.05, 1, (len(counts), L)) * (np.arange(L)[None] < counts[:, None])
    return q / q.sum(1, keepdims=True)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("padded", [False, True])
def test_energy_matches_explicit_sum(kind, padded):
    rng = np.random.default_rng(0)
    m, raw = random_model(rng, kind, padded=padded)
    for x in labellings(m.n_labels):
        assert m.energy(x) == pytest.approx(explicit_energy(raw, x), abs=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("padded", [False, True])
def test_expected_energy_and_free_energy_brute_force(kind, padded):
    rng = np.random.default_rng(1)
    m, raw = random_model(rng, kind, padded=padded)
    xs = labellings(m.n_labels)
    energies = np.array([m.energy(x) for x in xs])
    for x, e in zip(xs[::7], energies[::7], strict=True):  # one-hot q is the labelling itself
        assert m.expected_energy(np.eye(m.n_labels_max)[x]) == pytest.approx(e, abs=1e-12)
    q = random_marginals(rng, m.n_labels, m.n_labels_max)
    prob = np.array([np.prod(q[np.arange(m.n_variables), x]) for x in xs])  # product distribution
    assert prob.sum() == pytest.approx(1.0)
    assert m.expected_energy(q) == pytest.approx(prob @ energies, abs=1e-10)
    # F(q) = E_q − T·H(q) and T·KL(q ‖ P_T) = F(q) + T log Z_T with P_T ∝ exp(−E/T)
    for T in (1.0, 0.3):
        entropy = -(prob * np.log(prob)).sum()
        assert m.free_energy(q, T) == pytest.approx(prob @ energies - T * entropy, abs=1e-10)
        log_z = np.log(np.exp(-energies / T).sum())
        kl = (prob * (np.log(prob) - (-energies / T - log_z))).sum()
        assert T * kl == pytest.approx(m.free_energy(q, T) + T * log_z, abs=1e-10)
    assert m.free_energy(q, 0.0) == pytest.approx(m.expected_energy(q))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("padded", [False, True])
def test_linearize_is_the_gradient_of_expected_energy(kind, padded):
    rng = np.random.default_rng(2)
    m, _ = random_model(rng, kind, padded=padded)
    q = random_marginals(rng, m.n_labels, m.n_labels_max)
    g = m.linearize(q)
    np.testing.assert_allclose(g, reference.linearize(m, q), rtol=1e-12, atol=1e-12)  # inf == inf
    valid = np.arange(m.n_labels_max)[None] < m.n_labels[:, None]
    assert np.all(np.isinf(g[~valid])) and np.all(g[~valid] > 0)
    # E_q is linear in each q_i (no self-loops), so a central difference is exact up to rounding; ε stays
    # inside the validator's 1e-6 tolerance on row sums, so q ± ε·e_il is still accepted.
    eps = 1e-7
    for i, l in zip(*np.nonzero(valid), strict=True):
        dq = np.zeros_like(q)
        dq[i, l] = eps
        num = (m.expected_energy(q + dq) - m.expected_energy(q - dq)) / (2 * eps)
        assert num == pytest.approx(g[i, l], abs=1e-6)


def test_padding_semantics():
    theta = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    m = MRF(theta, [[0, 1]], potts=2.0, n_labels=np.array([3, 2]))
    assert m.kind == "table"  # a shared matrix cannot be zeroed per variable
    assert np.isinf(m.unaries[1, 2]) and m.unaries[0, 2] == 2.0
    np.testing.assert_array_equal(m.tables[0, :, 2], 0.0)  # entries touching variable 1's label 2
    np.testing.assert_array_equal(m.tables[0, :, :2], 2.0 * (1 - np.eye(3))[:, :2])
    assert m.energy([2, 1]) == 2.0 + 4.0 + 2.0
    with pytest.raises(ValueError, match=r"labels\[1\] = 2 is outside 0..1"):
        m.energy([0, 2])
    q = np.array([[0.2, 0.3, 0.5], [0.4, 0.6, 0.0]])
    with pytest.raises(ValueError, match="labels a variable does not have"):
        m.expected_energy(np.array([[1.0, 0, 0], [0.5, 0, 0.5]]))
    assert np.isfinite(m.expected_energy(q)) and np.isfinite(m.free_energy(q))
    # same model without padding: an L = 2 second variable in a separate 2-label copy agrees
    assert m.expected_energy(q) == pytest.approx(
        (q * np.where(np.isinf(m.unaries), 0, m.unaries)).sum() + 2.0 * (1 - q[0, :2] @ q[1, :2])
    )


def test_adjacency_csr():
    rng = np.random.default_rng(3)
    m, _ = random_model(rng, "potts", n=6, n_edges=9)
    indptr, nbr, eid, first = m.adjacency
    assert indptr[-1] == 2 * m.n_edges
    for i in range(m.n_variables):
        for k in range(indptr[i], indptr[i + 1]):
            a, b = m.edges[eid[k]]
            assert (a, b) == ((i, nbr[k]) if first[k] else (nbr[k], i))
    assert sorted(eid.tolist()) == sorted(list(range(m.n_edges)) * 2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"unaries": [[0.0, np.nan]]}, "unaries must be finite"),
        ({"unaries": [[0.0, np.inf]]}, "unaries must be finite"),
        ({"unaries": [0.0, 1.0]}, "unaries must have 2 dimensions"),
        ({"unaries": np.zeros((2, 0))}, "unaries must have shape"),
        ({"unaries": [["a", "b"]]}, "unaries must be a numeric array"),
        ({"edges": [[0, 2]]}, "edges must index variables 0..1"),
        ({"edges": [[-1, 0]]}, "edges must index variables"),
        ({"edges": [[1, 1]]}, "self-loops"),
        ({"edges": [0, 1]}, r"edges must have shape \(E, 2\)"),
        ({"edges": [[0.0, 1.0]]}, "edges must hold integers"),
        ({"potts": [1.0, 2.0]}, r"potts must be a scalar or have shape \(1,\)"),
        ({"potts": np.nan}, "potts must be finite"),
        ({"matrix": np.ones((3, 3))}, r"matrix must have shape \(2, 2\)"),
        ({"matrix": [[0, np.inf], [1, 0]]}, "matrix must be finite"),
        ({"matrix": np.ones((2, 2)), "weights": [np.nan]}, "weights must be finite"),
        ({"tables": np.ones((2, 2, 2))}, r"tables must have shape \(1, 2, 2\)"),
        ({"tables": np.full((1, 2, 2), np.nan)}, "tables must be finite"),
        ({"potts": 1.0, "tables": np.ones((1, 2, 2))}, "exactly one pairwise form"),
        ({"potts": 1.0, "weights": [1.0]}, "weights is only used with matrix"),
        ({"potts": None}, "no pairwise form was given"),
        ({"n_labels": np.array([0, 2])}, "n_labels must be >= 1"),
        ({"n_labels": np.array([3, 2])}, "n_labels must be <= L"),
        ({"n_labels": np.array([2.0, 2.0])}, "n_labels must be an integer array"),
        ({"n_labels": np.array([2])}, r"n_labels must be an integer array of shape \(2,\)"),
        ({"grid_shape": (3, 1)}, "grid_shape"),
        ({"grid_shape": (-1, -2)}, "grid_shape"),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    args = {"unaries": np.zeros((2, 2)), "edges": [[0, 1]]}
    if not {"potts", "matrix", "tables"} & set(kwargs):
        args["potts"] = 1.0
    args.update(kwargs)
    args = {k: v for k, v in args.items() if v is not None}
    with pytest.raises((ValueError, TypeError), match=match):
        MRF(args.pop("unaries"), args.pop("edges"), **args)


def test_bad_labels_and_marginals():
    m = MRF(np.zeros((2, 2)), [[0, 1]], potts=1.0)
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        m.energy([0])
    with pytest.raises(TypeError, match="labels must be integers"):
        m.energy([0.0, 1.0])
    with pytest.raises(ValueError, match=r"labels\[0\] = -1"):
        m.energy([-1, 0])
    with pytest.raises(ValueError, match="rows must sum to 1"):
        m.expected_energy([[0.5, 0.4], [0.5, 0.5]])
    with pytest.raises(ValueError, match="marginals must have shape"):
        m.linearize(np.ones((3, 2)) / 2)
    with pytest.raises(ValueError, match="finite and non-negative"):
        m.expected_energy([[1.5, -0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        m.free_energy(np.full((2, 2), 0.5), -1.0)


def test_inputs_are_copied():
    theta, w = np.zeros((3, 2)), np.ones(2)
    m = MRF(theta, [[0, 1], [1, 2]], potts=w)
    theta[0, 0], w[0] = 5.0, 9.0
    assert m.unaries[0, 0] == 0.0 and m.weights[0] == 1.0
