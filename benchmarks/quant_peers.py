"""Our PMF and BC beside the quantization-aware-training libraries torchao PARQ and brevitas, same everything.

    python -m benchmarks.quant_peers --quick      # ~1 minute: LeNet-300, binary, 300 iterations, 10k subset
    python -m benchmarks.quant_peers              # LeNet-300 and LeNet-5, binary and ternary, 20k its, 3 seeds

Every run shares the model (the paper's architectures, reference init), data (MNIST 50k/10k/10k), mini-batch
stream (seeded), number of steps, optimizer (Adam lr 1e-3 × 0.2 at 35 % of the run, no weight decay) and seed;
the last iterate is rounded and tested. Methods:

* ref: the float network (baseline for time and memory).
* bc: ``nnquant.BinaryConnect`` (all parameters, levels {−1, 1}, w̃ clipped to [−1, 1]); binary only.
* pmf: ``bridge.quantize_net`` (all parameters, levels {−1, 1} or {−1, 0, 1}, its default β schedule).
* parq-default: torchao ``QuantOptimizer`` as its README uses it: weight matrices only (biases float),
  ``UnifQuantizer`` (b = 1: levels ±mean|w| per tensor) / ``TernaryUnifQuantizer`` (b = 0: {−s, 0, s},
  s = max|w|/1.5), ``ProxPARQ`` annealed from step 0 to 90 % of the run, quant_period 10.
* parq-paper: the same optimizer and prox map on ALL parameters with the paper's fixed levels (no scale), via a
  ``Quantizer`` subclass (PARQ's documented extension point) that returns the fixed level set.
* brevitas-default: ``QuantLinear``/``QuantConv2d`` with ``SignedBinaryWeightPerTensorConst`` /
  ``SignedTernaryWeightPerTensorConst`` (constant scale 0.1), float biases.
* brevitas-paper: the same quantizers with scale 1.0 (levels {−1, 1} / {−1, 0, 1}) and biases quantized by
  a binary/ternary bias quantizer built from brevitas' own injector classes.

Reported per run: test accuracy of the exactly quantized network, distinct values per tensor (counted on the
rounded weights), CPU seconds per training step (``training_step_seconds``: 3 × 40 steps after the run, no
evaluation, 1 thread), peak RSS of the run's own process (each run is a fresh spawned process),
bytes of training state (parameters, Adam moments, the peer's own state), packed size (per tensor:
⌈log₂ k⌉ bits per entry + a float32 codebook of its k values, or float32 when that is smaller). A peer that
cannot be imported is skipped with the reason in the output. Results: ``benchmarks/results/quant_peers/``.
"""

from __future__ import annotations

import argparse
import copy
import math
import multiprocessing as mp
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from benchmarks._common import (
    load_split,
    markdown_table,
    mean_std,
    mean_std_cell,
    missing_full_data,
    peak_rss_mib,
    pyplot,
    read_json,
    results_dir,
    training_step_seconds,
    write_csv,
    write_json,
    write_text,
)

METHODS = ("ref", "bc", "pmf", "parq-default", "parq-paper", "brevitas-default", "brevitas-paper")
PEER_MODULES = {"parq": "torchao.prototype.parq", "brevitas": "brevitas"}
LEVELS = {2: (-1.0, 1.0), 3: (-1.0, 0.0, 1.0)}


@dataclass(frozen=True)
class Run:
    model: str
    method: str
    levels: int
    seed: int
    iterations: int
    train_limit: int | None

    @property
    def key(self) -> str:
        lv = "float" if self.method == "ref" else f"L{self.levels}"
        subset = f"-n{self.train_limit}" if self.train_limit else ""
        return f"mnist-{self.model}-{self.method}-{lv}-s{self.seed}-it{self.iterations}{subset}"


def common_settings(iterations: int) -> dict:
    """Optimizer settings shared by every method (``bridge.quantize.paper_defaults`` without its β)."""
    from bridge.quantize import paper_defaults

    settings = paper_defaults(iterations)
    settings.pop("beta")
    return settings


# --- torchao PARQ -----------------------------------------------------------------------------------------


