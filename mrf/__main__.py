"""Command line: ``python -m mrf solve MODEL.h5|MODEL.uai --method proximal_mean_field [--max-iter N]
[--time-limit S] [--seed K] [--out labels.npy] [--plot trace.png] [--overwrite] [--progress]``.

Reads an OpenGM 2 HDF5 (.h5 / .hdf5) or UAI MARKOV (.uai) model, runs the solver and prints the energy, the
iterations and the seconds. Output files are checked before solving and written atomically; an existing
file is replaced only with --overwrite.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mrf import _validation as check

READERS = {".h5": "read_opengm", ".hdf5": "read_opengm", ".uai": "read_uai"}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _solve(args)
    except (OSError, ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    from mrf.solvers import METHODS

    parser = argparse.ArgumentParser(prog="python -m mrf", description="Pairwise MRF labelling.")
    commands = parser.add_subparsers(dest="command", required=True)
    solve = commands.add_parser("solve", help="solve a model file and print energy, iterations and seconds")
    solve.add_argument("model", type=Path, help="OpenGM 2 HDF5 (.h5, .hdf5) or UAI MARKOV (.uai) file")
    solve.add_argument("--method", choices=tuple(METHODS), default="proximal_mean_field")
    solve.add_argument("--max-iter", type=int, default=None, help="iterations (default: the method's)")
    solve.add_argument("--time-limit", type=float, default=None, help="seconds")
    solve.add_argument("--seed", type=int, default=None)
    solve.add_argument("--out", type=Path, default=None, help="write the labels (N,) int64 as .npy")
    solve.add_argument("--plot", type=Path, default=None, help="write the energy trace as an image (.png, .pdf)")
    solve.add_argument("--overwrite", action="store_true", help="replace existing --out / --plot files")
    solve.add_argument("--progress", action="store_true", help="show a progress bar")
    return parser


def _solve(args: argparse.Namespace) -> int:
    import mrf

    reader = READERS.get(args.model.suffix.lower())
    if reader is None:
        raise ValueError(f"model must be a .h5 / .hdf5 (OpenGM) or .uai file, got {args.model}")
    for path in (args.out, args.plot):  # fail before a long solve, not after
        if path is not None and path.exists() and not args.overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    m = getattr(mrf, reader)(args.model)
    options = {"time_limit": args.time_limit, "seed": args.seed, "progress": args.progress}
    if args.max_iter is not None:
        options["max_iter"] = args.max_iter
    r = mrf.solve(m, args.method, **options)
    seconds = r.trace.seconds[-1] if len(r.trace) else 0.0
    print(f"model      {args.model} ({m!r})")
    print(f"method     {args.method}")
    print(f"energy     {r.energy:.10g}")
    print(f"iterations {r.n_iter} ({'converged' if r.converged else 'not converged'})")
    print(f"seconds    {seconds:.3f}")
    if args.out is not None:
        with check.atomic_output(args.out, args.overwrite) as tmp, open(tmp, "wb") as f:
            np.save(f, r.labels)
        print(f"labels     {args.out}")
    if args.plot is not None:
        _save_plot(r, args.model.name, args.plot, args.overwrite)
        print(f"plot       {args.plot}")
    return 0


def _save_plot(result, title: str, path: Path, overwrite: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mrf.plot import plot_trace

    ax = plot_trace({result.method: result})
    ax.set_title(title)
    with check.atomic_output(path, overwrite) as tmp:
        ax.figure.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")
    plt.close(ax.figure)


if __name__ == "__main__":
    sys.exit(main())
