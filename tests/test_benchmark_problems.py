"""Benchmark instances (sizes, energies of known labellings) and the peer adapters (skipped when not installed)."""

from pathlib import Path

import numpy as np
import pytest

from benchmarks import _peers, problems, stereo

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TRIPLEPOINT4 = SHARED / "mrf_benchmarks" / "opengm" / "inpainting-n4" / "triplepoint4-plain-ring.h5"
STEREO = SHARED / "mrf_benchmarks" / "middlebury" / "stereo"
needs_triplepoint4 = pytest.mark.skipif(not TRIPLEPOINT4.is_file(), reason="shared triplepoint4 instance not staged")
needs_tsukuba = pytest.mark.skipif(not (STEREO / "tsukuba-imL.png").is_file(), reason="Tsukuba images not staged")


@pytest.fixture(scope="module")
def tp4():
    return problems.triplepoint4(TRIPLEPOINT4)


@pytest.fixture(scope="module")
def tsukuba():
    return problems.tsukuba(STEREO)


@pytest.fixture(scope="module")
def small_astronaut():
    pytest.importorskip("skimage")
    return problems.astronaut(downsample=8)


@needs_triplepoint4
def test_triplepoint4_has_the_documented_size_and_optimum(tp4):
    m = tp4.mrf
    assert (m.n_variables, m.n_labels_max, m.n_edges, m.grid_shape) == (14400, 4, 28560, (120, 120))
    assert np.allclose(m.weights, np.pi / 4)
    assert tp4.best_known == pytest.approx(484.5907)
    assert m.energy(m.unaries.argmin(axis=1)) > tp4.best_known  # WTA is not optimal


def test_astronaut_sizes_and_energy_definition(small_astronaut):
    m, image = small_astronaut.mrf, small_astronaut.image
    assert image.shape == (64, 64, 3)
    assert (m.n_variables, m.n_labels_max, m.n_edges, m.grid_shape) == (4096, 5, 2 * 64 * 63, (64, 64))
    assert m.kind == "potts" and np.all(m.weights == problems.ASTRONAUT_WEIGHT)
    assert m.unaries.min() >= 0 and m.unaries.max() <= 3.0
    # θ_p(l) = ‖I_p − c_l‖² ⇔ θ_p(l) − ‖I_p‖² = −2⟨I_p, c_l⟩ + ‖c_l‖² is affine in I_p ∈ [0, 1]³: fit c_l
    colours = image.reshape(-1, 3) / 255.0
    A = np.column_stack([-2 * colours, np.ones(len(colours))])
    for label in range(5):
        coef, *_ = np.linalg.lstsq(A, m.unaries[:, label] - (colours**2).sum(1), rcond=None)
        assert np.allclose(A @ coef, m.unaries[:, label] - (colours**2).sum(1), atol=1e-9)
        assert coef[3] == pytest.approx((coef[:3] ** 2).sum())  # the constant is ‖c_l‖²
        assert np.all((0 <= coef[:3]) & (coef[:3] <= 1))
    assert len(np.unique(m.unaries.argmin(axis=1))) == 5  # every k-means colour wins some pixel


def test_astronaut_rejects_bad_arguments():
    pytest.importorskip("skimage")
    with pytest.raises(ValueError, match="downsample"):
        problems.astronaut(downsample=0)
    with pytest.raises(ValueError, match="n_labels"):
        problems.astronaut(n_labels=1)


@needs_tsukuba
def test_tsukuba_has_the_benchmark_size_and_integral_energy(tsukuba):
    m = tsukuba.mrf
    assert (m.n_variables, m.n_labels_max, m.grid_shape) == (384 * 288, 16, (288, 384))
    assert m.n_edges == 288 * 383 + 287 * 384
    assert set(np.unique(m.weights)) == {20.0, 40.0}  # λ = 20, ×2 on low-gradient edges
    assert m.matrix[0, 1] == 1 and m.matrix[0, 5] == 2  # min(|a − b|, 2)
    assert np.array_equal(m.unaries, np.rint(m.unaries)) and m.unaries.max() <= 765
    assert np.all(m.unaries.reshape(288, 384, 16)[:, 0, 1:] == 765)  # x − d < 0: badcost = 3·255
    assert m.energy(m.unaries.argmin(axis=1)) == 8_330_840  # WTA, as measured in mrf-background.md §2


@needs_tsukuba
def test_tsukuba_ground_truth_beats_a_random_labelling(tsukuba):
    m, truth = tsukuba.mrf, tsukuba.truth
    assert truth.shape == (288, 384) and np.nanmin(truth) >= 0 and np.nanmax(truth) <= 15
    d = np.where(np.isfinite(truth), np.rint(truth), 0).astype(np.int64).ravel()
    e_truth = m.energy(d)
    e_random = m.energy(np.random.default_rng(0).integers(0, 16, m.n_variables))
    assert np.isfinite(e_truth) and e_truth < e_random
    assert stereo.bad_pixel_rate(truth, truth) == 0.0


