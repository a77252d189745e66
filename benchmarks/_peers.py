"""Adapters that run the peer MAP solvers on an `mrf.MRF` and return a `SolverResult` like our solvers.

* gco-wrapper (GCO v3, Veksler/Delong): alpha-expansion and alpha-beta swap on any graph with
  θ_e(a, b) = w_e·V[a, b] and a symmetric V. GCO's energy terms are int32: unaries, weights and V are
  scaled (by ``scale`` = 1000 unless V is integral and the unaries too: see `gco_integer_costs`) and rounded,
  so GCO optimises a rounded energy; every reported energy is recomputed with OUR ``m.energy(labels)``.
* PyMaxflow ``fastmin`` (Boykov–Kolmogorov max-flow): expansion / swap on a 4-connected 2-D grid with one
  V for every edge (constant weight), float costs.
* pytoulbar2: exact branch and bound, in a child process with a time limit; ``converged`` = optimality proven
  (the dual bound met the primal one), the run may also end with an unproven incumbent or nothing.

Peers run sweep by sweep (one cycle over all labels / label pairs) so the trace holds (energy, seconds)
after each sweep; ``seconds`` counts only the peer's own calls, not our energy evaluations. Marginals are
the one-hot labels. A peer that is not installed raises ImportError (see `available`).
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np

from mrf.model import MRF
from mrf.result import SolverResult, Trace

MODULES = {"gco": "gco", "maxflow": "maxflow", "toulbar2": "pytoulbar2"}
INT32_MAX = 2**31 - 1


def available(peer: str) -> bool:
    """True when the peer's Python package ("gco", "maxflow" or "toulbar2") can be imported."""
    if peer not in MODULES:
        raise ValueError(f"peer must be one of {tuple(MODULES)}, got {peer!r}")
    return importlib.util.find_spec(MODULES[peer]) is not None


def shared_pairwise(m: MRF) -> tuple[np.ndarray, np.ndarray]:
    """(w (E,), V (L, L)) with θ_e(a, b) = w_e·V[a, b] for every edge, as GCO and fastmin need.

    Potts and matrix models are already in this form; a table model qualifies when every table is a
    multiple of one common table. Raises ValueError otherwise, or for padded labels (n_i < L).
    """
    if np.any(m.n_labels != m.n_labels_max):
        raise ValueError("peers need every variable to have all L labels (this MRF has padded labels)")
    if m.kind != "table":
        return m.weights.copy(), m.matrix.copy()
    T = m.tables
    scale = np.abs(T).reshape(len(T), -1).max(axis=1)
    ref = int(np.argmax(scale))
    if scale[ref] == 0:
        return np.zeros(len(T)), np.zeros(T.shape[1:])
    V = T[ref] / scale[ref]
    w = scale * np.sign(np.einsum("eab,ab->e", T, V))
    if not np.allclose(T, w[:, None, None] * V[None], rtol=1e-9, atol=1e-12):
        raise ValueError("the MRF's pairwise tables are not multiples of one shared table w_e·V")
    return w, V


