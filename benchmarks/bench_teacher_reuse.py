"""Teacher reuse: one proxy evaluation with and without the shared teacher-output cache, side by side.

The teacher and the corpus slice are the same for every genome, so layermap runs the teacher once
over the slice (``proxy.teacher_cache = true``) and every genome reads its outputs from disk.  This
script times, in one run and on one machine: building that cache (paid once per search), one
evaluation that reads it, and one evaluation that runs the teacher live at every step.  Run:

    python benchmarks/bench_teacher_reuse.py --config smoke --out results/bench_teacher_reuse_smoke.json
"""

from __future__ import annotations

import argparse
import shutil
import time

import torch

from _common import add_common_args, machine, write
from layermap.config import load_config
from layermap.distill.identity import teacher_label
from layermap.distill.models import teacher_identity
from layermap.evaluators.proxy import ProxyEvaluator
from layermap.mapping import baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--config", default="smoke")
    parser.add_argument("--repeats", type=int, default=1, help="evaluations of each kind (alternating)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    base = dict(teacher={"name": args.teacher}, corpus={"path": args.corpus}, proxy={"glue_dir": args.glue_dir},
                run={"cache_dir": args.cache_dir, "device": "auto"})
    cached = ProxyEvaluator(load_config(args.config, ["proxy.teacher_cache=true"], **base))
    live = ProxyEvaluator(load_config(args.config, ["proxy.teacher_cache=false"], **base))
    shutil.rmtree(f"{args.cache_dir}/teacher", ignore_errors=True)
    live.prepare()                                   # tokenised corpus + task data, teacher loaded
    t0 = time.perf_counter()
    cached.prepare()                                 # + the teacher pass over the slice
    build = time.perf_counter() - t0
    genes = baseline("uniform", cached.student_layers, cached.teacher_layers)
    runs = {"cached": [], "live": []}
    for _ in range(args.repeats):
        for name, ev in (("live", live), ("cached", cached)):
            runs[name].append(ev.evaluate(genes))
    mean = lambda recs, key: sum(r.timings[key] for r in recs) / len(recs)  # noqa: E731
    figures = {
        "benchmark": "teacher reuse",
        "config": args.config, "teacher": teacher_label(args.teacher), "teacher_identity": teacher_identity(args.teacher),
        "mapping": "-".join(map(str, genes)),
        "segments": len(cached._load().segments), "seq_len": cached.config.corpus.seq_len,
        "distill_steps": cached.config.distill.max_steps,
        "cache_build_seconds": round(build, 2),
        "live": {k: round(mean(runs["live"], k), 2) for k in ("distill", "finetune", "eval", "total")},
        "cached": {k: round(mean(runs["cached"], k), 2) for k in ("distill", "finetune", "eval", "total")},
        "fitness_live": runs["live"][0].fitness, "fitness_cached": runs["cached"][0].fitness,
        "distill_loss_live": runs["live"][0].distill_loss, "distill_loss_cached": runs["cached"][0].distill_loss,
    }
    figures["ratio_total_live_over_cached"] = round(figures["live"]["total"] / figures["cached"]["total"], 3)
    figures["ratio_distill_live_over_cached"] = round(figures["live"]["distill"] / figures["cached"]["distill"], 3)
    saved = figures["live"]["total"] - figures["cached"]["total"]
    figures["break_even_genomes"] = round(build / saved, 2) if saved > 0 else None
    figures["machine"] = machine()
    write(args.out, figures)


if __name__ == "__main__":
    main()
