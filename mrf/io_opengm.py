"""OpenGM 2 HDF5 models (the Kappes et al. benchmark format), read and written with h5py, no OpenGM needed.

Layout of the group (default name "gm"), all integer datasets uint64:
* ``header`` = [2, 0, N, numFactors, numFunctionTypes, (typeId, numFunctions) × numFunctionTypes, valueType]
  (valueType 0 float / 1 double / 2 uint / 3 int; old files omit it).
* ``numbers-of-states`` (N,) label counts.
* ``function-id-<typeId>/indices`` and ``/values``: the functions of one type, back to back.
* ``factors``: per factor [functionIndex, functionTypeIndex (row of the header list), numVars, vars...].

Function types read: 16000 explicit ([dim, shape...] / table with the FIRST variable's label varying
fastest, Fortran order), 16002 w·|a−b|, 16003 w·min(|a−b|, t), 16004 w·(a−b)², 16005 w·min((a−b)², t)
(indices [L1, L2]; values [w] or [t, w]), 16006 Potts ([L1, L2] / [valueEqual, valueNotEqual]) and 16008
constant ([dim, shape...] / [value]). Written: 16000 (unaries, matrix and table edges) and 16006 (Potts
edges). Factors are assembled by `mrf.builders.from_factors`: unary factors summed into θ_i, factors on the
same pair summed into one edge, all-Potts models stored as kind "potts", 4-grids get ``grid_shape``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mrf import _validation as check
from mrf.builders import from_factors
from mrf.model import MRF

EXPLICIT, ABS_DIFF, TRUNC_ABS_DIFF, SQ_DIFF, TRUNC_SQ_DIFF, POTTS, CONSTANT = (
    16000,
    16002,
    16003,
    16004,
    16005,
    16006,
    16008,
)
_PARAMETRIC = {ABS_DIFF: 1, TRUNC_ABS_DIFF: 2, SQ_DIFF: 1, TRUNC_SQ_DIFF: 2, POTTS: 2}  # number of values


def read_opengm(path: str | os.PathLike, group: str = "gm") -> MRF:
    """The MRF stored in an OpenGM 2 HDF5 file (see the module docstring for what is supported).

    Raises FileNotFoundError for a missing file, ValueError naming the path for a corrupt, truncated or
    inconsistent file, NotImplementedError for factors of order >= 3 or unsupported function types.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"OpenGM file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            if group not in f:
                raise ValueError(f"{path}: no group {group!r} (groups: {list(f)})")
            g = f[group]
            header = _dataset(g, "header", path)
            n_states = _dataset(g, "numbers-of-states", path)
            types = _parse_header(header, path)
            functions = {
                t: _parse_functions(g, t, count, path, f"{path}: function-id-{t}") for t, count in types if count
            }
            n_factors = int(header[3])
            raw = _dataset(g, "factors", path) if n_factors else np.zeros(0, np.uint64)
    except OSError as err:  # h5py reports truncated / non-HDF5 files as OSError
        raise ValueError(f"{path}: not a readable HDF5 file ({err})") from err
    n = int(header[2])
    if n_states.shape != (n,) or n < 1 or n_states.min() < 1:
        raise ValueError(f"{path}: numbers-of-states must hold {n} label counts >= 1, got shape {n_states.shape}")
    factors = _parse_factors(raw, n_factors, types, functions, n, path)
    try:
        return from_factors(n_states.astype(np.int64), factors)
    except (ValueError, NotImplementedError) as err:
        raise type(err)(f"{path}: {err}") from None


def _dataset(g, name: str, path: Path) -> np.ndarray:
    if name not in g:
        raise ValueError(f"{path}: dataset {g.name}/{name} is missing")
    return np.asarray(g[name][()]).reshape(-1)


def _parse_header(h: np.ndarray, path: Path) -> list[tuple[int, int]]:
    if h.size < 5:
        raise ValueError(f"{path}: header has {h.size} entries, expected at least 5")
    if (int(h[0]), int(h[1])) != (2, 0):
        raise ValueError(f"{path}: OpenGM HDF5 format version {int(h[0])}.{int(h[1])} is not supported (need 2.0)")
    n_types = int(h[4])
    if h.size not in (5 + 2 * n_types, 6 + 2 * n_types):
        raise ValueError(f"{path}: header has {h.size} entries but lists {n_types} function types")
    if h.size == 6 + 2 * n_types and int(h[-1]) > 3:
        raise ValueError(f"{path}: header value-type flag {int(h[-1])} is not 0..3")
    return [(int(h[5 + 2 * k]), int(h[6 + 2 * k])) for k in range(n_types)]


def _parse_functions(g, type_id: int, count: int, path: Path, where: str) -> list[np.ndarray]:
    """The `count` functions of one type, each as its full energy table (views into `values` if explicit)."""
    if type_id not in (EXPLICIT, CONSTANT, *_PARAMETRIC):
        raise NotImplementedError(f"{path}: OpenGM function type {type_id} is not supported")
    sub = g.get(f"function-id-{type_id}")
    if sub is None:
        raise ValueError(f"{where} is missing but the header lists {count} functions of that type")
    idx = _dataset(sub, "indices", path).astype(np.int64)
    val = _dataset(sub, "values", path).astype(np.float64)
    out, p, v = [], 0, 0
    for k in range(count):
        if type_id in _PARAMETRIC:
            if p + 2 > idx.size or v + _PARAMETRIC[type_id] > val.size:
                raise ValueError(f"{where}: data ends inside function {k} of {count} (truncated?)")
            out.append(_parametric_table(type_id, int(idx[p]), int(idx[p + 1]), val[v : v + _PARAMETRIC[type_id]]))
            p, v = p + 2, v + _PARAMETRIC[type_id]
            continue
        if p >= idx.size:
            raise ValueError(f"{where}: indices end inside function {k} of {count} (truncated?)")
        dim = int(idx[p])
        shape = tuple(int(s) for s in idx[p + 1 : p + 1 + dim])
        size = 1 if type_id == CONSTANT else int(np.prod(shape))
        if len(shape) != dim or v + size > val.size or min(shape, default=1) < 1:
            raise ValueError(f"{where}: function {k} of {count} is truncated or has an invalid shape {shape}")
        table = np.full(shape, val[v]) if type_id == CONSTANT else val[v : v + size].reshape(shape, order="F")
        out.append(table)
        p, v = p + 1 + dim, v + size
    if p != idx.size or v != val.size:
        raise ValueError(f"{where}: {idx.size - p} indices and {val.size - v} values left over after {count} functions")
    return out


