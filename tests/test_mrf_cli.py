"""``python -m mrf solve`` and mrf.plot on small models written to a temporary directory."""

import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest

import mrf
from mrf.__main__ import main
from mrf.plot import plot_labels, plot_trace

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def grid_model():
    rng = np.random.default_rng(0)
    return mrf.grid(rng.normal(size=(6, 7, 3)), 0.4)


@pytest.mark.parametrize("suffix", [".uai", ".h5"])
def test_solve_prints_and_writes_labels_and_plot(tmp_path, grid_model, capsys, suffix):
    model = tmp_path / f"model{suffix}"
    (mrf.write_uai if suffix == ".uai" else mrf.write_opengm)(grid_model, model)
    out, plot = tmp_path / "labels.npy", tmp_path / "trace.png"
    args = ["solve", str(model), "--method", "mean_field", "--max-iter", "30", "--out", str(out), "--plot", str(plot)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    labels = np.load(out)
    m = mrf.read_uai(model) if suffix == ".uai" else mrf.read_opengm(model)
    assert f"energy     {m.energy(labels):.10g}" in printed
    assert "iterations " in printed and "seconds " in printed
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_existing_outputs_are_kept_unless_overwrite(tmp_path, grid_model, capsys):
    model = tmp_path / "model.uai"
    mrf.write_uai(grid_model, model)
    out = tmp_path / "labels.npy"
    out.write_bytes(b"keep me")
    assert main(["solve", str(model), "--method", "icm", "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    assert main(["solve", str(model), "--method", "icm", "--out", str(out), "--overwrite"]) == 0
    np.testing.assert_array_equal(np.load(out), mrf.icm(mrf.read_uai(model)).labels)


def test_bad_inputs_fail_with_a_message(tmp_path, grid_model, capsys):
    assert main(["solve", str(tmp_path / "missing.uai")]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["solve", str(tmp_path / "model.txt")]) == 1
    assert ".uai file" in capsys.readouterr().err
    model = tmp_path / "model.uai"
    mrf.write_uai(grid_model, model)
    assert main(["solve", str(model), "--max-iter", "0"]) == 1
    assert "max_iter must be a positive integer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["solve", str(model), "--method", "graph_cut"])


def test_module_entry_point(tmp_path, grid_model):
    model = tmp_path / "model.uai"
    mrf.write_uai(grid_model, model)
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "mrf", "solve", str(model), "--method", "icm"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "energy" in done.stdout


def test_plots(grid_model):
    runs = {"icm": mrf.icm(grid_model), "mean-field": mrf.mean_field(grid_model, max_iter=20)}
    ax = plot_trace(runs)
    assert len(ax.get_lines()) == 3  # ICM has no free energy
    ax = plot_trace(runs["mean-field"], free_energy=False, log_time=True)
    assert len(ax.get_lines()) == 1 and ax.get_xscale() == "log"
    image = plot_labels(grid_model, runs["icm"].labels).get_images()[0].get_array()
    np.testing.assert_array_equal(image, runs["icm"].labels.reshape(6, 7))
    with pytest.raises(ValueError, match="grid model"):
        plot_labels(mrf.MRF(np.zeros((3, 2)), [[0, 1]], potts=1.0), np.zeros(3, int))
    with pytest.raises(ValueError, match="labels must have shape"):
        plot_labels(grid_model, np.zeros(5, int))
    with pytest.raises(TypeError, match="must be a SolverResult"):
        plot_trace({"x": 1})
