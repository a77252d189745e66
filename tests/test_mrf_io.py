"""OpenGM HDF5 and UAI files: the real triplepoint4 instance, exhaustive round trips, hand-made files of every
supported function type, and clear errors for corrupt, truncated or unsupported files."""

import itertools
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

import mrf

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TRIPLEPOINT = SHARED / "mrf_benchmarks/opengm/inpainting-n4/triplepoint4-plain-ring.h5"


def random_model(rng, kind, padded):
    n, L = 5, 3
    counts = rng.integers(1, L + 1, n) if padded else np.full(n, L)
    counts[2] = L
    theta = rng.normal(size=(n, L)) * 3
    edges = np.array([[0, 1], [2, 1], [1, 3], [3, 4], [4, 0], [2, 4]])
    if kind == "potts":
        return mrf.MRF(theta, edges, potts=rng.uniform(-1, 2, len(edges)), n_labels=counts)
    if kind == "matrix":
        return mrf.MRF(theta, edges, matrix=rng.normal(size=(L, L)), weights=rng.uniform(0, 2, 6), n_labels=counts)
    return mrf.MRF(theta, edges, tables=rng.normal(size=(len(edges), L, L)), n_labels=counts)


def all_energies(m):
    return np.array([m.energy(np.array(x)) for x in itertools.product(*[range(c) for c in m.n_labels])])


# --- the real instance ----------------------------------------------------------------------------------


def test_triplepoint4_loads_as_a_potts_grid():
    m = mrf.read_opengm(TRIPLEPOINT)
    assert (m.n_variables, m.n_labels_max, m.n_edges) == (14_400, 4, 28_560)
    assert m.kind == "potts" and m.grid_shape == (120, 120)
    np.testing.assert_array_equal(m.edges, mrf.grid_edges((120, 120), 4)[0])  # the same layout as mrf.grid
    np.testing.assert_allclose(m.weights, np.pi / 4, rtol=1e-12)
    wta = np.argmin(m.unaries, axis=1)
    assert m.energy(wta) == pytest.approx(534.8561, abs=1e-4)  # mrf-background.md §1.4 (ICM from WTA = WTA)


def test_triplepoint4_survives_both_round_trips(tmp_path):
    m = mrf.read_opengm(TRIPLEPOINT)
    mrf.write_opengm(m, tmp_path / "t.h5")
    mrf.write_uai(m, tmp_path / "t.uai")
    x = np.random.default_rng(0).integers(0, 4, m.n_variables)
    for back in (mrf.read_opengm(tmp_path / "t.h5"), mrf.read_uai(tmp_path / "t.uai")):
        assert back.kind == "potts" and back.grid_shape == (120, 120)
        assert back.energy(x) == pytest.approx(m.energy(x), rel=1e-12)


# --- exhaustive round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["potts", "matrix", "table"])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("fmt", ["opengm", "uai"])
def test_round_trip_preserves_every_energy(tmp_path, kind, padded, fmt):
    m = random_model(np.random.default_rng(1), kind, padded)
    write, read = (mrf.write_opengm, mrf.read_opengm) if fmt == "opengm" else (mrf.write_uai, mrf.read_uai)
    path = tmp_path / f"m.{fmt}"
    write(m, path)
    back = read(path)
    np.testing.assert_array_equal(back.n_labels, m.n_labels)
    # HDF5 stores the doubles, UAI goes through exp/log; reading may move Potts constants into unaries
    np.testing.assert_allclose(all_energies(back), all_energies(m), rtol=1e-12, atol=1e-12)
    # the stored form is recognised again, except a non-symmetric V on edges (i > j): OpenGM sorts scopes
    if not padded and (fmt == "uai" or kind != "matrix"):
        assert back.kind == kind


# --- hand-made OpenGM files -----------------------------------------------------------------------------


def write_raw_opengm(path, n_states, functions, factors, header=None):
    """functions: {type_id: (indices list, values list, count)}; factors: [(type_pos, fn_index, vars)]."""
    types = list(functions)
    with h5py.File(path, "w") as f:
        g = f.create_group("gm")
        hdr = [2, 0, len(n_states), len(factors), len(types)]
        for t in types:
            hdr += [t, functions[t][2]]
        g["header"] = np.array(header if header is not None else [*hdr, 1], np.uint64)
        g["numbers-of-states"] = np.array(n_states, np.uint64)
        for t, (idx, val, _) in functions.items():
            g[f"function-id-{t}/indices"] = np.array(idx, np.uint64)
            g[f"function-id-{t}/values"] = np.array(val, np.float64)
        g["factors"] = np.array([x for tp, fi, vs in factors for x in (fi, tp, len(vs), *vs)], np.uint64)


