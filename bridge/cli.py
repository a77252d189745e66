"""The command line: ``python -m bridge quantize ...`` and ``python -m bridge demo`` (both also under torchrun).

quantize  a model of ``nnquant.models`` on a dataset of ``nnquant.data`` (or the embedded "mnist-demo");
demo      the main job: LeNet-300 to binary with PMF on the embedded 5k/1k/1k MNIST subset, offline.

With ``--out DIR`` a run writes, atomically and on rank 0 only: log.csv (one row per evaluation), best.pt and
last.pt (checkpoints), model.nnq (the packed network, ``nnquant.export``), curves.png (training loss,
validation accuracy of the rounded net, β) and summary.json. It refuses to touch a directory that already
holds any of these unless ``--resume`` (which continues from last.pt).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from bridge.demo_data import load_demo_mnist
from bridge.distributed import DataParallel, init_distributed
from bridge.methods import METHODS
from bridge.plots import plot_training_curves
from bridge.quantize import quantize_net
from nnquant.checkpoint import CheckpointError, write_atomic
from nnquant.data import DATASET_NAMES, load_dataset
from nnquant.export import export_packed, packed_size_report
from nnquant.levels import make_levels
from nnquant.models import MODELS, LeNet300, build_model
from nnquant.rounding import count_levels, quantized_tensors

OUTPUT_FILES = ("log.csv", "best.pt", "last.pt", "model.nnq", "curves.png", "summary.json")
DEMO_DATASET = "mnist-demo"
DEMO_ITERATIONS = 500  # ≈ 91 % test accuracy in 5–15 s on 2 cores (one torch thread)
# One intra-op thread for the demo's small network: on a busy machine torch's OpenMP threads spin while they
# wait for each other (measured on 2 shared cores: 162 s with 2 threads, 11 s with 1).
DEMO_THREADS = 1


def parse_levels(text: str) -> int | list[float]:
    """ "2" → 2 levels {−1, 1}; "3" → {−1, 0, 1}; "-1,0,1" or "-0.5,0.5" → that list (checked by make_levels)."""
    try:
        levels: int | list[float] = int(text) if "," not in text else [float(v) for v in text.split(",")]
        make_levels(levels)
    except (ValueError, TypeError) as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None
    return levels


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _run_options(p: argparse.ArgumentParser, iterations_required: bool, threads: int | None = None) -> None:
    p.add_argument("--method", choices=METHODS, default="pmf", help="quantization method (default pmf)")
    p.add_argument("--levels", type=parse_levels, default=2, help="a count (2, 3, ...) or a list like -1,0,1")
    if iterations_required:
        p.add_argument("--iterations", type=positive_int, required=True, help="mini-batch iterations")
    else:
        p.add_argument("--iterations", type=positive_int, default=DEMO_ITERATIONS, help="mini-batch iterations")
    p.add_argument("--batch-size", type=positive_int, default=100, help="global mini-batch (over all ranks)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the paper's 1e-3)")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default=None, help="default: adam, as the paper")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda if available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=positive_int, default=None, help="default: iterations // 20")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    default = "torch's default" if threads is None else threads
    p.add_argument("--threads", type=positive_int, default=threads, help=f"torch CPU threads (default {default})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bridge", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quantize", help="quantize a model on a dataset")
    q.add_argument("--model", choices=tuple(MODELS), required=True)
    q.add_argument("--dataset", choices=(*DATASET_NAMES, DEMO_DATASET), required=True)
    q.add_argument("--data-dir", type=Path, default=None, help="default: ../shared/data/<dataset>")
    q.add_argument("--out", type=Path, default=None, help="output directory (default quantize-MODEL-DATASET-METHOD)")
    _run_options(q, iterations_required=True)
    d = sub.add_parser("demo", help="LeNet-300 to binary with PMF on the embedded MNIST subset (offline)")
    d.add_argument("--out", type=Path, default=None, help="also write the run's files into this directory")
    _run_options(d, iterations_required=False, threads=DEMO_THREADS)
    return parser


def check_outputs(out: Path, resume: bool) -> None:
    """Refuse to overwrite a run's files unless resuming it; nothing is written here."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a directory")
    if resume:
        if not (out / "last.pt").is_file():
            raise FileNotFoundError(f"--resume: {out / 'last.pt'} does not exist, there is no run to continue")
        return
    existing = [name for name in OUTPUT_FILES if (out / name).exists()]
    if existing:
        raise FileExistsError(f"--out {out} already holds {existing}; pass --resume to continue that run")


