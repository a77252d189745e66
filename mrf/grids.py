"""Pixel grids: 2-D/3-D grid edge lists, the grid MRF builder, distance matrices and contrast weights."""

from __future__ import annotations

import numpy as np

from mrf.model import MRF

DISTANCES = ("linear", "truncated_linear", "quadratic", "truncated_quadratic")
_CONNECTIVITIES = {2: (4, 8), 3: (6, 26)}


def grid_offsets(connectivity: int, ndim: int = 2) -> np.ndarray:
    """(n_directions, ndim) pixel offsets δ of a grid's edge directions, in the order `grid` lists edges.

    One offset per undirected neighbour direction (the first non-zero component is positive), sorted by
    length, then lexicographically: 2-D 4-conn. (0, 1), (1, 0); 8-conn. adds (1, −1), (1, 1); 3-D 6-conn.
    (0, 0, 1), (0, 1, 0), (1, 0, 0); 26-conn. adds the 6 face diagonals and the 4 body diagonals.
    """
    if ndim not in _CONNECTIVITIES or connectivity not in _CONNECTIVITIES[ndim]:
        raise ValueError(
            f"connectivity must be one of {_CONNECTIVITIES.get(ndim, ())} for a {ndim}-D grid, got {connectivity!r}"
        )
    steps = np.array(np.meshgrid(*[[-1, 0, 1]] * ndim, indexing="ij")).reshape(ndim, -1).T
    first = steps[np.arange(len(steps)), np.argmax(steps != 0, axis=1)]
    steps = steps[first > 0]  # the half of the neighbourhood whose first non-zero step is +1
    length2 = (steps**2).sum(1)
    if connectivity in (4, 6):
        steps, length2 = steps[length2 == 1], length2[length2 == 1]
    order = np.lexsort([*steps.T[::-1], length2])
    return steps[order]