def test_read_every_supported_function_type(tmp_path):
    a, b = np.ogrid[:4, :4]
    d = np.abs(a - b)
    explicit = np.arange(4.0 * 3).reshape(4, 3) / 7  # first variable's label varies fastest in the file
    functions = {
        16000: ([1, 4, 2, 4, 3], [0.5, -1.0, 2.0, 0.25, *explicit.ravel(order="F")], 2),
        16002: ([4, 4], [1.5], 1),
        16003: ([4, 4], [2.0, 0.5], 1),  # truncation 2, weight 0.5
        16004: ([4, 4], [0.25], 1),
        16005: ([4, 4], [5.0, 0.1], 1),
        16006: ([4, 4], [0.2, 1.1], 1),
        16008: ([2, 4, 4], [0.75], 1),
    }
    tables = {
        16002: 1.5 * d,
        16003: 0.5 * np.minimum(d, 2.0),
        16004: 0.25 * d**2,
        16005: 0.1 * np.minimum(d**2, 5.0),
        16006: np.where(d == 0, 0.2, 1.1),
        16008: np.full((4, 4), 0.75),
    }
    pos = {t: k for k, t in enumerate(functions)}
    factors = [(pos[16000], 0, [0]), (pos[16000], 1, [2, 3])]
    pairs = {16002: (0, 1), 16003: (1, 2), 16004: (0, 2), 16005: (1, 0), 16006: (0, 2), 16008: (1, 2)}
    factors += [(pos[t], 0, list(v)) for t, v in pairs.items()]
    write_raw_opengm(tmp_path / "all.h5", [4, 4, 4, 3], functions, factors)
    m = mrf.read_opengm(tmp_path / "all.h5")
    assert m.kind == "table" and m.n_edges == 4  # repeated pairs are summed into one edge
    for x in itertools.product(range(4), range(4), range(4), range(3)):
        e = [0.5, -1.0, 2.0, 0.25][x[0]] + explicit[x[2], x[3]]
        e += sum(tables[t][x[i], x[j]] for t, (i, j) in pairs.items())
        assert m.energy(np.array(x)) == pytest.approx(e, abs=1e-12)


def test_weighted_distances_load_as_a_shared_matrix(tmp_path):
    weights = [0.5, 2.0, 1.25]
    functions = {16003: ([5, 5] * 3, [x for w in weights for x in (2.0, w)], 3)}  # w·min(|a − b|, 2)
    write_raw_opengm(tmp_path / "tl.h5", [5] * 4, functions, [(0, k, [k, k + 1]) for k in range(3)])
    m = mrf.read_opengm(tmp_path / "tl.h5")
    d = np.minimum(np.abs(np.subtract.outer(np.arange(5), np.arange(5))), 2.0)
    assert m.kind == "matrix"
    np.testing.assert_allclose(m.weights[:, None, None] * m.matrix, np.array(weights)[:, None, None] * d)


def test_old_header_without_value_type(tmp_path):
    functions = {16006: ([2, 2], [0.0, 1.0], 1)}
    write_raw_opengm(tmp_path / "old.h5", [2, 2], functions, [(0, 0, [0, 1])], header=[2, 0, 2, 1, 1, 16006, 1])
    m = mrf.read_opengm(tmp_path / "old.h5")
    assert m.kind == "potts" and m.energy(np.array([0, 1])) == 1.0


def test_higher_order_factor_is_named(tmp_path):
    functions = {16000: ([3, 2, 2, 2], list(range(8)), 1)}
    write_raw_opengm(tmp_path / "ho.h5", [2, 2, 2], functions, [(0, 0, [0, 1, 2])])
    with pytest.raises(NotImplementedError, match=r"ho.h5: factor 0 on variables \[0, 1, 2\] has order 3"):
        mrf.read_opengm(tmp_path / "ho.h5")


def test_unsupported_function_type(tmp_path):
    write_raw_opengm(tmp_path / "sp.h5", [2, 2], {16001: ([2, 2], [0.0], 1)}, [(0, 0, [0, 1])])
    with pytest.raises(NotImplementedError, match="function type 16001 is not supported"):
        mrf.read_opengm(tmp_path / "sp.h5")


