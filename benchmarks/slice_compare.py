"""Two ways of cutting narrower students from the teacher, judged against each other (issue 30, Deliver 5).

Reads two compare folders of the same teacher-extracted genomes, tasks and fine-tuning seeds that differ only in
``student.slice`` (``--a`` e.g. the leading slice, ``--b`` the importance slice), with the reference rows, and writes
``--out``.md / .json:

* each genome's score per slice (the compare tables' mappings and their plain truncation row), mean ± std over
  fine-tuning seeds, beside both folders' yardsticks (teacher, random student, constant);
* per genome, the difference b − a paired by fine-tuning seed (the same seed fine-tunes both students on the same
  examples in the same order): mean, 95 % Student-t interval, two-sided p, Holm over the genomes;
* over every genome and seed together, one paired test (the differences of different genomes treated as
  independent: a statement about these students, not about all genomes), with the smallest difference it detects
  at 80 % power, so a null says how large a difference it could have seen.

Each folder picks its own fine-tuning rate per student family (the judge's recipe), so a difference includes what the
slice does to the best rate.

    python benchmarks/slice_compare.py --a results/judge/extracted-192 --b results/judge/extracted-192-importance \\
        --out results/judge/slices-192

``--references DIR``: the yardsticks of a compare folder that has them, for two folders made without reference rows
(distilled students fine-tuned at the rates of their undistilled selves, ``--recipe-from``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from layermap.final.comparison import paired_difference  # noqa: E402
from layermap.final.resolution import detectable_difference  # noqa: E402
from layermap.stats import floored_paired_t, holm  # noqa: E402

ALPHA = 0.05


def per_seed(table: dict) -> dict[str, dict[str, dict[int, float]]]:
    """genome -> task -> fine-tuning seed -> score, for the table's mappings (one distillation seed: the first) and its
    plain truncation row (named by its genome, the bottom layers)."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    if table.get("distill_seeds", 1) != 1:
        raise SystemExit("slice_compare pairs undistilled students by fine-tuning seed; give compare folders with one "
                         f"distillation seed (this one has {table['distill_seeds']})")
    seeds = [int(seed) for _, seed in table["units"]]          # (distillation seed, fine-tuning seed) per unit
    for row in table["rows"]:
        if row["task"] != "average":
            out.setdefault(row["mapping"], {})[row["task"]] = dict(zip(seeds, row["unit_scores"]))
    truncation = table.get("references", {}).get("truncation")
    if truncation:
        genome = "-".join(str(k) for k in range(1, int(table["student"]["layers"]) + 1))
        for task in table["tasks"]:
            scores = truncation.get(task, {}).get("scores")
            if scores:
                out.setdefault(genome, {})[task] = {int(s): v for s, v in scores.items()}
    return out


def paired(differences: list[float]) -> dict:
    """Mean, 95 % interval and two-sided p of paired differences, their std floored at MIN_DIFF_SD as the compare
    tables do (:func:`layermap.stats.floored_paired_t`), and the smallest difference such a test detects at 80 %
    power."""
    n = len(differences)
    if n < 2:
        return {"n": n, "mean": float(np.mean(differences)) if differences else None}
    d = paired_difference(differences, [0.0] * n)             # the compare tables' interval and p
    sd = floored_paired_t(differences)["sd"]
    return {"n": n, "mean": d.mean, "sd": sd, "low": d.low, "high": d.high, "p": d.p,
            "detectable": detectable_difference(sd, n)}


def compare(a: dict, b: dict, yardsticks: dict | None = None) -> dict:
    """The summary of two compare tables (module docstring); ``yardsticks``: a third table whose reference rows stand
    for both where theirs are missing (distilled folders made without reference rows)."""
    sa, sb = per_seed(a), per_seed(b)
    tasks = [t for t in a["tasks"] if t in b["tasks"]]
    genomes = [g for g in sa if g in sb]
    rows, everything = [], []
    for genome in genomes:
        for task in tasks:
            seeds = sorted(set(sa[genome].get(task, {})) & set(sb[genome].get(task, {})))
            diffs = [sb[genome][task][s] - sa[genome][task][s] for s in seeds]
            everything += diffs
            rows.append({"genome": genome, "task": task, "seeds": seeds,
                         "a": _summary([sa[genome][task][s] for s in seeds]),
                         "b": _summary([sb[genome][task][s] for s in seeds]), "difference": paired(diffs)})
    adjusted = holm([r["difference"].get("p") for r in rows])
    for r, p in zip(rows, adjusted):
        r["difference"]["p_holm"] = p
    refs = {side: {name: {t: table["references"][name].get(t, {}).get("mean") for t in tasks}
                   for name in ("teacher", "random", "constant") if name in table.get("references", {})}
            for side, table in (("a", a), ("b", b))}
    if yardsticks is not None:
        for side, table in (("a", a), ("b", b)):
            if not any(v is not None for row in refs[side].values() for v in row.values()):
                refs[side] = {name: {t: yardsticks["references"][name].get(t, {}).get("mean") for t in tasks}
                              for name in ("teacher", "random", "constant") if name in yardsticks.get("references", {})}
    return {"tasks": tasks, "slices": {"a": a["student"].get("slice", "leading"), "b": b["student"].get("slice", "leading")},
            "student": {k: a["student"].get(k) for k in ("layers", "hidden_size", "init")}, "rows": rows,
            "pooled": paired(everything), "references": refs}


