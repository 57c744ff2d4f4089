"""The figures of one search run (``layermap plot RUN_DIR``): the evolution curve and the gene-frequency heatmap
(and the mapping diagram of its best and baselines, :mod:`layermap.plots.mappings`).

* evolution curve: the best fitness so far with a noise band (± the best genome's replicate standard error where it
  has replicates, else ± ``search.noise_std``, one evaluation's measured seed std), the best baseline's level, the
  population's best / mean / worst per generation, and the distinct genomes evaluated so far on a second axis;
* gene-frequency heatmap: per student layer, the share of the population mapping it to each teacher layer (0 = no
  loss), generation by generation.

Imports ``plots.style``, ``plots.mappings``, a run read back (``report.results``, ``report.verdict``,
``storage.runs``) and the genome helpers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import LayermapError
from ..mapping import parse_genes
from .mappings import diagram_data, draw_mapping_diagram
from .style import PAPER_RC, WIDTH, figure, nan_list, reference_styles, save_figure

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


def _part(text: str, part: str) -> tuple[int, ...]:
    """A genome text's imitation genes, or (``part = "init"``) a split genome's init part."""
    if part == "init":
        return parse_genes(text.split("+", 1)[0])
    return parse_genes(text.split("+", 1)[-1])


def draw_evolution(data: EvolutionData):
    import matplotlib

    with matplotlib.rc_context(PAPER_RC):
        fig = figure(WIDTH / 2, 3.1)
        ax = fig.add_subplot()
        x = data.generations
        if data.best_so_far:
            top = np.array(nan_list(data.best_so_far), dtype=float)
            if any(b is not None for b in data.band):
                half = np.array(nan_list(data.band), dtype=float)
                ax.fill_between(x, top - half, top + half, color="C0", alpha=0.18, lw=0, label=data.band_label)
            ax.plot(x, top, "o-", color="C0", label="best so far", lw=1.4, ms=3)
            ax.plot(x, nan_list(data.best), "^", color="C0", mfc="none", label="population best", ms=3.5)
        else:
            ax.plot(x, nan_list(data.best), "o-", color="C0", label="best", lw=1.4, ms=3)
        ax.plot(x, nan_list(data.mean), "s--", color="C1", label="mean", lw=1.0, ms=3)
        ax.plot(x, nan_list(data.worst), "v:", color="C3", label="worst", lw=1.0, ms=3)
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


def draw_gene_heatmap(freq: np.ndarray, ylabel: str = "teacher layer (0 = no loss)"):
    import matplotlib

    g, m, n1 = freq.shape
    with matplotlib.rc_context(PAPER_RC):
        fig = figure(min(WIDTH, 1.7 * m + 0.8), 2.3)
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


def plot_run(run_dir: str | Path, out: str | Path | None = None, *, noise_std: float | None = None) -> list[Path]:
    """Evolution curve, mapping diagram (best + baselines) and gene heatmap of a run folder.

    The evolution curve's noise band is each genome's replicate standard error where it has one, else the
    run's ``search.noise_std``; ``noise_std`` (``layermap plot --noise-std``) replaces both for every genome."""
    from ..extraction import baseline_genomes, baseline_texts
    from ..report.results import load_result, run_genome
    from ..storage.runs import open_run
    from ..report.verdict import run_noise_std

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