def parq_method(levels: int, protocol: str, iterations: int):
    """An ``nnquant`` Method whose optimizer step is PARQ's ``QuantOptimizer`` around the loop's Adam."""
    from torchao.prototype.parq import ProxPARQ, Quantizer, QuantOptimizer, TernaryUnifQuantizer, UnifQuantizer

    from nnquant.methods import Method

    class FixedLevels(Quantizer):
        """The paper's levels, no scale: q = the nearest of the fixed Q."""

        def __init__(self, values: tuple[float, ...]):
            super().__init__(center=False)
            self.values = values

        def get_quant_size(self, b: int) -> int:
            return len(self.values)

        def quantize(self, p, b, dim=None):
            Q = torch.tensor(self.values, dtype=p.dtype, device=p.device)
            return Q[torch.bucketize(p, (Q[:-1] + Q[1:]) / 2)], Q

    if protocol == "paper":
        quantizer, bits = FixedLevels(LEVELS[levels]), {2: 1, 3: 0}[levels]
    else:
        quantizer, bits = (UnifQuantizer(), 1) if levels == 2 else (TernaryUnifQuantizer(), 0)

    class Parq(Method):
        name = f"parq-{protocol}"

        def __init__(self):
            self.qopt = None
            self.quantized: list[nn.Parameter] = []

        def trainable(self, trained):
            params = [p for p in trained.parameters() if p.requires_grad]
            self.quantized = [p for p in params if protocol == "paper" or p.dim() > 1]
            rest = [p for p in params if all(p is not q for q in self.quantized)]
            return [{"params": self.quantized, "quant_bits": bits}] + ([{"params": rest}] if rest else [])

        def after_backward(self, trained, optimizer, k):
            if self.qopt is None:
                prox = ProxPARQ(anneal_start=0, anneal_end=max(1, int(0.9 * iterations)), steepness=10)
                self.qopt = QuantOptimizer(optimizer, quantizer, prox, quant_period=10)
            self.qopt.step()

        @torch.no_grad()
        def rounded(self, trained):
            out = copy.deepcopy(trained)
            by_id = {id(p): n for n, p in trained.named_parameters()}
            params = dict(out.named_parameters())
            for p in self.quantized:
                latent = self.qopt.state[p]["latent"] if self.qopt is not None and p in self.qopt.state else p
                _, Q = quantizer.quantize(latent.detach(), bits)
                params[by_id[id(p)]].copy_(Q[torch.bucketize(latent, (Q[:-1] + Q[1:]) / 2)])
            return out

        def extra_state_bytes(self) -> int:
            if self.qopt is None:
                return 0
            return sum(
                t.numel() * t.element_size()
                for s in self.qopt.state.values()
                for k, t in s.items()
                if k in ("latent", "quants")
            )

    return Parq()


# --- brevitas ---------------------------------------------------------------------------------------------


def brevitas_method(levels: int, protocol: str):
    """An ``nnquant`` Method that swaps Linear/Conv2d for brevitas QuantLinear/QuantConv2d."""
    import brevitas.nn as qnn
    from brevitas.core.function_wrapper import InplaceTensorClampSte
    from brevitas.quant import SignedBinaryWeightPerTensorConst, SignedTernaryWeightPerTensorConst
    from brevitas.quant.base import NarrowIntQuant, PerTensorConstScaling2bit, SignedBinaryClampedConst
    from brevitas.quant.solver import BiasQuantSolver

    from nnquant.methods import Method

    weight_quant = SignedBinaryWeightPerTensorConst if levels == 2 else SignedTernaryWeightPerTensorConst
    bias_quant = None
    if protocol == "paper":
        weight_quant = weight_quant.let(scaling_const=1.0)
        bases = (SignedBinaryClampedConst,) if levels == 2 else (NarrowIntQuant, PerTensorConstScaling2bit)
        bias_quant = type(
            "PaperBias",
            (*bases, BiasQuantSolver),
            {"requires_input_scale": False, "tensor_clamp_impl": InplaceTensorClampSte, "scaling_const": 1.0},
        )

    class Brevitas(Method):
        name = f"brevitas-{protocol}"

        def prepare(self, model):
            out = copy.deepcopy(model)
            for name, m in list(out.named_modules()):
                if isinstance(m, nn.Linear):
                    new = qnn.QuantLinear(m.in_features, m.out_features, bias=m.bias is not None, **self._quant())
                elif isinstance(m, nn.Conv2d):
                    new = qnn.QuantConv2d(
                        m.in_channels,
                        m.out_channels,
                        m.kernel_size,
                        m.stride,
                        m.padding,
                        bias=m.bias is not None,
                        **self._quant(),
                    )
                else:
                    continue
                new.load_state_dict(m.state_dict(), strict=False)
                parent, _, child = name.rpartition(".")
                setattr(out.get_submodule(parent), child, new)
            return out

        @staticmethod
        def _quant() -> dict:
            kw = {"weight_quant": weight_quant, "return_quant_tensor": False}
            return kw | ({"bias_quant": bias_quant} if bias_quant is not None else {})

        @torch.no_grad()
        def rounded(self, trained):
            out = copy.deepcopy(trained).eval()
            for name, m in list(out.named_modules()):
                if isinstance(m, qnn.QuantLinear):
                    plain = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
                elif isinstance(m, qnn.QuantConv2d):
                    plain = nn.Conv2d(
                        m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, bias=m.bias is not None
                    )
                else:
                    continue
                plain.weight.copy_(m.quant_weight().value)
                if m.bias is not None:
                    qb = m.quant_bias() if bias_quant is not None else None
                    plain.bias.copy_(qb.value if qb is not None and hasattr(qb, "value") else m.bias)
                parent, _, child = name.rpartition(".")
                setattr(out.get_submodule(parent), child, plain)
            return out.train(trained.training)

    return Brevitas()


