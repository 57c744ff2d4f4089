"""The final stage's table: per-task mean ± std over seeds, paired differences, loyalty; md/csv/json.

Pure functions over finished cells (no training, no I/O except :func:`write_table`):

* a *seed unit* is a (distillation seed, fine-tuning seed) pair; every mapping is scored under the
  same units, so differences between two mappings are taken unit by unit (paired);
* a task's row holds the mean and the sample standard deviation (n − 1) of its per-unit scores;
  the ``average`` row holds the GLUE-style mean over tasks, per unit, then its mean and std;
* each mapping is compared with the *reference*: the best baseline (highest average) among the
  compared mappings, or the best mapping when no baseline is compared.  The paired difference
  d_u = score(mapping, u) − score(reference, u) gives the mean and 95 % Student-t interval shown,
  mean ± t(0.975, n − 1) · sd / √n;
* the verdict: since the reference is the best baseline *on these data*, "better than the reference" is read as
  "better than every baseline" (the *comparators*: every baseline but the mapping itself, or every other mapping
  when no baseline is compared).  Each mapping gets a two-sided paired t-test against each comparator
  (:func:`layermap.stats.floored_paired_t`); the tests of one column (one task, or the average) form one family,
  Holm–Bonferroni-adjusted together.  ``better`` when every comparator's difference is positive and its adjusted p
  below α = 0.05 (the row's p is then the largest of them: an intersection-union test, 1 where a comparator is
  not beaten); ``worse`` when the difference from the reference is negative and that test's adjusted p is below α
  (the row's p is that test's); else ``no significant difference``.  The direction is the reference difference's
  sign and the row's p comes from tests of that sign, so a verdict can never point against its test.  Each row
  keeps the raw ``p``, the adjusted ``p_adjusted``, the verdict the raw p's alone would give
  (``uncorrected_verdict``) and every comparator's test (``comparisons``).  The intervals stay per comparison.
* loyalty (Xu et al. 2021) compares a student's dev outputs with those of one fixed fine-tuned teacher (the teacher
  fine-tuned with seed 0, :func:`layermap.final.jobs.teacher_outputs`):
  label loyalty = % of examples where their predicted classes agree; probability loyalty =
  100 · mean(1 − √JS(p_student, p_teacher)) with the Jensen–Shannon divergence in bits (so in
  [0, 1]); a regression task reports the Pearson correlation (%) with the teacher's scores.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..stats import CORRECTION_TEXT, HOLM, MIN_DIFF_SD, floored_paired_t, holm

AVERAGE = "average"
ALPHA = 0.05                 # family-wise error rate of each column's verdicts (the intervals are 95 %)
BETTER, SAME, WORSE = "better", "no significant difference", "worse"
BASELINE_KINDS = ("uniform", "top", "bottom", "last")
DISTILL_UNIT, FINETUNE_UNIT = "distillation seed", "fine-tuning seed"


@dataclass(frozen=True)
class Cell:
    """One finished fine-tuning cell: a student (mapping, distillation seed) on a task with a seed."""

    mapping: str
    distill_seed: int
    task: str
    seed: int
    score: float
    metrics: dict[str, float] = field(default_factory=dict)
    loyalty: dict[str, float] = field(default_factory=dict)

    @property
    def unit(self) -> tuple[int, int]:
        return (self.distill_seed, self.seed)


@dataclass(frozen=True)
class Paired:
    """Paired difference of a mapping against the reference over the shared seed units."""

    reference: str
    mean: float
    low: float | None
    high: float | None
    n: int
    verdict: str
    p: float | None = None   # two-sided paired t-test, uncorrected


def paired_verdict(mean: float, p: float | None, alpha: float = ALPHA) -> str:
    """``better`` / ``worse`` when ``p`` is below ``alpha`` (by the sign of the mean difference), else no
    significant difference."""
    if p is None or p >= alpha or mean == 0:
        return SAME
    return BETTER if mean > 0 else WORSE


def t_quantile(p: float, df: int) -> float:
    """Student-t quantile (scipy when present; else a Cornish-Fisher expansion, good to ~1e-3 for df >= 2)."""
    try:
        from scipy.stats import t

        return float(t.ppf(p, df))
    except ImportError:  # pragma: no cover - scipy is a dependency
        from statistics import NormalDist

        z = NormalDist().inv_cdf(p)
        g1 = (z**3 + z) / 4
        g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
        g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
        return z + g1 / df + g2 / df**2 + g3 / df**3


def paired_difference(a: Sequence[float], b: Sequence[float], reference: str = "", level: float = 0.95,
                      minimum_sd: float = MIN_DIFF_SD) -> Paired:
    """Mean of ``a[i] - b[i]`` with a Student-t interval and a verdict (no interval for fewer than 2 pairs).  The std
    of a difference has a floor of ``minimum_sd`` points (:func:`layermap.stats.floored_paired_t`), so equal
    differences are not certainty."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    if n == 0:
        return Paired(reference, float("nan"), None, None, 0, "no shared seeds")
    mean = float(d.mean())
    if n < 2:
        return Paired(reference, mean, None, None, n, "one seed: no interval")
    test = floored_paired_t([float(x) for x in d], minimum_sd)
    half = t_quantile(0.5 + level / 2, test["df"]) * test["stderr"]
    low, high = mean - half, mean + half
    verdict = BETTER if low > 0 else WORSE if high < 0 else SAME        # the same as paired_verdict(mean, p, 1 - level)
    return Paired(reference, mean, low, high, n, verdict, test["p"])


