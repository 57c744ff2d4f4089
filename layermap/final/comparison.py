"""The final stage's table: per-task mean ± std over seeds, paired differences, loyalty; md/csv/json.

Pure functions over finished cells (no training, no I/O except :func:`write_table`):

* a *seed unit* is a (distillation seed, fine-tuning seed) pair; every mapping is scored under the
  same units, so differences between two mappings are taken unit by unit (paired);
* a task's row holds the mean and the sample standard deviation (n − 1) of its per-unit scores;
  the ``average`` row holds the GLUE-style mean over tasks, per unit, then its mean and std;
* each mapping is compared with the *reference*: the best baseline (highest average) among the
  compared mappings, or the best mapping when no baseline is compared.  The paired difference
  d_u = score(mapping, u) − score(reference, u) gives a mean and a 95 % Student-t interval
  mean ± t(0.975, n − 1) · sd / √n, and the two-sided paired t-test's p-value;
* a table makes many such tests, so the p-values are adjusted by Holm–Bonferroni within each column:
  the family is every mapping-vs-reference test of one task (and, separately, of the average).  The
  verdict is ``better`` / ``worse`` when the adjusted p is below α = 0.05 (sign of the mean), else
  ``no significant difference``; each row keeps the raw ``p``, the adjusted ``p_adjusted`` and the
  verdict the raw p alone would give (``uncorrected_verdict``).  The intervals stay per comparison.
* loyalty (Xu et al. 2021) compares a student's dev outputs with the fine-tuned teacher's:
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

from ..stats import CORRECTION_TEXT, HOLM, holm, paired_t_pvalue

AVERAGE = "average"
ALPHA = 0.05                 # family-wise error rate of each column's verdicts (the intervals are 95 %)
BETTER, SAME, WORSE = "better", "no significant difference", "worse"
BASELINE_KINDS = ("uniform", "top", "bottom", "last")


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


def verdict_of(mean: float, p: float | None, alpha: float = ALPHA) -> str:
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


def paired_difference(a: Sequence[float], b: Sequence[float], reference: str = "", level: float = 0.95) -> Paired:
    """Mean of ``a[i] - b[i]`` with a Student-t interval and a verdict (no interval for fewer than 2 pairs)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    if n == 0:
        return Paired(reference, float("nan"), None, None, 0, "no shared seeds")
    mean = float(d.mean())
    if n < 2:
        return Paired(reference, mean, None, None, n, "one seed: no interval")
    half = t_quantile(0.5 + level / 2, n - 1) * float(d.std(ddof=1)) / math.sqrt(n)
    low, high = mean - half, mean + half
    verdict = BETTER if low > 0 else WORSE if high < 0 else SAME        # the same as verdict_of(mean, p, 1 - level)
    return Paired(reference, mean, low, high, n, verdict, paired_t_pvalue([float(x) for x in d]))


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
    """The comparison as a JSON-able dict: ``reference``, ``rows`` (one per mapping and task, plus
    ``average``), each with ``mean``, ``std``, ``n``, ``scores`` (per unit, in ``units`` order, None when
    missing), ``metrics`` (per unit), ``loyalty`` (means), ``proxy_fitness`` and ``paired``."""
    kinds = {m: list((kinds or {}).get(m, [])) for m in mappings}
    proxy_fitness = dict(proxy_fitness or {})
    by_key = {(c.mapping, c.task, c.unit): c for c in cells}
    per_unit: dict[tuple[str, str], list[float | None]] = {}
    for m in mappings:
        for t in tasks:
            per_unit[(m, t)] = [by_key[(m, t, u)].score if (m, t, u) in by_key else None for u in units]
        per_unit[(m, AVERAGE)] = [
            float(np.mean([per_unit[(m, t)][i] for t in tasks]))
            if all(per_unit[(m, t)][i] is not None for t in tasks) else None
            for i in range(len(units))
        ]
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
                "n": len(present), "scores": scores,
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
                ref = per_unit[(reference, t)]
                pairs = [(a, b) for a, b in zip(scores, ref) if a is not None and b is not None]
                p = paired_difference([a for a, _ in pairs], [b for _, b in pairs], reference)
                row["paired"] = {"reference": reference, "mean": p.mean, "low": p.low, "high": p.high, "n": p.n,
                                 "p": p.p, "p_adjusted": None, "verdict": p.verdict, "uncorrected_verdict": p.verdict}
            rows.append(row)
    tests = adjust_verdicts(rows, [*tasks, AVERAGE])
    return {"reference": reference, "reference_kind": "best baseline" if baselines else "best mapping",
            "mappings": list(mappings), "tasks": list(tasks), "units": [list(u) for u in units], "rows": rows,
            "correction": {"method": HOLM, "alpha": ALPHA, "tests": tests,
                           "family": "per column: every mapping-vs-reference test of one task, and of the average"}}


def adjust_verdicts(rows: Sequence[dict], columns: Sequence[str], alpha: float = ALPHA) -> dict[str, int]:
    """Holm-adjust the paired tests of each column (task or ``average``) in place: ``p_adjusted`` and the
    ``verdict`` it gives; returns the family size per column."""
    sizes = {}
    for column in columns:
        tested = [r["paired"] for r in rows if r["task"] == column and r["paired"] and r["paired"]["p"] is not None]
        for paired, adjusted in zip(tested, holm([p["p"] for p in tested])):
            paired["p_adjusted"] = adjusted
            paired["uncorrected_verdict"] = verdict_of(paired["mean"], paired["p"], alpha)
            paired["verdict"] = verdict_of(paired["mean"], adjusted, alpha)
        sizes[column] = len(tested)
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
    return (f"Verdicts and p: two-sided paired t-tests by seed unit, {CORRECTION_TEXT.get(c['method'], c['method'])}-"
            f"adjusted within each column (per task and for the average; {count} tests each) at α = {c['alpha']:g}; "
            "the 95 % intervals are per comparison (unadjusted).")


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


def render_markdown(table: dict, header: Sequence[str] = ()) -> str:
    """``comparison.md``: the main table, paired differences per task, loyalty when measured."""
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
    if any(r["loyalty"] for r in rows if r["task"] != AVERAGE):
        lines += ["", "Loyalty to the fine-tuned teacher (Xu et al. 2021; mean over seeds, %): label / probability "
                  "for classification, correlation for regression:", "",
                  f"| mapping | {' | '.join(names)} |", "|---|" + "---|" * len(tasks)]
        for m in table["mappings"]:
            parts = []
            for t in tasks:
                loy = row_of[(m, t)]["loyalty"]
                parts.append(" / ".join(f"{loy[k]:.1f}" for k in ("label", "probability", "correlation") if k in loy) or "–")
            lines.append(f"| {m} | {' | '.join(parts)} |")
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


def write_table(out: str | Path, table: dict, header: Sequence[str] = ()) -> list[Path]:
    """Write ``comparison.md``, ``comparison.csv`` and ``comparison.json`` into ``out``."""
    out = Path(out)
    files = {"comparison.md": render_markdown(table, header), "comparison.csv": render_csv(table),
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