def test_birchfield_tomasi_matches_a_direct_loop():
    rng = np.random.default_rng(1)
    left = rng.integers(0, 256, (3, 7, 3), dtype=np.uint8)
    right = rng.integers(0, 256, (3, 7, 3), dtype=np.uint8)
    got = stereo.birchfield_tomasi_costs(left, right, 4)

    def ranged(im, y, x, b):  # computeDSI's integer half-pixel values, borders replicated
        c = int(im[y, x, b])
        lo = c if x == 0 else (c + int(im[y, x - 1, b])) // 2
        hi = c if x == im.shape[1] - 1 else (c + int(im[y, x + 1, b])) // 2
        return min(c, lo, hi), max(c, lo, hi), c

    for y in range(3):
        for x in range(7):
            for d in range(4):
                if x - d < 0:
                    assert got[y, x, d] == 765
                    continue
                total = 0
                for b in range(3):
                    min1, max1, c1 = ranged(left, y, x, b)
                    min2, max2, c2 = ranged(right, y, x - d, b)
                    total += min(max(0, c1 - max2, min2 - c1), max(0, c2 - max1, min1 - c2))
                assert got[y, x, d] == total


def test_gradient_cues_threshold_and_bad_pixel_rate():
    image = np.zeros((2, 3, 3), np.uint8)
    image[:, 2] = 14  # Σ_RGB 14² = 588 ≥ 3·8² = 192: high gradient between columns 1 and 2
    image[1, :, 0] = 13  # 13² = 169 < 192: still low gradient between the rows
    h, v = stereo.gradient_cues(image, 8, 2.0)
    assert h.tolist() == [[2.0, 1.0], [2.0, 1.0]]
    assert v.tolist() == [[2.0, 2.0, 2.0]]
    truth = np.array([[1.0, np.nan], [3.0, 4.0]])
    assert stereo.bad_pixel_rate(np.array([[2.0, 9.0], [5.0, 4.0]]), truth) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="shape"):
        stereo.bad_pixel_rate(np.zeros((3, 3)), truth)


def _brute_force_optimum(m) -> float:
    x = np.array(np.meshgrid(*[np.arange(m.n_labels_max)] * m.n_variables, indexing="ij"))
    x = x.reshape(m.n_variables, -1)
    unary = m.unaries[np.arange(m.n_variables)[:, None], x].sum(axis=0)
    i, j = m.edges.T
    return float((unary + (m.weights[:, None] * (x[i] != x[j])).sum(axis=0)).min())


def _random_potts_grid(seed=0, shape=(6, 7), L=3):
    import mrf

    rng = np.random.default_rng(seed)
    return mrf.grid(rng.uniform(0, 2, (*shape, L)), 0.7)


def test_shared_pairwise_factors_tables_and_rejects_others():
    from mrf.model import MRF

    m = _random_potts_grid()
    w, V = _peers.shared_pairwise(MRF(m.unaries, m.edges, tables=m.edge_tables()))
    assert np.allclose(w[:, None, None] * V[None], m.edge_tables())
    tables = m.edge_tables().copy()
    tables[0, 0, 1] += 0.1
    with pytest.raises(ValueError, match="shared table"):
        _peers.shared_pairwise(MRF(m.unaries, m.edges, tables=tables))


def test_gco_adapter_matches_toulbar2_or_brute_force_on_a_small_grid():
    pytest.importorskip("gco")
    m = _random_potts_grid(shape=(2, 5))
    optimum = _brute_force_optimum(m)
    for algorithm in ("expansion", "swap"):
        r = _peers.gco_cut(m, algorithm)
        assert r.energy == pytest.approx(m.energy(r.labels))
        assert optimum - 1e-9 <= r.energy <= 2 * optimum  # Potts: expansion within 2·OPT (Boykov et al. 2001)
        assert r.trace.energy[-1] >= r.energy and len(r.trace) == r.n_iter


def test_gco_integer_costs_are_exact_for_integral_models():
    pytest.importorskip("gco")
    import mrf

    rng = np.random.default_rng(3)
    m = mrf.grid(rng.integers(0, 50, (4, 4, 5)).astype(float), 3.0, "truncated_linear", truncation=2)
    U, w, V, s = _peers.gco_integer_costs(m)
    assert s == 1.0 and U.dtype == np.intc and np.all(w == 3) and V[0, 4] == 2
    _, _, _, s_float = _peers.gco_integer_costs(_random_potts_grid())
    assert s_float == 1000.0
    with pytest.raises(ValueError, match="overflow"):
        _peers.gco_integer_costs(_random_potts_grid(), scale=1e12)


