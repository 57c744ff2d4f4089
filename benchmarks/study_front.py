"""Issue 23, Deliver 6: does the joint shape-and-mapping search's front survive the final stage?

Reads an nsga2 run folder (its Pareto front, each genome's proxy fitness and measured latency), one compare folder
per front member (``benchmarks/study_front.sh``: the student shape from each exported front file, the reference rows
at that shape) and the compare folder of the fixed shape (its uniform mapping is the fixed-shape baseline), and
reports:

* per student: shape, mapping, latency, proxy fitness ± se with the proxy's headroom, the final stage's average ±
  seed std, its teacher / no-distillation rows (the undistilled student is the member's own shape) and headroom;
* the rank agreement of proxy and final stage along the front (Kendall's tau with its exact permutation p, and
  Spearman's rho), front members and baseline together;
* whether a front member at equal or lower latency than the fixed-shape baseline beats it in the final stage beyond
  noise: the paired difference of the average over the shared fine-tuning seeds (floored t-test of the final stage's
  table), Holm-corrected over those members;

into ``OUT/study.json`` and ``OUT/study.md``, and the figure ``OUT/study.png|svg`` (proxy fitness and final average
against latency, with each shape's undistilled student and the teacher).

    python benchmarks/study_front.py --run results/front-demo/search --final results/front-demo/final \\
        --baseline results/compare-demo-2026-12-03 --baseline-mapping 2-4-6 --out results/front-demo
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AVERAGE = "average"


def kendall_exact_p(x: list[float], y: list[float]) -> float:
    """Two-sided exact permutation p of Kendall's tau (every ordering of y; fine up to 8 points)."""
    from layermap.stats import kendall_tau

    observed = abs(kendall_tau(x, y))
    perms = list(itertools.permutations(y))
    return sum(1 for p in perms if abs(kendall_tau(x, list(p))) >= observed - 1e-12) / len(perms)


def final_row(folder: Path, mapping: str | None = None) -> dict:
    """The average row of ``mapping`` (or the folder's only mapping) in a compare folder, with its reference rows."""
    table = json.loads((folder / "comparison.json").read_text("utf-8"))
    mapping = mapping or table["mappings"][0]
    row = next(r for r in table["rows"] if r["mapping"] == mapping and r["task"] == AVERAGE)
    refs = table.get("references") or {}
    per_task = {r["task"]: r["mean"] for r in table["rows"] if r["mapping"] == mapping and r["task"] != AVERAGE}
    return {"mapping": mapping, "mean": row["mean"], "std": row["std"], "unit_scores": row["unit_scores"],
            "task_names": _task_names(table["tasks"]),
            "tasks": per_task, "units": [tuple(u) for u in table["units"]],
            "teacher": refs.get("teacher", {}).get(AVERAGE, {}).get("mean"),
            "no_distillation": refs.get("no distillation", {}).get(AVERAGE, {}).get("mean"),
            "no_distillation_std": _ref_std(refs.get("no distillation", {}), table["tasks"]),
            "constant": refs.get("constant", {}).get(AVERAGE, {}).get("mean"),
            "headroom": (table.get("headroom") or {}).get(mapping, {}).get(AVERAGE),
            "student": table["student"], "folder": folder.name}


def latency_axis(config: dict, objective: str) -> str:
    """The latency axis's label from the run's own settings: the objective, its runtime, and the ``[latency]`` device,
    threads and input size it was measured with (the defaults of :class:`layermap.config.LatencySettings` for keys the
    run did not write)."""
    from layermap.config import LatencySettings

    s = LatencySettings(**(config.get("latency") or {}))
    runtime = "ONNX Runtime int8" if objective == "latency_int8" else "PyTorch fp32"
    threads = f"{s.threads} thread{'s' if s.threads != 1 else ''}"
    return f"{objective}: {runtime}, {s.device.upper()}, {threads}, {s.batch_size} x {s.seq_len} tokens (ms)"


def _task_names(tasks: list[str]) -> list[str]:
    from proxy_tasks import get_task

    return [get_task(t).glue_dir_name for t in tasks]


def _single_task_headroom(refs, fitness: float) -> float | None:
    """The proxy headroom of a fitness where the proxy has one task (its fitness is that task's score)."""
    if refs is None or len(refs.tasks) != 1:
        return None
    return refs.headroom({refs.tasks[0]: fitness})["mean"]


def _ref_std(row: dict, tasks: list[str]) -> float | None:
    """The std of the no-distillation row's average over tasks, from its per-task stds (tasks independent)."""
    stds = [row.get(t, {}).get("std") for t in tasks]
    return math.sqrt(sum(s * s for s in stds)) / len(stds) if stds and None not in stds else None


