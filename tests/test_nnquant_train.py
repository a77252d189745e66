"""The protocol loop: learning, model selection, logs, schedules, bit-identical resume, NaN stop, CUDA."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import mrf
from nnquant.checkpoint import load_checkpoint
from nnquant.evaluate import evaluate
from nnquant.lr_schedule import LRSchedule
from nnquant.methods import BinaryConnect, Float, USpaceMethod
from nnquant.rounding import count_levels
from nnquant.train import train

CENTERS = torch.randn(3, 8, generator=torch.Generator().manual_seed(123)) * 1.5


def blobs(n: int, seed: int) -> TensorDataset:
    """Three Gaussian classes in 8-D: learnable, not trivially."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    return TensorDataset(CENTERS[y] + torch.randn(n, 8, generator=g), y)


def mlp(dropout: float = 0.0) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(8, 32), nn.BatchNorm1d(32, affine=False), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, 3)
    )


TRAIN, VAL, TEST = blobs(600, 1), blobs(200, 2), blobs(200, 3)
PMF = USpaceMethod(levels=2, projection="softmax", jacobian="pmf_repo", beta=mrf.BetaSchedule(rho=1.3, interval=10))


@pytest.mark.parametrize(
    ("method", "lr"),
    [(Float(), 1e-2), (BinaryConnect(), 1e-2), (PMF, 1e-2), (USpaceMethod(levels=3, beta=None), 1e-2)],
    ids=["float", "bc", "pmf", "ternary-softmax"],
)
def test_loss_decreases_and_rounded_net_learns(method, lr):
    r = train(
        mlp(), TRAIN, VAL, TEST, method=method, iterations=120, batch_size=50, lr=lr, eval_every=30, progress=False
    )
    losses = [row["train_loss"] for row in r.history]
    assert [row["iteration"] for row in r.history] == [30, 60, 90, 120]
    assert losses[-1] < 0.8 * losses[0]
    assert r.best_val_acc > 0.6 and r.test_acc > 0.6  # chance is 1/3
    assert r.best_val_acc == max(row["val_acc"] for row in r.history)
    assert r.test_acc == pytest.approx(evaluate(r.rounded, TEST, loss_fn=F.cross_entropy)[1])
    if not isinstance(method, Float):
        max_levels = 3 if isinstance(method, USpaceMethod) and method.levels == 3 else 2
        assert all(n <= max_levels for n in count_levels(r.rounded).values())


def test_best_checkpoint_is_the_best_validation_iterate(tmp_path):
    r = train(
        mlp(),
        TRAIN,
        VAL,
        TEST,
        method=PMF,
        iterations=100,
        batch_size=30,
        eval_every=10,
        lr=3e-2,
        checkpoint_dir=tmp_path,
        progress=False,
    )
    best = load_checkpoint(tmp_path / "best.pt")
    accs = [row["val_acc"] for row in r.history]
    first_best = accs.index(max(accs))
    assert best["iteration"] == r.best_iteration == r.history[first_best]["iteration"]
    assert best["val_acc"] == max(accs)
    assert evaluate(r.rounded, VAL, loss_fn=F.cross_entropy)[1] == pytest.approx(max(accs))
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["iteration"] == 100 and last["history"] == r.history


def _run(tmp, iterations, *, data=TRAIN, model=None, resume=False, log="log.jsonl"):
    return train(
        model or mlp(),
        data,
        VAL,
        None,
        method=PMF,
        iterations=iterations,
        batch_size=50,
        lr=1e-2,
        lr_schedule=("step", 25, 0.5),
        eval_every=10,
        checkpoint_dir=tmp,
        log_path=tmp / log,
        resume=resume,
        progress=False,
        seed=7,
    )


class NoisyDataset(Dataset):
    """Augments each item with noise from its own ``generator`` (like nnquant.data.CIFARDataset)."""

    def __init__(self):
        self.generator = torch.Generator().manual_seed(5)

    def __len__(self):
        return len(TRAIN)

    def __getitem__(self, i):
        x, y = TRAIN[i]
        return x + 0.1 * torch.randn(x.shape, generator=self.generator), y