def verdict_units(units: Sequence[tuple[int, int]]) -> tuple[list, str]:
    """The units a verdict is about, and their name: the distillation seeds when there are at least two (each the
    mean over its fine-tuning seeds), else the (distillation seed, fine-tuning seed) units of the one student."""
    distill = list(dict.fromkeys(d for d, _ in units))
    if len(distill) >= 2:
        return distill, DISTILL_UNIT
    return list(units), FINETUNE_UNIT


def _per_verdict_unit(scores: Sequence[float | None], units: Sequence[tuple[int, int]], vunits: list,
                      unit: str) -> list[float | None]:
    """Per-(d, s) scores as per-verdict-unit scores: a distillation seed's mean over its present fine-tuning seeds."""
    if unit == FINETUNE_UNIT:
        return list(scores)
    out = []
    for d in vunits:
        present = [v for (dd, _), v in zip(units, scores) if dd == d and v is not None]
        out.append(float(np.mean(present)) if present else None)
    return out


def _pairs(a: Sequence[float | None], b: Sequence[float | None]) -> list[float]:
    return [x - y for x, y in zip(a, b) if x is not None and y is not None]


def _comparison(per: Mapping, m: str, rival: str, column: str) -> dict:
    """The paired test of ``m`` against ``rival`` in ``column`` (per verdict unit): mean difference, two-sided p."""
    test = floored_paired_t(_pairs(per[(m, column)], per[(rival, column)]))
    return {"mapping": rival, "mean": None if test is None else test["mean"], "p": None if test is None else test["p"],
            "p_adjusted": None}


def row_claim(paired: Mapping, key: str = "p_adjusted", alpha: float = ALPHA) -> tuple[str, float | None]:
    """The verdict of a row and the p it rests on, from its comparisons' ``key`` p-values (module docstring): below the
    reference, ``worse`` by the reference test alone; else ``better`` by the largest p over every comparator (1 for a
    comparator not beaten).  A missing test gives (no significant difference, None)."""
    tests = paired.get("comparisons") or []
    ref = next((t for t in tests if t["mapping"] == paired["reference"]), None)
    if ref is None or ref[key] is None:
        return SAME, None
    if ref["mean"] < 0:
        p = ref[key]
        return (WORSE if p < alpha else SAME), p
    if any(t[key] is None for t in tests):
        return SAME, None
    p = max(t[key] if t["mean"] > 0 else 1.0 for t in tests)
    return (BETTER if p < alpha else SAME), p


def label_loyalty(student: np.ndarray, teacher: np.ndarray) -> float:
    """% of examples whose predicted class (argmax of the probabilities) agrees with the teacher's."""
    return 100.0 * float(np.mean(student.argmax(axis=1) == teacher.argmax(axis=1)))


