"""Figures of a search and of a comparison: pure data extraction (tested) + matplotlib drawing.

Each figure has an ``*_data`` function that reads plain records into a small typed value, and a
``draw_*`` function that takes that value and returns a :class:`matplotlib.figure.Figure` sized for
a paper (6.5 in wide, 8 pt text).  :func:`plot_folder` writes every figure of a run folder or a
compare folder as PNG (300 dpi) and SVG.

* evolution curve: best / mean / worst population fitness per generation, distinct genomes
  evaluated so far on a second axis;
* mapping diagram: the teacher and student layer stacks with one line per (student layer, teacher
  layer) pair, one panel per mapping (the search's best and the baselines);
* gene-frequency heatmap: per student layer, the share of the population mapping it to each teacher
  layer (0 = no loss), generation by generation;
* comparison bars: per task and for the average, mean ± std over seeds of each compared mapping.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .final.comparison import kind_label
from .errors import LayermapError
from .mapping import parse_genes

PAPER_RC = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
            "ytick.labelsize": 7, "svg.fonttype": "none", "axes.spines.top": False, "axes.spines.right": False}
WIDTH = 6.5          # inches: a full text width


@dataclass(frozen=True)
class EvolutionData:
    generations: list[int]
    best: list[float | None]
    mean: list[float | None]
    worst: list[float | None]
    evaluations: list[int]        # distinct genomes evaluated up to and including each generation


@dataclass(frozen=True)
class DiagramData:
    teacher_layers: int
    student_layers: int
    panels: list[tuple[str, tuple[int, ...]]]     # (title, genes)


@dataclass(frozen=True)
class ComparisonData:
    tasks: list[str]              # display names, "average" last
    mappings: list[str]
    labels: list[str]             # legend label per mapping
    means: np.ndarray             # (mappings, tasks) NaN where missing
    stds: np.ndarray              # (mappings, tasks)
    reference: str | None
    verdicts: list[str]           # per mapping, on the average


def evolution_data(generations: Sequence) -> EvolutionData:
    """From :meth:`Store.generations` rows (``population``, ``fitnesses``, ``stats``)."""
    gens, best, mean, worst, evals = [], [], [], [], []
    total = 0
    for row in generations:
        values = [f for f in row.fitnesses if f is not None and math.isfinite(f)]
        gens.append(int(row.generation))
        best.append(max(values) if values else None)
        mean.append(float(np.mean(values)) if values else None)
        worst.append(min(values) if values else None)
        total += int(row.stats.get("evaluated", 0))
        evals.append(total)
    return EvolutionData(gens, best, mean, worst, evals)


def gene_frequency_data(generations: Sequence, student_layers: int, teacher_layers: int) -> np.ndarray:
    """(G, M, N + 1): the share of each generation's population whose gene m (1..M) is k (0..N)."""
    freq = np.zeros((len(generations), student_layers, teacher_layers + 1))
    for g, row in enumerate(generations):
        genomes = [parse_genes(text) for text in row.population]
        for genes in genomes:
            for m, k in enumerate(genes):
                freq[g, m, k] += 1
        if genomes:
            freq[g] /= len(genomes)
    return freq


def diagram_data(mappings: Mapping[str, str], student_layers: int, teacher_layers: int) -> DiagramData:
    """``{title: genome text}`` -> panels in order."""
    panels = []
    for title, text in mappings.items():
        genes = parse_genes(text)
        if len(genes) != student_layers or any(k < 0 or k > teacher_layers for k in genes):
            raise LayermapError(f"mapping {text} does not fit {student_layers} student and {teacher_layers} teacher layers")
        panels.append((title, genes))
    return DiagramData(teacher_layers, student_layers, panels)


def comparison_data(table: Mapping) -> ComparisonData:
    """From a ``comparison.json`` object."""
    from proxy_tasks import get_task

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
    return ComparisonData(names, mappings, labels, means, stds, table.get("reference"), verdicts)


# -- drawing ---------------------------------------------------------------------------------------------
def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def draw_evolution(data: EvolutionData):
    import matplotlib

    with matplotlib.rc_context(PAPER_RC):
        fig = _figure(WIDTH / 2, 2.4)
        ax = fig.add_subplot()
        x = data.generations
        ax.plot(x, _nan(data.best), "o-", color="C0", label="best", lw=1.4, ms=3)
        ax.plot(x, _nan(data.mean), "s--", color="C1", label="mean", lw=1.0, ms=3)
        ax.plot(x, _nan(data.worst), "v:", color="C3", label="worst", lw=1.0, ms=3)
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
        ax.legend(lines[0] + extra[0], lines[1] + extra[1], loc="lower right", frameon=False)
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
        for ax, (title, genes) in zip(axes, data.panels):
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
            ax.set_xlim(-0.25, 1.25)
            ax.set_ylim(-0.7, n + 0.7)
            ax.axis("off")
            ax.set_title(title, fontsize=7)
        fig.suptitle("Layer mappings (student left, teacher right; hatched = no intermediate loss)", fontsize=8)
    return fig