@pytest.mark.parametrize("kind", ["dataset", "dataloader", "augmenting", "augmenting-loader"])
def test_resume_is_bit_identical(tmp_path, kind):
    """2N iterations straight == N iterations, then resume to 2N (same ũ, optimizer state, BN stats, log)."""

    def data():  # a fresh dataset per run, as after a restart (an augmenting one starts its generator anew)
        base = NoisyDataset() if kind.startswith("augmenting") else TRAIN
        return DataLoader(base, batch_size=50, shuffle=True) if kind.endswith("loader") else base

    straight, split = tmp_path / "straight", tmp_path / "split"
    a = _run(straight, 60, data=data(), model=mlp(dropout=0.2))  # dropout: the global RNG must resume too
    _run(split, 30, data=data(), model=mlp(dropout=0.2))
    b = _run(split, 60, data=data(), model=mlp(dropout=0.2), resume=True)
    ca, cb = load_checkpoint(straight / "last.pt"), load_checkpoint(split / "last.pt")
    assert ca["model"].keys() == cb["model"].keys()
    for key in ca["model"]:
        assert torch.equal(ca["model"][key], cb["model"][key]), key
    for pid, state in ca["optimizer"]["state"].items():
        assert all(torch.equal(v, cb["optimizer"]["state"][pid][k]) for k, v in state.items())
    assert a.history == b.history and len(a.history) == 6
    assert (straight / "log.jsonl").read_bytes() == (split / "log.jsonl").read_bytes()
    assert (straight / "best.pt").read_bytes() == (split / "best.pt").read_bytes()


def test_resume_refuses_changed_settings_and_fresh_run_refuses_existing_files(tmp_path):
    _run(tmp_path, 10)
    before = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(FileExistsError, match="resume=True"):
        _run(tmp_path, 20, log="other.jsonl")
    with pytest.raises(FileExistsError, match="log file"):
        train(mlp(), TRAIN, method=Float(), iterations=5, log_path=tmp_path / "log.jsonl", progress=False)
    with pytest.raises(ValueError, match="settings differ"):
        train(
            mlp(),
            TRAIN,
            VAL,
            method=PMF,
            iterations=20,
            batch_size=32,
            checkpoint_dir=tmp_path,
            resume=True,
            progress=False,
        )
    assert (tmp_path / "last.pt").read_bytes() == before


