"""The final stage of the extraction search, with and without distillation (issue 30, Deliver 4).

Reads two compare folders of the same teacher-extracted students and the same fine-tuning recipe (docs/final-stage.md
"The judge's recipe"): ``--zero``, the students as extracted (no distillation; with the reference rows: the teacher,
the plain truncation, a random student, the constant) and ``--distilled``, the same genomes distilled with
themselves as the mapping on several distillation seeds.  Writes ``summary.json`` and ``summary.md`` (and
``summary.png``/``.svg``) into ``--out``:

* each genome's score per task and on the average, without and with distillation (mean ± std over the verdict's
  units: fine-tuning seeds of the one undistilled student; distillation seeds, each the mean of its fine-tuning
  seeds), beside the yardsticks;
* the pick against the truncation, the every-other-layer copy and the top copy, without and with distillation: the
  verdicts the compare tables give (paired tests against every baseline, Holm) and each table's resolution;
* what distillation changed for each genome (its distilled units against its undistilled ones: Welch's t-test,
  Holm over the genomes), with the smallest change such a test detects at 80 % power where it finds none.

    python benchmarks/extract_final.py --zero results/extract-final-0 --distilled results/extract-final \\
        --pick 1-2-4 --out results/extract-final
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from layermap.stats import MIN_DIFF_SD, holm  # noqa: E402

ALPHA = 0.05
WORDS = {"bottom": "truncation (bottom layers)", "uniform": "every other layer", "top": "top layers",
         "given": "the search's pick"}


def _table(folder: Path) -> dict:
    return json.loads((folder / "comparison.json").read_text("utf-8"))


def _units(table: dict) -> dict[tuple[str, str], list[float]]:
    """(mapping, task or 'average') -> the verdict's unit scores."""
    return {(r["mapping"], r["task"]): list(r.get("unit_scores") or r["scores"]) for r in table["rows"]}


def welch(a: list[float], b: list[float]) -> dict:
    """Welch's t-test of mean(a) - mean(b), each variance floored so that the std of a difference is at least
    ``MIN_DIFF_SD`` (as the final stage floors a paired one); its 95 % interval and the smallest difference it detects
    with 80 % power."""
    from scipy import stats

    va = max(float(np.var(a, ddof=1)) if len(a) > 1 else 0.0, MIN_DIFF_SD ** 2 / 2)
    vb = max(float(np.var(b, ddof=1)) if len(b) > 1 else 0.0, MIN_DIFF_SD ** 2 / 2)
    se2 = va / len(a) + vb / len(b)
    df = se2 ** 2 / ((va / len(a)) ** 2 / max(len(a) - 1, 1) + (vb / len(b)) ** 2 / max(len(b) - 1, 1))
    diff = float(np.mean(a) - np.mean(b))
    se = math.sqrt(se2)
    p = float(2 * stats.t.sf(abs(diff) / se, df))
    half = float(stats.t.ppf(0.975, df) * se)
    detect = float((stats.t.ppf(0.975, df) + stats.t.ppf(0.8, df)) * se)
    return {"mean": diff, "ci": [diff - half, diff + half], "p": p, "df": df, "detectable": detect}


