"""mrf: pairwise MRF labelling with ICM, mean-field and proximal mean-field (Numba kernels).

>>> import mrf
>>> m = mrf.grid(unaries, 0.5)            # (H, W, L) unaries, Potts weight 0.5, 4-connected
>>> labels = mrf.proximal_mean_field(m).labels.reshape(H, W)
"""

from mrf.builders import from_factors, from_networkx
from mrf.grids import contrast_weights, grid, grid_edges, grid_offsets
from mrf.io_opengm import read_opengm, write_opengm
from mrf.io_uai import read_uai, write_uai
from mrf.model import MRF
from mrf.projections import (
    aux_step,
    hardmax,
    project,
    project_vjp,
    proximal_step,
    softmax,
    sparsemax,
)
from mrf.result import SolverResult, Trace
from mrf.schedule import BetaSchedule
from mrf.solvers import energy_scale, icm, mean_field, proximal_mean_field, solve

__all__ = [
    "MRF",
    "BetaSchedule",
    "aux_step",
    "hardmax",
    "project",
    "project_vjp",
    "proximal_step",
    "softmax",
    "sparsemax",
    "contrast_weights",
    "from_factors",
    "from_networkx",
    "grid",
    "grid_edges",
    "grid_offsets",
    "read_opengm",
    "read_uai",
    "write_opengm",
    "write_uai",
    "SolverResult",
    "Trace",
    "energy_scale",
    "icm",
    "mean_field",
    "proximal_mean_field",
    "solve",
]