def test_nan_loss_stops_with_iteration_and_keeps_last_good_checkpoint(tmp_path):
    calls, snapshot = [], {}

    def loss_fn(out, y):
        calls.append(1)
        if len(calls) == 13:  # training call 13 = iteration 12 (no validation data: no evaluation calls)
            snapshot["last"] = (tmp_path / "last.pt").read_bytes()
            return F.cross_entropy(out, y) * float("nan")
        return F.cross_entropy(out, y)

    with pytest.raises(FloatingPointError, match="iteration 12"):
        train(
            mlp(),
            TRAIN,
            method=PMF,
            iterations=30,
            eval_every=5,
            checkpoint_dir=tmp_path,
            loss_fn=loss_fn,
            progress=False,
        )
    assert (tmp_path / "last.pt").read_bytes() == snapshot["last"]
    assert load_checkpoint(tmp_path / "last.pt")["iteration"] == 10
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_log_rows_lr_and_beta_schedules(tmp_path):
    beta = mrf.BetaSchedule(beta0=1.0, rho=2.0, interval=10)
    method = USpaceMethod(beta=beta)
    for quirks in (False, True):
        log = tmp_path / f"log{quirks}.csv"
        r = train(
            mlp(),
            TRAIN,
            VAL,
            method=method,
            iterations=20,
            eval_every=10,
            lr=0.1,
            optimizer="sgd",
            momentum=0.9,
            lr_schedule=("step", 10, 0.5),
            reference_quirks=quirks,
            log_path=log,
            progress=False,
        )
        # logged values are those used at the last iteration of each interval (k = 9, 19)
        shift = 1 if quirks else 0
        assert [row["lr"] for row in r.history] == [0.1 * 0.5 ** (0 + shift), 0.1 * 0.5 ** (1 + shift)]
        assert [row["beta"] for row in r.history] == [2.0 ** (0 + shift), 2.0 ** (1 + shift)]
        lines = log.read_text().splitlines()
        assert lines[0] == "iteration,epoch,train_loss,val_loss,val_acc,beta,lr" and len(lines) == 3
        assert float(lines[2].split(",")[4]) == r.history[1]["val_acc"]
    r = train(mlp(), TRAIN, method=Float(), iterations=7, eval_every=5, log_path=tmp_path / "f.jsonl", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert [row["iteration"] for row in rows] == [5, 7] and rows[0]["val_acc"] is None and rows[0]["beta"] is None


def test_lr_schedule_functions():
    step = LRSchedule.parse(("step", 100, 0.2))
    assert [step.factor(k) for k in (0, 99, 100, 250)] == [1.0, 1.0, pytest.approx(0.2), pytest.approx(0.04)]
    quirk = LRSchedule.parse(("step", 100, 0.2), reference_quirks=True)
    assert [quirk.factor(k) for k in (0, 1, 100, 101)] == [
        1.0,
        pytest.approx(0.2),
        pytest.approx(0.2),
        pytest.approx(0.04),
    ]
    multi = LRSchedule.parse(("multistep", [20, 30], 0.5))
    assert [multi.factor(k) for k in (19, 20, 29, 30, 99)] == [1.0, 0.5, 0.5, 0.25, 0.25]
    assert LRSchedule.parse(None).factor(10**6) == 1.0
    for bad in [("step", 0, 0.5), ("exp", 10, 0.5), ("multistep", [30, 20], 0.5), ("step", 10, -1.0), "step"]:
        with pytest.raises(ValueError, match="lr_schedule"):
            LRSchedule.parse(bad)


class ItemDataset(Dataset):
    """A map-style dataset of (tensor, int) items: batches are built by default_collate."""

    def __len__(self):
        return len(TRAIN)

    def __getitem__(self, i):
        x, y = TRAIN[i]
        return x, int(y)


def test_generic_dataset_and_epochs_restart():
    r = train(mlp(), ItemDataset(), method=Float(), iterations=25, batch_size=100, eval_every=25, progress=False)
    assert r.history[0]["epoch"] == 4  # 6 batches per epoch: iteration 25 is in the 5th epoch (index 4)


def test_bad_arguments():
    ok = {"method": Float(), "iterations": 5, "progress": False}
    for kw, match in [
        ({"iterations": 0}, "iterations"),
        ({"batch_size": -1}, "batch_size"),
        ({"eval_every": 1.5}, "eval_every"),
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"weight_decay": -1e-4}, "weight_decay"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"momentum": 0.9}, "momentum"),
        ({"resume": True}, "checkpoint_dir"),
        ({"lr_schedule": ("step", 10)}, "lr_schedule"),
    ]:
        with pytest.raises(ValueError, match=match):
            train(mlp(), TRAIN, **{**ok, **kw})
    with pytest.raises(TypeError, match="method"):
        train(mlp(), TRAIN, method="pmf", iterations=5)
    with pytest.raises(ValueError, match="empty"):
        train(mlp(), TensorDataset(torch.zeros(0, 8), torch.zeros(0, dtype=torch.long)), **ok)
    with pytest.raises(ValueError, match="no quantizable layer"):
        train(nn.Sequential(nn.ReLU()), TRAIN, **{**ok, "method": PMF})


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda(tmp_path):
    r = train(
        mlp(),
        TRAIN,
        VAL,
        TEST,
        method=PMF,
        iterations=40,
        batch_size=50,
        lr=1e-2,
        eval_every=20,
        device="cuda",
        checkpoint_dir=tmp_path,
        progress=False,
    )
    assert next(r.model.parameters()).is_cuda and next(r.rounded.parameters()).is_cuda
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"] + 0.5 and r.test_acc > 0.5
    r2 = train(
        mlp(),
        TRAIN,
        VAL,
        TEST,
        method=PMF,
        iterations=60,
        batch_size=50,
        lr=1e-2,
        eval_every=20,
        device="cuda",
        checkpoint_dir=tmp_path,
        resume=True,
        progress=False,
    )
    assert [row["iteration"] for row in r2.history] == [20, 40, 60]