def gco_integer_costs(m: MRF, scale: float = 1000.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(unaries (N, L), weights (E,), V (L, L)) as int32 for GCO, and the factor s with GCO energy ≈ s·E.

    Integral models (all θ_i, w_e, V integers, e.g. Middlebury stereo) are passed exactly (s = 1); otherwise
    θ and w are multiplied by ``scale`` (V by ``scale`` too if it is not integral) and rounded. Unaries are
    shifted per variable to a minimum of 0 (no energy difference changes). Raises ValueError when a term
    would not fit int32 or a weight is negative (GCO's moves need w_e·V to be a metric).
    """
    w, V = shared_pairwise(m)
    if np.any(w < 0):
        raise ValueError("GCO needs non-negative edge weights")
    if not np.allclose(V, V.T):
        raise ValueError("GCO needs a symmetric pairwise matrix V")
    theta = m.unaries - m.unaries.min(axis=1, keepdims=True)
    integral = all(np.array_equal(a, np.rint(a)) for a in (theta, w, V))
    s_theta_w = 1.0 if integral else float(scale)
    s_v = 1.0 if np.array_equal(V, np.rint(V)) else float(scale)
    U_int, w_int, V_int = np.rint(theta * s_theta_w * s_v), np.rint(w * s_theta_w), np.rint(V * s_v)
    if max(U_int.max(), w_int.max(initial=0) * V_int.max()) > INT32_MAX:
        raise ValueError(f"costs scaled by {scale} overflow GCO's int32 terms; pass a smaller scale")
    return U_int.astype(np.intc), w_int.astype(np.intc), V_int.astype(np.intc), s_theta_w * s_v


def gco_cut(m: MRF, algorithm: str = "expansion", *, scale: float = 1000.0, max_sweeps: int = 100) -> SolverResult:
    """GCO alpha-expansion ("expansion") or alpha-beta swap ("swap") from GCO's all-zero start, one sweep at
    a time until a sweep no longer lowers the energy or ``max_sweeps`` ran."""
    import gco  # gco-wrapper; importing it adds np.int / np.float aliases to numpy (its own patch)

    if algorithm not in ("expansion", "swap"):
        raise ValueError(f"algorithm must be 'expansion' or 'swap', got {algorithm!r}")
    U, w, V, _ = gco_integer_costs(m, scale)
    lo, hi = m.edges.min(axis=1), m.edges.max(axis=1)  # GCO wants s1 < s2 (V is symmetric)
    start = time.perf_counter()
    gc = gco.GCO()
    gc.create_general_graph(m.n_variables, m.n_labels_max, energy_is_float=False)
    try:
        gc.set_data_cost(U)
        gc.set_all_neighbors(lo.astype(np.intc), hi.astype(np.intc), w)
        gc.set_smooth_cost(V)
        sweep = gc.expansion if algorithm == "expansion" else gc.swap
        elapsed = time.perf_counter() - start

        def step() -> np.ndarray:
            nonlocal elapsed
            t0 = time.perf_counter()
            sweep(1)
            labels = gc.get_labels().astype(np.int64)
            elapsed += time.perf_counter() - t0
            return labels

        return _sweep_until_stuck(m, step, lambda: elapsed, max_sweeps, f"gco-{algorithm}")
    finally:
        gc.destroy_graph()


def maxflow_fastmin(m: MRF, algorithm: str = "expansion", *, max_sweeps: int = 100) -> SolverResult:
    """PyMaxflow ``fastmin.aexpansion_grid`` / ``abswap_grid`` from the WTA labelling (fastmin's default).

    Only for 2-D 4-connected grids (`mrf.grid` edge set) with one weight for every edge: raises ValueError
    otherwise.
    """
    from maxflow import fastmin

    if algorithm not in ("expansion", "swap"):
        raise ValueError(f"algorithm must be 'expansion' or 'swap', got {algorithm!r}")
    shape = _grid4_shape(m)
    w, V = shared_pairwise(m)
    if not np.all(w == w[0]):
        raise ValueError("PyMaxflow fastmin needs one weight for every edge; this MRF has per-edge weights")
    D = m.unaries.reshape(*shape, m.n_labels_max)
    binary = w[0] * V
    move = fastmin.aexpansion_grid if algorithm == "expansion" else fastmin.abswap_grid
    labels = D.argmin(axis=2).astype(np.int32)
    elapsed = 0.0

    def step() -> np.ndarray:
        nonlocal elapsed, labels
        t0 = time.perf_counter()
        # use the return value: fastmin rebinds its labels when a move is rejected, so the array passed in
        # is not always the result despite its docstring's "modified in-place"
        labels = move(D, binary, max_cycles=1, labels=labels.copy())
        elapsed += time.perf_counter() - t0
        return labels.ravel().astype(np.int64)

    return _sweep_until_stuck(m, step, lambda: elapsed, max_sweeps, f"maxflow-{algorithm}")


def _grid4_shape(m: MRF) -> tuple[int, int]:
    if m.grid_shape is None or len(m.grid_shape) != 2:
        raise ValueError("PyMaxflow fastmin needs a 2-D grid MRF (grid_shape (H, W))")
    H, W = m.grid_shape
    idx = np.arange(H * W).reshape(H, W)
    expected = np.concatenate([(idx[:, :-1] * (H * W) + idx[:, 1:]).ravel(), (idx[:-1] * (H * W) + idx[1:]).ravel()])
    lo, hi = m.edges.min(axis=1), m.edges.max(axis=1)
    if len(lo) != len(expected) or not np.array_equal(np.sort(lo * (H * W) + hi), np.sort(expected)):
        raise ValueError("PyMaxflow fastmin needs exactly the 4-connected edges of the grid")
    return H, W


def _sweep_until_stuck(m: MRF, step, seconds, max_sweeps: int, method: str) -> SolverResult:
    """Run ``step()`` (one sweep, returns the labels) until a sweep lowers E by less than a relative 1e-12."""
    trace, best_labels, best = Trace(), None, np.inf
    converged = False
    for _ in range(max_sweeps):
        labels = step()
        energy = m.energy(labels)
        trace.append(energy, np.nan, seconds())
        improved = best_labels is None or energy < best - 1e-12 * max(1.0, abs(best))
        if energy < best:
            best_labels, best = labels.copy(), energy
        if not improved:
            converged = True
            break
    return _result(m, best_labels, trace, len(trace), converged, method)


def _result(m: MRF, labels: np.ndarray, trace: Trace, n_iter: int, converged: bool, method: str) -> SolverResult:
    onehot = np.zeros((m.n_variables, m.n_labels_max))
    onehot[np.arange(m.n_variables), labels] = 1.0
    return SolverResult(labels, onehot, m.energy(labels), trace, n_iter, converged, method)


# --- pytoulbar2 (exact), in a child process so a time limit can stop it ------------------------------------


def toulbar2_exact(m: MRF, *, time_limit: float = 60.0, resolution: int = 4) -> SolverResult | None:
    """The exact optimum by pytoulbar2's branch and bound, or its best labelling when ``time_limit`` (CPU
    seconds of the search) runs out; None when it found nothing in time (also when the model build plus
    search overrun the limit by more than 60 s and the child is killed).

    Costs are rounded to ``resolution`` decimals (toulbar2's decimalPoint); ``converged`` = the optimum was
    proven; trace has one point (energy, seconds of model build + search).
    """
    import multiprocessing as mp

    if not available("toulbar2"):
        raise ImportError("pytoulbar2 is not installed (pip install pytoulbar2)")
    if not time_limit > 0:
        raise ValueError(f"time_limit must be positive, got {time_limit!r}")
    w, V = shared_pairwise(m) if m.kind != "table" else (None, None)
    payload = (m.unaries, m.edges, w, V, m.tables if w is None else None, int(resolution), float(time_limit))
    # fork, not spawn: spawn re-imports the caller's __main__ (breaks scripts without a main guard); the child
    # only runs toulbar2, whose global state and signal handlers then stay out of this process
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_toulbar2_worker, args=(child, payload), daemon=True)
    proc.start()
    child.close()
    reply = None
    if parent.poll(time_limit + 60.0):
        reply = parent.recv()
    proc.join(5.0)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if reply is not None and "error" in reply:
        raise RuntimeError(f"pytoulbar2 failed: {reply['error']}")
    if reply is None or reply["labels"] is None:
        return None
    labels = np.asarray(reply["labels"], dtype=np.int64)
    trace = Trace()
    trace.append(m.energy(labels), np.nan, reply["seconds"])
    return _result(m, labels, trace, 1, bool(reply["proven"]), "toulbar2")


def _toulbar2_worker(conn, payload) -> None:
    unaries, edges, w, V, tables, resolution, time_limit = payload
    try:
        import pytoulbar2

        start = time.perf_counter()
        n, L = unaries.shape
        cfn = pytoulbar2.CFN(resolution=resolution, verbose=-1)
        for i in range(n):
            cfn.AddVariable(f"x{i}", range(L))
        theta = unaries - unaries.min(axis=1, keepdims=True)  # toulbar2 prefers costs >= 0
        for i in range(n):
            cfn.AddFunction([i], theta[i].tolist())
        for e, (i, j) in enumerate(edges):
            table = w[e] * V if tables is None else tables[e]
            t = table - table.min()
            cfn.AddFunction([int(i), int(j)], t.ravel().tolist())  # C order: the last variable varies fastest
        found = cfn.Solve(timeLimit=max(1, int(np.ceil(time_limit))))
        seconds = time.perf_counter() - start
        if found is None:
            conn.send({"labels": None, "seconds": seconds})
            return
        labels, cost, _ = found
        proven = cfn.GetDDualBound() >= cost - 10.0**-resolution
        conn.send({"labels": list(labels), "seconds": seconds, "proven": proven})
    except Exception as err:  # noqa: BLE001 — reported to the parent, which raises it
        conn.send({"error": repr(err)})
