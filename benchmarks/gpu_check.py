"""The population engine on a GPU, in one call (at most 8 minutes on an H200 with the defaults):

1. **agreement**: lockstep K = 16 against 16 sequential ``distill()`` runs (demo-shaped random teacher, dropout on),
   in bf16: the largest relative difference of the per-step losses and of the students' weights;
2. **sync**: a whole proxy evaluation (``--config``, default the ``gpu`` preset at ``--sync-steps`` steps) with the
   population (``run.population = --sync-k``) and one genome alone, under ``torch.cuda.set_sync_debug_mode("error")``
   from each step's teacher read to the loop's sync point (``layermap.distill.batches.read_losses``): any other
   device sync in a step raises;
3. **mfu**: model FLOP utilisation at the paper shape (BERT-base-shaped teacher -> 4 x 312, batch 256 x 128), bf16,
   K = 1 and 4 (``benchmarks/bench_population.py``);
4. **throughput**: genomes per hour at the demo shape (MiniLM-L6-shaped teacher -> 3 x 192, batch 16 x 64, cached
   teacher, 240-step budget), K = 1, 4, 16, 64, against one genome per process.

Everything is written to ``--out`` (default ``results/benchmarks/population_cuda.json``).  On a CPU the same script
runs with tiny settings (``tests/test_gpu_check.py``); there the sync section raises on any host read of a tensor's
values inside a step instead (what a device sync is on a GPU).
``benchmarks/gpu_check.sh`` is the one device call (it sources ``.device/setup.sh`` when present).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import traceback

import numpy as np
import torch

import bench_population as bp
from _common import ROOT, machine, write
from layermap.config import DistillSettings, load_config
from layermap.distill import loop as loop_mod
from layermap.distill import population as pop_mod
from layermap.distill.corpus import Segments, content_identity
from layermap.distill.loop import LiveTeacher, distill
from layermap.distill.models import StudentSpec, build_student, pick_device
from layermap.mapping import LayerMapping, enumerate_space


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--sections", nargs="+", default=["agreement", "sync", "mfu", "throughput"])
    p.add_argument("--agree-k", type=int, default=16)
    p.add_argument("--agree-steps", type=int, default=30)
    p.add_argument("--agree-precision", default="bf16")
    p.add_argument("--config", default="gpu", help="preset or TOML of the proxy evaluation the sync section runs")
    p.add_argument("--set", action="append", default=[], dest="overrides", help="config override for the sync run")
    p.add_argument("--teacher", default="")
    p.add_argument("--corpus", default="")
    p.add_argument("--glue-dir", default="")
    p.add_argument("--sync-k", type=int, default=4)
    p.add_argument("--sync-steps", type=int, default=60)
    p.add_argument("--paper-k", nargs="+", type=int, default=[1, 4])
    p.add_argument("--demo-k", nargs="+", type=int, default=[1, 4, 16, 64])
    p.add_argument("--precision", default="bf16", help="precision of the mfu and throughput sections")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--tiny", action="store_true", help="tiny shapes (a CPU test of this script)")
    p.add_argument("--out", default=str(ROOT / "results" / "benchmarks" / "population_cuda.json"))
    args = p.parse_args(argv)
    device = pick_device(args.device)
    shapes = TINY if args.tiny else {k: bp.SHAPES[k] for k in ("demo", "paper")}
    figures: dict = {"benchmark": "gpu check", "device": str(device), "machine": machine(), "command": " ".join(sys.argv)}
    run = {"agreement": lambda: agreement(shapes["demo"], args, device),
           "sync": lambda: sync_check(args, device),
           "mfu": lambda: bench(shapes["paper"], args.paper_k, args, device),
           "throughput": lambda: bench(shapes["demo"], args.demo_k, args, device)}
    for name in args.sections:
        started = time.perf_counter()
        try:
            figures[name] = run[name]()
        except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others' figures
            figures[name] = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
                             "where": traceback.format_exc(limit=-3)}
        figures[name + "_seconds"] = round(time.perf_counter() - started, 1)
        write(args.out, figures)
    return figures


TINY = {"demo": bp.Shape("demo", 4, 32, 4, StudentSpec(2, 16, 2, 32), 4, 16, True, 240),
        "paper": bp.Shape("paper", 4, 32, 4, StudentSpec(2, 16, 2, 32), 4, 16, False, 1000)}


def agreement(shape: bp.Shape, args, device: torch.device) -> dict:
    """Lockstep K against K sequential distill() runs, dropout on, at ``--agree-precision``."""
    from transformers import BertConfig, BertModel

    if args.agree_precision != "fp32" and not bp._can(args.agree_precision, device):
        return {"skipped": f"{args.agree_precision} is not supported on {device.type}"}
    torch.manual_seed(0)
    model = BertModel(BertConfig(hidden_size=shape.teacher_hidden, num_hidden_layers=shape.teacher_layers,
                                 num_attention_heads=shape.teacher_heads, intermediate_size=4 * shape.teacher_hidden)
                      ).eval().requires_grad_(False).to(device)
    segments = _random_segments(model.config.vocab_size, shape.batch * 8, shape.seq_len)
    genomes = [g for g in enumerate_space(shape.student.layers, shape.teacher_layers, "non-decreasing") if min(g) > 0]
    mappings = [LayerMapping(genomes[i % len(genomes)], shape.teacher_layers) for i in range(args.agree_k)]
    settings = DistillSettings(max_steps=args.agree_steps, batch_size=shape.batch, learning_rate=1e-3,
                               precision=args.agree_precision)
    source = LiveTeacher(model)
    lockstep = pop_mod.distill_population([build_student(model.config, shape.student, seed=0) for _ in mappings],
                                          source, mappings, segments, settings, teacher_width=shape.teacher_hidden,
                                          device=device)
    loss_diff, weight_diff = [], []
    for mapping, result in zip(mappings, lockstep):
        student = build_student(model.config, shape.student, seed=0)
        _, stats = distill(student, source, mapping, segments, settings, teacher_width=shape.teacher_hidden,
                           device=device)
        a, b = np.asarray(result.stats.losses), np.asarray(stats.losses)
        loss_diff.append(float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-8))))
        weight_diff.append(max(float((p - q).norm() / q.norm().clamp_min(1e-12))
                               for p, q in zip(result.student.parameters(), student.parameters())))
    tolerance = 1e-4 if args.agree_precision == "fp32" else 5e-2
    return {"k": args.agree_k, "steps": args.agree_steps, "precision": args.agree_precision, "dropout": True,
            "max_relative_loss_difference": max(loss_diff), "max_relative_weight_difference": max(weight_diff),
            "tolerance": tolerance, "agree": max(loss_diff) <= tolerance, "all_ok": all(r.ok for r in lockstep)}


def sync_check(args, device: torch.device) -> dict:
    """A whole proxy evaluation, population and single genome, with every device sync of a step an error (on a CPU:
    every host read of a tensor's values, the same places)."""
    from layermap.evaluators.proxy import ProxyEvaluator

    overrides = [f"distill.max_steps={args.sync_steps}", f"run.population={args.sync_k}", f'run.device="{device}"',
                 *args.overrides]
    for key, value in (("teacher.name", args.teacher), ("corpus.path", args.corpus), ("proxy.glue_dir", args.glue_dir)):
        if value:
            overrides.append(f'{key}="{value}"')
    ev = ProxyEvaluator(load_config(args.config, overrides))
    st = ev._load()
    guarded = _Guard(st.source, device)
    st.source = guarded
    genomes = [g for g in enumerate_space(ev.student_layers, ev.teacher_layers, "non-decreasing") if min(g) > 0]
    out: dict = {"k": args.sync_k, "steps": args.sync_steps, "precision": ev.config.distill.precision,
                 "detector": "torch.cuda.set_sync_debug_mode('error')" if device.type == "cuda" else "host reads"}
    real = {m: m.read_losses for m in (loop_mod, pop_mod)}
    for module in real:
        module.read_losses = guarded.read(real[module])
    try:
        for name, chunk in (("population", genomes[:args.sync_k]), ("single", genomes[:1])):
            t0 = time.perf_counter()
            outcomes = ev.evaluate_many(chunk)
            guarded.off()
            errors = [str(o) for o in outcomes if isinstance(o, Exception)]
            out[name] = {"genomes": len(chunk), "seconds": round(time.perf_counter() - t0, 2), "errors": errors[:3],
                         "fitness": [round(o.fitness, 3) for o in outcomes if not isinstance(o, Exception)]}
    finally:
        guarded.off()
        for module, fn in real.items():
            module.read_losses = fn
    out["steps_guarded"], out["sync_points"] = guarded.steps, guarded.syncs
    out["passed"] = not any(out[n]["errors"] for n in ("population", "single")) and guarded.steps > 0
    return out


HOST_READS = {"item", "__bool__", "__int__", "__float__", "__index__", "tolist", "cpu", "numpy", "nonzero", "__array__"}


class _HostReads(torch.overrides.TorchFunctionMode):
    """The CPU's stand-in for the sync debug mode: a host read of a tensor's values raises."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in HOST_READS:
            raise RuntimeError(f"host read ({func.__name__}) inside a distillation step")
        return func(*args, **(kwargs or {}))


class _Guard:
    """From each step's teacher read to the loop's sync point, any device sync raises (sync debug mode "error" on
    CUDA, :class:`_HostReads` on a CPU)."""

    def __init__(self, source, device: torch.device):
        self.source, self.cuda, self.steps, self.syncs, self._mode = source, device.type == "cuda", 0, 0, None

    def on(self) -> None:
        if self.cuda:
            torch.cuda.set_sync_debug_mode("error")
        elif self._mode is None:
            self._mode = _HostReads()
            self._mode.__enter__()

    def off(self) -> None:
        if self.cuda:
            torch.cuda.set_sync_debug_mode(0)
        elif self._mode is not None:
            self._mode.__exit__(None, None, None)
            self._mode = None

    def outputs(self, *args):
        self.steps += 1
        self.on()
        return self.source.outputs(*args)

    def read(self, real):
        def read_losses(losses):
            self.off()
            self.syncs += 1
            return real(losses)
        return read_losses


def bench(shape: bp.Shape, ks: list[int], args, device: torch.device) -> dict:
    """bench_population's rows for ``shape`` at ``--precision`` (fp32 where the device cannot do it)."""
    precision = args.precision if bp._can(args.precision, device) else "fp32"
    ns = argparse.Namespace(precisions=[precision], warmup=args.warmup, steps=args.steps)
    rows = bp._bench_shape(shape, ks, ns, device, bp._device_peak(device))
    best = max((r for r in rows if r["engine"] == "population"), key=lambda r: r["genomes_per_hour"], default=None)
    return {"shape": dataclasses.asdict(shape), "precision": precision,
            "rows": rows, "best_population": best and {k: best[k] for k in ("k", "genomes_per_hour", "mfu",
                                                                            "speedup_vs_baseline")}}


def _random_segments(vocab: int, count: int, seq_len: int) -> Segments:
    rng = np.random.default_rng(0)
    ids = rng.integers(1000 if vocab > 2000 else 5, vocab, (count, seq_len)).astype(np.int32)
    lengths = rng.integers(seq_len // 2, seq_len + 1, count).astype(np.int32)
    return Segments(ids, lengths, content_identity(ids, lengths))


if __name__ == "__main__":
    main()