def probability_loyalty(student: np.ndarray, teacher: np.ndarray) -> float:
    """100 · mean over examples of 1 − √JS(student, teacher), JS in bits (0 = identical, 1 = disjoint)."""
    p = np.clip(student.astype(float), 1e-12, 1.0)
    q = np.clip(teacher.astype(float), 1e-12, 1.0)
    m = (p + q) / 2
    js = 0.5 * (p * np.log2(p / m)).sum(axis=1) + 0.5 * (q * np.log2(q / m)).sum(axis=1)
    return 100.0 * float(np.mean(1.0 - np.sqrt(np.clip(js, 0.0, 1.0))))


def regression_loyalty(student: np.ndarray, teacher: np.ndarray) -> float:
    """Pearson correlation (%) between the student's and the teacher's scores."""
    s, t = np.asarray(student, float).ravel(), np.asarray(teacher, float).ravel()
    if s.std() == 0 or t.std() == 0:
        return 0.0
    return 100.0 * float(np.corrcoef(s, t)[0, 1])


def loyalty(student: np.ndarray, teacher: np.ndarray) -> dict[str, float]:
    """Loyalty of one cell's dev outputs to the teacher's: probabilities ``(N, C)`` or scores ``(N,)``."""
    if student.shape != teacher.shape:
        raise ValueError(f"student outputs {student.shape} and teacher outputs {teacher.shape} differ in shape")
    if student.ndim == 1:
        return {"correlation": regression_loyalty(student, teacher)}
    return {"label": label_loyalty(student, teacher), "probability": probability_loyalty(student, teacher)}


def kind_label(kinds: Sequence[str], table: Mapping) -> str:
    """A mapping's kind for tables and plots: its baseline names; else ``searched`` when the comparison
    came from a run folder (its best genomes), ``given`` when the user listed it (``--mappings``)."""
    if kinds:
        return ", ".join(kinds)
    return "searched" if (table.get("source") or {}).get("run_dir") else "given"


def kinds_of(mappings: Sequence[str], baselines: Mapping[str, str]) -> dict[str, list[str]]:
    """mapping -> its baseline names (``baselines``: name -> genome text)."""
    return {m: [name for name, text in baselines.items() if text == m] for m in mappings}


def build_table(cells: Sequence[Cell], mappings: Sequence[str], tasks: Sequence[str],
                units: Sequence[tuple[int, int]], *, kinds: Mapping[str, Sequence[str]] | None = None,
                proxy_fitness: Mapping[str, float] | None = None) -> dict:
    """The comparison as a JSON-able dict: ``reference``, ``unit`` (what a verdict is about), ``rows`` (one per mapping
    and task, plus ``average``), each with ``mean``, ``std``, ``n``, ``scores`` (per seed unit, in ``units`` order,
    None when missing), ``unit_scores`` (per verdict unit), ``metrics`` (per unit), ``loyalty`` (means),
    ``proxy_fitness`` and ``paired``."""
    kinds = {m: list((kinds or {}).get(m, [])) for m in mappings}
    proxy_fitness = dict(proxy_fitness or {})
    by_key = {(c.mapping, c.task, c.unit): c for c in cells}
    vunits, unit = verdict_units(units)
    per_unit: dict[tuple[str, str], list[float | None]] = {}
    for m in mappings:
        for t in tasks:
            per_unit[(m, t)] = [by_key[(m, t, u)].score if (m, t, u) in by_key else None for u in units]
        per_unit[(m, AVERAGE)] = [
            float(np.mean([per_unit[(m, t)][i] for t in tasks]))
            if all(per_unit[(m, t)][i] is not None for t in tasks) else None
            for i in range(len(units))
        ]
    per = {key: _per_verdict_unit(scores, units, vunits, unit) for key, scores in per_unit.items()}
    averages = {m: _mean(per_unit[(m, AVERAGE)]) for m in mappings}
    baselines = [m for m in mappings if kinds[m] and averages[m] is not None]
    pool = baselines or [m for m in mappings if averages[m] is not None]
    reference = max(pool, key=lambda m: averages[m]) if pool else None
    rows = []
    for m in mappings:
        for t in (*tasks, AVERAGE):
            scores = per_unit[(m, t)]
            present = [s for s in scores if s is not None]
            row = {
                "mapping": m, "task": t, "kind": kinds[m],
                "mean": _mean(scores), "std": float(np.std(present, ddof=1)) if len(present) > 1 else None,
                "n": len(present), "scores": scores, "unit_scores": per[(m, t)],
                "proxy_fitness": proxy_fitness.get(m),
                "paired": None,
            }
            if t != AVERAGE:
                unit_cells = [by_key.get((m, t, u)) for u in units]
                row["metrics"] = [c.metrics if c else None for c in unit_cells]
                row["loyalty"] = _mean_loyalty([c.loyalty for c in unit_cells if c and c.loyalty])
            else:
                row["loyalty"] = _mean_loyalty([r["loyalty"] for r in rows if r["mapping"] == m and r["loyalty"]])
            if reference is not None and m != reference:
                ref = per[(reference, t)]
                pairs = [(a, b) for a, b in zip(per[(m, t)], ref) if a is not None and b is not None]
                p = paired_difference([a for a, _ in pairs], [b for _, b in pairs], reference)
                rivals = [r for r in pool if r != m]
                row["paired"] = {"reference": reference, "mean": p.mean, "low": p.low, "high": p.high, "n": p.n,
                                 "unit": unit, "p": None, "p_reference": p.p, "against": rivals,
                                 "comparisons": [_comparison(per, m, r, t) for r in rivals] if p.p is not None else [],
                                 "p_adjusted": None, "verdict": p.verdict, "uncorrected_verdict": p.verdict}
            rows.append(row)
    tests = adjust_verdicts(rows, [*tasks, AVERAGE])
    return {"reference": reference, "reference_kind": "best baseline" if baselines else "best mapping",
            "mappings": list(mappings), "tasks": list(tasks), "units": [list(u) for u in units], "rows": rows,
            "unit": unit, "verdict_units": [u if isinstance(u, int) else list(u) for u in vunits],
            "students_only": unit == FINETUNE_UNIT,
            "variance_floor": {"minimum_sd": MIN_DIFF_SD},
            "correction": {"method": HOLM, "alpha": ALPHA, "tests": tests,
                           "family": "per column: every mapping-vs-reference test of one task, and of the average"}}