def edit_dataset(path, name, edit):
    with h5py.File(path, "r+") as f:
        data = edit(f["gm"][name][()].copy())
        del f["gm"][name]
        f["gm"][name] = data


@pytest.mark.parametrize(
    "name, edit, match",
    [
        ("header", lambda h: np.concatenate([[3], h[1:]]).astype(np.uint64), "format version 3.0 is not supported"),
        ("header", lambda h: h[:4], "header has 4 entries"),
        ("header", lambda h: np.concatenate([h, [7]]).astype(np.uint64), "header has 11 entries but lists 2"),
        ("numbers-of-states", lambda s: s[:-1], "numbers-of-states must hold 5"),
        ("numbers-of-states", lambda s: s * 0, "numbers-of-states must hold 5 label counts >= 1"),
        ("factors", lambda f: f[:-2], "factors dataset ends inside factor"),
        ("factors", lambda f: np.concatenate([f, [0]]).astype(np.uint64), "left over after"),
        ("factors", lambda f: np.where(np.arange(f.size) == 3, 99, f).astype(np.uint64), "outside 0..4"),
        ("factors", lambda f: np.where(np.arange(f.size) == 0, 99, f).astype(np.uint64), "uses function 99"),
        ("factors", lambda f: np.where(np.arange(f.size) == 1, 5, f).astype(np.uint64), "function type index 5"),
        ("function-id-16000/values", lambda v: v[:-1], "function-id-16000: function .* is truncated"),
        ("function-id-16000/indices", lambda i: i[:-1], "function-id-16000: function .* truncated"),
        ("function-id-16006/values", lambda v: v[:-1], "function-id-16006: data ends inside function"),
    ],
)
def test_corrupt_opengm_files_raise_clear_errors(tmp_path, name, edit, match):
    path = tmp_path / "m.h5"
    mrf.write_opengm(random_model(np.random.default_rng(2), "potts", padded=False), path)
    edit_dataset(path, name, edit)
    with pytest.raises(ValueError, match=match) as err:
        mrf.read_opengm(path)
    assert str(path) in str(err.value)


def test_truncated_and_missing_opengm_files(tmp_path):
    path = tmp_path / "m.h5"
    mrf.write_opengm(random_model(np.random.default_rng(3), "table", padded=True), path)
    data = path.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.h5: not a readable HDF5 file"):
        mrf.read_opengm(tmp_path / "cut.h5")
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        mrf.read_opengm(tmp_path / "nope.h5")
    with pytest.raises(ValueError, match="no group 'model'"):
        mrf.read_opengm(path, group="model")
    with h5py.File(path, "r+") as f:
        del f["gm/factors"]
    with pytest.raises(ValueError, match="dataset /gm/factors is missing"):
        mrf.read_opengm(path)


# --- hand-made UAI files --------------------------------------------------------------------------------


def test_read_uai_conventions(tmp_path):
    # two variables (2 and 3 states), a unary on x1 and a pairwise (x0, x1) in C order: x1 varies fastest
    text = "MARKOV\n2\n2 3\n3\n1 1\n2 0 1\n0\n\n3\n0.5 0.25 1.0\n6\n1 2 3\n4 5 6\n1\n2.0\n"
    (tmp_path / "a.uai").write_text(text)
    m = mrf.read_uai(tmp_path / "a.uai")
    phi = np.arange(1.0, 7.0).reshape(2, 3)
    for a, b in itertools.product(range(2), range(3)):
        e = -np.log([0.5, 0.25, 1.0][b]) - np.log(phi[a, b]) - np.log(2.0)
        assert m.energy(np.array([a, b])) == pytest.approx(e, abs=1e-12)


