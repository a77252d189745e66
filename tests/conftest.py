"""Suite-wide settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """One intra-op torch thread: on 2 shared cores torch's spinning worker threads cost far more than they give
    (measured: the CLI demo took 162 s with 2 threads and 11 s with 1 on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
