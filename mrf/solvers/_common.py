"""What the solvers share: option checks, initial states, colour classes, threads, the run record.

Every solver takes max_iter, tol, time_limit, seed and progress with the same meaning and checks them
here, so a bad value fails before any work with an error naming the argument.
"""

from __future__ import annotations

import contextlib
import math
import time
import weakref
from collections.abc import Callable, Iterator

import numba
import numpy as np

from mrf import _validation as check
from mrf import kernels
from mrf.projections import softmax
from mrf.result import SolverResult, Trace

# Below this many (variable, label) pairs a kernel call takes microseconds, and waking a second thread
# costs more than it saves (and up to a scheduler tick when another process holds that core).
SERIAL_BELOW = 100_000


def positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def positive_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def choice(name: str, value, choices: tuple) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def stopping(max_iter, tol, time_limit) -> tuple[int, float, float]:
    """(max_iter, tol, time_limit in seconds or inf) after checking them."""
    max_iter = positive_int("max_iter", max_iter)
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)):
        raise TypeError(f"tol must be a number, got {type(tol).__name__}")
    if not (tol >= 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    limit = math.inf if time_limit is None else positive_float("time_limit", time_limit)
    return max_iter, float(tol), limit


def rng(seed) -> np.random.Generator:
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as err:
        raise ValueError(f"seed must be None, an int or a numpy Generator/SeedSequence, got {seed!r}") from err


# --- initial states ------------------------------------------------------------------------------------

LABEL_INITS = ("wta", "random")
MARGINAL_INITS = ("unary", "uniform", "wta", "random")


def valid_labels(m) -> np.ndarray:
    """(N, L) bool: label l exists for variable i (l < n_i)."""
    return np.arange(m.n_labels_max)[None, :] < m.n_labels[:, None]


def initial_labels(m, init, seed) -> np.ndarray:
    """x⁰ (N,) int64: "wta" (argmin θ_i, ties → lowest label), "random" (uniform over the valid labels,
    from ``seed``) or a given labelling."""
    if isinstance(init, str) or init is None:
        choice("init", "wta" if init is None else init, LABEL_INITS)
        if init == "random":
            return (rng(seed).random(m.n_variables) * m.n_labels).astype(np.int64)
        return np.argmin(m.unaries, axis=1).astype(np.int64)
    return check.labels(init, m.n_labels).copy()


def initial_marginals(m, init, seed, temperature: float) -> np.ndarray:
    """q⁰ (N, L): "unary" (softmax(−θ_i/T), the mean-field of the unaries alone), "uniform", "wta"
    (one-hot argmin θ_i), "random" (Dirichlet(1) over the valid labels, from ``seed``), a labelling (N,)
    (one-hot) or marginals (N, L)."""
    if isinstance(init, str):
        choice("init", init, MARGINAL_INITS)
        if init == "unary":
            return softmax(-m.unaries, 1.0 / temperature)
        if init == "uniform":
            return valid_labels(m) / m.n_labels[:, None].astype(float)
        if init == "random":
            q = rng(seed).exponential(size=m.unaries.shape) * valid_labels(m)
            return q / q.sum(axis=1, keepdims=True)
        return one_hot(m, initial_labels(m, "wta", seed))
    a = np.asarray(init)
    if a.ndim == 1:
        return one_hot(m, check.labels(a, m.n_labels))
    return check.marginals(a, m.n_labels, m.n_labels_max).copy()


def one_hot(m, labels: np.ndarray) -> np.ndarray:
    q = np.zeros(m.unaries.shape)
    q[np.arange(m.n_variables), labels] = 1.0
    return q


# --- colour classes and threads ------------------------------------------------------------------------

_COLOUR_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def colour_classes(m) -> tuple[np.ndarray, np.ndarray]:
    """(order (N,), offsets (C+1,)): variables sorted by a greedy proper colouring (the checkerboard on a
    4-connected grid); class c is order[offsets[c]:offsets[c+1]] and has no edge inside it."""
    if m not in _COLOUR_CACHE:
        indptr, neighbour, _, _ = m.adjacency
        colour = kernels.greedy_colouring(indptr, neighbour)
        order = np.argsort(colour, kind="stable").astype(np.int64)
        offsets = np.searchsorted(colour[order], np.arange(colour.max(initial=0) + 2)).astype(np.int64)
        _COLOUR_CACHE[m] = (order, offsets)
    return _COLOUR_CACHE[m]


@contextlib.contextmanager
def threads_for(m) -> Iterator[None]:
    """Run the kernels on one thread for small models (see SERIAL_BELOW), on all threads otherwise."""
    if m.unaries.size >= SERIAL_BELOW:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


# --- the run record ------------------------------------------------------------------------------------


class Run:
    """Clock, trace and optional tqdm progress bar of one solver run."""

    def __init__(self, method: str, max_iter: int, time_limit: float, progress: bool) -> None:
        self.method = method
        self.time_limit = time_limit
        self.trace = Trace()
        self.start = time.perf_counter()
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=max_iter, desc=method, leave=False)

    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def record(self, energy: float, free_energy: float, seconds: float) -> None:
        self.trace.append(energy, free_energy, seconds)

    def tick(self) -> None:
        """One iteration done: advance the progress bar (showing the latest recorded energy)."""
        if self.bar is not None:
            self.bar.update(1)
            if len(self.trace):
                self.bar.set_postfix(energy=f"{self.trace.energy[-1]:.6g}", refresh=False)

    def out_of_time(self) -> bool:
        return self.seconds() >= self.time_limit

    def iterate(
        self, step: Callable[[int], float], max_iter: int, tol: float, converge_from: int = 0
    ) -> tuple[int, bool]:
        """Call step(k) for k = 0, 1, ... (it updates the state, records its trace and returns a change);
        stop after max_iter steps, past the time limit, or when the change is ≤ tol at some k ≥
        converge_from (converged). Returns (n_iter, converged)."""
        n_iter, converged = 0, False
        while n_iter < max_iter and not converged:
            change = step(n_iter)
            converged = n_iter >= converge_from and change <= tol
            n_iter += 1
            self.tick()
            if self.out_of_time():
                break
        return n_iter, converged

    def result(self, m, labels: np.ndarray, marginals: np.ndarray, n_iter: int, converged: bool) -> SolverResult:
        """The SolverResult; its energy is m.energy(labels), recomputed exactly."""
        if self.bar is not None:
            self.bar.close()
        labels = labels.astype(np.int64)
        return SolverResult(labels, marginals, m.energy(labels), self.trace, n_iter, converged, self.method)
