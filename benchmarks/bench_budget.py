"""When does distillation pay for a student extracted from the teacher? (issue 30, Deliver 3)

Reads the 0-step compare folder (``--zero``: teacher-extracted students with no distillation, with the teacher, the
plain truncation and a random student as reference rows) and one compare folder per distillation budget and learning
rate (``--folders``, made by benchmarks/bench_budget.sh: the same genomes distilled, each fine-tuned at the rate its
undistilled self was given), and writes ``budget.json``, ``budget.txt`` and ``budget.png``/``.svg``:

* each genome's score at each budget and rate (mean ± std over the fine-tuning seeds, the scoring split; dev beside);
* against its own undistilled self and against the plain truncation: the paired difference over the shared
  fine-tuning seeds, a Student-t test with the final stage's variance floor (:func:`layermap.stats.floored_paired_t`),
  Holm-adjusted within each question; "pays" / "costs" only below 0.05, else "no difference" with the smallest
  difference a test of that many seeds detects at 80 % power (from the pooled std of the paired differences);
* the yardsticks: the teacher, the truncation and the random student of the same shape, undistilled, and the seed
  noise (the pooled within-student std of one fine-tuning);
* what a distillation costs (CPU-seconds per 1,000 steps, from the cells' own timings).

    python benchmarks/bench_budget.py --zero results/judge/extracted --folders results/budget/s*-lr* \\
        --out results/budget
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from layermap.final.borrow import truncation_genes, undistilled_self  # noqa: E402
from layermap.final.resolution import detectable_difference  # noqa: E402
from layermap.stats import MIN_DIFF_SD, floored_paired_t, holm, sample_var  # noqa: E402

TRUNCATION = "truncation"
ALPHA = 0.05


def _settings(folder: Path) -> dict:
    return json.loads((folder / "compare.json").read_text("utf-8"))["settings"]


def _rows(folder: Path, kinds: tuple[str, ...]) -> list[tuple]:
    with sqlite3.connect(f"file:{folder / 'layermap.sqlite'}?mode=ro", uri=True) as db:
        marks = ",".join("?" * len(kinds))
        return db.execute(f"SELECT kind, mapping, distill_seed, task, seed, score, record, wall_time FROM cells "
                          f"WHERE status = 'complete' AND kind IN ({marks})", kinds).fetchall()


def read_folder(folder: Path, task: str) -> dict:
    """The folder's budget (steps, rate), each student's scores by fine-tuning seed (scoring split and dev), and its
    distillations' wall seconds."""
    s = _settings(folder)
    steps = int(s.get("compare.max_steps") or 0)
    students: dict[str, dict[int, dict]] = {}
    for kind, mapping, d, t, seed, score, record, _wall in _rows(folder, ("finetune", "teacher")):
        if t != task or score is None or d != 0:   # distillation seed 0: the one student per genome the script
            continue                                # pairs by fine-tuning seed (extract_final.py reads several)
        rec = json.loads(record)
        students.setdefault("teacher" if kind == "teacher" else mapping, {})[int(seed)] = {
            "score": float(score), "dev": rec.get("dev_score"), "rate": rec.get("learning_rate")}
    seconds = [float(w) for kind, *_rest, w in _rows(folder, ("distill",)) if w and steps]
    return {"folder": folder.name, "steps": steps, "lr": float(s.get("compare.learning_rate") or 0) if steps else None,
            "students": students, "distill_seconds": float(np.mean(seconds)) if seconds else None}


def _summary(by_seed: dict[int, dict], key: str = "score") -> dict:
    ys = [v[key] for v in by_seed.values() if v.get(key) is not None]
    return {"mean": float(np.mean(ys)) if ys else None, "std": math.sqrt(sample_var(ys)) if len(ys) > 1 else None,
            "n": len(ys)}


def _differences(a: dict[int, dict], b: dict[int, dict]) -> list[float]:
    return [a[s]["score"] - b[s]["score"] for s in sorted(set(a) & set(b))]


def _pooled_sd(groups: list[list[float]]) -> tuple[float | None, int]:
    """The pooled within-group std (each group's deviations from its own mean) and its degrees of freedom."""
    ss = sum(float(np.sum((np.asarray(g) - np.mean(g)) ** 2)) for g in groups if len(g) > 1)
    df = sum(len(g) - 1 for g in groups if len(g) > 1)
    return (math.sqrt(ss / df) if df else None), df


