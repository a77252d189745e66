"""Smoke tests of the network benchmarks: their checks run in-process at tiny sizes and pass; the result
helpers write what they claim. No benchmark run happens here (each check below takes well under a second)."""

import json

import pytest

import mrf
from benchmarks import equivalence
from benchmarks._common import Check, mean_std, mean_std_cell, write_csv, write_json


def test_theorem31_rows_pass_for_numpy_and_torch_in_both_precisions():
    checks, table = equivalence.theorem31_rows(rows=50, dims=(2, 5), betas=(0.1, 1e4))
    assert [c.passed for c in checks] == [True] * len(checks), [c.line() for c in checks if not c.passed]
    cases = {(r["backend"], r["dtype"]) for r in table}
    assert cases == {(b, t) for b in ("numpy", "torch") for t in ("float64", "float32")}


def test_theorem31_on_lenet300_matches_the_independent_softmax_pgd_step():
    checks, series, _ = equivalence.theorem31_network(steps=3, batch_size=20, data_limit=200)
    assert all(c.passed for c in checks), [c.line() for c in checks]
    assert max(r["max_abs_du_synced"] for r in series) <= 1e-9


def test_picm_equals_bc_where_predicted_and_breaks_where_predicted():
    problem = equivalence.quadratic_problem(m=20, n=60)
    exact, weight_decay = equivalence.VARIANTS[0], equivalence.VARIANTS[5]
    assert exact.equivalent and not weight_decay.equivalent
    rows = equivalence.picm_vs_bc(problem, exact, steps=30)
    assert min(r["sign_agreement"] for r in rows) == 1.0
    assert max(r["max_abs_uq_minus_w"] for r in rows) <= 1e-9
    assert rows[-1]["bc_flips_since_start"] > 0  # the labels moved, so the agreement is not vacuous
    broken = equivalence.picm_vs_bc(problem, weight_decay, steps=30)
    assert max(r["max_abs_uq_minus_w"] for r in broken) > 1e-6


def test_pmf_step_labels_approach_picm_labels_as_beta_grows():
    check, rows = equivalence.beta_limit(betas=(1.0, 1e2, 1e8), batch_size=20, data_limit=100)
    assert check.passed, check.line()
    assert rows[0]["label_agreement"] < rows[-1]["label_agreement"] == 1.0


def test_a_failing_claim_is_reported_as_fail():
    """The check machinery itself can fail: a deliberately wrong step is caught by the KKT residual."""
    import numpy as np

    u, g = mrf.softmax(np.array([[0.2, -0.1, 0.4]])), np.array([[1.0, -2.0, 0.5]])
    wrong = np.log(mrf.softmax(u - 0.5 * g, 2.0))  # the step at η = 0.5, tested against η = 1
    assert equivalence._kkt_spread(u, g, np.ones((1, 1)), 2.0, wrong)[0] > 1e-3
    assert Check("x", False, "y").line().startswith("FAIL")


def test_result_writers_round_trip(tmp_path):
    path = write_json(tmp_path / "a.json", {"x": float("nan"), "y": [1, 2]})
    assert json.loads(path.read_text()) == {"x": None, "y": [1, 2]}
    csv_path = write_csv(tmp_path / "a.csv", [{"a": 1, "b": 2}, {"a": 3, "c": 4}])
    assert csv_path.read_text().splitlines() == ["a,b,c", "1,2,", "3,,4"]
    assert mean_std([1.0, 3.0]) == (2.0, 2**0.5, 2)
    assert mean_std_cell(*mean_std([1.0, 3.0])) == "2.00 ± 1.41 (n=2)"
    assert mean_std_cell(*mean_std([97.77])) == "97.77 (n=1)"  # one seed has no spread to show
    assert mean_std_cell(*mean_std([])) == "—"


def test_paper_table_schedule_is_the_papers_at_20k_iterations():
    from benchmarks.paper_table import Cell, schedule

    cfg = schedule(20_000)
    assert cfg["lr_schedule"] == ("step", 7000, 0.2) and cfg["lr"] == 1e-3 and cfg["weight_decay"] == 0.0
    assert cfg["eval_every"] == 100 and cfg["batch_size"] == 100
    beta = cfg["beta"]
    assert (beta(99), beta(100), beta(200), beta(19_999)) == (1.0, 1.2, 1.2**2, 1e4)
    assert Cell("mnist", "lenet300", "ref", 3, 1, 20_000).key == "mnist-lenet300-ref-float-s1-it20000"


def test_paper_table_aggregates_finished_runs(tmp_path):
    from benchmarks.paper_table import build_table

    runs = tmp_path / "paper_table"
    for seed, acc in enumerate((98.0, 98.4)):
        for method in ("ref", "pmf"):
            rec = {"dataset": "mnist", "model": "lenet300", "method": method, "levels": 2, "seed": seed}
            write_json(
                runs / f"mnist-lenet300-{method}-x-s{seed}-it20000.json",
                {**rec, "test_acc": acc + 0.5 * (method == "ref")},
            )
    write_json(runs / "other-it300.json", {"dataset": "mnist", "model": "lenet300", "method": "pmf", "levels": 2})
    (row,) = build_table(runs, 20_000, quick=False)
    assert (row["pmf_mean"], row["pmf_n"], row["ref_mean"], row["pmf_paper"]) == (98.2, 2, 98.7, 98.24)
    assert abs(row["pmf_std"] - 0.2828427) < 1e-6 and row["bc_n"] == 0
    assert "98.20 ± 0.28 (n=2) [paper 98.24]" in (tmp_path / "paper_table.md").read_text()


def test_packed_size_and_distinct_values_of_a_rounded_layer():
    import torch
    from torch import nn

    from benchmarks.quant_peers import distinct_values, packed_bytes

    layer = nn.Linear(64, 8)
    with torch.no_grad():
        layer.weight.copy_(torch.where(torch.arange(512).reshape(8, 64) % 3 == 0, 1.0, -1.0))
    model = nn.Sequential(layer)
    assert distinct_values(model) == {"0.weight": 2, "0.bias": 8}
    # weight: 512 entries × 1 bit + a 2-value float32 codebook; bias: 8 distinct of 8, stored as float32
    assert packed_bytes(model) == (512 + 64) // 8 + 8 * 4


def test_a_peer_that_cannot_be_imported_is_skipped_with_the_reason(tmp_path, monkeypatch):
    from benchmarks import quant_peers

    monkeypatch.setitem(quant_peers.PEER_MODULES, "parq", "no_such_module_for_this_test")
    run = quant_peers.Run("lenet300", "parq-default", 2, 0, 10, 100)
    quant_peers._execute(run, str(tmp_path / "r.json"))
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["status"] == "skipped" and "no_such_module_for_this_test" in record["reason"]


def test_full_mode_refuses_to_run_on_the_embedded_subset(monkeypatch, tmp_path, capsys):
    from benchmarks import _common, paper_table, quant_peers

    monkeypatch.setattr(_common, "SHARED_DATA", tmp_path / "absent")
    assert "absent/mnist" in _common.missing_full_data(["mnist"])
    for main in (paper_table.main, quant_peers.main):
        with pytest.raises(SystemExit):
            main(["--models", "lenet300", "--seeds", "0"])
        assert "full mode needs the real data" in capsys.readouterr().err
