"""bridge: a network's loss, linearized, is an MRF's unaries; the `mrf` proximal mean-field step quantizes it.

>>> import bridge
>>> qmodel, history = bridge.quantize_net(model, train_set, val_set, levels=2, iterations=2000)

or, in your own loop, ``bridge.ProximalMeanFieldOptimizer(torch.optim.Adam([{"params": ..., "levels": 2}]))``.
From the shell: ``python -m bridge demo`` and ``python -m bridge quantize --model lenet5 --dataset mnist ...``
(also under ``torchrun`` for data-parallel training, `bridge.distributed`).
"""

from bridge.demo_data import load_demo_mnist
from bridge.distributed import DataParallel, init_distributed
from bridge.methods import METHODS, ProximalPGDForm, make_method
from bridge.optimizer import ProximalMeanFieldOptimizer
from bridge.quantize import paper_defaults, quantize_net
from bridge.unaries import as_rows, unaries_from_grad

__all__ = [
    "METHODS",
    "DataParallel",
    "ProximalMeanFieldOptimizer",
    "ProximalPGDForm",
    "as_rows",
    "init_distributed",
    "load_demo_mnist",
    "make_method",
    "paper_defaults",
    "quantize_net",
    "unaries_from_grad",
]
