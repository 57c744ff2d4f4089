"""Figures of a search and of a comparison: pure data extraction (tested) + matplotlib drawing.

Each figure has an ``*_data`` function that reads plain records into a small typed value, and a
``draw_*`` function that takes that value and returns a :class:`matplotlib.figure.Figure` sized for
a paper (6.5 in wide, 8 pt text).  :func:`plot_folder` writes every figure of a run folder or a
compare folder as PNG (300 dpi) and SVG.

* evolution curve: the best fitness so far with a noise band (± the best genome's replicate standard
  error where it has replicates, else ± ``search.noise_std``, one evaluation's measured seed std), the
  best baseline's level, the population's best / mean / worst per generation, and the distinct genomes
  evaluated so far on a second axis;
* mapping diagram: the teacher and student layer stacks with one line per (student layer, teacher
  layer) pair, one panel per mapping (the search's best and the baselines);
* gene-frequency heatmap: per student layer, the share of the population mapping it to each teacher
  layer (0 = no loss), generation by generation;
* comparison forest plot (the default comparison figure): per mapping, the paired difference against
  the reference with its 95 % interval, on the average and per task; filled markers survive the
  table's multiple-comparison correction (Holm–Bonferroni within each column);
* comparison bars: per task and for the average, mean ± std over seeds of each compared mapping; a
  colour and hatch per mapping (:func:`bar_styles`: distinct for up to 60 mappings);
* an nsga2 run's Pareto front and hypervolume curve: :mod:`layermap.plots_front`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .final.comparison import kind_label
from .errors import LayermapError
from .mapping import parse_genes

PAPER_RC = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
            "ytick.labelsize": 7, "svg.fonttype": "none", "axes.spines.top": False, "axes.spines.right": False}
WIDTH = 6.5          # inches: a full text width


BAR_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf")                      # matplotlib's tab10, in its order
BAR_HATCHES = ("", "////", "....", "xxxx", "\\\\\\\\", "oo")  # one per round of the ten colours


@dataclass(frozen=True)
class EvolutionData:
    generations: list[int]
    best: list[float | None]
    mean: list[float | None]
    worst: list[float | None]
    evaluations: list[int]        # distinct genomes evaluated up to and including each generation
    best_so_far: list[float | None] = field(default_factory=list)   # the highest fitness up to each generation
    best_genome: list[str | None] = field(default_factory=list)     # the genome that holds it
    band: list[float | None] = field(default_factory=list)          # half-width of its noise band (None: unknown)
    band_label: str = ""                                            # what the band is, for the legend
    baseline: float | None = None                                   # the best baseline's fitness in the run
    baseline_genome: str | None = None
    references: dict[str, float] = field(default_factory=dict)      # reference row -> its fitness (teacher, ...)


@dataclass(frozen=True)
class DiagramData:
    teacher_layers: int
    student_layers: int
    panels: list[tuple[str, tuple[int, ...]]]     # (title, genes: the teacher layer each student layer imitates)
    starts: list[tuple[int, ...] | None] = field(default_factory=list)   # per panel: a split genome's init part


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


def evolution_data(generations: Sequence, *, noise_std: float = 0.0, stderr: Mapping[str, float | None] | None = None,
                   baselines: Mapping[str, float] | None = None,
                   references: Mapping[str, float] | None = None) -> EvolutionData:
    """From :meth:`Store.generations` rows (``population``, ``fitnesses``, ``stats``).

    The best so far carries a noise band: ± ``stderr[genome]`` (the standard error of the genome's
    replicate mean) where known, else ± ``noise_std`` (one fitness's seed std, ``search.noise_std``),
    else none.  ``baselines`` maps the run's baseline genomes to their fitnesses; the best is marked.
    ``references`` (reference row name -> fitness: teacher, no distillation, constant) are drawn as lines."""
    stderr = dict(stderr or {})
    gens, best, mean, worst, evals, so_far, holder, band = [], [], [], [], [], [], [], []
    total, top, top_genome, sources = 0, None, None, set()
    for row in generations:
        pairs = [(f, g) for f, g in zip(row.fitnesses, row.population) if f is not None and math.isfinite(f)]
        values = [f for f, _ in pairs]
        gens.append(int(row.generation))
        best.append(max(values) if values else None)
        mean.append(float(np.mean(values)) if values else None)
        worst.append(min(values) if values else None)
        total += int(row.stats.get("evaluated", 0))
        evals.append(total)
        for f, g in pairs:
            if top is None or f > top:
                top, top_genome = f, g
        so_far.append(top)
        holder.append(top_genome)
        error = stderr.get(top_genome) if top_genome is not None else None
        if error is not None and math.isfinite(error):
            band.append(float(error))
            sources.add("replicates")
        elif top_genome is not None and noise_std > 0:
            band.append(float(noise_std))
            sources.add("noise_std")
        else:
            band.append(None)
    label = {frozenset({"replicates"}): "± replicate s.e.",
             frozenset({"noise_std"}): f"± noise std {noise_std:g}",
             frozenset({"replicates", "noise_std"}): f"± replicate s.e. / {noise_std:g}",
             }.get(frozenset(sources), "")
    finite = {g: f for g, f in (baselines or {}).items() if f is not None and math.isfinite(f)}
    base_genome = max(finite, key=lambda g: finite[g]) if finite else None
    return EvolutionData(gens, best, mean, worst, evals, so_far, holder, band, label,
                         finite.get(base_genome) if base_genome else None, base_genome,
                         {k: float(v) for k, v in (references or {}).items() if v is not None and math.isfinite(v)})


def gene_frequency_data(generations: Sequence, student_layers: int, teacher_layers: int,
                        part: str = "imitation") -> np.ndarray:
    """(G, M, N + 1): the share of each generation's population whose gene m (1..M) is k (0..N); of a split genome
    (``1-2-3+2-4-6``) the imitation part, or with ``part = "init"`` the teacher layer each student layer starts from."""
    freq = np.zeros((len(generations), student_layers, teacher_layers + 1))
    for g, row in enumerate(generations):
        genomes = [_part(text, part) for text in row.population]
        for genes in genomes:
            for m, k in enumerate(genes):
                freq[g, m, k] += 1
        if genomes:
            freq[g] /= len(genomes)
    return freq


def reference_styles(names, teacher: tuple, students: list[tuple], constant: tuple) -> list[tuple]:
    """A (colour, line style) per reference row name: the teacher's, the constant's, and the undistilled students' in
    turn (no distillation; with teacher initialisation the truncation, then the random student)."""
    out, k = [], 0
    for name in names:
        if name in ("teacher", "constant"):
            out.append(teacher if name == "teacher" else constant)
        else:
            out.append(students[min(k, len(students) - 1)])
            k += 1
    return out


def diagram_data(mappings: Mapping[str, str], student_layers: int, teacher_layers: int) -> DiagramData:
    """``{title: genome text}`` -> panels in order; a split genome's panel also carries where each layer starts from."""
    panels, starts = [], []
    for title, text in mappings.items():
        genes = parse_genes(text.split("+", 1)[-1])
        start = parse_genes(text.split("+", 1)[0]) if "+" in text else None
        if len(genes) != student_layers or any(k < 0 or k > teacher_layers for k in (*genes, *(start or ()))):
            raise LayermapError(f"mapping {text} does not fit {student_layers} student and {teacher_layers} teacher layers")
        panels.append((title, genes))
        starts.append(start)
    return DiagramData(teacher_layers, student_layers, panels, starts)


def _part(text: str, part: str) -> tuple[int, ...]:
    """A genome text's imitation genes, or (``part = "init"``) a split genome's init part."""
    if part == "init":
        return parse_genes(text.split("+", 1)[0])
    return parse_genes(text.split("+", 1)[-1])


def comparison_data(table: Mapping) -> ComparisonData:
    """From a ``comparison.json`` object."""
    from proxy_tasks import get_task

    from .final.comparison import correction_name

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
    refs = {name: [_nan([row.get(t, {}).get("mean")])[0] for t in tasks]
            for name, row in (table.get("references") or {}).items()}
    return ComparisonData(names, mappings, labels, means, stds, table.get("reference"), verdicts,
                          correction_name(table), references=refs)


def forest_data(table: Mapping) -> ForestData:
    """From a ``comparison.json`` object: the paired differences against its reference."""
    from proxy_tasks import get_task

    from .final.comparison import BETTER, WORSE, correction_name

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


def bar_styles(n: int) -> list[tuple[str, str]]:
    """(colour, hatch) for ``n`` mappings: the ten tab10 colours, then again with a hatch per round, so no
    two of the first 60 mappings share both."""
    return [(BAR_COLOURS[i % len(BAR_COLOURS)], BAR_HATCHES[(i // len(BAR_COLOURS)) % len(BAR_HATCHES)])
            for i in range(n)]


# -- drawing ---------------------------------------------------------------------------------------------
def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def draw_evolution(data: EvolutionData):
    import matplotlib

    with matplotlib.rc_context(PAPER_RC):
        fig = _figure(WIDTH / 2, 3.1)
        ax = fig.add_subplot()
        x = data.generations
        if data.best_so_far:
            top = np.array(_nan(data.best_so_far), dtype=float)
            if any(b is not None for b in data.band):
                half = np.array(_nan(data.band), dtype=float)
                ax.fill_between(x, top - half, top + half, color="C0", alpha=0.18, lw=0, label=data.band_label)
            ax.plot(x, top, "o-", color="C0", label="best so far", lw=1.4, ms=3)
            ax.plot(x, _nan(data.best), "^", color="C0", mfc="none", label="population best", ms=3.5)
        else:
            ax.plot(x, _nan(data.best), "o-", color="C0", label="best", lw=1.4, ms=3)
        ax.plot(x, _nan(data.mean), "s--", color="C1", label="mean", lw=1.0, ms=3)
        ax.plot(x, _nan(data.worst), "v:", color="C3", label="worst", lw=1.0, ms=3)
        if data.baseline is not None:
            ax.axhline(data.baseline, color="0.25", lw=0.9, ls="-.",
                       label=f"best baseline {data.baseline_genome} {data.baseline:.2f}")
        for (name, value), style in zip(data.references.items(), reference_styles(
                data.references, ("0.0", ":"), [("C7", "--"), ("C2", "-.")], ("C5", (0, (1, 3))))):
            ax.axhline(value, color=style[0], lw=0.9, ls=style[1], label=f"{name} {value:.2f}")
        ax.set_xlabel("generation")
        ax.set_ylabel("population fitness (proxy, %)")
        ax.set_xticks(x)
        ax2 = ax.twinx()
        ax2.step(x, data.evaluations, where="mid", color="0.5", lw=0.9, label="genomes evaluated")
        ax2.set_ylabel("genomes evaluated (cumulative)", color="0.4")
        ax2.spines["right"].set_visible(True)
        ax2.spines["top"].set_visible(False)
        lines = ax.get_legend_handles_labels()
        extra = ax2.get_legend_handles_labels()
        fig.legend(lines[0] + extra[0], lines[1] + extra[1], loc="outside lower center", ncol=2, frameon=False,
                   fontsize=6)
        ax.set_title("Evolution of the proxy fitness")
    return fig


def draw_mapping_diagram(data: DiagramData):
    import matplotlib
    from matplotlib.patches import Rectangle

    n, m = data.teacher_layers, data.student_layers
    with matplotlib.rc_context(PAPER_RC):
        k = len(data.panels)
        fig = _figure(min(WIDTH, 1.35 * k + 0.3), 0.24 * (n + 1) + 0.9)
        axes = fig.subplots(1, k, squeeze=False)[0]
        starts = data.starts or [None] * len(data.panels)
        for ax, (title, genes), start in zip(axes, data.panels, starts):
            s_y = {j: j * n / m for j in range(m + 1)}             # student boxes spread over the teacher's height
            for j in range(n + 1):
                ax.add_patch(Rectangle((0.62, j - 0.35), 0.3, 0.7, fc="#dbe7f3", ec="0.3", lw=0.6))
                ax.text(0.95, j, "emb" if j == 0 else f"T{j}", va="center", ha="left", fontsize=6)
            for j in range(m + 1):
                used = j == 0 or genes[j - 1] > 0
                ax.add_patch(Rectangle((0.08, s_y[j] - 0.35), 0.3, 0.7, fc="#f6dcc4" if used else "0.92",
                                       ec="0.3", lw=0.6, hatch=None if used else "////"))
                ax.text(0.05, s_y[j], "emb" if j == 0 else f"S{j}", va="center", ha="right", fontsize=6)
            ax.plot([0.38, 0.62], [0, 0], color="0.5", lw=0.8)
            for j, g in enumerate(genes, start=1):
                if g > 0:
                    ax.plot([0.38, 0.62], [s_y[j], g], color="C3", lw=1.2)
            for j, i in enumerate(start or (), start=1):          # a split genome: where each layer starts from
                if i != genes[j - 1]:
                    ax.plot([0.38, 0.62], [s_y[j], i], color="C0", lw=0.9, ls="--")
            ax.set_xlim(-0.25, 1.25)
            ax.set_ylim(-0.7, n + 0.7)
            ax.axis("off")
            ax.set_title(title, fontsize=7)
        split = any(s is not None for s in starts)
        fig.suptitle("Layer mappings (student left, teacher right; hatched = no intermediate loss"
                     + ("; dashed = the teacher layer a student layer starts from, where it is not the one it imitates"
                        if split else "") + ")", fontsize=8)
    return fig


def draw_gene_heatmap(freq: np.ndarray, ylabel: str = "teacher layer (0 = no loss)"):
    import matplotlib

    g, m, n1 = freq.shape
    with matplotlib.rc_context(PAPER_RC):
        fig = _figure(min(WIDTH, 1.7 * m + 0.8), 2.3)
        axes = fig.subplots(1, m, squeeze=False, sharey=True)[0]
        image = None
        for j, ax in enumerate(axes):
            image = ax.imshow(freq[:, j, :].T, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1,
                              extent=(-0.5, g - 0.5, -0.5, n1 - 0.5))
            ax.set_title(f"student layer {j + 1}")
            ax.set_xlabel("generation")
            ax.set_xticks(range(g))
            if j == 0:
                ax.set_ylabel(ylabel)
                ax.set_yticks(range(n1))
        fig.colorbar(image, ax=list(axes), label="share of population", shrink=0.9)
    return fig


def draw_forest(data: ForestData):
    """One panel per column (average, then each task): a row per mapping with its paired difference against
    the reference and the 95 % interval; filled markers survive the correction, hollow ones do not."""
    import matplotlib
    from matplotlib.lines import Line2D

    k, c = data.mean.shape
    with matplotlib.rc_context(PAPER_RC):
        fig = _figure(WIDTH, 1.3 + 0.19 * max(k, 1))
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
        fig = _figure(WIDTH, 2.4 + 0.16 * math.ceil(k / 2))
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
        ax.set_ylabel("dev score (%)")
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


def _nan(values: Sequence[float | None]) -> list[float]:
    return [np.nan if v is None else v for v in values]


# -- files -----------------------------------------------------------------------------------------------
def save_figure(fig, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    fig.savefig(paths[0], dpi=300)
    fig.savefig(paths[1])
    return paths


def plot_run(run_dir: str | Path, out: str | Path | None = None, *, noise_std: float | None = None) -> list[Path]:
    """Evolution curve, mapping diagram (best + baselines) and gene heatmap of a run folder.

    The evolution curve's noise band is each genome's replicate standard error where it has one, else the
    run's ``search.noise_std``; ``noise_std`` (``layermap plot --noise-std``) replaces both for every genome."""
    from .extraction import baseline_genomes, baseline_texts
    from .evolution.results import load_result, run_genome
    from .storage.runs import open_run
    from .evolution.verdict import run_noise_std

    if noise_std is not None and not (noise_std >= 0 and math.isfinite(noise_std)):
        raise LayermapError(f"--noise-std must be a standard deviation >= 0, got {noise_std}")

    _, store, row = open_run(run_dir)
    with store:
        generations = store.generations(row.run_id)
        result = load_result(store, row, run_dir)
        records = {}
        for r in store.run_evaluations(row.run_id):
            if r.record is not None and r.record.ok:
                records.setdefault(r.genome, r.record)
    if not generations or result.best_genome is None:
        raise LayermapError(f"run folder {run_dir} has no finished generation to plot yet; let the search run first")
    out = Path(out) if out else Path(run_dir) / "plots"
    panels = {f"best {result.best_record.genome}": result.best_record.genome}
    genome = run_genome(row.config)
    panels.update({f"{name} {text}": text for name, text in
                   baseline_genomes(row.student_layers, row.teacher_layers, genome).items()})
    base_texts = baseline_texts(row.student_layers, row.teacher_layers, genome)
    stderr = {g: r.fitness_stderr for g, r in records.items()} if noise_std is None else {}
    noise = noise_std if noise_std is not None else (run_noise_std(row.config) or 0.0)
    refs = result.references
    evolution = evolution_data(generations, noise_std=noise, stderr=stderr,
                               baselines={g: r.fitness for g, r in records.items() if g in base_texts},
                               references={r.name: r.fitness for r in refs.rows} if refs is not None else None)
    files = save_figure(draw_evolution(evolution), out, "evolution")
    files += save_figure(draw_mapping_diagram(diagram_data(panels, row.student_layers, row.teacher_layers)), out, "mappings")
    freq = gene_frequency_data(generations, row.student_layers, row.teacher_layers)
    files += save_figure(draw_gene_heatmap(freq), out, "gene_frequency")
    if genome == "split":                          # the other half of a split genome: where each layer starts from
        freq = gene_frequency_data(generations, row.student_layers, row.teacher_layers, part="init")
        files += save_figure(draw_gene_heatmap(freq, "teacher layer it starts from"), out, "gene_frequency_init")
    return files


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


def plot_folder(folder: str | Path, out: str | Path | None = None, *, noise_std: float | None = None) -> list[Path]:
    """A run folder (``run.json``) or a compare folder (``comparison.json``) -> its figures (``noise_std``:
    see :func:`plot_run`; a compare folder's noise is in its table)."""
    import matplotlib

    matplotlib.use("Agg")
    folder = Path(folder)
    if (folder / "comparison.json").is_file():
        return plot_compare(folder, out)
    if (folder / "run.json").is_file():
        from .evolution.front import is_nsga2_run

        if noise_std is not None and not (noise_std >= 0 and math.isfinite(noise_std)):
            raise LayermapError(f"--noise-std must be a standard deviation >= 0, got {noise_std}")

        if is_nsga2_run(folder):                    # a Pareto front, not one best genome
            from .plots_front import plot_front

            return plot_front(folder, out)
        return plot_run(folder, out, noise_std=noise_std)
    raise LayermapError(f"{folder} is neither a run folder (run.json) nor a compare folder (comparison.json); "
                        "give the --out folder of 'layermap evolve' or 'layermap compare'")