def main(argv: list[str] | None = None) -> int:
    from layermap.report.front import load_front
    from layermap.final.comparison import paired_difference, paired_verdict
    from layermap.mapping import format_genes
    from layermap.shape import StudentShape
    from layermap.stats import holm, spearman_rho, kendall_tau

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--final", required=True, help="folder of one compare folder per front member (front-NN-...)")
    ap.add_argument("--baseline", required=True, help="compare folder of the fixed shape")
    ap.add_argument("--baseline-mapping", default="2-4-6")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    front = load_front(args.run)
    latency_key = "latency" if "latency" in front.objectives else front.objectives[1]
    fixed = front.row.config["student"]
    base_shape = StudentShape(fixed["layers"], fixed["hidden_size"], fixed["heads"], fixed["ffn"]).text
    base_genome = f"{base_shape}:{args.baseline_mapping}"
    students = []
    for i, member in enumerate(front.members, 1):
        folder = next(Path(args.final).glob(f"front-{i:02d}-*"), None)
        if folder is None or not (folder / "comparison.json").is_file():
            print(f"front member {i} ({member.genome}): no finished compare folder under {args.final}; skipped")
            continue
        students.append({"role": "front", "genome": member.genome, "shape": member.shape.text,
                         "mapping": format_genes(member.genes), "latency_ms": member.values[latency_key],
                         "params": member.costs.get("params"), "proxy": member.values["fitness"], "proxy_se": member.se,
                         "proxy_headroom": member.headroom, "tied": member.tied, "final": final_row(folder)})
    values, se = front.points.get(base_genome, (None, None))
    if values is None:
        raise SystemExit(f"the fixed-shape baseline {base_genome} was not evaluated by the run {args.run}")
    base_values = dict(zip(front.objectives, values))
    students.append({"role": "fixed-shape baseline", "genome": base_genome, "shape": base_shape,
                     "mapping": args.baseline_mapping, "latency_ms": base_values[latency_key],
                     "params": None, "proxy": base_values["fitness"], "proxy_se": se or front.noise_std,
                     "proxy_headroom": _single_task_headroom(front.references, base_values["fitness"]), "tied": False,
                     "final": final_row(Path(args.baseline), args.baseline_mapping)})
    base = students[-1]

    proxy = [s["proxy"] for s in students]
    final = [s["final"]["mean"] for s in students]
    agreement = {"n": len(students), "kendall_tau": kendall_tau(proxy, final),
                 "kendall_p_exact": kendall_exact_p(proxy, final), "spearman_rho": spearman_rho(proxy, final)}
    tests = []
    for s in students[:-1]:
        if s["latency_ms"] <= base["latency_ms"]:
            assert s["final"]["units"] == base["final"]["units"], "the folders' seed units differ"
            d = paired_difference(s["final"]["unit_scores"], base["final"]["unit_scores"], base_genome)
            tests.append({"genome": s["genome"], "mean": d.mean, "low": d.low, "high": d.high, "n": d.n, "p": d.p})
    for t, p in zip(tests, holm([t["p"] for t in tests])):
        t["p_holm"] = p
        t["verdict"] = paired_verdict(t["mean"], p)
    result = {"run": Path(args.run).name, "objectives": list(front.objectives), "noise_std": front.noise_std,
              "latency_axis": latency_axis(front.row.config, latency_key),
              "proxy_references": front.references.to_json() if front.references is not None else None,
              "students": students, "rank_agreement": agreement, "beats_fixed_shape": tests}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps(result, indent=2, default=float) + "\n", encoding="utf-8")
    md = render(result)
    (out / "study.md").write_text(md, encoding="utf-8")
    plot(result, out)
    print(md)
    return 0


def _f(x, fmt="{:.2f}"):
    return "–" if x is None else fmt.format(x)


def _room(x) -> str:
    """A headroom as the tables print it ("–" where it was not measured, never "-0 %")."""
    from layermap.evaluators.references import format_headroom

    return "–" if x is None else format_headroom(x)