@needs_triplepoint4
def test_peers_reach_the_triplepoint4_optimum(tp4):
    pytest.importorskip("gco")
    pytest.importorskip("maxflow")
    for result in (_peers.gco_cut(tp4.mrf), _peers.maxflow_fastmin(tp4.mrf, "swap")):
        assert result.energy == pytest.approx(484.5907, abs=1e-3)


def test_maxflow_adapter_rejects_per_edge_weights():
    pytest.importorskip("maxflow")
    import mrf

    m = mrf.grid(np.zeros((3, 3, 2)), np.arange(12, dtype=float) + 1)
    with pytest.raises(ValueError, match="one weight"):
        _peers.maxflow_fastmin(m)


def test_toulbar2_adapter_proves_the_optimum_of_a_small_grid():
    pytest.importorskip("pytoulbar2")
    m = _random_potts_grid(seed=2, shape=(2, 4))
    optimum = _brute_force_optimum(m)
    r = _peers.toulbar2_exact(m, time_limit=20)
    assert r is not None and r.converged
    assert r.energy == pytest.approx(optimum, abs=1e-3)


def test_available_names_the_known_peers():
    with pytest.raises(ValueError, match="peer must be one of"):
        _peers.available("opengm")
    assert isinstance(_peers.available("gco"), bool)


def test_report_tables_and_plots_are_written(tmp_path):
    from benchmarks import mrf_report

    runs = [
        mrf_report.Run("p", "a", "ours", 12.0, 0.5, 10, True, trace_seconds=[0.1, 0.5], trace_energy=[15.0, 12.0]),
        mrf_report.Run("p", "b", "peer", 10.0, 0.2, 2, True, trace_seconds=[0.2], trace_energy=[10.0]),
    ]
    mrf_report.fill_gaps(runs, 10.0)
    assert [r.gap_percent for r in runs] == [pytest.approx(20.0), 0.0]
    table = mrf_report.markdown_table(runs)
    assert table.index("| b |") < table.index("| a |")  # best energy first
    paths = mrf_report.write_tables(runs, [{"name": "p"}], tmp_path, table, "mrf_peers")
    assert [p.name for p in paths] == ["mrf_peers.json", "mrf_peers.csv", "mrf_peers.md"]
    assert (tmp_path / "mrf_peers.csv").read_text().count("\n") == 3
    png = mrf_report.plot_energy_vs_time("p", runs, 10.0, tmp_path, "mrf_peers")
    assert png.read_bytes()[:4] == b"\x89PNG"
    disparity = mrf_report.save_disparity("p", "a", np.array([[0.0, np.nan], [15.0, 7.5]]), 16, tmp_path, "x")
    from PIL import Image

    assert np.asarray(Image.open(disparity)).tolist() == [[0, 0], [255, 128]]


def test_gap_study_variants_chain_solvers_without_raising_the_energy():
    pytest.importorskip("mrf.solvers")
    from benchmarks import mf_variants
    from mrf.solvers import proximal_mean_field

    m = _random_potts_grid(seed=4, shape=(8, 9), L=3)
    base = proximal_mean_field(m, max_iter=50)
    polished = mf_variants.icm_polish(m, base)
    assert polished.energy <= base.energy and polished.energy == pytest.approx(m.energy(polished.labels))
    assert len(polished.trace) > len(base.trace) and polished.trace.energy[-1] == pytest.approx(polished.energy)
    assert np.all(np.diff(polished.trace.seconds) >= 0)
    annealed = mf_variants.annealed_mean_field(m, [0.5, 0.1, 0.02], 20)
    assert annealed.n_iter <= 60 and annealed.energy == pytest.approx(m.energy(annealed.labels))
    staged = mf_variants.pmf_eta_schedule(m, (2.0, 0.5), max_iter=40)
    assert staged.n_iter <= 40 and np.all(np.diff(staged.trace.seconds) >= 0)
    noisy = mf_variants.noisy_mean_field(m, stages=5, sweeps=1, final_sweeps=5, seed=1)
    assert noisy.energy == pytest.approx(m.energy(noisy.labels))
    assert len(noisy.trace) >= 5 + 1  # one true-energy point per noisy stage, then the final run
    restarts = mf_variants.best_of_restarts(m, proximal_mean_field, range(3), "restarts")
    assert list(restarts.trace.energy) == sorted(restarts.trace.energy, reverse=True)
    assert restarts.energy == min(restarts.trace.energy)
