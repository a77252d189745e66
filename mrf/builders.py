"""Builders: an MRF from a factor list (what the file readers produce) or a networkx graph (grids: `mrf.grids`).

Use ``MRF(unaries, edges, potts=... | matrix=..., weights=... | tables=...)`` directly when the model is
already in arrays; the builders here add what that constructor does not do: summing factors, padding
per-variable tables of differing sizes and graph node bookkeeping.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from mrf.grids import grid4_shape, pairwise_matrix
from mrf.model import MRF


def from_factors(n_labels, factors: Iterable[tuple], *, detect_grid: bool = True) -> MRF:
    """An MRF from unary / pairwise factors given as energy tables θ (not potentials).

    Parameters
    ----------
    n_labels : (N,) label counts n_i >= 1; L = max n_i, labels l >= n_i are padded (see `mrf.model`).
    factors : iterable of ``(scope, table)``. ``scope`` is a tuple of 0, 1 or 2 distinct variable
        indices, ``table`` an array of shape ``(n_labels[v] for v in scope)`` with ``table[a, b]`` the
        energy when ``scope[0]`` takes label a and ``scope[1]`` label b.

    Factors on the same variable or the same unordered pair are summed (one edge per pair, oriented as
    the pair's first factor). A constant (0-variable) factor, and the constant part c of a pairwise
    c + w·[a ≠ b], are added to the unaries of one variable, which keeps E(x) exact. If every pairwise
    table is c + w·[a ≠ b] on its valid labels, the result has kind "potts" with per-edge weights w (the
    fast Potts paths apply); else, if all variables have L labels and every pairwise table is w_e·V for one
    matrix V (to 1e-12 relative; e.g. weighted truncated distances), kind "matrix"; otherwise kind "table".
    Passing the same table object for many factors is cheap: each distinct object is validated and
    classified once. With ``detect_grid`` the MRF gets ``grid_shape = (H, W)`` when its edges are exactly
    the 4-neighbourhood of an H×W raster (H, W >= 2) in C order; its edges are then oriented and listed in
    `grid_edges` order (as `grid` builds them).
    Raises NotImplementedError for a factor on 3 or more variables.
    """
    counts = np.asarray(n_labels)
    if counts.ndim != 1 or counts.size < 1 or not np.issubdtype(counts.dtype, np.integer):
        raise ValueError(f"n_labels must be a non-empty 1-D integer array, got {counts.dtype} {counts.shape}")
    if counts.min() < 1:
        raise ValueError(f"n_labels must be >= 1, got {counts.min()} at variable {int(counts.argmin())}")
    counts = counts.astype(np.int64)
    n, L = counts.size, int(counts.max())
    unaries = np.zeros((n, L))
    edge_of: dict[tuple[int, int], tuple] = {}  # unordered pair -> (edge id, oriented scope)
    pair_edge, pair_form = [], []  # one entry per pairwise factor: its edge id and _classify() result
    seen: dict[int, tuple] = {}  # id(table) -> (table object kept alive, array, classification)
    for k, (scope, table) in enumerate(factors):
        scope = tuple(int(v) for v in scope)
        if len(scope) > 2:
            raise NotImplementedError(
                f"factor {k} on variables {list(scope)} has order {len(scope)}; only unary and pairwise "
                "factors are supported"
            )
        for v in scope:
            if not 0 <= v < n:
                raise ValueError(f"factor {k} scope {list(scope)}: variable {v} is outside 0..{n - 1}")
        if len(scope) == 2 and scope[0] == scope[1]:
            raise ValueError(f"factor {k} scope {list(scope)} repeats a variable")
        key = id(table)
        if key not in seen:
            t = np.asarray(table, dtype=np.float64)
            if not np.all(np.isfinite(t)):
                raise ValueError(f"factor {k} on variables {list(scope)} has a non-finite energy")
            seen[key] = (table, t, _classify_pairwise(t) if t.ndim == 2 else None)
        _, t, form = seen[key]
        shape = tuple(int(counts[v]) for v in scope)
        if t.shape != shape:
            raise ValueError(f"factor {k} on variables {list(scope)} has table shape {t.shape}, expected {shape}")
        if len(scope) == 0:
            unaries[0, : counts[0]] += float(t)
        elif len(scope) == 1:
            unaries[scope[0], : shape[0]] += t
        else:
            pair = (min(scope), max(scope))
            e, first_scope = edge_of.setdefault(pair, (len(edge_of), scope))  # first-seen orientation
            pair_edge.append(e)
            pair_form.append(form if scope == first_scope else _transposed(form))
    edges = np.array([s for _, s in edge_of.values()], dtype=np.int64).reshape(-1, 2)
    grid_shape = grid4_shape(n, edges) if detect_grid else None
    if grid_shape is not None:  # orient and list the edges as `grid` does, so both give the same layout
        flipped = edges[:, 0] > edges[:, 1]
        pair_form = [_transposed(f) if flipped[e] else f for e, f in zip(pair_edge, pair_form, strict=True)]
        edges = np.sort(edges, axis=1)
        H, W = grid_shape
        vertical = edges[:, 1] - edges[:, 0] == W
        rank = np.where(vertical, H * (W - 1) + edges[:, 0], edges[:, 0] - edges[:, 0] // W)
        edges = edges[np.argsort(rank)]
        pair_edge = rank[pair_edge].tolist()
    potts = all(f[0] == "potts" for f in pair_form)
    shared = None if potts or np.any(counts != L) else _shared_matrix(pair_form, L)
    if potts or shared is not None:
        scales = [f[2] for f in pair_form] if potts else shared[1]
        c = np.array([f[1] if f[0] == "potts" else 0.0 for f in pair_form])
        eid = np.array(pair_edge, dtype=np.int64)
        const = np.bincount(edges[eid, 0], weights=c, minlength=n) if eid.size else np.zeros(n)
        unaries += const[:, None]
        weights = np.bincount(eid, weights=scales, minlength=len(edges)) if eid.size else np.zeros(0)
        if potts:
            return MRF(unaries, edges, potts=weights, n_labels=counts, grid_shape=grid_shape)
        return MRF(unaries, edges, matrix=shared[0], weights=weights, n_labels=counts, grid_shape=grid_shape)
    tables = np.zeros((len(edges), L, L))
    for e, form in zip(pair_edge, pair_form, strict=True):
        i, j = edges[e]
        block = tables[e, : counts[i], : counts[j]]
        if form[0] == "potts":
            block += form[1] + form[2] * (1.0 - np.eye(*block.shape))
        else:
            block += form[1]
    return MRF(unaries, edges, tables=tables, n_labels=counts, grid_shape=grid_shape)


def _transposed(form: tuple) -> tuple:
    return form if form[0] == "potts" else ("table", form[1].T)


def _shared_matrix(forms: list[tuple], L: int) -> tuple[np.ndarray, list[float]] | None:
    """(V, scales) when every pairwise term is scale·V (Potts terms: w·(1 − I), after their constant) for one
    (L, L) matrix V up to 1e-12 relative, else None. V is normalised so its first largest |entry| is 1."""
    ref, scales = None, []
    for form in forms:
        t = 1.0 - np.eye(L) if form[0] == "potts" else form[1]
        s = form[2] if form[0] == "potts" else t.flat[np.argmax(np.abs(t))]
        if s != 0:
            V = t / s
            if ref is None:
                ref = V
            elif not np.allclose(V, ref, rtol=1e-12, atol=1e-12):
                return None
        scales.append(float(s))
    return None if ref is None else (ref, scales)


def _classify_pairwise(t: np.ndarray) -> tuple:
    """("potts", c, w) when t[a, b] = c + w·[a ≠ b] exactly on every entry, else ("table", t)."""
    c = t[0, 0]
    same = np.eye(*t.shape, dtype=bool)
    if (~same).any():
        d = t[~same][0]
        if np.all(t[same] == c) and np.all(t[~same] == d):
            return ("potts", float(c), float(d - c))
        return ("table", t)
    return ("potts", float(c), 0.0) if np.all(t[same] == c) else ("table", t)


# --- graphs ---------------------------------------------------------------------------------------------


def from_networkx(
    G, unaries, weights=1.0, pairwise="potts", *, truncation: float | None = None, n_labels=None
) -> tuple[MRF, list]:
    """An MRF on a networkx graph; returns ``(mrf, nodes)`` with ``nodes = list(G.nodes)``: variable k is
    node ``nodes[k]``, so ``dict(zip(nodes, labels))`` maps a labelling back to the graph.

    Parameters
    ----------
    G : a networkx (Multi)(Di)Graph without self-loops; every edge of G gives one MRF edge (for a DiGraph,
        u→v and v→u are two edges, whose terms add up).
    unaries : an (N, L) array in node order, or the name of a node attribute holding each node's θ vector
        (vectors of differing lengths n_i are padded, and n_labels is set to those lengths).
    weights : a scalar w, or the name of an edge attribute holding each edge's weight w_e.
    pairwise, truncation : as in `grid`: "potts", an (L, L) matrix or a label distance.
    n_labels : optional (N,) label counts for array unaries, see `MRF`.
    """
    nodes = list(G.nodes)
    position = {v: k for k, v in enumerate(nodes)}
    if isinstance(unaries, str):
        missing = [v for v in nodes if unaries not in G.nodes[v]]
        if missing:
            raise ValueError(f"unaries: node {missing[0]!r} has no attribute {unaries!r}")
        rows = [np.asarray(G.nodes[v][unaries], dtype=np.float64).reshape(-1) for v in nodes]
        if n_labels is not None:
            raise ValueError("n_labels is taken from the attribute vectors' lengths; do not pass it as well")
        n_labels = np.array([r.size for r in rows], dtype=np.int64)
        theta = np.zeros((len(nodes), max(n_labels, default=1)))
        for k, r in enumerate(rows):
            theta[k, : r.size] = r
    else:
        theta = unaries
    pairs = list(G.edges(data=True))
    loops = [(u, v) for u, v, _ in pairs if u == v]
    if loops:
        raise ValueError(f"G must not have self-loops; found one at node {loops[0][0]!r}")
    edges = np.array([(position[u], position[v]) for u, v, _ in pairs], dtype=np.int64).reshape(-1, 2)
    if isinstance(weights, str):
        missing = [(u, v) for u, v, d in pairs if weights not in d]
        if missing:
            raise ValueError(f"weights: edge {missing[0]!r} has no attribute {weights!r}")
        weights = np.array([d[weights] for _, _, d in pairs], dtype=np.float64)
    V = pairwise_matrix(pairwise, np.shape(theta)[-1], truncation)
    if V is None:
        return MRF(theta, edges, potts=weights, n_labels=n_labels), nodes
    return MRF(theta, edges, matrix=V, weights=weights, n_labels=n_labels), nodes
