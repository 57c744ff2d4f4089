"""Cost of one proxy evaluation against its floor: the student-only work in it.

The floor of an evaluation is the work no implementation can skip: the student's distillation steps
(forward, loss, backward, clipping, optimizer step), then for the ``finetune`` head the fine-tuning
steps and the dev-set forward passes, for the ``probe`` head the feature extraction (student forward
passes over train and dev) and the probe fit.  Everything else is overhead: building the student,
the teacher side of each distillation step (the live teacher's forward pass, or reading the shared
teacher outputs and rebuilding attention scores from Q/K) with batch assembly, tokenising the task
data, copying the student, computing metrics.  This script measures, in one run and one process,
one evaluation of one genome with and without teacher reuse (``proxy.teacher_cache``) and with both
heads (the two heads score the same distilled student), and reports wall / floor and where the rest
goes.  Run:

    python benchmarks/bench_cost.py --config demo --out results/benchmarks/cost_demo.json
"""

from __future__ import annotations

import argparse
import time

import torch

from _common import add_common_args, machine, write
from layermap.config import load_config
from layermap.distill.loop import distill
from layermap.evaluators.proxy import ProxyEvaluator
from layermap.mapping import LayerMapping, baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--config", default="smoke")
    parser.add_argument("--mapping", default="uniform")
    parser.add_argument("--repeats", type=int, default=1, help="evaluations of each kind (alternating); means are reported")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    base = dict(teacher={"name": args.teacher}, corpus={"path": args.corpus}, proxy={"glue_dir": args.glue_dir},
                run={"cache_dir": args.cache_dir, "device": "cpu"})
    evs = {"cached": ProxyEvaluator(load_config(args.config, [*args.overrides, "proxy.teacher_cache=true"], **base)),
           "live": ProxyEvaluator(load_config(args.config, [*args.overrides, "proxy.teacher_cache=false"], **base))}
    for ev in evs.values():
        ev.prepare()
    ev0 = evs["cached"]
    genes = (baseline(args.mapping, ev0.student_layers, ev0.teacher_layers) if args.mapping.isalpha()
             else LayerMapping.parse(args.mapping, ev0.teacher_layers).genes)
    tokenize = _tokenize_seconds(ev0)
    runs: dict[str, list[dict]] = {f"{t}/{h}": [] for t in evs for h in ("finetune", "probe")}
    for _ in range(args.repeats):
        for teacher, ev in evs.items():
            for head, parts in _one(ev, genes, tokenize).items():
                runs[f"{teacher}/{head}"].append(parts)
    table = {}
    for key, rows in runs.items():
        mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
        mean["wall_over_floor"] = mean["wall"] / mean["floor"]
        table[key] = {k: round(v, 3) for k, v in mean.items()}
    figures = {"benchmark": "cost against the floor", "config": args.config, "overrides": args.overrides,
               "mapping": "-".join(map(str, genes)), "repeats": args.repeats,
               "floor": "student distillation steps (fwd+loss+bwd+clip+AdamW) + finetune: training steps and dev "
                        "forward passes | probe: feature extraction (train+dev) and the probe fit",
               "overhead": "setup (student build + init copy), teacher side of each distillation step (live forward "
                           "or cache read + Q K^T) with batch assembly, distillation bookkeeping, tokenising the task "
                           "data, model copies and metrics",
               "evaluations": table, "machine": machine()}
    write(args.out, figures)


def _one(ev: ProxyEvaluator, genes, tokenize: dict[str, float]) -> dict[str, dict]:
    """One distillation, then both heads on the same student; every part of the wall time."""
    st = ev._load()
    t_start = time.perf_counter()
    mapping = LayerMapping(tuple(genes), ev.teacher_layers)
    student = ev.new_student(mapping)
    t0 = time.perf_counter()
    _, stats = distill(student, st.source, mapping, st.segments, ev.config.distill,
                       teacher_width=st.teacher.hidden_size, device=st.device)
    t_distill = time.perf_counter() - t0
    common = {"setup": t0 - t_start, "distill_student": stats.seconds - stats.teacher_seconds,
              "distill_teacher_side": stats.teacher_seconds, "distill_bookkeeping": t_distill - stats.seconds}
    out = {}
    for head in ("finetune", "probe"):
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        ev.score_student(student, timings, head=head)
        t_head = time.perf_counter() - t0
        parts = dict(common)
        if head == "probe":
            parts["head_floor"] = timings["extract"] + timings["fit"]
            parts["tokenize"] = timings["tokenize"]
        else:
            parts["tokenize"] = tokenize["total"] * ev.config.proxy.repeats
            parts["head_floor"] = max(0.0, timings["finetune"] + timings["eval"] - parts["tokenize"])
        parts["head_other"] = t_head - parts["head_floor"] - parts["tokenize"]
        parts["wall"] = common["setup"] + t_distill + t_head
        parts["floor"] = common["distill_student"] + parts["head_floor"]
        out[head] = parts
    return out


def _tokenize_seconds(ev: ProxyEvaluator) -> dict[str, float]:
    """What tokenising every proxy task's train and dev examples costs (fine-tuning does it inside its timings)."""
    from proxy_tasks.batching import encode_examples

    st = ev._load()
    seconds = {}
    for data in st.tasks:
        t0 = time.perf_counter()
        encode_examples(st.teacher.tokenizer, data.train, data.task, ev.config.proxy.seq_len)
        for examples in data.dev.values():
            encode_examples(st.teacher.tokenizer, examples, data.task, ev.config.proxy.seq_len)
        seconds[data.task.name] = time.perf_counter() - t0
    seconds["total"] = sum(seconds.values())
    return seconds


if __name__ == "__main__":
    main()
