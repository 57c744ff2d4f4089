"""Fidelity of the proxy: does the proxy's ranking of mappings predict the final stage's ranking?

The *final score* of a mapping is its GLUE average in a ``layermap compare`` folder (``comparison.json``:
the ``average`` row, mean over the fine-tuning seeds).  The *proxy fitness* of a genome comes from any
of:

* a landscape CSV (``results/benchmarks/landscape.csv``): the mean over its seed sets;
* a layermap store (``layermap.sqlite``) or a run folder: every complete evaluation, one seed set per
  fingerprint, the mean over them;
* the compare folder itself (``--proxy compare``): the ``proxy fitness`` column that ``layermap compare
  RUN_DIR`` copies from the run.

Over the mappings both sides know, :func:`fidelity` reports Kendall τ-b, Spearman ρ and Pearson r, a
one-sided permutation p-value for τ (exact for up to 8 mappings, 20,000 seeded random permutations
above), a bootstrap 95 % interval of τ over mappings, and τ per final task.  Because a correlation
cannot exceed what the noise on both sides allows, it also reports each side's own test–retest
reliability where replicates exist: the proxy's across its seed sets and the final score's across its
fine-tuning seeds (:func:`layermap.stats.reliability`), and the attenuation ceiling
``sqrt(r_proxy · r_final)`` of the Pearson correlation (Spearman 1904), from the two sides' mean
replicate-to-replicate Pearson correlations, corrected to the mean of their replicates
(Spearman–Brown).
"""

from __future__ import annotations

import itertools
import json
import math
import random
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import LayermapError
from ..mapping import format_genes
from ..stats import kendall_tau, pearson, reliability, spearman_rho
from ..final.comparison import AVERAGE
from ..plots.study import draw_fidelity  # noqa: F401  (drawn in plots/study.py; re-exported from its old home)
from .landscape import load_table

EXACT_UP_TO = 8
PERMUTATIONS = 20_000
BOOTSTRAPS = 2_000


class FidelityError(LayermapError):
    """A compare folder or proxy source that cannot be read, or too few mappings in common."""


@dataclass
class Scores:
    """One mapping's score on one side: the mean, its replicates and (final side) per-task means."""

    mean: float
    replicates: list[float] = field(default_factory=list)
    tasks: dict[str, float] = field(default_factory=dict)


# -- reading both sides -------------------------------------------------------------------------------
def read_comparison(compare_dir: str | Path) -> dict:
    """``comparison.json`` of a compare folder (or the file itself)."""
    path = Path(compare_dir)
    path = path / "comparison.json" if path.is_dir() else path
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FidelityError(f"{path} does not exist; give a folder made by `layermap compare`") from None
    except (OSError, ValueError) as exc:
        raise FidelityError(f"{path} is not a readable comparison.json ({exc})") from None


def final_scores(comparison: Mapping) -> dict[str, Scores]:
    """Each mapping's GLUE average (mean over units) with its per-unit averages and per-task means."""
    out: dict[str, Scores] = {}
    try:
        rows = comparison["rows"]
        for row in rows:
            if row["task"] == AVERAGE and row["mean"] is not None:
                out[row["mapping"]] = Scores(float(row["mean"]), [s for s in row["scores"] if s is not None])
        for row in rows:
            if row["task"] != AVERAGE and row["mapping"] in out and row["mean"] is not None:
                out[row["mapping"]].tasks[row["task"]] = float(row["mean"])
    except (KeyError, TypeError) as exc:
        raise FidelityError(f"comparison.json lacks the field {exc}; was it written by `layermap compare`?") from None
    if not out:
        raise FidelityError("the comparison holds no mapping with a finished GLUE average; run `layermap compare` first")
    return out


