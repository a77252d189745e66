"""quantize_net end to end on MNIST (the embedded 5k/1k/1k subset) and its refusals of bad input."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import bridge
from bridge.demo_data import load_demo_mnist
from nnquant.checkpoint import load_checkpoint
from nnquant.evaluate import evaluate
from nnquant.models import LeNet300
from nnquant.rounding import count_levels

TRAIN, VAL, TEST = (load_demo_mnist(split) for split in ("train", "val", "test"))
SMALL_TRAIN = TensorDataset(*(t[:300] for t in TRAIN.tensors))


def lenet300() -> LeNet300:
    torch.manual_seed(0)
    return LeNet300()


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))


def values(model: nn.Module) -> dict[str, set[float]]:
    return {name: set(torch.unique(p.detach()).tolist()) for name, p in model.named_parameters()}


def test_binary_lenet300_holds_only_the_two_levels_and_learns():
    model = lenet300()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    qmodel, result = bridge.quantize_net(model, TRAIN, VAL, test_data=TEST, iterations=150, progress=False)
    for k, v in model.state_dict().items():  # the user's model is untouched
        assert torch.equal(v, before[k]), k
    assert type(qmodel) is LeNet300 and qmodel.state_dict().keys() == model.state_dict().keys()
    for name, p in qmodel.named_parameters():
        assert values(qmodel)[name] <= {-1.0, 1.0}, name
        if p.numel() >= 100:
            assert torch.unique(p).numel() == 2, name
    assert count_levels(qmodel) == {name: len(values(qmodel)[name]) for name, _ in qmodel.named_parameters()}
    assert result.test_acc > 0.8  # chance is 0.1
    assert result.test_acc == pytest.approx(evaluate(qmodel, TEST, loss_fn=F.cross_entropy)[1])
    assert result.best_val_acc == max(row["val_acc"] for row in result.history)


def test_ternary_gives_minus_one_zero_one():
    qmodel, _ = bridge.quantize_net(lenet300(), SMALL_TRAIN, levels=3, iterations=20, progress=False)
    for name, p in qmodel.named_parameters():
        assert values(qmodel)[name] <= {-1.0, 0.0, 1.0}, name
        if p.numel() >= 1000:
            assert values(qmodel)[name] == {-1.0, 0.0, 1.0}, name


@pytest.mark.parametrize("method", bridge.METHODS)
def test_every_method_runs_and_rounds_to_the_levels(method):
    qmodel, result = bridge.quantize_net(
        small_net(), SMALL_TRAIN, VAL, method=method, levels=[-0.5, 0.5], iterations=6, eval_every=3, progress=False
    )
    assert [row["iteration"] for row in result.history] == [3, 6]
    assert all(v <= {-0.5, 0.5} for v in values(qmodel).values())
    assert all(row["train_loss"] > 0 for row in result.history)


class WithLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(28, 8, batch_first=True)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        return self.head(self.lstm(x.reshape(-1, 28, 28))[0][:, -1])


class WithEmbedding(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)
        self.position_table = nn.Embedding(4, 10)

    def forward(self, x):
        return self.fc(x.flatten(1)) + self.position_table.weight[0]


@pytest.mark.parametrize(("model", "name"), [(WithLSTM(), "lstm"), (WithEmbedding(), "position_table")])
def test_unsupported_layer_is_named(model, name, tmp_path):
    with pytest.raises(ValueError, match=rf"'{name}' \((LSTM|Embedding)\) has learnable parameters"):
        bridge.quantize_net(model, SMALL_TRAIN, iterations=5, checkpoint_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # refused before anything was written


class NaNAfter(nn.Module):
    """Identity in evaluation; in training, NaN from training call ``at`` on (counted on the class, as
    quantize_net deep-copies the model), after noting the bytes of the last checkpoint at that moment."""

    calls = 0
    at = 4
    watch = None
    seen: bytes | None = None

    def forward(self, x):
        if not self.training:
            return x
        NaNAfter.calls += 1
        if NaNAfter.calls < NaNAfter.at:
            return x
        NaNAfter.seen = NaNAfter.watch.read_bytes()
        return x * float("nan")


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path):
    NaNAfter.calls, NaNAfter.watch = 0, tmp_path / "last.pt"
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), NaNAfter())
    with pytest.raises(FloatingPointError, match=r"loss is nan at iteration 3; the last good checkpoint .*last\.pt"):
        bridge.quantize_net(
            model, SMALL_TRAIN, VAL, iterations=10, eval_every=2, checkpoint_dir=tmp_path, progress=False
        )
    assert (tmp_path / "last.pt").read_bytes() == NaNAfter.seen
    assert load_checkpoint(tmp_path / "last.pt")["iteration"] == 2
    assert load_checkpoint(tmp_path / "best.pt")["iteration"] <= 2
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("levels", "problem"),
    [(1, "count must be >= 2"), ([1.0, -1.0], "strictly increasing"), ([-1, 1, 1], "duplicates"), ([0.5], "at least")],
)
def test_levels_the_model_cannot_use(levels, problem, tmp_path):
    with pytest.raises(ValueError, match=problem):
        bridge.quantize_net(small_net(), SMALL_TRAIN, levels=levels, iterations=3, checkpoint_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def loader(x, y):
    return DataLoader(TensorDataset(x, y), batch_size=10)


X, Y = SMALL_TRAIN.tensors


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"train_data": loader(torch.zeros(20, 1, 32, 32), Y[:20])},
            r"train_data yields inputs of shape \(10, 1, 32, 32\)",
        ),
        (
            {"train_data": loader(X[:20], Y[:20, None])},
            r"train_data must yield integer class labels of shape \(batch,\)",
        ),
        ({"train_data": loader(X[:20], Y[:20].float())}, r"train_data must yield integer class labels.*float32"),
        ({"train_data": TensorDataset(X[:20], Y[:20, None])}, r"train_data items must hold a scalar class label"),
        ({"val_data": loader(X[:20], Y[:20] + 10)}, r"val_data has labels in \[10, 19\] but the model has 10 classes"),
        ({"test_data": loader(torch.zeros(20, 3, 28, 28), Y[:20])}, r"test_data yields inputs of shape"),
    ],
    ids=["32x32-images", "labels-Bx1", "float-labels", "dataset-labels-1", "labels-out-of-range", "3-channels"],
)
def test_wrong_batches_are_refused_naming_the_argument(kwargs, message):
    args = {"train_data": SMALL_TRAIN, **kwargs}
    with pytest.raises(ValueError, match=message):
        bridge.quantize_net(lenet300(), iterations=3, progress=False, **args)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_quantizes_on_cuda():
    qmodel, result = bridge.quantize_net(
        lenet300(), TRAIN, VAL, test_data=TEST, iterations=150, device="cuda", progress=False
    )
    assert next(qmodel.parameters()).is_cuda
    assert all(v <= {-1.0, 1.0} for v in values(qmodel).values())
    assert result.test_acc > 0.8
