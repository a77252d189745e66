"""Data-parallel quantize_net on 2 CPU processes (gloo): identical ũ on the ranks after every step, the same
result as one process on the same global batches, rank 0 alone writes the checkpoints and the log; and
``python -m bridge demo`` under the environment torchrun gives its workers."""

import contextlib
import io
import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import TensorDataset

from bridge.cli import main
from bridge.demo_data import load_demo_mnist
from bridge.distributed import init_distributed
from bridge.quantize import quantize_net
from nnquant.checkpoint import load_checkpoint

WORLD = 2
ITERATIONS = 30
# 51 = shares of 25 and 26; 600 / 51 leaves a short last batch (39 = 19 + 20): uneven shares are weighted
SETTINGS = {"iterations": ITERATIONS, "batch_size": 51, "eval_every": 10, "lr": 1e-2, "progress": False}
METHODS = ("pmf", "pmf_wo_aux")  # the aux form (optimizer on ũ) and the PGD form (mrf.proximal_step on u)


def datasets():
    """float64 MNIST images (the demo subset) so that the comparison with one process is tight."""
    train, val = load_demo_mnist("train").tensors, load_demo_mnist("val").tensors
    return TensorDataset(train[0][:600].double(), train[1][:600]), TensorDataset(val[0][:200].double(), val[1][:200])


def float_model() -> nn.Module:
    """No BatchNorm: batch statistics would be per rank, and the comparison with one process not exact."""
    torch.manual_seed(5)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 24), nn.ReLU(), nn.Linear(24, 10)).double()


def run(method, out_dir, distributed):
    train, val = datasets()
    ckpt = out_dir / method
    _, result = quantize_net(
        float_model(),
        train,
        val,
        method=method,
        checkpoint_dir=ckpt,
        log_path=ckpt / "log.csv",
        distributed=distributed,
        **SETTINGS,
    )
    return result


def worker(rank: int, port: int, out_dir) -> None:
    # what `torchrun --nproc_per_node 2` sets for each worker
    env = {"RANK": rank, "LOCAL_RANK": rank, "WORLD_SIZE": WORLD, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    os.environ.update({k: str(v) for k, v in env.items()}, GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    parallel = init_distributed("cpu")
    try:
        parallel.check_sync = True  # raises on every rank if any step leaves different parameters
        found = {"world_size": parallel.world_size}
        for method in METHODS:
            result = run(method, out_dir, parallel)
            found[method] = {
                "latents": {k: v.clone() for k, v in result.model.state_dict().items()},
                "rounded": result.rounded.state_dict(),
                "history": result.history,
                "best_iteration": result.best_iteration,
            }
        # the check itself: a parameter changed on one rank only is caught, on both ranks
        with torch.no_grad():
            if rank == 1:
                next(result.model.parameters()).view(-1)[0] += 1e-12
        try:
            parallel.assert_identical(result.model, 99)
            found["caught"] = None
        except RuntimeError as err:
            found["caught"] = str(err)
        printed = io.StringIO()
        demo = ["demo", "--iterations", "20", "--eval-every", "10", "--no-progress", "--out", str(out_dir / "demo")]
        with contextlib.redirect_stdout(printed):
            found["demo"] = (main([*demo, "--device", "cpu"]), printed.getvalue())
        torch.save(found, out_dir / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("ddp")
    mp.spawn(worker, args=(free_port(), out_dir), nprocs=WORLD, join=True)
    return out_dir, [torch.load(out_dir / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.mark.parametrize("method", METHODS)
def test_two_ranks_match_each_other_and_one_process(two_ranks, tmp_path, method):
    out_dir, ranks = two_ranks
    r0, r1 = ranks[0][method], ranks[1][method]
    for key in r0["latents"]:  # bit-identical across ranks (check_sync also verified it after every step)
        assert torch.equal(r0["latents"][key], r1["latents"][key]), key
    assert r0["history"] == r1["history"] and r0["best_iteration"] == r1["best_iteration"]

    single = run(method, tmp_path, distributed=False)
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(r0["latents"][key], value, rtol=0, atol=1e-9)
    for key, value in single.rounded.state_dict().items():
        assert torch.equal(r0["rounded"][key], value), key
    assert r0["best_iteration"] == single.best_iteration
    for got, want in zip(r0["history"], single.history, strict=True):
        assert got["iteration"] == want["iteration"] and got["val_acc"] == want["val_acc"]
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-9)

    # one writer: one header and one row per evaluation, checkpoints that load and agree with the result
    lines = (out_dir / method / "log.csv").read_text().splitlines()
    assert len(lines) == 1 + ITERATIONS // SETTINGS["eval_every"]
    last = load_checkpoint(out_dir / method / "last.pt")
    assert last["iteration"] == ITERATIONS and last["history"] == r0["history"]
    assert not [p for p in (out_dir / method).iterdir() if p.name.endswith(".tmp")]


def test_a_rank_that_drifts_is_caught_on_every_rank(two_ranks):
    _, ranks = two_ranks
    for found in ranks:
        assert found["caught"] is not None and "after iteration 99" in found["caught"]


def test_demo_under_torchrun_environment(two_ranks):
    out_dir, ranks = two_ranks
    assert [found["world_size"] for found in ranks] == [WORLD, WORLD]
    (code0, printed0), (code1, printed1) = ranks[0]["demo"], ranks[1]["demo"]
    assert code0 == code1 == 0
    assert "test accuracy of the rounded network:" in printed0 and printed1 == ""  # rank 0 alone reports
    summary = json.loads((out_dir / "demo" / "summary.json").read_text())
    assert summary["world_size"] == WORLD and set(summary["distinct_levels"].values()) == {2}
    assert summary["test_acc"] > 0.3  # 20 iterations; chance is 0.1
    assert len((out_dir / "demo" / "log.csv").read_text().splitlines()) == 1 + 2