def proxy_scores(source: str | Path, comparison: Mapping | None = None) -> dict[str, Scores]:
    """Proxy fitness per genome from a landscape CSV, a store, a run folder or (``"compare"``) the comparison."""
    if str(source) == "compare":
        if comparison is None:
            raise FidelityError("--proxy compare needs a comparison")
        out = {r["mapping"]: Scores(float(r["proxy_fitness"])) for r in comparison.get("rows", ())
               if r.get("task") == AVERAGE and r.get("proxy_fitness") is not None}
        if not out:
            raise FidelityError("the comparison carries no proxy fitness (it was not made from a run folder); "
                                "give --proxy a landscape CSV, a store or a run folder")
        return out
    path = Path(source)
    if path.is_dir():
        path = path / "layermap.sqlite"
    if not path.is_file():
        raise FidelityError(f"proxy source {source} does not exist; give a landscape CSV, a layermap store or a run folder")
    table = load_table(path)
    replicates: dict[str, list[float]] = {}
    for r in table.rows:
        replicates.setdefault(r.genome, []).append(r.fitness)
    return {format_genes(g): Scores(f, replicates.get(format_genes(g), [])) for g, f in table.fitness.items()}


# -- statistics ---------------------------------------------------------------------------------------
def permutation_p(x: Sequence[float], y: Sequence[float], *, seed: int = 0) -> tuple[float, str]:
    """One-sided p-value of Kendall τ under no association: P(τ_perm ≥ τ_observed)."""
    observed = kendall_tau(x, y)
    if math.isnan(observed):
        return float("nan"), "undefined"
    if len(y) <= EXACT_UP_TO:
        perms = itertools.permutations(y)
        total, method = math.factorial(len(y)), "exact"
    else:
        rng = random.Random(seed)
        perms = (rng.sample(list(y), len(y)) for _ in range(PERMUTATIONS))
        total, method = PERMUTATIONS, f"{PERMUTATIONS} random permutations"
    hits = sum(1 for p in perms if kendall_tau(x, p) >= observed - 1e-12)
    return hits / total, method


