"""Builders: an MRF from a factor list (what the file readers produce), a pixel grid, or a networkx graph.

Use ``MRF(unaries, edges, potts=... | matrix=..., weights=... | tables=...)`` directly when the model is
already in arrays; the builders here add what that constructor does not do: summing factors, padding
per-variable tables of differing sizes, pixel-grid edge lists and graph node bookkeeping.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from mrf.model import MRF


def from_factors(n_labels, factors: Iterable[tuple], *, detect_grid: bool = True) -> MRF:
    """An MRF from unary / pairwise factors given as energy tables θ (not potentials).

    Parameters
    ----------
    n_labels : (N,) label counts n_i >= 1; L = max n_i, labels l >= n_i are padded (see `mrf.model`).
    factors : iterable of ``(scope, table)``. ``scope`` is a tuple of 0, 1 or 2 distinct variable
        indices, ``table`` an array of shape ``(n_labels[v] for v in scope)`` with ``table[a, b]`` the
        energy when ``scope[0]`` takes label a and ``scope[1]`` label b.

    Factors on the same variable or the same unordered pair are summed (one edge per pair, oriented
    i < j). A constant (0-variable) factor, and the constant part c of a pairwise c + w·[a ≠ b], are added
    to the unaries of one variable, which shifts no energy difference and keeps E(x) exact. If every
    pairwise table is c + w·[a ≠ b] on its valid labels, the result has kind "potts" with per-edge weights
    w (the fast Potts paths apply); otherwise kind "table". Passing the same table object for many factors
    is cheap: each distinct object is validated and classified once. With ``detect_grid`` the MRF gets
    ``grid_shape = (H, W)`` when its edges are exactly the 4-neighbourhood of an H×W raster (H, W >= 2) in
    C order. Raises NotImplementedError for a factor on 3 or more variables.
    """
    counts = np.asarray(n_labels)
    if counts.ndim != 1 or counts.size < 1 or not np.issubdtype(counts.dtype, np.integer):
        raise ValueError(f"n_labels must be a non-empty 1-D integer array, got {counts.dtype} {counts.shape}")
    if counts.min() < 1:
        raise ValueError(f"n_labels must be >= 1, got {counts.min()} at variable {int(counts.argmin())}")
    counts = counts.astype(np.int64)
    n, L = counts.size, int(counts.max())
    unaries = np.zeros((n, L))
    edge_of: dict[tuple[int, int], int] = {}
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
            i, j = scope
            if i > j:
                i, j = j, i
                form = form if form[0] == "potts" else ("table", t.T)
            e = edge_of.setdefault((i, j), len(edge_of))
            pair_edge.append(e)
            pair_form.append(form)
    edges = np.array(list(edge_of), dtype=np.int64).reshape(-1, 2)
    grid_shape = grid4_shape(n, edges) if detect_grid else None
    if all(f[0] == "potts" for f in pair_form):
        c = np.array([f[1] for f in pair_form])
        w = np.array([f[2] for f in pair_form])
        eid = np.array(pair_edge, dtype=np.int64)
        const = np.bincount(edges[eid, 0], weights=c, minlength=n) if eid.size else np.zeros(n)
        unaries += const[:, None]
        weights = np.bincount(eid, weights=w, minlength=len(edges)) if eid.size else np.zeros(0)
        return MRF(unaries, edges, potts=weights, n_labels=counts, grid_shape=grid_shape)
    tables = np.zeros((len(edges), L, L))
    for e, form in zip(pair_edge, pair_form, strict=True):
        i, j = edges[e]
        block = tables[e, : counts[i], : counts[j]]
        if form[0] == "potts":
            block += form[1] + form[2] * (1.0 - np.eye(*block.shape))
        else:
            block += form[1]
    return MRF(unaries, edges, tables=tables, n_labels=counts, grid_shape=grid_shape)


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


def grid4_shape(n: int, edges: np.ndarray) -> tuple[int, int] | None:
    """(H, W) when ``edges`` (any order and orientation) are exactly the 4-neighbourhood of an H×W raster
    whose variable index is the C-order pixel index y·W + x (H, W >= 2); None otherwise."""
    if len(edges) == 0:
        return None
    lo, hi = np.minimum(edges[:, 0], edges[:, 1]), np.maximum(edges[:, 0], edges[:, 1])
    steps = np.unique(hi - lo)
    if steps.size != 2 or steps[0] != 1:
        return None
    W = int(steps[1])
    if W < 2 or n % W or n // W < 2:
        return None
    H = n // W
    if len(edges) != H * (W - 1) + (H - 1) * W:
        return None
    horizontal = lo[hi - lo == 1]
    if np.any(horizontal % W == W - 1):  # a step of 1 that wraps to the next row is no grid edge
        return None
    code = np.unique(lo * 2 + (hi - lo == W))  # distinct (pixel, direction) pairs: no duplicate edges
    return (H, W) if code.size == len(edges) else None