def run_job(model: torch.nn.Module, data: dict[str, Dataset], args: argparse.Namespace, title: str) -> dict | None:
    """Quantize, then (rank 0) export/plot/summarise; returns the summary on rank 0, None on the others."""
    start = time.perf_counter()
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    parallel: DataParallel | None = init_distributed(device)
    writer = parallel is None or parallel.is_writer
    out: Path | None = args.out
    if out is not None:
        check_outputs(out, args.resume)
        if parallel is not None:
            parallel.barrier()  # all ranks have checked before rank 0 writes
    elif args.resume:
        raise ValueError("--resume needs --out (the directory of the run to continue)")
    overrides = {k: v for k, v in (("lr", args.lr), ("optimizer", args.optimizer)) if v is not None}
    qmodel, result = quantize_net(
        model,
        data["train"],
        data["val"],
        test_data=data["test"],
        levels=args.levels,
        method=args.method,
        iterations=args.iterations,
        batch_size=args.batch_size,
        device=device,
        seed=args.seed,
        eval_every=args.eval_every,
        checkpoint_dir=out,
        log_path=out / "log.csv" if out is not None else None,
        progress=not args.no_progress,
        resume=args.resume,
        distributed=parallel or False,
        **overrides,
    )
    if not writer:
        return None
    size = export_packed(qmodel, out / "model.nnq") if out is not None else packed_size_report(qmodel)
    summary = {
        "title": title,
        "method": args.method,
        "levels": make_levels(args.levels).tolist(),
        "iterations": result.iterations,
        "batch_size": args.batch_size,
        "world_size": parallel.world_size if parallel is not None else 1,
        "device": device,
        "seed": args.seed,
        "test_acc": result.test_acc,
        "best_val_acc": result.best_val_acc,
        "best_iteration": result.best_iteration,
        **size,
        "distinct_levels": count_levels(qmodel),
        "tensor_levels": {name: list(q) for name, (_, q) in quantized_tensors(qmodel).items()},
        "seconds": round(time.perf_counter() - start, 3),
    }
    if out is not None:
        plot_training_curves(result.history, out / "curves.png", title=title)
        write_atomic(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    return summary


def print_summary(summary: dict, out: Path | None) -> None:
    print(summary["title"])
    print(f"test accuracy of the rounded network: {100 * summary['test_acc']:.2f} %")
    print(f"best validation accuracy {100 * summary['best_val_acc']:.2f} % at iteration {summary['best_iteration']}")
    print("distinct values per quantized tensor:")
    for name, n in summary["distinct_levels"].items():
        print(f"  {name:<28} {n}  (levels {summary['tensor_levels'][name]})")
    print(
        f"packed size: {summary['packed_bytes']:,} bytes vs float32 {summary['float32_bytes']:,} bytes "
        f"({summary['ratio']:.1f}x smaller)"
    )
    print(f"time: {summary['seconds']:.1f} s on {summary['world_size']} process(es), device {summary['device']}")
    if out is not None:
        print(f"files: {', '.join(str(out / name) for name in OUTPUT_FILES)}")


def _datasets(args: argparse.Namespace) -> dict[str, Dataset]:
    if args.dataset == DEMO_DATASET:
        if getattr(args, "data_dir", None) is not None:
            raise ValueError(f"--data-dir does not apply to --dataset {DEMO_DATASET} (embedded in the package)")
        return {split: load_demo_mnist(split) for split in ("train", "val", "test")}
    return {split: load_dataset(args.dataset, args.data_dir, split) for split in ("train", "val", "test")}


def _rank_prefix() -> str:
    """ "[rank r] " on the ranks > 0 of a process group, so that torchrun's merged output says who failed."""
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    return f"[rank {rank}] " if rank else ""


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m bridge``; returns the exit status (2 on bad input, 1 on a failed run)."""
    args = build_parser().parse_args(argv)
    was_initialized = dist.is_available() and dist.is_initialized()
    try:
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)  # the float model's init; the quantized latents are seeded by the run
        if args.command == "demo":
            data = _datasets(argparse.Namespace(dataset=DEMO_DATASET))
            model = LeNet300()
            title = f"{args.method} on LeNet-300, levels {args.levels}, embedded MNIST subset 5k/1k/1k"
        else:
            data = _datasets(args)
            spec = "mnist" if args.dataset == DEMO_DATASET else args.dataset
            model = build_model(args.model, spec)
            args.out = args.out or Path(f"quantize-{args.model}-{args.dataset}-{args.method}")
            title = f"{args.method} on {args.model}, levels {args.levels}, {args.dataset}"
        summary = run_job(model, data, args, title)
    except FloatingPointError as e:
        print(f"{_rank_prefix()}error: {e}", file=sys.stderr)
        return 1
    except (ValueError, OSError, CheckpointError) as e:
        print(f"{_rank_prefix()}error: {e}", file=sys.stderr)
        return 2
    finally:
        if not was_initialized and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if summary is not None:
        print_summary(summary, args.out)
    return 0
