"""UAI MARKOV files (UAI inference competitions; toulbar2, pgmpy, libDAI read them).

Whitespace-separated tokens: ``MARKOV``, N, the N cardinalities, the number of factors F, F scopes
(``k v_1 … v_k``), then per factor its entry count and its potentials φ ≥ 0 in C order (the LAST scope
variable varies fastest). Energies are θ = −log φ, and φ = exp(−θ) on writing. Only factors on 0, 1 or 2
variables are supported; they are assembled by `mrf.builders.from_factors` (duplicates summed, Potts
detected, 4-grids get ``grid_shape``). φ = 0 (θ = +inf, a forbidden state) is rejected: the MRF needs
finite energies, and padded labels never appear in a UAI file (its tables are sized by the cardinalities).
"""

from __future__ import annotations

import itertools
import math
import os
import re
from pathlib import Path

import numpy as np

from mrf import _validation as check
from mrf.builders import from_factors
from mrf.model import MRF

# exp(−θ) stays a normal float64 (full relative precision) for θ in this range
_THETA_RANGE = (-math.log(np.finfo(np.float64).max), -math.log(np.finfo(np.float64).tiny))


class _Tokens:
    """The file's tokens with their line numbers, for error messages that point into the file."""

    def __init__(self, text: str, path: Path) -> None:
        self.text, self.path = text, path
        self.items = text.split()
        self.pos = 0

    def where(self, k: int) -> str:
        if k >= len(self.items):
            return f"{self.path}: unexpected end of file (truncated?)"
        match = next(itertools.islice(re.finditer(r"\S+", self.text), k, None))
        line = self.text.count("\n", 0, match.start()) + 1
        return f"{self.path}, line {line}, token {k} ({self.items[k]!r})"

    def ints(self, count: int, what: str) -> list[int]:
        k = self.pos
        if k + count > len(self.items):
            raise ValueError(f"{self.where(len(self.items))}: expected {count} more integers for {what}")
        try:
            out = [int(t) for t in self.items[k : k + count]]
        except ValueError:
            bad = next(i for i in range(k, k + count) if not re.fullmatch(r"[+-]?\d+", self.items[i]))
            raise ValueError(f"{self.where(bad)}: expected an integer for {what}") from None
        self.pos += count
        return out


def read_uai(path: str | os.PathLike) -> MRF:
    """The MRF of a UAI MARKOV file (see the module docstring). Raises FileNotFoundError for a missing file,
    ValueError naming the path, line and token for a malformed or truncated file or a zero potential,
    NotImplementedError for factors on 3 or more variables."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"UAI file not found: {path}")
    try:
        tok = _Tokens(path.read_text(), path)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text file ({err})") from None
    if not tok.items or tok.items[0].upper() != "MARKOV":
        got = tok.items[0] if tok.items else "an empty file"
        raise ValueError(f"{path}: expected the preamble 'MARKOV' first, got {got!r} (only MARKOV is supported)")
    tok.pos = 1
    (n,) = tok.ints(1, "the number of variables")
    cards = tok.ints(n, "the cardinalities")
    if n < 1 or min(cards) < 1:
        raise ValueError(f"{path}: need N >= 1 variables with cardinalities >= 1, got N = {n}, {cards[:10]}")
    (n_factors,) = tok.ints(1, "the number of factors")
    scopes = []
    for k in range(n_factors):
        start = tok.pos
        (order,) = tok.ints(1, f"the size of factor {k}'s scope")
        scope = tok.ints(order, f"factor {k}'s scope")
        if any(not 0 <= v < n for v in scope) or len(set(scope)) != order:
            raise ValueError(f"{tok.where(start)}: factor {k} scope {scope} must name distinct variables 0..{n - 1}")
        if order > 2:
            raise NotImplementedError(
                f"{tok.where(start)}: factor {k} on variables {scope} has order {order}; only "
                "unary and pairwise factors are supported"
            )
        scopes.append(tuple(scope))
    factors = []
    for k, scope in enumerate(scopes):
        start = tok.pos
        shape = tuple(cards[v] for v in scope)
        (count,) = tok.ints(1, f"factor {k}'s table size")
        if count != math.prod(shape):
            raise ValueError(
                f"{tok.where(start)}: factor {k} on {list(scope)} has {count} entries, expected "
                f"{math.prod(shape)} (cardinalities {list(shape)})"
            )
        phi = _floats(tok, count, f"factor {k}'s table")
        bad = np.flatnonzero(~(phi > 0) | ~np.isfinite(phi))
        if bad.size:
            where = tok.where(start + 1 + bad[0])
            raise ValueError(
                f"{where}: factor {k} potential φ = {phi[bad[0]]} must be finite and > 0 "
                "(φ = 0 means energy −log φ = +inf, which the MRF does not support)"
            )
        factors.append((scope, -np.log(phi).reshape(shape)))
    if tok.pos != len(tok.items):
        raise ValueError(f"{tok.where(tok.pos)}: unexpected data after the last factor table")
    try:
        return from_factors(np.array(cards, dtype=np.int64), factors)
    except (ValueError, NotImplementedError) as err:
        raise type(err)(f"{path}: {err}") from None


def _floats(tok: _Tokens, count: int, what: str) -> np.ndarray:
    k = tok.pos
    if k + count > len(tok.items):
        raise ValueError(f"{tok.where(len(tok.items))}: expected {count} numbers for {what}")
    try:
        out = np.array(tok.items[k : k + count], dtype=np.float64)
    except ValueError:
        bad = next(i for i in range(k, k + count) if not _is_float(tok.items[i]))
        raise ValueError(f"{tok.where(bad)}: expected a number for {what}") from None
    tok.pos += count
    return out


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def write_uai(m: MRF, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write ``m`` as a UAI MARKOV file: one unary factor per variable (cardinality n_i), one pairwise
    factor per edge, φ = exp(−θ) printed with 17 significant digits so that `read_uai` gives back every
    labelling's energy to ~1e-15 relative. Raises ValueError if some θ is outside [−709, 708], where exp(−θ)
    would overflow or lose precision (rescale the model). Written atomically; an existing ``path`` is
    refused unless ``overwrite=True``."""
    counts = m.n_labels
    tables = [m.unaries[i, : counts[i]] for i in range(m.n_variables)]
    scopes = [(i,) for i in range(m.n_variables)]
    pair = m.edge_tables() if m.kind == "table" else None
    for e, (i, j) in enumerate(m.edges.tolist()):
        t = pair[e] if pair is not None else m.weights[e] * m.matrix
        tables.append(t[: counts[i], : counts[j]])
        scopes.append((i, j))
    for k, t in enumerate(tables):
        if t.size and not (_THETA_RANGE[0] <= t.min() and t.max() <= _THETA_RANGE[1]):
            raise ValueError(
                f"factor {k} on {list(scopes[k])} has θ in [{t.min():.6g}, {t.max():.6g}]; UAI "
                f"potentials exp(−θ) need θ within [{_THETA_RANGE[0]:.1f}, {_THETA_RANGE[1]:.1f}]"
            )
    lines = ["MARKOV", str(m.n_variables), " ".join(map(str, counts.tolist())), str(len(tables))]
    lines += [" ".join(map(str, (len(s), *s))) for s in scopes]
    lines.append("")
    for t in tables:
        lines.append(str(t.size))
        lines.append(" ".join(f"{p:.17g}" for p in np.exp(-t).ravel().tolist()))
    with check.atomic_output(path, overwrite) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
