"""Population engine throughput: genomes per hour and model FLOP utilisation of lockstep training.

For each shape (``demo``: a MiniLM-L6-shaped teacher -> 3 x 192 student, batch 16 x 64; ``paper``: a BERT-base-shaped
teacher -> 4 x 312 student, batch 256 x 128), each precision the device can do (fp32 everywhere; TF32 and bf16 on
CUDA; bf16 on a CPU with bf16 support) and each population size K, it times ``--steps`` distillation steps (after
``--warmup`` untimed ones) of

* **baseline**: today's one-process path, :func:`layermap.distill.loop.distill` on one genome (K genomes cost K times
  its time: one genome per evaluation, as ``run.population = 1`` does);
* **population**: :func:`layermap.distill.population.distill_population` on K genomes in lockstep.

Teachers have random weights (speed does not depend on them).  The teacher side is the one each preset uses: the
``demo`` shape reads a teacher cache built first (``proxy.teacher_cache = true``), the ``paper`` shape runs the
teacher live.  ``genomes_per_hour`` = 3600 / (seconds of distillation per genome at the shape's budget:
``--budget-steps``, 240 for demo, 1000 for paper); the probe/fine-tuning after distillation is not included.
FLOPs are counted once per configuration with ``torch.utils.flop_counter.FlopCounterMode`` over one whole step
(teacher forward or cache read, student forward and backward, optimiser); MFU = FLOP/s over ``--peak-tflops``
(default: 989 on an H100/H200, the bf16 dense peak the issue measures against; none on a CPU, where only the
achieved TFLOP/s is reported).  Wall and process-CPU seconds are both reported; on a shared CPU the CPU-time
figures are the fair comparison.  Runs unchanged on CUDA; on a CPU cap K and the paper batch with the flags:

    python benchmarks/bench_population.py --threads 1 --demo-k 1 4 16 --paper-k 1 4 --paper-batch 8 \\
        --out results/benchmarks/population_cpu.json
    python benchmarks/bench_population.py --out results/benchmarks/population_cuda.json     # on a GPU
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import torch

from _common import machine, write
from layermap.config import DistillSettings
from layermap.distill.corpus import Segments, content_identity
from layermap.distill.loop import LiveTeacher, distill
from layermap.distill.models import StudentSpec, Teacher, build_student, pick_device
from layermap.distill.population import distill_population
from layermap.distill.precision import bf16_supported
from layermap.distill.teacher_cache import build_teacher_cache
from layermap.mapping import LayerMapping, enumerate_space

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


@dataclass(frozen=True)
class Shape:
    name: str
    teacher_layers: int
    teacher_hidden: int
    teacher_heads: int
    student: StudentSpec
    batch: int
    seq_len: int
    cached_teacher: bool
    budget_steps: int


SHAPES = {
    "demo": Shape("demo", 6, 384, 12, StudentSpec(3, 192, 12, 768), 16, 64, True, 240),
    "paper": Shape("paper", 12, 768, 12, StudentSpec(4, 312, 12, 1200), 256, 128, False, 1000),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["demo", "paper"], choices=sorted(SHAPES))
    parser.add_argument("--demo-k", nargs="+", type=int, default=[1, 4, 16, 56])
    parser.add_argument("--paper-k", nargs="+", type=int, default=[1, 4, 16, 56])
    parser.add_argument("--paper-batch", type=int, default=0, help="override the paper batch (0: 256)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "tf32", "bf16"])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before them")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="device peak for MFU (0: from the device name)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    peak = args.peak_tflops or _device_peak(device)
    rows = []
    for name in args.shapes:
        shape = SHAPES[name]
        if name == "paper" and args.paper_batch:
            shape = Shape(**{**shape.__dict__, "batch": args.paper_batch})
        ks = args.demo_k if name == "demo" else args.paper_k
        rows.extend(_bench_shape(shape, ks, args, device, peak))
    write(args.out, {"benchmark": "population engine", "device": str(device), "peak_tflops": peak or None,
                     "steps_timed": args.steps, "warmup_steps": args.warmup, "rows": rows, "machine": machine(),
                     "note": "genomes_per_hour counts distillation only (budget_steps per genome); baseline = "
                             "distill() one genome at a time, population = distill_population on K genomes; "
                             "*_cpu_* figures use the process's CPU time (fair on a shared CPU: with one thread it "
                             "is the wall time the run would take alone)",
                     "command": " ".join(sys.argv)})


def _bench_shape(shape: Shape, ks: list[int], args, device: torch.device, peak: float) -> list[dict]:
    from transformers import BertConfig, BertModel

    tcfg = BertConfig(hidden_size=shape.teacher_hidden, num_hidden_layers=shape.teacher_layers,
                      num_attention_heads=shape.teacher_heads, intermediate_size=4 * shape.teacher_hidden)
    torch.manual_seed(0)
    model = BertModel(tcfg).eval().requires_grad_(False).to(device)
    steps = args.warmup + args.steps
    num = shape.batch * steps
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, tcfg.vocab_size, (num, shape.seq_len)).astype(np.int32)
    lengths = rng.integers(shape.seq_len // 2, shape.seq_len + 1, num).astype(np.int32)
    segments = Segments(ids, lengths, content_identity(ids, lengths))
    tmp = tempfile.TemporaryDirectory()
    if shape.cached_teacher:
        teacher = Teacher(model=model, tokenizer=None, name="random", identity=f"random-{shape.name}")
        source = build_teacher_cache(teacher, segments, cache_dir=tmp.name, device=device, progress=False)
    else:
        source = LiveTeacher(model)
    genomes = [LayerMapping(g, shape.teacher_layers) for g in
               enumerate_space(shape.student.layers, shape.teacher_layers, "non-decreasing") if min(g) > 0]
    rows = []
    for precision in args.precisions:
        if not _can(precision, device):
            print(f"{shape.name}: {precision} skipped (not supported on {device.type})", flush=True)
            continue
        base = _time(shape, model, source, segments, genomes[:1], device, precision, args, population=False)
        rows.append(_row(shape, precision, 1, "baseline", base, peak))
        for k in ks:
            mappings = [genomes[i % len(genomes)] for i in range(k)]
            timing = _time(shape, model, source, segments, mappings, device, precision, args, population=True)
            row = _row(shape, precision, k, "population", timing, peak)
            row["speedup_vs_baseline"] = round(row["genomes_per_hour"] / _baseline(rows, shape, precision, "genomes_per_hour"), 2)
            row["cpu_speedup_vs_baseline"] = round(row["genomes_per_cpu_hour"]
                                                   / _baseline(rows, shape, precision, "genomes_per_cpu_hour"), 2)
            rows.append(row)
    tmp.cleanup()
    return rows


def _baseline(rows, shape, precision, key) -> float:
    return next(r[key] for r in rows if r["shape"] == shape.name and r["precision"] == precision
                and r["engine"] == "baseline")


def _can(precision: str, device: torch.device) -> bool:
    if precision == "tf32":
        return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8
    if precision == "bf16":
        return bf16_supported(device)
    return precision == "fp32"


def _time(shape, model, source, segments, mappings, device, precision, args, *, population: bool) -> dict:
    """Seconds per step (mean over the timed steps) and FLOPs of one step."""
    from torch.utils.flop_counter import FlopCounterMode

    settings = DistillSettings(max_steps=args.warmup + args.steps, batch_size=shape.batch, precision=precision)
    flop_settings = DistillSettings(max_steps=1, batch_size=shape.batch, precision=precision)
    warm_settings = DistillSettings(max_steps=max(1, args.warmup), batch_size=shape.batch, precision=precision)

    def run(settings):
        students = [build_student(model.config, shape.student, seed=0) for _ in mappings]
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        if population:
            out = distill_population(students, source, mappings, segments, settings, teacher_width=shape.teacher_hidden,
                                     device=device, sync_every=settings.max_steps)
            assert all(r.ok for r in out), [str(r.error) for r in out if not r.ok]
        else:
            distill(students[0], source, mappings[0], segments, settings, teacher_width=shape.teacher_hidden,
                    device=device)
        _sync(device)
        return np.array([time.perf_counter() - t0, time.process_time() - c0])

    counter = FlopCounterMode(display=False)
    with counter:
        run(flop_settings)
    one_step = run(warm_settings) / warm_settings.max_steps
    total = run(settings)
    timed = (total - one_step * args.warmup) / args.steps        # the warm-up steps' share removed (setup included)
    return {"seconds_per_step": max(timed[0], 1e-9), "cpu_seconds_per_step": max(timed[1], 1e-9),
            "flops_per_step": counter.get_total_flops(), "k": len(mappings)}


def _row(shape: Shape, precision: str, k: int, engine: str, timing: dict, peak: float) -> dict:
    per_genome_step = timing["seconds_per_step"] / k
    flops_per_second = timing["flops_per_step"] / timing["seconds_per_step"]
    return {"shape": shape.name, "precision": precision, "engine": engine, "k": k, "batch": shape.batch,
            "seq_len": shape.seq_len, "teacher": "cache" if shape.cached_teacher else "live",
            "budget_steps": shape.budget_steps, "seconds_per_step": round(timing["seconds_per_step"], 4),
            "seconds_per_genome_step": round(per_genome_step, 5),
            "genomes_per_hour": round(3600 / (per_genome_step * shape.budget_steps), 2),
            "cpu_seconds_per_genome_step": round(timing["cpu_seconds_per_step"] / k, 5),
            "genomes_per_cpu_hour": round(3600 / (timing["cpu_seconds_per_step"] / k * shape.budget_steps), 2),
            "gflop_per_step": round(timing["flops_per_step"] / 1e9, 2),
            "achieved_tflops": round(flops_per_second / 1e12, 4),
            "mfu": round(flops_per_second / (peak * 1e12), 5) if peak else None}


def _device_peak(device: torch.device) -> float:
    if device.type != "cuda":
        return 0.0
    name = torch.cuda.get_device_name(device)
    return next((v for key, v in PEAK_TFLOPS.items() if key in name), 0.0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