def grid_edges(shape: tuple[int, ...], connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges (E, 2) of a grid of ``shape`` (variable = C-order pixel index) and each edge's direction (E,).

    Edges come direction by direction (`grid_offsets` order); within a direction, by the C-order index of
    the first endpoint p; the second endpoint is p + δ.
    """
    shape = tuple(int(s) for s in shape)
    index = np.arange(int(np.prod(shape))).reshape(shape)
    parts, direction = [], []
    for d, off in enumerate(grid_offsets(connectivity, len(shape))):
        src, dst = _shifted_views(index, off)
        parts.append(np.stack([src.ravel(), dst.ravel()], 1))
        direction.append(np.full(src.size, d))
    return np.concatenate(parts).astype(np.int64), np.concatenate(direction).astype(np.int64)


def _shifted_views(a: np.ndarray, off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Views of the pixels p of ``a`` whose neighbour p + off is inside, and of those neighbours."""
    src = tuple(slice(0, n - o) if o >= 0 else slice(-o, n) for n, o in zip(a.shape, off, strict=True))
    dst = tuple(slice(o, n) if o >= 0 else slice(0, n + o) for n, o in zip(a.shape, off, strict=True))
    return a[src], a[dst]


def grid(
    unaries,
    weights=1.0,
    pairwise="potts",
    *,
    truncation: float | None = None,
    connectivity: int | None = None,
    scale_by_distance: bool = False,
    n_labels=None,
) -> MRF:
    """An MRF on a 2-D (H, W) or 3-D (D, H, W) pixel grid.

    Parameters
    ----------
    unaries : (H, W, L) or (D, H, W, L) energies θ_p(l). Variable index = C-order pixel index.
    weights : the per-edge weights w_e, one of
        * a scalar (the same w for every edge);
        * an (E,) array in the order of `grid_edges` (e.g. from `contrast_weights`);
        * an (n_directions, H, W) / (n_directions, D, H, W) array: ``weights[d, p]`` weighs the edge from
          pixel p to p + δ_d (`grid_offsets` order); entries whose neighbour is outside are ignored;
        * a callable ``weights(i, j) -> (E,)`` given the flat endpoint indices i, j (E,) of every edge.
    pairwise : "potts" (w·[a ≠ b]); an (L, L) matrix V (w·V[a, b]); or a label distance
        "linear" |a − b|, "truncated_linear" min(|a − b|, truncation), "quadratic" (a − b)²,
        "truncated_quadratic" min((a − b)², truncation), with labels as integers 0..L−1.
    connectivity : 4 (default) or 8 in 2-D, 6 (default) or 26 in 3-D. Diagonal edges get the weight
        given, like axis edges, unless ``scale_by_distance``: then every weight is divided by the edge's
        length ‖δ‖ (1, √2 or √3).
    n_labels : optional (H, W) / (D, H, W) or (N,) label counts, see `MRF`.

    Edges are listed direction by direction (see `grid_edges`); ``grid_shape`` is set to (H, W) / (D, H, W).
    """
    theta = np.asarray(unaries)
    if theta.ndim not in (3, 4):
        raise ValueError(f"unaries must have shape (H, W, L) or (D, H, W, L), got {theta.shape}")
    shape, L = theta.shape[:-1], theta.shape[-1]
    ndim = len(shape)
    connectivity = {2: 4, 3: 6}[ndim] if connectivity is None else connectivity
    edges, direction = grid_edges(shape, connectivity)
    w = _grid_weights(weights, shape, edges, direction, connectivity)
    if scale_by_distance:
        w = w / np.linalg.norm(grid_offsets(connectivity, ndim), axis=1)[direction]
    V = pairwise_matrix(pairwise, L, truncation)
    counts = None if n_labels is None else np.asarray(n_labels).reshape(-1)
    theta = theta.reshape(-1, L)
    if V is None:
        return MRF(theta, edges, potts=w, n_labels=counts, grid_shape=shape)
    return MRF(theta, edges, matrix=V, weights=w, n_labels=counts, grid_shape=shape)


def _grid_weights(weights, shape, edges, direction, connectivity) -> np.ndarray:
    if callable(weights):
        w = np.asarray(weights(edges[:, 0].copy(), edges[:, 1].copy()), dtype=np.float64)
        if w.shape != (len(edges),):
            raise ValueError(f"weights(i, j) must return shape ({len(edges)},) (one per edge), got {w.shape}")
        return w
    w = np.asarray(weights, dtype=np.float64)
    n_dir = len(grid_offsets(connectivity, len(shape)))
    if w.shape == (n_dir, *shape):
        return np.concatenate(
            [_shifted_views(w[d], off)[0].ravel() for d, off in enumerate(grid_offsets(connectivity, len(shape)))]
        )
    if w.ndim == 0 or w.shape == (len(edges),):
        return np.broadcast_to(w, (len(edges),)).copy()
    raise ValueError(
        f"weights must be a scalar, shape ({len(edges)},) (one per edge), shape {(n_dir, *shape)} (one per "
        f"direction and pixel) or a callable, got shape {w.shape}"
    )


def pairwise_matrix(pairwise, L: int, truncation: float | None = None) -> np.ndarray | None:
    """The (L, L) matrix V of a pairwise form: None for "potts", V itself for a matrix, else the distance."""
    truncated = isinstance(pairwise, str) and pairwise.startswith("truncated_")
    if truncated != (truncation is not None):
        raise ValueError(f"truncation is {'required' if truncated else 'only used'} with pairwise={pairwise!r}")
    if truncated and not (np.isfinite(truncation) and truncation > 0):
        raise ValueError(f"truncation must be a finite positive number, got {truncation!r}")
    if isinstance(pairwise, str):
        if pairwise == "potts":
            return None
        if pairwise not in DISTANCES:
            raise ValueError(f"pairwise must be 'potts', an (L, L) matrix or one of {DISTANCES}, got {pairwise!r}")
        a = np.arange(L, dtype=np.float64)
        d = np.abs(a[:, None] - a[None, :])
        d = d * d if pairwise.endswith("quadratic") else d
        return np.minimum(d, truncation) if truncated else d
    return np.asarray(pairwise, dtype=np.float64)  # shape and finiteness are checked by MRF


def contrast_weights(image, beta: float | None = None, connectivity: int | None = None, *, channel_axis=None):
    """Contrast-sensitive edge weights w_e = exp(−β‖I_i − I_j‖²) for `grid`, shape (E,) in its edge order.

    ``image`` is (H, W) or (D, H, W), or has one extra channel axis at ``channel_axis`` (e.g. −1 for RGB).
    β defaults to 1 / (2·mean_e ‖I_i − I_j‖²) (Rother et al., GrabCut), or 0 for a constant image. Multiply by
    a scalar λ for the usual λ·exp(−β‖ΔI‖²) term: ``mrf.grid(u, 2.0 * mrf.contrast_weights(img))``.
    """
    img = np.asarray(image, dtype=np.float64)
    if channel_axis is None:
        img = img[..., None]
    else:
        img = np.moveaxis(img, channel_axis, -1)
    shape = img.shape[:-1]
    if len(shape) not in (2, 3) or not np.all(np.isfinite(img)):
        raise ValueError(f"image must be finite with 2 or 3 spatial axes (+ channel_axis), got shape {np.shape(image)}")
    connectivity = {2: 4, 3: 6}[len(shape)] if connectivity is None else connectivity
    edges, _ = grid_edges(shape, connectivity)
    flat = img.reshape(-1, img.shape[-1])
    d2 = ((flat[edges[:, 0]] - flat[edges[:, 1]]) ** 2).sum(1)
    if beta is None:
        mean = d2.mean() if d2.size else 0.0
        beta = 1.0 / (2.0 * mean) if mean > 0 else 0.0
    elif not (np.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    return np.exp(-beta * d2)


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
