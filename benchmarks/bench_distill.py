"""Distillation throughput: segments/s of the general-distillation loop and the teacher's share.

Default: MiniLM-L6 teacher -> 3-layer, 384-wide student, 128 tokens, batch 32, uniform mapping,
live teacher (no cache), on whatever device is available.  Run:

    python benchmarks/bench_distill.py --out results/bench_distill_cpu.json
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from _common import add_common_args, machine, write
from layermap.config import DistillSettings
from layermap.distill.corpus import load_segments
from layermap.distill.loop import LiveTeacher, distill
from layermap.mapping import LayerMapping, baseline
from layermap.distill.identity import teacher_label
from layermap.distill.models import StudentSpec, build_student, load_teacher, pick_device, teacher_identity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--student-layers", type=int, default=3)
    parser.add_argument("--hidden-size", type=int, default=384)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=12, help="timed steps (after 2 warm-up steps)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    teacher = load_teacher(args.teacher, device=device)
    n = teacher.num_layers
    segments = load_segments(args.corpus, teacher.tokenizer, seq_len=args.seq_len,
                             max_segments=args.batch_size * (args.steps + 2), max_documents=3000,
                             cache_dir=args.cache_dir, progress=False)
    mapping = LayerMapping(baseline("uniform", args.student_layers, n), n)
    spec = StudentSpec.resolve(teacher.model.config, args.student_layers, args.hidden_size)
    student = build_student(teacher.model.config, spec)
    settings = DistillSettings(max_steps=args.steps + 2, batch_size=args.batch_size)
    _, stats = distill(student, LiveTeacher(teacher.model), mapping, segments, settings,
                       teacher_width=teacher.hidden_size, device=device)
    step = stats.step_seconds[2:]                      # the first two steps are warm-up
    teacher_step = stats.teacher_step_seconds[2:]
    figures = {
        "benchmark": "distill throughput",
        "teacher": teacher_label(args.teacher), "teacher_identity": teacher_identity(args.teacher), "teacher_layers": n, "student": dataclasses.asdict(spec),
        "mapping": mapping.text, "seq_len": args.seq_len, "batch_size": args.batch_size, "device": str(device),
        "timed_steps": len(step),
        "segments_per_second": round(len(step) * args.batch_size / sum(step), 2),
        "teacher_share_of_step": round(sum(teacher_step) / sum(step), 3),
        "seconds_per_step": round(sum(step) / len(step), 3),
        "machine": machine(),
    }
    write(args.out, figures)


if __name__ == "__main__":
    main()
