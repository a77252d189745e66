"""The benchmark instances of ``python -m benchmarks.mrf_peers``, each a `Problem` (MRF + what it is judged by).

* ``triplepoint4``: OpenGM inpainting-n4 ``triplepoint4-plain-ring`` (120×120, 4 labels, Potts π/4), global
  optimum 484.5907 (toulbar2 proof, mrf-background.md §1.4).
* ``astronaut``: colour segmentation of scikit-image's astronaut (512×512 RGB, or every ``downsample``-th
  pixel) into K = 5 colours. Colours I_p ∈ [0, 1]³; centres c_l = k-means (``scipy.cluster.vq.kmeans2``,
  k-means++ init, seed 0) of the image's own pixels; θ_p(l) = ‖I_p − c_l‖²; constant Potts weight
  w = 0.05 on the 4-grid (≈ 4× the median WTA unary, so smoothing changes ~3 % of the pixels). A constant
  weight keeps the instance inside PyMaxflow's fastmin (one V for all pixels).
* ``tsukuba``: Middlebury stereo, 384×288, 16 disparities, exactly the benchmark energy (`benchmarks.stereo`);
  ground truth = tsukuba-truedispL.png / 16, 0 = unknown (nan here).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import mrf
from benchmarks import stereo
from mrf.model import MRF

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MRF_DATA = SHARED / "mrf_benchmarks"
TRIPLEPOINT4 = MRF_DATA / "opengm" / "inpainting-n4" / "triplepoint4-plain-ring.h5"
STEREO_DIR = MRF_DATA / "middlebury" / "stereo"
TRIPLEPOINT4_OPTIMUM = 484.5907
ASTRONAUT_WEIGHT = 0.05


@dataclass
class Problem:
    """An instance: ``mrf``; ``best_known`` = proven optimum (None when unknown: the benchmark then takes
    the lowest energy any method reached); ``truth`` (H, W) ground-truth labels, nan where unknown;
    ``image`` (H, W, 3) the picture the labels describe (for plots)."""

    name: str
    mrf: MRF
    description: str
    best_known: float | None = None
    truth: np.ndarray | None = None
    image: np.ndarray | None = None


def triplepoint4(path: str | Path = TRIPLEPOINT4) -> Problem:
    """OpenGM ``triplepoint4-plain-ring``: 14,400 variables, 4 labels, 28,560 Potts edges, optimum 484.5907."""
    m = mrf.read_opengm(path)
    return Problem("triplepoint4", m, "OpenGM inpainting-n4 triplepoint4-plain-ring", TRIPLEPOINT4_OPTIMUM)


def astronaut(n_labels: int = 5, weight: float = ASTRONAUT_WEIGHT, downsample: int = 1, seed: int = 0) -> Problem:
    """K-colour Potts segmentation of skimage's astronaut (see the module docstring for the exact energy).

    ``downsample`` = s keeps pixels [::s, ::s] (512/s × 512/s) before the k-means; ``seed`` seeds kmeans2.
    """
    from scipy.cluster.vq import kmeans2
    from skimage import data

    if not (isinstance(downsample, int) and downsample >= 1):
        raise ValueError(f"downsample must be a positive integer, got {downsample!r}")
    if not (isinstance(n_labels, int) and n_labels >= 2):
        raise ValueError(f"n_labels must be an integer >= 2, got {n_labels!r}")
    image = data.astronaut()[::downsample, ::downsample]
    colours = image.reshape(-1, 3).astype(np.float64) / 255.0
    centres, _ = kmeans2(colours, n_labels, minit="++", seed=seed)
    unaries = ((colours[:, None, :] - centres[None]) ** 2).sum(axis=2)
    H, W = image.shape[:2]
    m = mrf.grid(unaries.reshape(H, W, n_labels), weight)
    name = "astronaut" if downsample == 1 else f"astronaut/{downsample}"
    return Problem(name, m, f"astronaut {H}x{W}, K={n_labels} k-means colours, Potts w={weight}", image=image)


def tsukuba(stereo_dir: str | Path = STEREO_DIR) -> Problem:
    """Middlebury Tsukuba with the benchmark's energy (384×288, 16 labels, λ = 20, τ = 2, cue ×2 below 8)."""
    from PIL import Image

    stereo_dir = Path(stereo_dir)
    left, right, truth = (stereo_dir / f"tsukuba-{part}.png" for part in ("imL", "imR", "truedispL"))
    for p in (left, right, truth):
        if not p.is_file():
            raise FileNotFoundError(f"Tsukuba stereo file not found: {p}")
    im_left = np.asarray(Image.open(left).convert("RGB"))
    im_right = np.asarray(Image.open(right).convert("RGB"))
    params = dict(stereo.TSUKUBA)
    scale = params.pop("gt_scale")
    m = stereo.stereo_mrf(im_left, im_right, **params)
    gt = np.asarray(Image.open(truth).convert("L")).astype(np.float64)
    disparity = np.where(gt > 0, gt / scale, np.nan)
    return Problem("tsukuba", m, "Middlebury Tsukuba stereo (Szeliski et al. 2008 energy)", None, disparity, im_left)


def benchmark_problems(quick: bool) -> list[Problem]:
    """The instances of one benchmark run: quick = triplepoint4 + astronaut/4 (128×128); full = triplepoint4,
    astronaut (512×512) and Tsukuba."""
    if quick:
        return [triplepoint4(), astronaut(downsample=4)]
    return [triplepoint4(), astronaut(), tsukuba()]