def _summary(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)) if values else None,
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else None}


def _verdict(d: dict, slices: dict, p_key: str = "p_holm") -> str:
    p = d.get(p_key, d.get("p"))
    if p is None:
        return "untested"
    if p < ALPHA:
        return f"{slices['b'] if d['mean'] > 0 else slices['a']} better"
    return f"no difference larger than about {d['detectable']:.1f} points seen"


def markdown(summary: dict, a_name: str, b_name: str) -> str:
    sl = summary["slices"]
    st = summary["student"]
    pooled = summary["pooled"]
    lines = [f"# Slices compared: {sl['a']} (`{a_name}`) vs {sl['b']} (`{b_name}`)", "",
             f"{st['layers']}-layer, {st['hidden_size']}-wide students initialised from the teacher, cut by each slice; "
             "the same fine-tuning seeds in both folders, each folder choosing its own rate per student family. "
             "Differences are b − a paired by fine-tuning seed.", "",
             "| genome | task | seeds | " + f"{sl['a']} | {sl['b']} | b − a [95 % CI] | p (Holm) | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        d = r["difference"]
        ci = f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]" if "low" in d else f"{d['mean']:+.2f}"
        p = f"{d['p_holm']:.3f}" if d.get("p_holm") is not None else "–"
        lines.append(f"| {r['genome']} | {r['task']} | {len(r['seeds'])} | {_fmt(r['a'])} | {_fmt(r['b'])} | {ci} | {p} "
                     f"| {_verdict(d, sl)} |")
    lines += ["", f"**Over every genome and seed** ({pooled['n']} paired differences, genomes treated as "
              f"independent): b − a = {pooled['mean']:+.2f} [{pooled['low']:+.2f}, {pooled['high']:+.2f}], "
              f"p {pooled['p']:.4f}: {_verdict(pooled, sl, 'p')}; this test detects {pooled['detectable']:.2f} points at 80 % "
              "power.", "", "Yardsticks (mean over seeds, as each folder's table gives them):", "",
              "| row | " + " | ".join(f"{t} ({side})" for side in ("a", "b") for t in summary["tasks"]) + " |",
              "|---|" + "---|" * (2 * len(summary["tasks"]))]
    names = [n for n in ("teacher", "random", "constant") if n in summary["references"]["a"]]
    if not names:
        lines[-4:] = ["", "No yardsticks: neither folder has reference rows (give --references)."]
    for name in names:
        cells = [summary["references"][side].get(name, {}).get(t) for side in ("a", "b") for t in summary["tasks"]]
        lines.append(f"| {name} | " + " | ".join("–" if c is None else f"{c:.2f}" for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(s: dict) -> str:
    return f"{s['mean']:.2f}" + (f" ± {s['std']:.2f}" if s.get("std") is not None else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", required=True, help="compare folder of the first slice (e.g. leading)")
    ap.add_argument("--b", required=True, help="compare folder of the second slice (e.g. importance)")
    ap.add_argument("--out", required=True, help="path without extension: writes OUT.md and OUT.json")
    ap.add_argument("--references", help="compare folder whose reference rows (teacher, random student, constant) "
                                         "stand for folders made without them")
    args = ap.parse_args(argv)
    tables = [json.loads((Path(p) / "comparison.json").read_text()) for p in (args.a, args.b)]
    extra = json.loads((Path(args.references) / "comparison.json").read_text()) if args.references else None
    summary = compare(*tables, yardsticks=extra)
    summary["folders"] = {"a": Path(args.a).name, "b": Path(args.b).name}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    text = markdown(summary, Path(args.a).name, Path(args.b).name)
    out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