def render(r: dict) -> str:
    a = r["rank_agreement"]
    lines = ["# Does the front survive the final stage?", "",
             f"Front of the nsga2 run `{r['run']}` over {', '.join(r['objectives'])} (proxy seed noise "
             f"{r['noise_std']:g}); each student distilled fully and fine-tuned ({len(r['students'][0]['final']['units'])} "
             "seed units) in its own compare folder; "
             "the no-distillation row is a student of the same shape, fine-tuned the same way.", "",
             "| role | shape | mapping | latency (ms) | proxy fitness | proxy headroom | final average | no distillation "
             "(same shape) | teacher | final headroom |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s in r["students"]:
        f = s["final"]
        lines.append(f"| {s['role']}{' (tie)' if s['tied'] else ''} | {s['shape']} | {s['mapping']} | "
                     f"{s['latency_ms']:.2f} | {s['proxy']:.2f} ± {s['proxy_se']:.2f} | "
                     f"{_room(s['proxy_headroom'])} | {f['mean']:.2f} ± {_f(f['std'])} | "
                     f"{_f(f['no_distillation'])} ± {_f(f['no_distillation_std'])} | {_f(f['teacher'])} | "
                     f"{_room(f['headroom'])} |")
    lines += ["", f"Rank agreement of proxy and final stage ({a['n']} students): Kendall's tau {a['kendall_tau']:+.2f} "
                  f"(exact permutation p {a['kendall_p_exact']:.3f}), Spearman's rho {a['spearman_rho']:+.2f}.", ""]
    if r["beats_fixed_shape"]:
        lines.append("Front members at equal or lower latency than the fixed-shape baseline, final average minus the "
                     "baseline's, paired by fine-tuning seed (floored t-test, Holm over these members):")
        lines.append("")
        for t in r["beats_fixed_shape"]:
            lines.append(f"- {t['genome']}: {t['mean']:+.2f} [{_f(t['low'], '{:+.2f}')}, {_f(t['high'], '{:+.2f}')}], "
                         f"p Holm {_f(t['p_holm'], '{:.3f}')}: {t['verdict']}")
    else:
        lines.append("No front member has a latency at or below the fixed-shape baseline's.")
    return "\n".join(lines) + "\n"


def base_tasks(r: dict) -> list[str]:
    """The final stage's tasks (GLUE names), as the compare folders have them (every folder the same ones)."""
    names = {tuple(s["final"]["task_names"]) for s in r["students"]}
    if len(names) != 1:
        raise SystemExit(f"the compare folders were fine-tuned on different tasks ({sorted(names)}); compare like with like")
    return list(next(iter(names)))


def fixed_label(r: dict) -> str:
    return next(s["shape"] for s in r["students"] if s["role"] != "front").split("-F")[0]


def plot(r: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    studs = sorted(r["students"], key=lambda s: s["latency_ms"])
    lat = [s["latency_ms"] for s in studs]
    ax = axes[0]
    ax.errorbar(lat, [s["proxy"] for s in studs], yerr=[s["proxy_se"] for s in studs], fmt="o", capsize=3,
                color="C0", label="student (proxy fitness ± se)")
    refs = r.get("proxy_references") or {}
    rows = refs.get("rows") or {}
    for name, style in (("teacher", "--"), ("no distillation", ":")):
        value = (rows.get(name) or {}).get("fitness")
        if value is not None:
            label = "teacher (proxy)" if name == "teacher" else f"no distillation ({fixed_label(r)} student, proxy)"
            ax.axhline(value, color="k", ls=style, lw=1, label=label)
    ax.set_title("proxy (search)")
    ax = axes[1]
    ax.errorbar(lat, [s["final"]["mean"] for s in studs], yerr=[s["final"]["std"] or 0 for s in studs], fmt="o",
                capsize=3, color="C1", label="distilled student (average ± seed std)")
    ax.errorbar(lat, [s["final"]["no_distillation"] for s in studs],
                yerr=[s["final"]["no_distillation_std"] or 0 for s in studs], fmt="x", capsize=3, color="C7",
                label="same shape, no distillation")
    ax.axhline(studs[0]["final"]["teacher"], color="k", ls="--", lw=1, label="fine-tuned teacher")
    ax.set_title(f"final stage ({' + '.join(base_tasks(r))} average)")
    for axis in axes:
        for s in studs:
            y = s["proxy"] if axis is axes[0] else s["final"]["mean"]
            axis.annotate(s["shape"].split("-F")[0] + ("*" if s["role"] != "front" else ""), (s["latency_ms"], y),
                          textcoords="offset points", xytext=(4, 4), fontsize=7)
        axis.set_xlabel(r["latency_axis"])
        axis.set_ylabel("score")
        axis.legend(fontsize=7, loc="lower right")
        axis.grid(alpha=0.3)
    for ext in ("png", "svg"):
        fig.savefig(out / f"study.{ext}", dpi=150)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
