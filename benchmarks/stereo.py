"""Middlebury MRF stereo energies (Szeliski et al., TPAMI 2008), re-implemented from ``mrfstereo.cpp``.

E(d) = Σ_p D_p(d_p) + Σ_(p,q) λ·c_pq·min(|d_p − d_q|, τ) on the 4-connected pixel grid, d_p ∈ {0..nD−1}.

* Data term D_p(d) (``birchfield_tomasi_costs``): the Birchfield–Tomasi sampling-insensitive absolute
  difference between left pixel (x, y) and right pixel (x − d, y), summed over R, G, B, in 8-bit integer
  units exactly as ``computeDSI`` does it (half-pixel intensities by integer division, image borders
  replicated). Where x − d < 0 the pixel has no match and costs min(3·255, truncation) ("badcost"). The
  benchmark's Tsukuba run has no data truncation (``-t`` not given: truncDiffs = 255, i.e. 3·255 = 765).
* Cue c_pq (``gradient_cues``): penalty p where the squared colour gradient Σ_RGB (I_p − I_q)² taken at the
  edge's first pixel is below 3·g², else 1 (``computeCues``: hCue for (x, y)–(x+1, y), vCue for
  (x, y)–(x, y+1)). Tsukuba: g = 8, p = 2 (``-g 8 -p 2``).
* Tsukuba: 384×288, nD = 16, λ = 20, τ = 2 (``-n 16 -b -l 20 -m 2 -g 8 -p 2``). All terms are integers.

Ground truth ``tsukuba-truedispL.png`` stores 16·disparity; 0 marks the unknown border (18 px), which is
excluded from the bad-pixel rate. The staged data has no occlusion mask, so occluded pixels (a few % of
Tsukuba) are included: rates are "bad-1.0 on all valid-GT pixels", not Middlebury's "nonocc" figure.
"""

from __future__ import annotations

import numpy as np

import mrf
from mrf.model import MRF

TSUKUBA = {"n_disp": 16, "lam": 20.0, "trunc": 2, "grad_thresh": 8, "grad_penalty": 2.0, "gt_scale": 16}
N_COLOURS = 3  # computeDSI / computeCues use min(3, bands) colour channels


def birchfield_tomasi_costs(left: np.ndarray, right: np.ndarray, n_disp: int, trunc: int = 255) -> np.ndarray:
    """D (H, W, n_disp) int64: Σ_RGB min(d1, d2) BT dissimilarity of left (x, y) and right (x − d, y).

    ``left``, ``right``: (H, W, 3) uint8 images. ``trunc`` is truncDiffs (per channel, before summing);
    the sum is capped at 3·trunc and unmatched pixels (x − d < 0) cost min(3·255, 3·trunc).
    """
    for name, im in (("left", left), ("right", right)):
        if im.ndim != 3 or im.shape[2] < N_COLOURS or im.dtype != np.uint8:
            raise ValueError(f"{name} must be an (H, W, 3) uint8 image, got {im.dtype} {im.shape}")
    if left.shape != right.shape:
        raise ValueError(f"left and right images differ in shape: {left.shape} vs {right.shape}")
    if not 1 <= n_disp <= left.shape[1]:
        raise ValueError(f"n_disp must be in 1..{left.shape[1]} (image width), got {n_disp}")
    lo1, hi1, c1 = _half_pixel_range(left[..., :N_COLOURS].astype(np.int64))
    lo2, hi2, c2 = _half_pixel_range(right[..., :N_COLOURS].astype(np.int64))
    H, W, _ = c1.shape
    max_sum = N_COLOURS * abs(trunc)
    bad = min(N_COLOURS * 255, max_sum)
    costs = np.full((H, W, n_disp), bad, np.int64)
    for d in range(n_disp):
        a, (alo, ahi) = c1[:, d:], (lo1[:, d:], hi1[:, d:])  # left pixels x = d..W−1
        b, (blo, bhi) = c2[:, : W - d], (lo2[:, : W - d], hi2[:, : W - d])  # their matches x − d
        d1 = np.maximum(0, np.maximum(a - bhi, blo - a))
        d2 = np.maximum(0, np.maximum(b - ahi, alo - b))
        costs[:, d:, d] = np.minimum(np.minimum(d1, d2).sum(axis=2), max_sum)
    return costs


def _half_pixel_range(im: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(min, max, centre) over the pixel and its integer half-way values to the left/right neighbours."""
    left = im.copy()
    left[:, 1:] = (im[:, 1:] + im[:, :-1]) // 2
    right = im.copy()
    right[:, :-1] = (im[:, :-1] + im[:, 1:]) // 2
    return np.minimum(im, np.minimum(left, right)), np.maximum(im, np.maximum(left, right)), im


def gradient_cues(image: np.ndarray, grad_thresh: int, penalty: float) -> tuple[np.ndarray, np.ndarray]:
    """(h_cue (H, W−1), v_cue (H−1, W)): ``penalty`` where Σ_RGB (I_p − I_q)² < 3·grad_thresh², else 1."""
    im = image[..., :N_COLOURS].astype(np.int64)
    limit = N_COLOURS * grad_thresh * grad_thresh
    sx = ((im[:, :-1] - im[:, 1:]) ** 2).sum(axis=2)
    sy = ((im[:-1] - im[1:]) ** 2).sum(axis=2)
    return np.where(sx < limit, penalty, 1.0), np.where(sy < limit, penalty, 1.0)


def stereo_mrf(
    left: np.ndarray, right: np.ndarray, *, n_disp: int, lam: float, trunc: int, grad_thresh: int, grad_penalty: float
) -> MRF:
    """The Middlebury stereo MRF: BT data term, V(a, b) = min(|a − b|, trunc), weights λ·cue, on the 4-grid
    of `mrf.grid` (variables = pixels in C order, i = y·W + x)."""
    data = birchfield_tomasi_costs(left, right, n_disp).astype(np.float64)
    H, W, _ = data.shape
    h_cue, v_cue = gradient_cues(left, grad_thresh, grad_penalty)
    cues = np.ones((2, H, W))  # weights[d, p] weighs the edge p → p + δ_d, δ = (0, 1), (1, 0)
    cues[0, :, :-1], cues[1, :-1, :] = h_cue, v_cue
    return mrf.grid(data, lam * cues, "truncated_linear", truncation=trunc)


def bad_pixel_rate(disparity: np.ndarray, truth: np.ndarray, threshold: float = 1.0) -> float:
    """Fraction of valid ground-truth pixels (finite ``truth``) with |d − d_gt| > threshold."""
    if disparity.shape != truth.shape:
        raise ValueError(f"disparity shape {disparity.shape} differs from ground truth {truth.shape}")
    valid = np.isfinite(truth)
    if not valid.any():
        raise ValueError("ground truth has no valid pixel")
    return float(np.mean(np.abs(disparity[valid] - truth[valid]) > threshold))