def draw_gene_heatmap(freq: np.ndarray):
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
                ax.set_ylabel("teacher layer (0 = no loss)")
                ax.set_yticks(range(n1))
        fig.colorbar(image, ax=list(axes), label="share of population", shrink=0.9)
    return fig


def draw_comparison(data: ComparisonData):
    import matplotlib

    k, t = data.means.shape
    with matplotlib.rc_context(PAPER_RC):
        fig = _figure(WIDTH, 2.4 + 0.16 * math.ceil(k / 2))
        ax = fig.add_subplot()
        width = 0.8 / max(k, 1)
        x = np.arange(t)
        for i in range(k):
            is_ref = data.mappings[i] == data.reference
            ax.bar(x - 0.4 + width * (i + 0.5), np.nan_to_num(data.means[i]), width, yerr=data.stds[i],
                   label=data.labels[i] + (" — reference" if is_ref else f" — {_short_verdict(data.verdicts[i])}"),
                   color=f"C{i}", edgecolor="black" if is_ref else "none", linewidth=0.8,
                   hatch="//" if is_ref else None, capsize=2, error_kw={"lw": 0.7})
        ax.set_xticks(x)
        ax.set_xticklabels(data.tasks)
        ax.set_ylabel("dev score (%)")
        ax.axvline(t - 1.5, color="0.6", lw=0.6, ls="--")
        top = np.nanmax(data.means + data.stds) if np.isfinite(data.means).any() else 1.0
        low = np.nanmin(data.means - data.stds) if np.isfinite(data.means).any() else 0.0
        ax.set_ylim(min(0.0, low * 1.12), top * 1.12 + 1)
        ax.axhline(0, color="0.3", lw=0.6)
        fig.legend(loc="outside lower center", ncol=min(2, k), frameon=False)
        ax.set_title("Fine-tuned students per task, mean ± std over seeds (verdict: paired 95 % interval on the average)")
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


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> list[Path]:
    """Evolution curve, mapping diagram (best + baselines) and gene heatmap of a run folder."""
    from .mapping import baselines
    from .evolution.results import load_result
    from .evolution.store import open_run

    _, store, row = open_run(run_dir)
    with store:
        generations = store.generations(row.run_id)
        result = load_result(store, row, run_dir)
    if not generations or result.best_genome is None:
        raise LayermapError(f"run folder {run_dir} has no finished generation to plot yet; let the search run first")
    out = Path(out) if out else Path(run_dir) / "plots"
    panels = {f"best {result.best_record.genome}": result.best_record.genome}
    panels.update({f"{name} {'-'.join(map(str, g))}": "-".join(map(str, g))
                   for name, g in baselines(row.student_layers, row.teacher_layers).items()})
    files = save_figure(draw_evolution(evolution_data(generations)), out, "evolution")
    files += save_figure(draw_mapping_diagram(diagram_data(panels, row.student_layers, row.teacher_layers)), out, "mappings")
    freq = gene_frequency_data(generations, row.student_layers, row.teacher_layers)
    files += save_figure(draw_gene_heatmap(freq), out, "gene_frequency")
    return files


def plot_compare(folder: str | Path, out: str | Path | None = None) -> list[Path]:
    """Comparison bars and the mapping diagram of a compare folder."""
    path = Path(folder) / "comparison.json"
    table = json.loads(path.read_text("utf-8"))
    out = Path(out) if out else Path(folder) / "plots"
    files = save_figure(draw_comparison(comparison_data(table)), out, "comparison")
    rows = {r["mapping"]: r for r in table["rows"] if r["task"] == "average"}
    panels = {f"{kind_label(rows[m]['kind'], table)} {m}": m for m in table["mappings"]}
    diagram = diagram_data(panels, table["student"]["layers"], table["teacher"]["layers"])
    files += save_figure(draw_mapping_diagram(diagram), out, "mappings")
    return files


def plot_folder(folder: str | Path, out: str | Path | None = None) -> list[Path]:
    """A run folder (``run.json``) or a compare folder (``comparison.json``) -> its figures."""
    import matplotlib

    matplotlib.use("Agg")
    folder = Path(folder)
    if (folder / "comparison.json").is_file():
        return plot_compare(folder, out)
    if (folder / "run.json").is_file():
        return plot_run(folder, out)
    raise LayermapError(f"{folder} is neither a run folder (run.json) nor a compare folder (comparison.json); "
                        "give the --out folder of 'layermap evolve' or 'layermap compare'")