def bootstrap_tau(x: Sequence[float], y: Sequence[float], *, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of Kendall τ over mappings resampled with replacement."""
    rng = random.Random(seed)
    n = len(x)
    taus = []
    for _ in range(BOOTSTRAPS):
        idx = [rng.randrange(n) for _ in range(n)]
        t = kendall_tau([x[i] for i in idx], [y[i] for i in idx])
        if not math.isnan(t):
            taus.append(t)
    if not taus:
        return float("nan"), float("nan")
    taus.sort()
    return taus[int(0.025 * (len(taus) - 1))], taus[int(0.975 * (len(taus) - 1))]


def side_reliability(scores: Mapping[str, Scores], names: Sequence[str]) -> dict | None:
    """Test–retest statistics of one side over ``names`` when every one has the same ≥ 2 replicates."""
    counts = {len(scores[n].replicates) for n in names}
    if len(counts) != 1 or counts.pop() < 2 or len(names) < 3:
        return None
    table = [scores[n].replicates for n in names]
    stats = reliability(table)
    columns = list(zip(*table))
    rs = [pearson(columns[a], columns[b]) for a, b in itertools.combinations(range(len(columns)), 2)]
    r1 = statistics.fmean([r for r in rs if not math.isnan(r)]) if any(not math.isnan(r) for r in rs) else float("nan")
    k = len(columns)
    mean_r = k * r1 / (1 + (k - 1) * r1) if not math.isnan(r1) and 1 + (k - 1) * r1 > 0 else float("nan")
    return {"replicates": k, "kendall_tau": stats["kendall_tau"], "spearman_rho": stats["spearman_rho"],
            "pearson_r": r1, "mean_reliability": mean_r, "seed_std": stats["seed_std"], "spread": stats["spread"],
            "snr": stats["snr"]}


def fidelity(proxy: Mapping[str, Scores], final: Mapping[str, Scores], *, seed: int = 0) -> dict:
    """Rank agreement of ``proxy`` and ``final`` over the mappings both know (at least 3)."""
    names = sorted(set(proxy) & set(final), key=lambda m: -proxy[m].mean)
    if len(names) < 3:
        raise FidelityError(f"the proxy source and the comparison share {len(names)} mapping(s) "
                            f"({', '.join(names) or 'none'}); fidelity needs at least 3")
    x = [proxy[m].mean for m in names]
    y = [final[m].mean for m in names]
    tau = kendall_tau(x, y)
    p, method = permutation_p(x, y, seed=seed)
    low, high = bootstrap_tau(x, y, seed=seed)
    tasks = sorted({t for m in names for t in final[m].tasks})
    per_task = {}
    for t in tasks:
        have = [m for m in names if t in final[m].tasks]
        if len(have) >= 3:
            per_task[t] = {"kendall_tau": kendall_tau([proxy[m].mean for m in have], [final[m].tasks[t] for m in have]),
                           "spearman_rho": spearman_rho([proxy[m].mean for m in have],
                                                        [final[m].tasks[t] for m in have]),
                           "n": len(have)}
    proxy_rel, final_rel = side_reliability(proxy, names), side_reliability(final, names)
    ceiling = None
    if proxy_rel and final_rel and proxy_rel["mean_reliability"] > 0 and final_rel["mean_reliability"] > 0:
        ceiling = math.sqrt(proxy_rel["mean_reliability"] * final_rel["mean_reliability"])
    return {
        "n": len(names),
        "mappings": [{"mapping": m, "proxy": proxy[m].mean, "proxy_replicates": proxy[m].replicates,
                      "final": final[m].mean, "final_replicates": final[m].replicates, "final_tasks": final[m].tasks}
                     for m in names],
        "kendall_tau": tau, "spearman_rho": spearman_rho(x, y), "pearson_r": pearson(x, y),
        "tau_p_value": p, "tau_p_method": method, "tau_interval": [low, high],
        "significant": bool(p < 0.05) if not math.isnan(p) else False,
        "per_task": per_task,
        "proxy_reliability": proxy_rel, "final_reliability": final_rel, "pearson_ceiling": ceiling,
    }


def verdict(result: Mapping) -> str:
    """One sentence: does the proxy's ranking predict the final one beyond chance?"""
    tau, p = result["kendall_tau"], result["tau_p_value"]
    if math.isnan(tau):
        return "undefined (one side is constant)"
    if result["significant"]:
        return f"the proxy predicts the final ranking beyond chance (τ = {tau:+.2f}, one-sided p = {p:.3f})"
    return (f"no evidence that the proxy predicts the final ranking (τ = {tau:+.2f}, one-sided p = {p:.2f}: "
            f"a random ranking does as well {100 * p:.0f} % of the time)")


def format_report(results: Mapping[str, Mapping]) -> str:
    """Plain-text report of one or more proxy sources against the same comparison."""
    lines = []
    for source, r in results.items():
        lines.append(f"proxy {source}: {r['n']} mappings")
        lines.append(f"  Kendall τ {r['kendall_tau']:+.3f} (95 % bootstrap {r['tau_interval'][0]:+.2f} .. "
                     f"{r['tau_interval'][1]:+.2f}; p {r['tau_p_value']:.3f}, {r['tau_p_method']}), "
                     f"Spearman ρ {r['spearman_rho']:+.3f}, Pearson r {r['pearson_r']:+.3f}")
        lines.append("  " + verdict(r))
        for t, s in r["per_task"].items():
            lines.append(f"  final {t}: τ {s['kendall_tau']:+.3f}, ρ {s['spearman_rho']:+.3f} (n {s['n']})")
        for side in ("proxy", "final"):
            rel = r[f"{side}_reliability"]
            if rel:
                lines.append(f"  {side} test-retest over {rel['replicates']} replicates: τ {rel['kendall_tau']:+.3f}, "
                             f"r {rel['pearson_r']:+.3f}, seed std {rel['seed_std']:.2f}, spread {rel['spread']:.2f}, "
                             f"SNR {rel['snr']:.2f}")
        if r["pearson_ceiling"] is not None:
            lines.append(f"  the noise on both sides caps Pearson r at about {r['pearson_ceiling']:.2f}")
        lines.append("  mapping     proxy    final")
        for m in r["mappings"]:
            lines.append(f"  {m['mapping']:<10} {m['proxy']:7.2f}  {m['final']:7.2f}")
    return "\n".join(lines)