@pytest.mark.parametrize(
    "text, match",
    [
        ("BAYES\n1\n2\n0\n", "expected the preamble 'MARKOV'"),
        ("", "empty file"),
        ("MARKOV\n2\n2 x\n0\n", r"line 3, token 3 \('x'\): expected an integer for the cardinalities"),
        ("MARKOV\n2\n2 2\n1\n2 0 1\n4\n1 1 1\n", "unexpected end of file"),
        ("MARKOV\n2\n2 2\n1\n2 0 1\n3\n1 1 1\n", r"line 6, token 8 \('3'\): factor 0 on \[0, 1\] has 3 entries"),
        ("MARKOV\n2\n2 2\n1\n2 0 1\n4\n1 0 1 1\n", r"line 7, token 10 \('0'\): factor 0 potential φ = 0.0"),
        ("MARKOV\n2\n2 2\n1\n2 0 1\n4\n1 -2 1 1\n", "must be finite and > 0"),
        ("MARKOV\n2\n2 2\n1\n2 0 1\n4\n1 abc 1 1\n", r"line 7, token 10 \('abc'\): expected a number"),
        ("MARKOV\n2\n2 2\n1\n2 0 2\n4\n1 1 1 1\n", r"factor 0 scope \[0, 2\] must name distinct variables"),
        ("MARKOV\n2\n2 2\n1\n2 1 1\n4\n1 1 1 1\n", "must name distinct variables"),
        ("MARKOV\n2\n2 0\n0\n", "cardinalities >= 1"),
        ("MARKOV\n2\n2 2\n1\n1 0\n2\n1 1\n5\n", "unexpected data after the last factor"),
    ],
)
def test_bad_uai_files_name_path_and_place(tmp_path, text, match):
    path = tmp_path / "bad.uai"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as err:
        mrf.read_uai(path)
    assert str(path) in str(err.value)


def test_uai_higher_order_and_truncation(tmp_path):
    (tmp_path / "ho.uai").write_text("MARKOV\n3\n2 2 2\n1\n3 0 1 2\n8\n1 1 1 1 1 1 1 1\n")
    with pytest.raises(NotImplementedError, match=r"factor 0 on variables \[0, 1, 2\] has order 3"):
        mrf.read_uai(tmp_path / "ho.uai")
    path = tmp_path / "m.uai"
    mrf.write_uai(random_model(np.random.default_rng(4), "matrix", padded=True), path)
    text = path.read_text()
    (tmp_path / "cut.uai").write_text(text[: len(text) * 2 // 3])
    with pytest.raises(ValueError, match="cut.uai: unexpected end of file"):
        mrf.read_uai(tmp_path / "cut.uai")
    with pytest.raises(FileNotFoundError, match="nope.uai"):
        mrf.read_uai(tmp_path / "nope.uai")


def test_write_uai_rejects_unrepresentable_energies(tmp_path):
    m = mrf.MRF(np.array([[0.0, 800.0], [0.0, 1.0]]), [[0, 1]], potts=1.0)
    path = tmp_path / "m.uai"
    with pytest.raises(ValueError, match=r"factor 0 on \[0\] has θ in \[0, 800\]"):
        mrf.write_uai(m, path)
    assert not path.exists() and list(tmp_path.iterdir()) == []


# --- never overwrite ------------------------------------------------------------------------------------


@pytest.mark.parametrize("write", [mrf.write_opengm, mrf.write_uai])
def test_writers_refuse_existing_files_and_leave_no_temp(tmp_path, monkeypatch, write):
    m = random_model(np.random.default_rng(5), "potts", padded=False)
    path = tmp_path / "model"
    path.write_text("precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write(m, path)
    assert path.read_text() == "precious"
    write(m, path, overwrite=True)
    assert path.read_bytes() != b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    before = path.read_bytes()
    with monkeypatch.context() as patch:  # a write that fails half-way leaves the old file and no temp file
        target = (h5py.Group, "create_dataset") if write is mrf.write_opengm else (Path, "write_text")
        patch.setattr(*target, lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
        with pytest.raises(OSError, match="disk full"):
            write(random_model(np.random.default_rng(6), "table", padded=True), path, overwrite=True)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write(m, tmp_path / "missing-dir" / "m")


# --- atomic writes (one routine serves mrf, nnquant and the benchmarks) ----------------------------------


def test_write_atomic_syncs_before_rename_and_uses_the_umask(tmp_path, monkeypatch):
    from mrf._validation import write_atomic

    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[1])
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "f.bin", b"data")
    finally:
        os.umask(old)
    assert calls == ["fsync", "replace", "fsync"]  # file data, rename, then the directory entry
    assert (tmp_path / "f.bin").read_bytes() == b"data"
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o640
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_atomic(tmp_path / "f.bin", b"other", overwrite=False)
    assert (tmp_path / "f.bin").read_bytes() == b"data" and os.listdir(tmp_path) == ["f.bin"]