def adjust_verdicts(rows: Sequence[dict], columns: Sequence[str], alpha: float = ALPHA) -> dict[str, int]:
    """Holm-adjust each column's family (every mapping's test against every comparator, in one task or the average)
    in place, then set each row's ``p`` / ``p_adjusted`` and verdicts by :func:`row_claim`; returns the family size
    per column."""
    sizes = {}
    for column in columns:
        tested = [r["paired"] for r in rows if r["task"] == column and r["paired"] and r["paired"].get("comparisons")]
        family = [c for paired in tested for c in paired["comparisons"] if c["p"] is not None]
        for comparison, adjusted in zip(family, holm([c["p"] for c in family])):
            comparison["p_adjusted"] = adjusted
        for paired in tested:
            paired["uncorrected_verdict"], paired["p"] = row_claim(paired, "p", alpha)
            paired["verdict"], paired["p_adjusted"] = row_claim(paired, "p_adjusted", alpha)
        sizes[column] = len(family)
    return sizes


def correction_note(table: Mapping) -> str:
    """One line naming the multiple-comparison correction of a table's verdicts."""
    c = table.get("correction")
    if not c:
        return "Verdicts: uncorrected paired 95 % intervals (this table predates the multiple-comparison correction)."
    sizes = sorted(set(c["tests"].values()))
    if not sizes or sizes[-1] == 0:
        return "Verdicts: no paired test (a difference needs at least 2 shared seed units)."
    count = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}–{sizes[-1]}"
    unit = table.get("unit")
    if unit is None:                                   # a table made before the unit and the floor existed
        return (f"Verdicts and p: two-sided paired t-tests by seed unit, {CORRECTION_TEXT.get(c['method'], c['method'])}-"
                f"adjusted within each column (per task and for the average; {count} tests each) at α = {c['alpha']:g}; "
                "the 95 % intervals are per comparison (unadjusted).")
    floor = (table.get("variance_floor") or {}).get("minimum_sd", MIN_DIFF_SD)
    head = (f"Verdicts and p: two-sided paired t-tests by {unit} ({len(table.get('verdict_units') or [])} units), the "
            f"std of a difference at least {floor:g} points")
    method, alpha = CORRECTION_TEXT.get(c["method"], c["method"]), c["alpha"]
    rivals = rivals_text(table)
    return (f"{head}, of each mapping against {rivals} ({method}-adjusted together within each column, per task and "
            f"for the average: {count} tests each, α = {alpha:g}). Since the reference is the best on these data, "
            f"'better' needs {rivals} beaten, each difference positive with adjusted p < {alpha:g} (p: the largest of "
            f"them, 1 where one is not beaten); 'worse' needs the difference from the reference negative with adjusted "
            f"p < {alpha:g} (p: that test's). The 95 % intervals are against the reference, per comparison (unadjusted).")