def build(zero: Path, distilled: Path, pick: str) -> dict:
    z, d = _table(zero), _table(distilled)
    if z["tasks"] != d["tasks"]:
        raise SystemExit(f"{zero} and {distilled} judge other tasks ({z['tasks']} vs {d['tasks']}); give folders of the "
                         "same tasks")
    columns = [*z["tasks"], "average"]
    uz, ud = _units(z), _units(d)
    genomes = [m for m in d["mappings"] if any((m, t) in uz for t in columns)]
    kinds = {r["mapping"]: (r.get("kind") or ["given"])[0] for r in d["rows"]}
    scores = {g: {t: {"undistilled": _stat(uz.get((g, t))), "distilled": _stat(ud.get((g, t)))} for t in columns}
              for g in genomes}
    changes = {g: welch(ud[(g, "average")], uz[(g, "average")]) for g in genomes}
    for g, p in zip(genomes, holm([changes[g]["p"] for g in genomes])):
        changes[g]["p_holm"] = p
        changes[g]["verdict"] = ("pays" if changes[g]["mean"] > 0 else "costs") if p < ALPHA else "no difference"
    verdicts = {name: _verdicts(table, pick, columns) for name, table in (("undistilled", z), ("distilled", d))}
    refs = z.get("references") or {}
    return {"benchmark": "final stage of the extraction search, with and without distillation (issue 30)",
            "zero": zero.name, "distilled": distilled.name, "pick": pick, "tasks": z["tasks"], "genomes": genomes,
            "kinds": kinds, "budget": d["budget"], "distill_seeds": d["distill_seeds"], "seeds": d["seeds"],
            "yardsticks": {name: {t: (refs[name].get(t) or {}).get("mean") for t in columns} for name in refs},
            "scores": scores, "verdicts": verdicts, "changes": changes,
            "resolution": {"undistilled": z.get("resolution"), "distilled": d.get("resolution")},
            "rates": {"undistilled": z["recipe"]["chosen"], "distilled": d["recipe"]["chosen"]}}


def _stat(units: list[float] | None) -> dict | None:
    if not units:
        return None
    return {"mean": float(np.mean(units)), "std": float(np.std(units, ddof=1)) if len(units) > 1 else None,
            "n": len(units)}


def _verdicts(table: dict, pick: str, columns: list[str]) -> dict:
    """The pick's paired comparisons with every baseline per column, as the compare table tested them."""
    out = {}
    for r in table["rows"]:
        if r["mapping"] != pick or r["task"] not in columns or not r.get("paired"):
            continue
        pr = r["paired"]
        out[r["task"]] = {"reference": pr["reference"], "verdict": pr["verdict"], "p_holm": pr.get("p_adjusted"),
                          "against": {c["mapping"]: {"mean": c["mean"], "p_holm": c.get("p_adjusted")}
                                      for c in pr.get("comparisons", [])},
                          "vs_reference": [pr["mean"], pr["low"], pr["high"]], "unit": pr.get("unit"), "n": pr.get("n")}
    return out


