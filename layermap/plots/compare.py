"""The figures of a compare folder (``layermap plot COMPARE_DIR``): the forest plot and the per-task bars (and the
mapping diagram of the compared mappings, :mod:`layermap.plots.mappings`).

* comparison forest plot (the default comparison figure): per mapping, the paired difference against the reference
  with its 95 % interval, on the average and per task; filled markers survive the table's multiple-comparison
  correction (Holm–Bonferroni within each column);
* comparison bars: per task and for the average, mean ± std over seeds of each compared mapping; a colour and hatch
  per mapping (:func:`layermap.plots.style.bar_styles`: distinct for up to 60 mappings).

Imports ``plots.style``, ``plots.mappings``, ``final.comparison`` (the table's verdicts and labels) and
``proxy_tasks``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from ..final.comparison import kind_label
from .mappings import diagram_data, draw_mapping_diagram
from .style import PAPER_RC, WIDTH, bar_styles, figure, nan_list, reference_styles, save_figure

@dataclass(frozen=True)
class ForestData:
    columns: list[str]            # display names: "average" first, then the tasks
    mappings: list[str]           # compared mappings (the reference left out), best mean difference on the average first
    labels: list[str]             # "mapping (kind)"
    mean: np.ndarray              # (mappings, columns) paired mean difference against the reference; NaN where missing
    low: np.ndarray               # (mappings, columns) 95 % interval (per comparison); NaN where none
    high: np.ndarray
    p_adjusted: np.ndarray        # (mappings, columns) the verdict's p (adjusted; raw for an old table); NaN where none
    significant: np.ndarray       # (mappings, columns) bool: better or worse after the correction
    nominal: np.ndarray           # (mappings, columns) bool: better or worse by the raw p alone (the interval excludes 0)
    reference: str | None
    reference_label: str
    correction: str               # "Holm–Bonferroni", or "uncorrected" for a table made before the correction
    unit: str = "seed units"      # what a verdict's units are: "distillation seeds", or "fine-tuning seeds (one student)"



@dataclass(frozen=True)
class ComparisonData:
    tasks: list[str]              # display names, "average" last
    mappings: list[str]
    labels: list[str]             # legend label per mapping
    means: np.ndarray             # (mappings, tasks) NaN where missing
    stds: np.ndarray              # (mappings, tasks)
    reference: str | None
    verdicts: list[str]           # per mapping, on the average
    correction: str = "Holm–Bonferroni"   # what the verdicts are corrected by
    references: dict[str, list[float]] = field(default_factory=dict)   # reference row -> its mean per task (NaN: none)
    score_label: str = "dev score (%)"   # where the scores were read: the dev sets, or the held-out scoring split



def comparison_data(table: Mapping) -> ComparisonData:
    """From a ``comparison.json`` object."""
    from proxy_tasks import get_task

    from ..final.comparison import correction_name

    tasks = list(table["tasks"]) + ["average"]
    rows = {(r["mapping"], r["task"]): r for r in table["rows"]}
    mappings = list(table["mappings"])
    means = np.full((len(mappings), len(tasks)), np.nan)
    stds = np.zeros((len(mappings), len(tasks)))
    for i, m in enumerate(mappings):
        for j, t in enumerate(tasks):
            r = rows.get((m, t))
            if r and r["mean"] is not None:
                means[i, j] = r["mean"]
                stds[i, j] = r["std"] or 0.0
    labels, verdicts = [], []
    for m in mappings:
        avg = rows.get((m, "average"), {})
        kind = kind_label(avg.get("kind") or [], table)
        labels.append(f"{m} ({kind})")
        verdicts.append(avg["paired"]["verdict"] if avg.get("paired") else "reference")
    names = [get_task(t).glue_dir_name if t != "average" else "average" for t in tasks]
    refs = {name: [nan_list([row.get(t, {}).get("mean")])[0] for t in tasks]
            for name, row in (table.get("references") or {}).items()}
    scored = (table.get("recipe") or {}).get("scored_on") == "score"
    return ComparisonData(names, mappings, labels, means, stds, table.get("reference"), verdicts,
                          correction_name(table), references=refs,
                          score_label="score on the held-out scoring split (%)" if scored else "dev score (%)")


def forest_data(table: Mapping) -> ForestData:
    """From a ``comparison.json`` object: the paired differences against its reference."""
    from proxy_tasks import get_task

    from ..final.comparison import BETTER, WORSE, correction_name

    columns = ["average"] + list(table["tasks"])
    rows = {(r["mapping"], r["task"]): r for r in table["rows"]}
    reference = table.get("reference")

    def avg_mean(m: str) -> float:
        p = (rows.get((m, "average")) or {}).get("paired")
        return p["mean"] if p and p.get("mean") is not None and math.isfinite(p["mean"]) else -math.inf

    mappings = sorted((m for m in table["mappings"] if m != reference), key=lambda m: -avg_mean(m))
    shape = (len(mappings), len(columns))
    mean, low, high, padj = (np.full(shape, np.nan) for _ in range(4))
    significant, nominal = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    for i, m in enumerate(mappings):
        for j, t in enumerate(columns):
            p = (rows.get((m, t)) or {}).get("paired")
            if not p or p.get("mean") is None:
                continue
            mean[i, j] = p["mean"]
            if p.get("low") is not None:
                low[i, j], high[i, j] = p["low"], p["high"]
            value = p.get("p_adjusted", p.get("p"))
            if value is not None:
                padj[i, j] = value
            significant[i, j] = p.get("verdict") in (BETTER, WORSE)
            nominal[i, j] = p.get("uncorrected_verdict", p.get("verdict")) in (BETTER, WORSE)
    labels = [f"{m} ({kind_label((rows.get((m, 'average')) or {}).get('kind') or [], table)})" for m in mappings]
    ref_kind = kind_label((rows.get((reference, "average")) or {}).get("kind") or [], table) if reference else ""
    names = ["average"] + [get_task(t).glue_dir_name for t in table["tasks"]]
    unit = {"distillation seed": "distillation seeds",
            "fine-tuning seed": "fine-tuning seeds (one student per mapping)"}.get(table.get("unit"), "seed units")
    return ForestData(names, mappings, labels, mean, low, high, padj, significant, nominal, reference,
                      f"{reference} ({ref_kind})" if reference else "", correction_name(table), unit)


def draw_forest(data: ForestData):
    """One panel per column (average, then each task): a row per mapping with its paired difference against
    the reference and the 95 % interval; filled markers survive the correction, hollow ones do not."""
    import matplotlib
    from matplotlib.lines import Line2D

    k, c = data.mean.shape
    with matplotlib.rc_context(PAPER_RC):
        fig = figure(WIDTH, 1.3 + 0.19 * max(k, 1))
        axes = fig.subplots(1, c, squeeze=False, sharey=True)[0]
        y = np.arange(k)[::-1]                            # the first mapping on top
        for j, ax in enumerate(axes):
            ax.axvline(0.0, color="0.35", lw=0.8)
            for i in range(k):
                if np.isnan(data.mean[i, j]):
                    continue
                flagged = data.significant[i, j] or data.nominal[i, j]
                colour = "0.3" if not flagged else "C2" if data.mean[i, j] > 0 else "C3"
                if not np.isnan(data.low[i, j]):
                    ax.plot([data.low[i, j], data.high[i, j]], [y[i], y[i]], color=colour, lw=1.0,
                            solid_capstyle="butt")
                ax.plot(data.mean[i, j], y[i], "o", ms=3.6, color=colour, mec=colour,
                        mfc=colour if data.significant[i, j] else "white", mew=0.9, zorder=3)
            ax.set_title(data.columns[j], fontweight="bold" if j == 0 else "normal")
            ax.set_xlabel("Δ (points)")
            ax.grid(axis="x", color="0.9", lw=0.5)
            ax.set_axisbelow(True)
            if j == 0:
                ax.set_yticks(y)
                ax.set_yticklabels(data.labels)
            ax.set_ylim(-0.7, k - 0.3)
        after = "uncorrected" if data.correction == "uncorrected" else "adjusted p < 0.05"
        handles = [Line2D([], [], marker="o", ls="-", color="C2", mfc="C2", ms=3.6, label=f"better ({after})"),
                   Line2D([], [], marker="o", ls="-", color="C3", mfc="C3", ms=3.6, label=f"worse ({after})"),
                   Line2D([], [], marker="o", ls="-", color="0.3", mfc="white", ms=3.6,
                          label="no significant difference")]
        if data.correction != "uncorrected" and (data.nominal & ~data.significant).any():
            handles.append(Line2D([], [], marker="o", ls="-", color="C2", mfc="white", ms=3.6,
                                  label="p < 0.05 before the correction only"))
        fig.legend(handles=handles, loc="outside lower center", ncol=2 if len(handles) > 3 else 3, frameon=False)
        rule = "verdicts uncorrected" if data.correction == "uncorrected" else \
            f"filled: {data.correction}-adjusted p < 0.05 within the column"
        fig.suptitle(f"Paired differences against the reference {data.reference_label}, mean and 95 % interval over "
                     f"{data.unit}\n({rule})", fontsize=8)
    return fig


def draw_comparison(data: ComparisonData):
    """Per-task bars (mean ± std over seeds) of every mapping; each mapping has its own colour and hatch."""
    import matplotlib

    k, t = data.means.shape
    styles = bar_styles(k)
    with matplotlib.rc_context({**PAPER_RC, "hatch.linewidth": 0.5}):
        fig = figure(WIDTH, 2.4 + 0.16 * math.ceil(k / 2))
        ax = fig.add_subplot()
        width = 0.8 / max(k, 1)
        x = np.arange(t)
        for i in range(k):
            is_ref = data.mappings[i] == data.reference
            colour, hatch = styles[i]
            ax.bar(x - 0.4 + width * (i + 0.5), np.nan_to_num(data.means[i]), width, yerr=data.stds[i],
                   label=data.labels[i] + (" — reference" if is_ref else f" — {_short_verdict(data.verdicts[i])}"),
                   color=colour, edgecolor="black" if is_ref else "white", linewidth=1.0 if is_ref else 0.3,
                   hatch=hatch or None, capsize=2, error_kw={"lw": 0.7})
        for (name, values), (colour, style) in zip(data.references.items(), reference_styles(
                data.references, ("black", "-"), [("0.45", "--"), ("C2", "-.")], ("C3", ":"))):
            ax.hlines(values, x - 0.42, x + 0.42, colors=colour, linestyles=style, linewidth=1.4, zorder=5,
                      label=f"{name} (reference)")          # one line across each task's group of bars
        ax.set_xticks(x)
        ax.set_xticklabels(data.tasks)
        ax.set_ylabel(data.score_label)
        ax.axvline(t - 1.5, color="0.6", lw=0.6, ls="--")
        top = np.nanmax(data.means + data.stds) if np.isfinite(data.means).any() else 1.0
        low = np.nanmin(data.means - data.stds) if np.isfinite(data.means).any() else 0.0
        ax.set_ylim(min(0.0, low * 1.12), top * 1.12 + 1)
        ax.axhline(0, color="0.3", lw=0.6)
        fig.legend(loc="outside lower center", ncol=min(2, k), frameon=False)
        ax.set_title("Fine-tuned students per task, mean ± std over seeds (verdict on the average, "
                     f"{data.correction})")
    return fig


def _short_verdict(verdict: str) -> str:
    return {"no significant difference": "no sig. difference vs reference", "better": "better than reference",
            "worse": "worse than reference"}.get(verdict, verdict)


def plot_compare(folder: str | Path, out: str | Path | None = None) -> list[Path]:
    """Forest plot (``comparison``), per-task bars (``comparison_bars``) and the mapping diagram of a compare folder."""
    path = Path(folder) / "comparison.json"
    table = json.loads(path.read_text("utf-8"))
    out = Path(out) if out else Path(folder) / "plots"
    files = save_figure(draw_forest(forest_data(table)), out, "comparison")
    files += save_figure(draw_comparison(comparison_data(table)), out, "comparison_bars")
    rows = {r["mapping"]: r for r in table["rows"] if r["task"] == "average"}
    panels = {f"{kind_label(rows[m]['kind'], table)} {m}": m for m in table["mappings"]}
    diagram = diagram_data(panels, table["student"]["layers"], table["teacher"]["layers"])
    files += save_figure(draw_mapping_diagram(diagram), out, "mappings")
    return files
