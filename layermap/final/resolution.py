"""The judge's resolution: how large a difference the final stage can see, and how well its ranking repeats.

A final-stage score of student ``m`` is ``y[m, d, s]``: distillation seed ``d``, fine-tuning seed ``s``, read on a
fixed scoring set.  Three things move it:

* the **fine-tuning seed** (head, dropout, batch order): ``sigma_f``, the pooled within-student standard deviation;
* the **distillation seed** (initialisation and corpus order of the student): ``sigma_d``, from the spread of the
  students' means over their fine-tuning seeds, less the fine-tuning share (``var(mean_s) - sigma_f**2 / S``);
* the **evaluation examples** (which sentences the scoring set happens to hold): ``sigma_e``, the bootstrap standard
  deviation of a paired difference of two students over the scoring set's examples.  The seed tests do not sample
  it; it bounds how far a verdict about *these* examples carries to the task.

A verdict compares two mappings by the paired difference of their per-unit means (the unit: the distillation seed
when there are two or more, else the fine-tuning seed).  With ``n`` units and a standard deviation ``sd`` of that
difference, a two-sided paired t-test at level ``alpha`` finds a true difference ``delta`` with probability
``power`` when ``delta >= (t[1 - alpha/2, n-1] + t[power, n-1]) * sd / sqrt(n)``: the **smallest detectable
difference** (:func:`detectable_difference`).  Expected from the components, a unit's difference has variance
``2 (sigma_d**2 + sigma_f**2 / S)`` when the unit is the distillation seed (``S`` fine-tuning seeds averaged in it),
``2 sigma_f**2`` when it is the fine-tuning seed (:func:`unit_difference_sd`).

Repeatability (:func:`split_half_tau`): the seeds are cut into two halves, each half ranks the students by its own
mean, and Kendall's tau between the two rankings says whether the judge agrees with itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..stats import kendall_tau

__all__ = ["Components", "bootstrap_difference_sd", "detectable_difference", "resolution_lines", "split_half_tau",
           "table_resolution", "unit_difference_sd", "variance_components"]


def detectable_difference(sd: float, n: int, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true difference a two-sided paired t-test over ``n`` units finds with probability ``power``
    (``inf`` with fewer than two units)."""
    from scipy.stats import t

    if n < 2 or not math.isfinite(sd):
        return math.inf
    return float((t.ppf(1 - alpha / 2, n - 1) + t.ppf(power, n - 1)) * sd / math.sqrt(n))


@dataclass(frozen=True)
class Components:
    """Standard deviations (points) of a final-stage score by source, with the counts they came from."""

    finetune_seed: float
    distill_seed: float | None        # None with one distillation seed
    students: int                     # (mapping, distillation seed) pairs with two or more fine-tuning seeds
    finetune_seeds: int

    def to_json(self) -> dict:
        return {"finetune_seed": self.finetune_seed, "distill_seed": self.distill_seed, "students": self.students,
                "finetune_seeds": self.finetune_seeds}


def variance_components(scores: Mapping[tuple[str, int, int], float]) -> Components:
    """``sigma_f`` and ``sigma_d`` from ``scores[(mapping, distill_seed, finetune_seed)]`` (module docstring)."""
    by_student: dict[tuple[str, int], list[float]] = {}
    for (m, d, _s), y in scores.items():
        by_student.setdefault((m, d), []).append(float(y))
    full = {k: v for k, v in by_student.items() if len(v) >= 2}
    if not full:
        raise ValueError("variance components need at least one student with two fine-tuning seeds")
    within = [np.var(v, ddof=1) for v in full.values()]
    sigma_f2 = float(np.mean(within))
    seeds = int(round(np.mean([len(v) for v in full.values()])))
    by_mapping: dict[str, list[float]] = {}
    for (m, _d), v in full.items():
        by_mapping.setdefault(m, []).append(float(np.mean(v)))
    spreads = [np.var(v, ddof=1) for v in by_mapping.values() if len(v) >= 2]
    sigma_d = None
    if spreads:
        sigma_d = math.sqrt(max(0.0, float(np.mean(spreads)) - sigma_f2 / seeds))
    return Components(math.sqrt(sigma_f2), sigma_d, len(full), seeds)