def _fmt(x, nd: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def _cell(s: dict | None) -> str:
    return "–" if s is None else f"{_fmt(s['mean'])} ± {_fmt(s['std'])}"


def text(r: dict) -> str:
    from proxy_tasks.registry import TASKS

    names = {t: TASKS[t].glue_dir_name if t in TASKS else t for t in r["tasks"]}
    columns = [*r["tasks"], "average"]
    head = [names.get(t, t) for t in columns]
    b = r["budget"]
    lines = [f"# The extraction search's pick in the final stage, with and without distillation", "",
             f"3-layer students copied from MiniLM-L6 teacher layers (each genome names the layers kept), judged by "
             f"the final stage's recipe on {', '.join(names.values())} (the proxy used SST-2 alone; MRPC is new to "
             f"it). Without distillation: {r['zero']}, one student per genome, the units are its fine-tuning "
             f"seeds. With: {r['distilled']}, {b.get('max_steps')} steps at learning rate {b.get('learning_rate')} "
             f"with the genome as the mapping, {r['distill_seeds']} distillation seeds x {r['seeds']} fine-tuning "
             f"seeds, the units are the distillation seeds. Scores: the scoring split, mean ± std over the units.", "",
             "Yardsticks (undistilled, same recipe): " + "; ".join(
                 f"{name} " + ", ".join(f"{names.get(t, t)} {_fmt(v)}" for t, v in by.items())
                 for name, by in r["yardsticks"].items()), "",
             "| genome | what | " + " | ".join(f"{h} undistilled | {h} distilled" for h in head)
             + " | Δ average from distillation (95 % CI) | verdict |",
             "|---|---|" + "---|---|" * len(head) + "---|---|"]
    for g in r["genomes"]:
        c = r["changes"][g]
        word = c["verdict"] if c["verdict"] != "no difference" else f"none > {_fmt(c['detectable'], 1)} seen"
        lines.append(f"| {g} | {WORDS.get(r['kinds'].get(g), r['kinds'].get(g))} | "
                     + " | ".join(f"{_cell(r['scores'][g][t]['undistilled'])} | {_cell(r['scores'][g][t]['distilled'])}"
                                  for t in columns)
                     + f" | {_fmt(c['mean'])} [{_fmt(c['ci'][0])}, {_fmt(c['ci'][1])}] | {word} |")
    lines += ["", f"The pick {r['pick']} against the truncation, the every-other-layer copy and the top copy (the "
              "compare tables' paired tests against every baseline, Holm-adjusted; 'better' only when all are beaten):",
              "", "| | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for name in ("undistilled", "distilled"):
        v, res = r["verdicts"][name], r["resolution"][name] or {}
        row = []
        for t in columns:
            e = v.get(t)
            if e is None:
                row.append("–")
                continue
            diffs = ", ".join(f"{_fmt(x['mean'], 1):>4} vs {m}" for m, x in e["against"].items())
            seen = (res.get(t) or {}).get("detectable")
            row.append(f"{e['verdict']} ({diffs}; resolves {_fmt(seen, 1)})")
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    lines += ["", "'resolves X': the smallest difference the table's test detects at 80 % power (compare's resolution "
              "line). Δ from distillation: Welch's t-test of the distilled units against the undistilled ones "
              f"(variances floored as the final stage floors a difference, {MIN_DIFF_SD} points), Holm over the "
              "genomes; 'none > X seen': no significant change, X the smallest one it detects at 80 % power."]
    return "\n".join(lines) + "\n"


def plot(r: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from proxy_tasks.registry import TASKS

    columns = [*r["tasks"], "average"]
    names = {t: TASKS[t].glue_dir_name if t in TASKS else t for t in r["tasks"]}
    fig, axes = plt.subplots(1, len(columns), figsize=(3.4 * len(columns), 3.4), sharey=False)
    x = np.arange(len(r["genomes"]))
    for ax, t in zip(np.atleast_1d(axes), columns):
        for k, (name, colour) in enumerate((("undistilled", "#8da0cb"), ("distilled", "#fc8d62"))):
            s = [r["scores"][g][t][name] for g in r["genomes"]]
            ax.bar(x + (k - 0.5) * 0.38, [v["mean"] if v else np.nan for v in s], 0.38, color=colour, label=name,
                   yerr=[(v["std"] or 0) if v else 0 for v in s], capsize=2)
        for name, style in (("teacher", "-"), ("truncation", "--"), ("random", ":")):
            val = r["yardsticks"].get(name, {}).get(t)
            if val is not None:
                ax.axhline(val, color="0.3", ls=style, lw=0.9, label=name)
        vals = [v["mean"] for g in r["genomes"] for v in r["scores"][g][t].values() if v]
        lo = min(vals + [r["yardsticks"].get("truncation", {}).get(t) or min(vals)]) - 4
        hi = max(vals + [r["yardsticks"].get("teacher", {}).get(t) or max(vals)]) + 1.5
        ax.set_ylim(lo, hi)
        ax.set_xticks(x, r["genomes"])
        ax.set_title(names.get(t, t), fontsize=10)
        ax.set_ylabel("score, scoring split (%)" if t == columns[0] else "")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"Kept teacher layers, undistilled vs {r['budget'].get('max_steps')} distillation steps "
                 f"({r['distill_seeds']} seeds)", fontsize=10)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out / f"summary.{ext}", dpi=150)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zero", required=True, type=Path, help="compare folder of the undistilled students")
    ap.add_argument("--distilled", required=True, type=Path, help="compare folder of the same genomes distilled")
    ap.add_argument("--pick", required=True, help="the search's pick (a genome of both folders)")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    result = build(args.zero, args.distilled, args.pick)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    (args.out / "summary.md").write_text(text(result), encoding="utf-8")
    plot(result, args.out)
    print(text(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