def rivals_text(table: Mapping) -> str:
    """Whom a mapping must beat for 'better' (:func:`row_claim`), in words."""
    return "every baseline" if table.get("reference_kind") == "best baseline" else "every other mapping"


def unit_note(table: Mapping) -> str | None:
    """The sentence a table with one distillation seed carries: its verdicts are about these students only."""
    if not table.get("students_only"):
        return None
    return ("One distillation seed: the units of these verdicts are fine-tuning seeds of one distilled student per "
            "mapping, so they are about these particular students, not about the mappings (the distillation seed's "
            "variance is never sampled); set compare.distill_seeds to 3 or more for verdicts about the mappings.")


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _mean_loyalty(items: Sequence[Mapping[str, float]]) -> dict[str, float]:
    keys = sorted({k for item in items for k in item})
    return {k: float(np.mean([item[k] for item in items if k in item])) for k in keys}


# -- rendering -------------------------------------------------------------------------------------------
def _fmt(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "–"
    return f"{mean:.2f} ± {std:.2f}" if std is not None else f"{mean:.2f}"


def _fmt_paired(p: dict | None) -> str:
    if not p:
        return "reference"
    if p["low"] is None:
        return f"{p['mean']:+.2f} ({p['verdict']})"
    return f"{p['mean']:+.2f} [{p['low']:+.2f}, {p['high']:+.2f}]"


def _fmt_p(p: dict | None) -> str:
    """The adjusted p (the raw one for a table made before the correction existed)."""
    value = (p or {}).get("p_adjusted", (p or {}).get("p"))
    if value is None:
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def render_markdown(table: dict, header: Sequence[str] = (), footer: Sequence[str] = ()) -> str:
    """``comparison.md``: the main table and its resolution, paired differences per task, loyalty when measured."""
    from .resolution import resolution_lines

    from proxy_tasks import get_task

    tasks, rows = table["tasks"], table["rows"]
    row_of = {(r["mapping"], r["task"]): r for r in rows}
    names = [get_task(t).glue_dir_name if t != AVERAGE else "average" for t in tasks]
    ref = table["reference"]
    lines = list(header)
    lines += ["", f"| mapping | kind | proxy fitness | {' | '.join(names)} | average | Δ average vs {ref} (95 % CI) | "
              f"p ({correction_name(table)}) | verdict |", "|---|---|---|" + "---|" * len(tasks) + "---|---|---|---|"]
    for m in table["mappings"]:
        avg = row_of[(m, AVERAGE)]
        pf = avg["proxy_fitness"]
        cells = [_fmt(row_of[(m, t)]["mean"], row_of[(m, t)]["std"]) for t in tasks]
        verdict = avg["paired"]["verdict"] if avg["paired"] else "reference"
        lines.append(f"| {m} | {kind_label(avg['kind'], table)} | {f'{pf:.2f}' if pf is not None else '–'} | "
                     f"{' | '.join(cells)} | **{_fmt(avg['mean'], avg['std'])}** | {_fmt_paired(avg['paired'])} | "
                     f"{_fmt_p(avg['paired']) if avg['paired'] else '–'} | {verdict} |")
    lines += ["", correction_note(table)]
    if resolution_lines(table):
        lines += ["", *resolution_lines(table)]
    if unit_note(table):
        lines += ["", unit_note(table)]
    lines += ["", f"Paired differences against the reference {ref} per task (mean [95 % interval], p {correction_name(table)}; "
                  "verdict):", "",
              f"| mapping | {' | '.join(names)} | average |", "|---|" + "---|" * (len(tasks) + 1)]
    for m in table["mappings"]:
        if m == ref:
            continue
        parts = []
        for t in (*tasks, AVERAGE):
            p = row_of[(m, t)]["paired"]
            parts.append(f"{_fmt_paired(p)}{'' if not p or p['low'] is None else f' p {_fmt_p(p)} ' + _short(p['verdict'])}")
        lines.append(f"| {m} | {' | '.join(parts)} |")
    lines += ["", correction_note(table)]
    teacher = table.get("loyalty_teacher") or {}
    if any(r["loyalty"] for r in rows if r["task"] != AVERAGE):
        who = "the fine-tuned teacher" if "seed" not in teacher else f"the teacher fine-tuned with seed {teacher['seed']}"
        lines += ["", f"Loyalty to {who} (Xu et al. 2021; mean over seeds, %): label / probability "
                  "for classification, correlation for regression:", "",
                  f"| mapping | {' | '.join(names)} |", "|---|" + "---|" * len(tasks)]
        for m in table["mappings"]:
            parts = []
            for t in tasks:
                loy = row_of[(m, t)]["loyalty"]
                parts.append(" / ".join(f"{loy[k]:.1f}" for k in ("label", "probability", "correlation") if k in loy) or "–")
            lines.append(f"| {m} | {' | '.join(parts)} |")
    if teacher.get("ambiguous"):
        missing = ", ".join(get_task(t).glue_dir_name for t in teacher["ambiguous"])
        lines += ["", f"Loyalty is not shown for {missing}: this folder kept one file of the fine-tuned teacher's dev "
                      "outputs per task while the teacher was fine-tuned on several seeds (or copied it from another "
                      "folder), so the file holds whichever seed finished last, not one fixed teacher; folders made since "
                      "keep the teacher's outputs per seed."]
    if teacher.get("absent"):
        missing = ", ".join(get_task(t).glue_dir_name for t in teacher["absent"])
        lines += ["", f"Loyalty is not shown for {missing}: the dev outputs of the teacher fine-tuned with seed "
                      f"{teacher['seed']} are not in this folder (its cell failed, or the teacher row was read with "
                      "--teacher-from from a folder that kept no copy known to be that seed's)."]
    if footer:
        lines += ["", *footer]
    return "\n".join(lines) + "\n"


def correction_name(table: Mapping) -> str:
    """The name of the table's multiple-comparison correction (``uncorrected`` for a table made before it)."""
    c = table.get("correction")
    return CORRECTION_TEXT.get(c["method"], c["method"]) if c else "uncorrected"


def _short(verdict: str) -> str:
    return {BETTER: "better", WORSE: "worse", SAME: "n.s."}.get(verdict, verdict)


def render_csv(table: dict) -> str:
    """``comparison.csv``: one line per (mapping, task), ``average`` included; ``p_value`` is the paired
    t-test's raw p, ``p_holm`` its Holm–Bonferroni-adjusted p within the task's column (the verdict's)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["mapping", "kind", "task", "mean", "std", "n", "scores", "proxy_fitness", "reference", "diff_mean",
                "diff_low", "diff_high", "p_value", "p_holm", "verdict", "label_loyalty", "probability_loyalty",
                "correlation_loyalty"])
    for r in table["rows"]:
        p = r["paired"] or {}
        loy = r["loyalty"] or {}
        w.writerow([r["mapping"], kind_label(r["kind"], table).replace(", ", "+"), r["task"], _num(r["mean"]), _num(r["std"]), r["n"],
                    ";".join(_num(s) for s in r["scores"]), _num(r["proxy_fitness"]), p.get("reference", ""),
                    _num(p.get("mean")), _num(p.get("low")), _num(p.get("high")), _pnum(p.get("p")),
                    _pnum(p.get("p_adjusted")), p.get("verdict", "reference"),
                    _num(loy.get("label")), _num(loy.get("probability")), _num(loy.get("correlation"))])
    return out.getvalue()


def _pnum(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _num(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def write_table(out: str | Path, table: dict, header: Sequence[str] = (), footer: Sequence[str] = ()) -> list[Path]:
    """Write ``comparison.md`` (``header`` lines, the tables, ``footer`` lines), ``comparison.csv`` and
    ``comparison.json`` into ``out``."""
    out = Path(out)
    files = {"comparison.md": render_markdown(table, header, footer), "comparison.csv": render_csv(table),
             "comparison.json": json.dumps(table, indent=1, default=_json_default) + "\n"}
    written = []
    for name, text in files.items():
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out / name)
        written.append(out / name)
    return written


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
