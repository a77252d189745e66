"""mrf: pairwise MRF labelling with ICM, mean-field and proximal mean-field (Numba kernels).

>>> import mrf
>>> m = mrf.grid(unaries, 0.5)            # (H, W, L) unaries, Potts weight 0.5, 4-connected
>>> labels = mrf.proximal_mean_field(m).labels.reshape(H, W)
"""

from mrf.builders import from_factors
from mrf.io_opengm import read_opengm, write_opengm
from mrf.model import MRF
from mrf.projections import (
    BetaSchedule,
    aux_step,
    hardmax,
    project,
    project_vjp,
    proximal_step,
    softmax,
    sparsemax,
)

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
    "from_factors",
    "read_opengm",
    "write_opengm",
]