def _test(points: list[dict], against: str, label: str) -> dict:
    """Per point, a floored paired t-test of the distilled student against ``against`` (its own undistilled self or
    the truncation); Holm over the points; the pooled std of the differences says what a null could have seen."""
    diffs = [p[f"diff_{against}"] for p in points]
    tests = [floored_paired_t(d) if len(d) >= 2 else None for d in diffs]
    adjusted = holm([t["p"] if t else None for t in tests])
    sd, df = _pooled_sd([d for d in diffs if len(d) >= 2])
    from scipy.stats import t as student

    for p, d, t, q in zip(points, diffs, tests, adjusted):
        n = len(d)
        entry = {"mean": float(np.mean(d)) if d else None, "n": n, "p_holm": q,
                 "detectable": detectable_difference(max(sd or 0.0, MIN_DIFF_SD), n) if n >= 2 else None}
        if t is not None:
            half = float(student.ppf(0.975, t["df"]) * t["stderr"])
            entry["ci"] = [t["mean"] - half, t["mean"] + half]
        entry["verdict"] = (("pays" if entry["mean"] > 0 else "costs") if q is not None and q < ALPHA
                            else "no difference")
        p[label] = entry
    return {"pooled_sd": sd, "df": df}


def build(zero: Path, folders: list[Path], task: str) -> dict:
    base = read_folder(zero, task)
    undistilled = {m: by for m, by in base["students"].items()}
    if TRUNCATION not in undistilled:
        raise SystemExit(f"{zero} has no truncation reference row on {task}; make it with bench_judge.sh "
                         "(compare.init = teacher, compare.references = true)")
    bottom = truncation_genes(zero)
    if bottom is None:
        raise SystemExit(f"{zero} is not a compare folder of teacher-initialised students (compare.init = teacher)")
    undistilled.setdefault(bottom, undistilled[TRUNCATION])
    runs = sorted((read_folder(f, task) for f in folders), key=lambda r: (r["steps"], r["lr"] or 0))
    points = []
    for run in runs:
        for mapping, by_seed in sorted(run["students"].items()):
            start = undistilled_self(mapping, undistilled)   # a split genome's: the genes it starts from
            if mapping == "teacher" or start not in undistilled:
                continue
            points.append({"mapping": mapping, "steps": run["steps"], "lr": run["lr"], "folder": run["folder"],
                           **_summary(by_seed), "dev": _summary(by_seed, "dev")["mean"],
                           "rate": sorted({v["rate"] for v in by_seed.values()}),
                           "starts_from": start, "diff_self": _differences(by_seed, undistilled[start]),
                           "diff_truncation": _differences(by_seed, undistilled[TRUNCATION])})
    tests = {"vs_self": _test(points, "self", "vs_self"), "vs_truncation": _test(points, "truncation", "vs_truncation")}
    coupled = [p for p in points if "+" not in p["mapping"]]      # the budget question: a genome distilled with itself
    budgets = [{"steps": st, "lr": lr, "genomes": sorted({p["mapping"] for p in coupled if (p["steps"], p["lr"]) == (st, lr)}),
                "diff_self": [d for p in coupled if (p["steps"], p["lr"]) == (st, lr) for d in p["diff_self"]]}
               for st, lr in dict.fromkeys((p["steps"], p["lr"]) for p in coupled)]
    tests["overall"] = _test(budgets, "self", "vs_self")
    split = _split_against_coupled(points, runs)
    split_overall = None
    if split:
        tests["split_vs_coupled"] = _test(split, "coupled", "vs_coupled")
        split_overall = {"mapping": ", ".join(sp["mapping"] for sp in split), "coupled": "each its start",
                         "steps": None, "lr": None, "diff_coupled": [d for sp in split for d in sp["diff_coupled"]]}
        tests["split_overall"] = _test([split_overall], "coupled", "vs_coupled")     # one test over them all
    zero_points = [{"mapping": m, "steps": 0, "lr": None, **_summary(by), "dev": _summary(by, "dev")["mean"]}
                   for m, by in sorted(undistilled.items()) if m not in ("teacher", "random", TRUNCATION)]
    noise, noise_df = _pooled_sd([[v["score"] for v in by.values()]
                                  for by in [*undistilled.values(), *(r for run in runs for r in run["students"].values())]])
    yardsticks = {name: {**_summary(undistilled[name]), "dev": _summary(undistilled[name], "dev")["mean"]}
                  for name in ("teacher", TRUNCATION, "random") if name in undistilled}
    cost = {f"{r['steps']} steps, lr {r['lr']:g}": r["distill_seconds"] / r["steps"] * 1000
            for r in runs if r["distill_seconds"] and r["steps"]}
    return {"benchmark": "distillation budget of teacher-extracted students (issue 30)", "task": task,
            "zero": zero.name, "truncation_genes": bottom, "yardsticks": yardsticks,
            "seed_noise": {"sd": noise, "df": noise_df}, "zero_points": zero_points, "points": points,
            "overall": budgets, "split": split, "split_overall": split_overall, "tests": tests, "cpu_seconds_per_1000_steps": cost}