def unit_difference_sd(components: Components, finetune_seeds: int, distill_seeds: int) -> float:
    """The expected standard deviation of one unit's paired difference between two mappings (module docstring)."""
    f2 = components.finetune_seed ** 2
    if distill_seeds >= 2:
        return math.sqrt(2 * ((components.distill_seed or 0.0) ** 2 + f2 / finetune_seeds))
    return math.sqrt(2 * f2)


def bootstrap_difference_sd(correct_a: np.ndarray, correct_b: np.ndarray, *, metric=None, labels=None,
                            predictions: tuple[np.ndarray, np.ndarray] | None = None, draws: int = 1000,
                            seed: int = 0) -> float:
    """The bootstrap standard deviation, over the scoring set's examples, of the difference between two students'
    scores.  With ``metric`` None the score is the mean of ``correct_*`` (per-example values in points, e.g. 100 x
    correct averaged over seeds); else ``metric(predictions, labels)`` is recomputed on each resample."""
    rng = np.random.default_rng(seed)
    n = len(correct_a)
    diffs = np.empty(draws)
    for i in range(draws):
        idx = rng.integers(0, n, n)
        if metric is None:
            diffs[i] = correct_a[idx].mean() - correct_b[idx].mean()
        else:
            pa, pb = predictions
            diffs[i] = metric(pa[idx], labels[idx]) - metric(pb[idx], labels[idx])
    return float(np.std(diffs, ddof=1))


def split_half_tau(scores: Mapping[str, Mapping[int, float]], halves: tuple[Sequence[int], Sequence[int]]) -> dict:
    """Kendall's tau between the rankings of the students by two disjoint halves of their seed units.

    ``scores[student][unit]`` is a student's score on one unit (a seed); ``halves`` names the units of each half.
    Returns tau and each half's means."""
    a_units, b_units = halves
    if set(a_units) & set(b_units):
        raise ValueError("the two halves share a unit; give disjoint halves")
    names = [s for s in scores if all(u in scores[s] for u in (*a_units, *b_units))]
    if len(names) < 3:
        raise ValueError(f"split-half agreement needs at least 3 students scored on every unit, got {len(names)}")
    first = [float(np.mean([scores[s][u] for u in a_units])) for s in names]
    second = [float(np.mean([scores[s][u] for u in b_units])) for s in names]
    return {"students": names, "tau": kendall_tau(first, second), "first": first, "second": second}


def table_resolution(table: Mapping) -> dict:
    """Per column of a comparison table (each task, and the average): the pooled standard deviation of a mapping's
    per-unit paired difference from the reference (floored as the verdicts' tests are), the verdict units, and the
    smallest difference a two-sided paired t-test over them detects at 80 % power (:func:`detectable_difference`).
    Empty when nothing is paired."""
    from ..stats import MIN_DIFF_SD

    ref = table.get("reference")
    rows = {(r["mapping"], r["task"]): r for r in table.get("rows", [])}
    out: dict[str, dict] = {}
    for column in (*table.get("tasks", []), "average"):
        variances, units = [], []
        for m in table.get("mappings", []):
            if m == ref or (m, column) not in rows or (ref, column) not in rows:
                continue
            a, b = rows[(m, column)].get("unit_scores") or [], rows[(ref, column)].get("unit_scores") or []
            diffs = [x - y for x, y in zip(a, b) if x is not None and y is not None]
            if len(diffs) >= 2:
                variances.append(float(np.var(diffs, ddof=1)))
                units.append(len(diffs))
        if not variances:
            continue
        sd = max(math.sqrt(float(np.mean(variances))), MIN_DIFF_SD)
        n = min(units)
        out[column] = {"sd": sd, "n": n, "detectable": detectable_difference(sd, n)}
    return out


def resolution_lines(table: Mapping) -> list[str]:
    """The table's resolution in words: what its nulls mean."""
    res = table.get("resolution") or {}
    avg = res.get("average")
    if not avg:
        return []
    unit = table.get("unit", "seed unit")
    per_task = ", ".join(f"{t} {res[t]['detectable']:.2f}" for t in table.get("tasks", []) if t in res)
    return [f"**Resolution:** with {avg['n']} {unit}s, the smallest difference on the average this table detects with "
            f"80 % power (two-sided paired t-test at 0.05, before Holm) is **{avg['detectable']:.2f} points** (pooled "
            f"std of a paired difference {avg['sd']:.2f}); per task {per_task}. A 'no significant difference' here "
            f"says no difference larger than about {avg['detectable']:.1f} points, not that there is none."]
