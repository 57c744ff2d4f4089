"""Headroom recovered against distillation steps, for random and teacher-extracted students of several shapes.

For each student shape (``--shapes 3x192,3x384``: layers x hidden size; the FFN from the teacher's ratio; the teacher's
head count for a random student, whole teacher heads for an extracted one: 192 / 32 = 6 heads of MiniLM,
:mod:`layermap.extraction`; ``results/benchmarks/headroom_demo.json`` was measured before that rule, its extracted
3x192 students with 12 heads of 16)
and initialisation (``--inits random,teacher``; ``teacher`` = Extract-Then-Distill, the uniform mapping's teacher
layers copied into the student), the uniform-mapping student is distilled for each of ``--steps`` (0 = the
initialisation itself) and scored by the proxy head of ``--config``.  Beside it, the reference rows of that shape
and initialisation (:mod:`layermap.evaluators.references`: teacher, no distillation, constant predictor, over
``proxy.reference_seed_sets`` seed sets) give every task's floor, headroom, seed noise and validity, so each point
is read as **headroom recovered** = (student - floor) / (teacher - floor).  Run:

    python benchmarks/bench_headroom.py --config demo --set 'proxy.tasks=["sst2","mrpc","rte","cola"]' \\
        --out results/benchmarks/headroom_demo.json --plot results/benchmarks/headroom_demo.png

Every point is appended to ``--log`` (JSON lines) as it finishes; the same command again skips what the log holds,
so a killed run resumes, and ``--report-only`` writes the figures from whatever finished.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from pathlib import Path

import torch

from _common import add_common_args, machine, write
from layermap.config import load_config
from layermap.evaluators.proxy import ProxyEvaluator
from layermap.mapping import LayerMapping, baseline


def parse_shape(text: str) -> tuple[int, int]:
    layers, _, width = text.partition("x")
    return int(layers), int(width)


def heads_of(args, width: int, init: str) -> int:
    """The student's head count: 0 (the teacher's) for a random student; whole teacher heads, ``width / d_head``, for
    one extracted from the teacher (the only head count the leading-slice extraction produces)."""
    if init != "teacher":
        return 0
    from layermap.distill.models import load_teacher_config

    config = load_teacher_config(args.teacher)
    return max(1, width // (config.hidden_size // config.num_attention_heads))


def evaluator_for(args, layers: int, width: int, init: str) -> ProxyEvaluator:
    overrides = [f"teacher.name={json.dumps(args.teacher)}", f"corpus.path={json.dumps(args.corpus)}",
                 f"proxy.glue_dir={json.dumps(args.glue_dir)}", f"run.cache_dir={json.dumps(args.cache_dir)}",
                 f"student.layers={layers}", f"student.hidden_size={width}", f"student.heads={heads_of(args, width, init)}",
                 "student.ffn=0",
                 f"student.init={json.dumps(init)}", *args.overrides]
    return ProxyEvaluator(load_config(args.config, overrides))


def point(ev: ProxyEvaluator, steps: int) -> dict:
    """Score the uniform-mapping student after ``steps`` distillation steps (0: its initialisation)."""
    mapping = LayerMapping(baseline("uniform", ev.student_layers, ev.teacher_layers), ev.teacher_layers)
    t0 = time.perf_counter()
    if steps == 0:
        tasks, _ = ev.score_student(ev.new_student(mapping))
        scores, loss = {t: s.score for t, s in tasks.items()}, None
    else:
        other = copy.copy(ev)
        other.config = ev.config.replace(distill=dataclasses.replace(ev.config.distill, max_steps=steps))
        other._fingerprint = None
        record = other.evaluate(mapping.genes)
        scores, loss = record.task_scores, record.distill_loss
    return {"mapping": mapping.text, "scores": scores, "distill_loss": loss, "seconds": time.perf_counter() - t0}


def report(log: list[dict], refs: dict[str, dict]) -> dict:
    from layermap.evaluators.references import References

    out = []
    for entry in log:
        r = References.from_json(refs[entry["key"]])
        h = r.headroom(entry["scores"])
        out.append({**entry, "fitness": sum(entry["scores"].values()) / len(entry["scores"]), "headroom": h})
    return {"points": out, "references": refs}


def plot(figures: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = figures["points"]
    tasks = list(points[0]["scores"]) if points else []
    panels = tasks + ["mean"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), sharey=True, squeeze=False)
    series = sorted({(p["shape"], p["init"]) for p in points})
    for ax, task in zip(axes[0], panels):
        for shape, init in series:
            pts = sorted((p["steps"], p["headroom"].get(task)) for p in points if p["shape"] == shape and p["init"] == init)
            xs = [max(s, 1) for s, v in pts if v is not None]
            ys = [100 * v for s, v in pts if v is not None]
            ax.plot(xs, ys, marker="o", linestyle="-" if init == "random" else "--", label=f"{shape} {init}")
        ax.axhline(0, color="grey", lw=0.8)
        ax.axhline(100, color="black", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_title(task if task != "mean" else "mean over valid tasks")
        ax.set_xlabel("distillation steps (0 plotted at 1)")
    axes[0][0].set_ylabel("headroom recovered (%)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    fig.savefig(str(Path(path).with_suffix(".svg")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--config", default="demo")
    parser.add_argument("--shapes", default="3x192,3x384")
    parser.add_argument("--inits", default="random,teacher")
    parser.add_argument("--steps", default="0,60,240,1000")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--log", default=None, help="JSON lines of finished points (default: beside --out)")
    parser.add_argument("--plot", default=None, help="write the figure here (PNG, and an SVG beside)")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads or torch.get_num_threads())
    log_path = Path(args.log or (Path(args.out).with_suffix(".jsonl") if args.out else "headroom.jsonl"))
    done = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()] if log_path.exists() else []
    refs_path = log_path.with_suffix(".references.json")
    refs = json.loads(refs_path.read_text()) if refs_path.exists() else {}
    steps = [int(s) for s in args.steps.split(",")]
    started = time.perf_counter()
    if not args.report_only:
        for shape in args.shapes.split(","):
            layers, width = parse_shape(shape)
            for init in args.inits.split(","):
                ev = evaluator_for(args, layers, width, init)
                key = f"{shape} {init}"
                if key not in refs:
                    refs[key] = ev.references().to_json()
                    refs_path.write_text(json.dumps(refs, indent=1))
                for n in steps:
                    if any(d["key"] == key and d["steps"] == n for d in done):
                        continue
                    entry = {"key": key, "shape": shape, "init": init, "steps": n, **point(ev, n)}
                    done.append(entry)
                    with log_path.open("a") as f:
                        f.write(json.dumps(entry) + "\n")
                    print(f"{key} steps {n}: " + ", ".join(f"{t} {v:.2f}" for t, v in entry["scores"].items())
                          + f"  ({entry['seconds']:.0f}s)", flush=True)
    figures = {"benchmark": "headroom", "config": args.config, "overrides": args.overrides, "machine": machine(),
               "wall_seconds": time.perf_counter() - started, **report(done, refs)}
    write(args.out, figures)
    if args.plot and done:
        plot(figures, args.plot)


if __name__ == "__main__":
    main()