def _split_against_coupled(points: list[dict], runs: list[dict]) -> list[dict]:
    """Each split genome (``1-2-3+2-4-6``: starts from 1-2-3, imitates 2-4-6) against the coupled genome of its start
    (``1-2-3``: starts from and imitates 1-2-3) distilled at the same budget and rate: the paired differences over
    their shared fine-tuning seeds (Deliver 1 of issue 30: does imitating other layers than one starts from pay?)."""
    by_run = {(r["steps"], r["lr"]): r["students"] for r in runs}
    out = []
    for p in points:
        if "+" not in p["mapping"]:
            continue
        students = by_run[(p["steps"], p["lr"])]
        if p["starts_from"] not in students:
            continue
        out.append({"mapping": p["mapping"], "coupled": p["starts_from"], "steps": p["steps"], "lr": p["lr"],
                    "diff_coupled": _differences(students[p["mapping"]], students[p["starts_from"]])})
    return out


def _task_name(task: str) -> str:
    from proxy_tasks.registry import TASKS

    return TASKS[task].glue_dir_name if task in TASKS else task


def _fmt(x: float | None, nd: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def _cells(e: dict, words: dict | None = None) -> tuple[str, str]:
    """A test entry's difference with its 95 % interval, and its verdict ('none > X seen' for a null, X what the
    test could have seen; ``words`` renames 'pays' / 'costs')."""
    ci = f" [{_fmt(e['ci'][0])}, {_fmt(e['ci'][1])}]" if "ci" in e else ""
    word = e["verdict"] if e["verdict"] != "no difference" else f"none > {_fmt(e['detectable'], 1)} seen"
    return f"{_fmt(e['mean'])}{ci}", (words or {}).get(word, word)


def text(result: dict) -> str:
    y, noise = result["yardsticks"], result["seed_noise"]
    lines = [f"When distillation pays: teacher-extracted 3-layer students, {_task_name(result['task'])} scoring split "
             f"(the final stage's recipe), mean ± std over fine-tuning seeds.",
             "Yardsticks (undistilled, same recipe): " + ", ".join(
                 f"{k} {_fmt(v['mean'])} ± {_fmt(v['std'])}" for k, v in y.items())
             + f"; seed noise of one fine-tuning {_fmt(noise['sd'])} ({noise['df']} df).", "",
             "| genome | steps | lr | score | dev | Δ vs undistilled self (95 % CI) | verdict | Δ vs truncation | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for z in result["zero_points"]:
        lines.append(f"| {z['mapping']} | 0 | – | {_fmt(z['mean'])} ± {_fmt(z['std'])} | {_fmt(z['dev'])} | – | – | "
                     f"{_fmt(z['mean'] - y[TRUNCATION]['mean']):>5} | – |")
    for p in result["points"]:
        cells = []
        for key in ("vs_self", "vs_truncation"):
            cells += _cells(p[key])
        lines.append(f"| {p['mapping']} | {p['steps']} | {p['lr']:g} | {_fmt(p['mean'])} ± {_fmt(p['std'])} | "
                     f"{_fmt(p['dev'])} | " + " | ".join(cells) + " |")
    lines += ["", "Over the genomes of a budget (every genome's paired differences from its undistilled self, one test a "
              "budget, Holm over the budgets):", "",
              "| steps | lr | genomes | Δ vs undistilled self (95 % CI) | n | verdict |", "|---|---|---|---|---|---|"]
    for b in result["overall"]:
        diff, word = _cells(b["vs_self"])
        lines.append(f"| {b['steps']} | {b['lr']:g} | {', '.join(b['genomes'])} | {diff} | {b['vs_self']['n']} | {word} |")
    if result.get("split"):
        lines += ["", "Split genomes against the coupled genome of their start, distilled at the same budget (paired over "
                  "the shared fine-tuning seeds, Holm over the split genomes):", "",
                  "| split genome | coupled | steps | lr | Δ (95 % CI) | verdict |", "|---|---|---|---|---|---|"]
        split_words = {"pays": "split better", "costs": "split worse"}
        for sp in result["split"]:
            diff, word = _cells(sp["vs_coupled"], split_words)
            lines.append(f"| {sp['mapping']} | {sp['coupled']} | {sp['steps']} | {sp['lr']:g} | {diff} | {word} |")
        e = result["split_overall"]["vs_coupled"]
        diff, word = _cells(e, split_words)
        lines.append(f"| all of them, one test ({e['n']} differences) | each its start | | | {diff} | {word} |")
    t = result["tests"]
    lines += ["", f"Tests: paired over the shared fine-tuning seeds, std floored at {MIN_DIFF_SD} points, Holm over "
              f"the {len(result['points'])} points of each question; pooled std of a difference: vs self "
              f"{_fmt(t['vs_self']['pooled_sd'])} ({t['vs_self']['df']} df), vs truncation "
              f"{_fmt(t['vs_truncation']['pooled_sd'])} ({t['vs_truncation']['df']} df). 'none > X seen': no "
              "significant difference, X the smallest one such a test detects at 80 % power.",
              "Distillation cost: " + ", ".join(f"{k}: {v:.0f} s per 1,000 steps"
                                               for k, v in result["cpu_seconds_per_1000_steps"].items())]
    return "\n".join(lines) + "\n"


def plot(result: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import rc_context
    from matplotlib.ticker import NullLocator

    from layermap.plots.style import BAR_COLOURS, PAPER_RC, WIDTH, figure, save_figure

    genomes = sorted({p["mapping"] for p in result["points"]})
    rates = sorted({p["lr"] for p in result["points"]})
    zero = {z["mapping"]: z for z in result["zero_points"]}
    y = result["yardsticks"]
    with rc_context(PAPER_RC):
        fig = figure(WIDTH, 3.0)
        ax = fig.add_subplot(1, 1, 1)
        for name, style in (("teacher", ("k", "--")), (TRUNCATION, ("#555555", ":")), ("random", ("#999999", "-."))):
            if name in y and y[name]["mean"] is not None:
                ax.axhline(y[name]["mean"], color=style[0], linestyle=style[1], linewidth=0.9,
                           label=f"{name} (undistilled)" if name != "teacher" else "teacher")
        markers = ("o", "s", "^", "D")
        for i, g in enumerate(genomes):
            for j, lr in enumerate(rates):
                pts = sorted((p for p in result["points"] if p["mapping"] == g and p["lr"] == lr), key=lambda p: p["steps"])
                z = zero.get(g.split("+", 1)[0])
                xs = ([0] if z else []) + [p["steps"] for p in pts]
                ms = ([z["mean"]] if z else []) + [p["mean"] for p in pts]
                ss = ([z["std"] or 0] if z else []) + [p["std"] or 0 for p in pts]
                ax.errorbar(xs, ms, yerr=ss, color=BAR_COLOURS[i % len(BAR_COLOURS)],
                            linestyle=("-", "--", ":")[j % 3], marker=markers[j % len(markers)], markersize=3,
                            linewidth=1, capsize=2, label=f"{g}, lr {lr:g}" + (" (truncation)"
                                                                                if g == result["truncation_genes"] else ""))
        ax.set_xscale("symlog", linthresh=100)
        steps = sorted({0, *(p["steps"] for p in result["points"])})
        ax.set_xticks(steps)
        ax.set_xticklabels([str(s) for s in steps])
        ax.set_xlabel("task-agnostic distillation steps (batch 32, 64 tokens)")
        ax.set_ylabel(f"{_task_name(result['task'])} accuracy, held-out scoring split (%)")
        noise = result["seed_noise"]["sd"]
        ax.set_title("Teacher-extracted students: distil, or keep the layers?")

        ax.xaxis.set_minor_locator(NullLocator())
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, title_fontsize=7,
                  title=f"error bars: std over fine-tuning seeds\n(seed noise of one fine-tuning {noise:.2f})")
        return save_figure(fig, out, "budget")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zero", type=Path, required=True, help="the 0-step compare folder (bench_judge.sh's extracted)")
    ap.add_argument("--folders", type=Path, nargs="+", required=True, help="the budget compare folders")
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    for f in [args.zero, *args.folders]:
        if not (f / "compare.json").is_file():
            print(f"{f} is not a compare folder (no compare.json); make it with benchmarks/bench_budget.sh",
                  file=sys.stderr)
            return 2
    result = build(args.zero, args.folders, args.task)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "budget.json").write_text(json.dumps(result, indent=1, default=float) + "\n", encoding="utf-8")
    report = text(result)
    (args.out / "budget.txt").write_text(report, encoding="utf-8")
    plot(result, args.out)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
