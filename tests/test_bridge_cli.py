"""``python -m bridge quantize`` / ``demo``: the files of a run, refusals, bit-identical --resume (torchrun: see
test_bridge_distributed)."""

import importlib
import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bridge.cli import OUTPUT_FILES, main
from bridge.demo_data import load_demo_mnist
from nnquant.checkpoint import load_checkpoint
from nnquant.evaluate import evaluate
from nnquant.export import load_packed
from nnquant.models import LeNet300

QUICK = ["--model", "lenet300", "--dataset", "mnist-demo", "--device", "cpu", "--no-progress"]


def quantize(out: Path, *extra: str) -> int:
    return main(["quantize", *QUICK, "--iterations", "30", "--eval-every", "10", "--out", str(out), *extra])


@pytest.mark.parametrize("method", ["pmf", "pmf_wo_aux"])  # the auxiliary form and the PGD form
def test_quantize_writes_every_file_of_a_binary_run(tmp_path, method, capsys):
    lr = ["--lr", "0.1"] if method == "pmf_wo_aux" else []  # η of the step u ← softmax(β(u − ηθ))
    assert quantize(tmp_path, "--method", method, *lr) == 0
    printed = capsys.readouterr().out
    assert all((tmp_path / name).is_file() for name in OUTPUT_FILES)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["method"] == method and summary["iterations"] == 30 and summary["levels"] == [-1.0, 1.0]
    assert set(summary["distinct_levels"].values()) == {2}
    assert summary["packed_bytes"] == (tmp_path / "model.nnq").stat().st_size
    assert summary["packed_bytes"] * 20 < summary["float32_bytes"]
    assert summary["test_acc"] > 0.5  # chance is 0.1
    assert f"{100 * summary['test_acc']:.2f} %" in printed

    packed = load_packed(tmp_path / "model.nnq", LeNet300())  # the packed file is the network that was tested
    assert all(set(torch.unique(p).tolist()) == {-1.0, 1.0} for p in packed.parameters())
    assert evaluate(packed, load_demo_mnist("test"), loss_fn=F.cross_entropy)[1] == summary["test_acc"]
    assert len((tmp_path / "log.csv").read_text().splitlines()) == 1 + 3
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_checkpoint(tmp_path / "best.pt")["iteration"] == summary["best_iteration"]


def test_refuses_to_overwrite_a_run_and_resumes_bit_identically(tmp_path, monkeypatch, capsys):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert quantize(whole) == 0
    kept = {name: (whole / name).read_bytes() for name in OUTPUT_FILES}
    assert quantize(whole) == 2
    err = capsys.readouterr().err
    assert "already holds" in err and "pass --resume to continue" in err
    assert {name: (whole / name).read_bytes() for name in OUTPUT_FILES} == kept

    train_module = importlib.import_module("nnquant.train")  # `nnquant.train` is also the function's name
    calls = []
    real_evaluate = train_module.evaluate

    def interrupted(*args, **kwargs):  # Ctrl-C during the second evaluation (iteration 20)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        quantize(cut)
    monkeypatch.undo()
    assert load_checkpoint(cut / "last.pt")["iteration"] == 10 and not (cut / "model.nnq").exists()
    assert quantize(cut, "--resume") == 0
    assert (cut / "model.nnq").read_bytes() == kept["model.nnq"]
    assert (cut / "log.csv").read_bytes() == kept["log.csv"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["quantize", *QUICK, "--iterations", "5", "--levels", "1"], "argument --levels: '1': levels count must be"),
        (["quantize", *QUICK, "--iterations", "0"], "argument --iterations: expected a positive integer"),
        (["quantize", *QUICK, "--iterations", "5", "--levels", "1,-1"], "strictly increasing"),
        (["quantize", *QUICK, "--iterations", "5", "--method", "sgd"], "argument --method: invalid choice"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_missing_data_and_nothing_to_resume_are_errors(tmp_path, capsys):
    missing = ["quantize", "--model", "lenet5", "--dataset", "mnist", "--data-dir", str(tmp_path / "nowhere")]
    assert main([*missing, "--iterations", "5", "--out", str(tmp_path / "o")]) == 2
    assert f"dataset directory not found: {tmp_path / 'nowhere'}" in capsys.readouterr().err
    assert quantize(tmp_path / "fresh", "--resume") == 2
    assert "there is no run to continue" in capsys.readouterr().err
    assert quantize(tmp_path / "fresh", "--data-dir", str(tmp_path)) == 2
    assert "--data-dir does not apply to --dataset mnist-demo" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "fresh").exists()


def test_demo_runs_offline_and_reports(capsys):
    assert main(["demo", "--iterations", "40", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    accuracy = float(re.search(r"test accuracy of the rounded network: ([0-9.]+) %", printed).group(1))
    assert accuracy > 60  # 40 iterations; chance is 10 %
    assert re.search(r"net\.1\.weight +2 +\(levels \[-1\.0, 1\.0\]\)", printed)
    assert re.search(r"packed size: [0-9,]+ bytes vs float32 [0-9,]+ bytes \([0-9.]+x smaller\)", printed)
    assert re.search(r"time: [0-9.]+ s on 1 process", printed)