# --- one run (in its own process) -------------------------------------------------------------------------


def distinct_values(model: nn.Module) -> dict[str, int]:
    """Distinct values of every Linear/Conv weight and bias of a plain model."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            for key, p in m.named_parameters(recurse=False):
                out[f"{name}.{key}"] = int(torch.unique(p.detach()).numel())
    return out


def packed_bytes(model: nn.Module) -> int:
    """Σ over the state dict: min(float32, ⌈log₂ k⌉ bits per entry + k float32 codebook) for k distinct values."""
    total_bits = 0
    for t in model.state_dict().values():
        if not t.is_floating_point():
            total_bits += t.numel() * t.element_size() * 8
            continue
        k = int(torch.unique(t).numel())
        coded = t.numel() * max(1, math.ceil(math.log2(max(k, 2)))) + 32 * k
        total_bits += min(32 * t.numel(), coded)
    return math.ceil(total_bits / 8)


def make_runner(run: Run):
    """The nnquant Method that trains ``run`` (PMF goes through ``bridge.quantize_net`` instead)."""
    from nnquant.methods import BinaryConnect, Float

    return {
        "ref": Float,
        "bc": lambda: BinaryConnect(clip=1.0),
        "parq-default": lambda: parq_method(run.levels, "default", run.iterations),
        "parq-paper": lambda: parq_method(run.levels, "paper", run.iterations),
        "brevitas-default": lambda: brevitas_method(run.levels, "default"),
        "brevitas-paper": lambda: brevitas_method(run.levels, "paper"),
    }[run.method]()


def _execute(run: Run, out_path: str) -> None:
    """Child process body: train, round, measure, write the record (or the reason it could not run)."""
    record: dict = {**run.__dict__, "key": run.key, "status": "ok"}
    try:
        from benchmarks.paper_table import float_model
        from bridge.methods import make_method
        from bridge.quantize import paper_defaults, quantize_net
        from nnquant.evaluate import evaluate
        from nnquant.train import train

        peer = run.method.split("-")[0]
        if peer in PEER_MODULES:
            try:
                __import__(PEER_MODULES[peer])
            except Exception as err:  # noqa: BLE001 (any import failure means: skip this peer, say why)
                record.update(status="skipped", reason=f"import {PEER_MODULES[peer]} failed: {err!r}")
                write_json(out_path, record)
                return
            record["peer_version"] = sys.modules[PEER_MODULES[peer].split(".")[0]].__version__
        torch.set_num_threads(1)  # this is a child process of its own
        train_data, _ = load_split("mnist", "train", limit=run.train_limit)
        test_data, source = load_split("mnist", "test")
        model = float_model(run.model, "mnist", run.seed)
        settings = common_settings(run.iterations)
        t0 = time.perf_counter()
        if run.method == "pmf":
            method = None
            rounded, _ = quantize_net(
                model,
                train_data,
                levels=run.levels,
                iterations=run.iterations,
                seed=run.seed,
                progress=False,
                **settings,
            )
        else:
            method = make_runner(run)
            result = train(
                model,
                train_data,
                method=method,
                iterations=run.iterations,
                seed=run.seed,
                progress=False,
                eval_every=run.iterations,
                **settings,
            )
            rounded = result.rounded
            trainable = [p for p in result.model.parameters() if p.requires_grad]
            extra = method.extra_state_bytes() if hasattr(method, "extra_state_bytes") else 0
            record["training_state_bytes"] = 3 * sum(p.numel() * p.element_size() for p in trainable) + extra
        train_seconds = time.perf_counter() - t0
        timed = make_method("pmf", run.levels, beta=paper_defaults(run.iterations)["beta"]) if method is None else None
        timed = timed or make_runner(run)
        cpu_step = training_step_seconds(
            {run.method: timed}, lambda: float_model(run.model, "mnist", run.seed), train_data
        )
        _, test_acc = evaluate(rounded, test_data, loss_fn=nn.functional.cross_entropy)
        counts = distinct_values(rounded)
        float_bytes = sum(t.numel() * 4 for t in rounded.state_dict().values())
        record.update(
            test_acc=100 * test_acc,
            seconds_per_step=cpu_step[run.method],
            wall_seconds_per_iteration=train_seconds / run.iterations,
            peak_rss_mib=peak_rss_mib(),
            distinct_values=counts,
            max_distinct_weight_values=max(v for k, v in counts.items() if k.endswith("weight")),
            max_distinct_bias_values=max((v for k, v in counts.items() if k.endswith("bias")), default=0),
            packed_bytes=packed_bytes(rounded),
            float32_bytes=float_bytes,
            data=source,
            torch=torch.__version__,
        )
        if run.method == "pmf":  # u-space latents: d values per weight, plus Adam's two moments
            n = sum(p.numel() for p in rounded.parameters())
            record["training_state_bytes"] = 3 * n * run.levels * 4
    except Exception as err:  # noqa: BLE001 (a peer that breaks is reported, not allowed to stop the table)
        record.update(status="failed", reason=f"{err!r}", traceback=traceback.format_exc()[-3000:])
    write_json(out_path, record)


def run_in_process(run: Run, out_path: Path) -> dict:
    """Run ``run`` in a fresh spawned process (so its peak RSS is its own) and return its record."""
    proc = mp.get_context("spawn").Process(target=_execute, args=(run, str(out_path)))
    proc.start()
    proc.join()
    if not out_path.exists():
        write_json(
            out_path, {**run.__dict__, "key": run.key, "status": "failed", "reason": f"exit code {proc.exitcode}"}
        )
    return read_json(out_path)


# --- table ------------------------------------------------------------------------------------------------


def build_table(records: list[dict], out: Path, title: str) -> list[dict]:
    rows = []
    refs = {(r["model"], r["seed"]): r for r in records if r["method"] == "ref" and r["status"] == "ok"}
    groups = sorted({(r["model"], r["levels"]) for r in records})
    for model, levels in groups:
        for method in METHODS:
            if method == "ref" and levels != min(lv for m, lv in groups if m == model):
                continue  # REF is levels-free: one row per model
            runs = [
                r
                for r in records
                if (r["model"], r["method"]) == (model, method) and (method == "ref" or r["levels"] == levels)
            ]
            if not runs:
                continue
            ok = [r for r in runs if r["status"] == "ok"]
            row = {"model": model, "levels": "float" if method == "ref" else levels, "method": method, "seeds": len(ok)}
            if not ok:
                row["status"] = f"{runs[0]['status']}: {runs[0].get('reason', '')}"[:200]
                rows.append(row)
                continue
            acc, acc_std, n_acc = mean_std(r["test_acc"] for r in ok)
            rel = [
                r["seconds_per_step"] / refs[(model, r["seed"])]["seconds_per_step"]
                for r in ok
                if (model, r["seed"]) in refs
            ]
            rss = [
                r["peak_rss_mib"] - refs[(model, r["seed"])]["peak_rss_mib"] for r in ok if (model, r["seed"]) in refs
            ]
            row.update(
                status="ok",
                test_acc=mean_std_cell(acc, acc_std, n_acc, show_n=False),
                test_acc_mean=acc,
                distinct_w=ok[0]["max_distinct_weight_values"],
                distinct_b=ok[0]["max_distinct_bias_values"],
                cpu_ms_per_step=f"{mean_std(r['seconds_per_step'] for r in ok)[0] * 1e3:.2f}",
                step_vs_ref=f"{mean_std(rel)[0]:.2f}×" if rel else None,
                peak_rss_mib=f"{mean_std(r['peak_rss_mib'] for r in ok)[0]:.0f}",
                rss_vs_ref_mib=f"{mean_std(rss)[0]:+.0f}" if rss else None,
                state_mib=f"{ok[0]['training_state_bytes'] / 2**20:.2f}",
                packed_kib=f"{ok[0]['packed_bytes'] / 1024:.1f}",
                ratio=f"{ok[0]['float32_bytes'] / ok[0]['packed_bytes']:.1f}×",
            )
            rows.append(row)
    columns = [
        "model",
        "levels",
        "method",
        "seeds",
        "test_acc",
        "distinct_w",
        "distinct_b",
        "cpu_ms_per_step",
        "step_vs_ref",
        "peak_rss_mib",
        "rss_vs_ref_mib",
        "state_mib",
        "packed_kib",
        "ratio",
        "status",
    ]
    text = (
        f"# Quantization peers side by side — {title}\n\n"
        "test_acc: % of the exactly quantized (rounded) last iterate, mean ± std over seeds; distinct_w / distinct_b: "
        "most distinct values in any weight / bias tensor; state_mib: parameters + Adam moments + the peer's own "
        "state; packed: codebook packing of the rounded state dict (ratio vs float32).\n\n"
        + markdown_table(rows, columns)
        + "\ncpu_ms_per_step is measured in each run's own process after its training (step_vs_ref: against REF's "
        "process), so rows measured in different sittings are not side by side; `benchmarks.paper_table` has the "
        "interleaved same-process ratios.\n"
    )
    collapsed = [r for r in rows if r.get("status") == "ok" and r.get("distinct_w") == 1]
    text += "".join(
        f"\n**Collapsed:** {r['method']} ({r['model']}, {r['levels']} levels): every weight tensor rounds to a single "
        f"value, so the network computes a constant ({r['test_acc']} %).\n"
        for r in collapsed
    )
    write_text(out.with_suffix(".md"), text)
    write_csv(out.with_suffix(".csv"), rows)
    write_json(out.with_suffix(".json"), {"mode": title, "rows": rows, "runs": records})
    _plot([r for r in rows if r.get("status") == "ok"], out.with_suffix(".png"), title)
    return rows


def _plot(rows: list[dict], path: Path, title: str) -> None:
    if not rows:
        return
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    labels = [f"{r['model']}\n{r['method']} L{r['levels']}" for r in rows]
    axes[0].barh(labels, [r["test_acc_mean"] for r in rows])
    axes[0].set(xlabel="test top-1 (%)", xlim=(max(0, min(r["test_acc_mean"] for r in rows) - 5), 100))
    axes[1].barh(labels, [float(r["cpu_ms_per_step"]) for r in rows])
    axes[1].set(xlabel="CPU ms per training step (1 thread)")
    axes[2].barh(labels, [float(r["packed_kib"]) for r in rows])
    axes[2].set(xlabel="packed size (KiB)")
    for ax in axes[1:]:
        ax.set_yticklabels([])
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="LeNet-300, binary, 1 seed, 300 iterations, 10k subset")
    p.add_argument("--models", nargs="+", choices=("lenet300", "lenet5"))
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--levels", nargs="+", type=int, choices=(2, 3))
    p.add_argument("--seeds", nargs="+", type=int)
    p.add_argument("--iterations", type=int)
    p.add_argument("--train-limit", type=int, help="use the first N training images")
    args = p.parse_args(argv)
    quick = args.quick
    if not quick and (why := missing_full_data(["mnist"])):
        p.error(why)
    models = args.models or (["lenet300"] if quick else ["lenet300", "lenet5"])
    levels = args.levels or ([2] if quick else [2, 3])
    seeds = args.seeds if args.seeds is not None else ([0] if quick else [0, 1, 2])
    iterations = args.iterations or (300 if quick else 20_000)
    train_limit = args.train_limit or (10_000 if quick else None)
    out_dir = results_dir("quick", "quant_peers") if quick else results_dir("quant_peers")
    records = []
    for model in models:
        for lv in levels:
            for seed in seeds:
                for method in args.methods:
                    if (method == "bc" and lv != 2) or (method == "ref" and lv != levels[0]):
                        continue
                    run = Run(model, method, lv, seed, iterations, train_limit)
                    path = out_dir / f"{run.key}.json"
                    cached = path.exists() and read_json(path).get("status") == "ok"
                    rec = read_json(path) if cached else run_in_process(run, path)
                    records.append(rec)
                    if rec["status"] == "ok":
                        print(
                            f"[{'cached' if cached else 'done'}] {run.key}: test {rec['test_acc']:.2f}%, "
                            f"{rec['seconds_per_step'] * 1e3:.2f} CPU ms/step, peak RSS {rec['peak_rss_mib']:.0f} MiB, "
                            f"distinct values per tensor {sorted(set(rec['distinct_values'].values()))[:6]}",
                            flush=True,
                        )
                    else:
                        print(f"[{rec['status']}] {run.key}: {rec.get('reason')}", flush=True)
    title = (
        f"QUICK MODE ({iterations} iterations, {train_limit} training images) — not a converged comparison"
        if quick
        else f"{iterations} iterations, full training split"
    )
    stem = out_dir.parent / ("quant_peers_quick" if quick else "quant_peers")
    build_table(records, stem, title)
    print(stem.with_suffix(".md").read_text())
    return 0 if any(r["status"] == "ok" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