def _parametric_table(type_id: int, n1: int, n2: int, params: np.ndarray) -> np.ndarray:
    a, b = np.ogrid[:n1, :n2]
    if type_id == POTTS:
        return np.where(a == b, params[0], params[1]).astype(np.float64)
    d = np.abs(a - b).astype(np.float64)
    if type_id in (SQ_DIFF, TRUNC_SQ_DIFF):
        d = d * d
    if type_id == ABS_DIFF or type_id == SQ_DIFF:
        return params[0] * d
    return params[1] * np.minimum(d, params[0])  # truncated: values are [truncation t, weight w]


def _parse_factors(raw, n_factors, types, functions, n, path) -> list[tuple[tuple[int, ...], np.ndarray]]:
    r = raw.astype(np.int64).tolist()
    out, p = [], 0
    for k in range(n_factors):
        if p + 3 > len(r) or p + 3 + r[p + 2] > len(r):
            raise ValueError(f"{path}: factors dataset ends inside factor {k} of {n_factors} (truncated?)")
        fi, ti, order = r[p], r[p + 1], r[p + 2]
        scope = tuple(r[p + 3 : p + 3 + order])
        p += 3 + order
        if not 0 <= ti < len(types):
            raise ValueError(f"{path}: factor {k} has function type index {ti}, header lists {len(types)} types")
        type_id, count = types[ti]
        if not 0 <= fi < count:
            raise ValueError(f"{path}: factor {k} uses function {fi} of type {type_id}, which has {count}")
        if any(not 0 <= v < n for v in scope):
            raise ValueError(f"{path}: factor {k} has variables {list(scope)} outside 0..{n - 1}")
        out.append((scope, functions[type_id][fi]))
    if p != len(r):
        raise ValueError(f"{path}: factors dataset has {len(r) - p} entries left over after {n_factors} factors")
    return out


def write_opengm(m: MRF, path: str | os.PathLike, *, overwrite: bool = False, group: str = "gm") -> None:
    """Write ``m`` as an OpenGM 2 HDF5 file (values as double): one explicit unary function per variable,
    one Potts function per distinct weight (kind "potts"), one explicit w·V per distinct weight (kind
    "matrix"), else one explicit table per edge restricted to the valid labels. Energies of every labelling
    are preserved exactly (``read_opengm`` gives them back). The file is written to a temporary file in the
    same directory and moved into place; an existing ``path`` is refused unless ``overwrite=True``."""
    import h5py

    n, counts = m.n_variables, m.n_labels
    explicit = [m.unaries[i, : counts[i]] for i in range(n)]
    factors = [[i, 0, 1, i] for i in range(n)]
    potts = []
    if m.kind == "potts":
        uniq, which = np.unique(m.weights, return_inverse=True)
        potts = [(0.0, float(w)) for w in uniq]
        factors += [[int(which[e]), 1, 2, *sorted(m.edges[e].tolist())] for e in range(m.n_edges)]
    elif m.kind == "matrix":  # one explicit w·V (or w·Vᵀ for an edge i > j) per distinct case
        flipped = (m.edges[:, 0] > m.edges[:, 1]).astype(np.float64)
        keys, which = np.unique(np.stack([m.weights, flipped], 1), axis=0, return_inverse=True)
        first = len(explicit)
        explicit += [w * (m.matrix.T if f else m.matrix) for w, f in keys]
        pairs = zip(which.reshape(-1).tolist(), m.edges.tolist(), strict=True)
        factors += [[first + k, 0, 2, *sorted(ij)] for k, ij in pairs]
    else:
        tables = m.tables
        for e, (i, j) in enumerate(m.edges.tolist()):
            t = tables[e, : counts[i], : counts[j]]
            if i > j:
                i, j, t = j, i, t.T
            factors.append([len(explicit), 0, 2, i, j])
            explicit.append(t)
    types = [(EXPLICIT, len(explicit))] + ([(POTTS, len(potts))] if potts else [])
    header = [2, 0, n, len(factors), len(types), *[x for t in types for x in t], 1]
    with check.atomic_output(path, overwrite) as tmp, h5py.File(tmp, "w") as f:
        g = f.create_group(group)
        g["header"] = np.array(header, np.uint64)
        g["numbers-of-states"] = counts.astype(np.uint64)
        idx = [x for t in explicit for x in (t.ndim, *t.shape)]
        g["function-id-16000/indices"] = np.array(idx, np.uint64)
        g["function-id-16000/values"] = np.concatenate([t.ravel(order="F") for t in explicit])
        if potts:
            g["function-id-16006/indices"] = np.repeat(np.int64(m.n_labels_max), 2 * len(potts)).astype(np.uint64)
            g["function-id-16006/values"] = np.array(potts, np.float64).ravel()
        g["factors"] = np.array([x for fa in factors for x in fa], np.uint64)
