"""Plot data extraction (pure) on known records, and drawing returns a Figure."""

from __future__ import annotations

import numpy as np
import pytest

from layermap.final.comparison import Cell, build_table
from layermap.plots import (comparison_data, diagram_data, draw_comparison, draw_evolution, draw_gene_heatmap,
                            draw_mapping_diagram, evolution_data, gene_frequency_data)
from layermap.evolution.store import GenerationRow


def _gen(g, population, fitnesses, evaluated):
    return GenerationRow(g, population, fitnesses, {"evaluated": evaluated}, {})


GENERATIONS = [
    _gen(0, ["2-4-6", "4-5-6", "1-2-3", "0-0-6"], [61.0, 60.0, 63.0, None], 4),
    _gen(1, ["1-2-3", "1-2-6", "2-4-6", "1-2-3"], [63.0, 64.0, 61.0, 63.0], 2),
]


def test_evolution_data_takes_best_mean_worst_over_finished_genomes_and_counts_evaluations():
    data = evolution_data(GENERATIONS)
    assert data.generations == [0, 1]
    assert data.best == [63.0, 64.0] and data.worst == [60.0, 61.0]
    assert data.mean == pytest.approx([np.mean([61, 60, 63]), np.mean([63, 64, 61, 63])])
    assert data.evaluations == [4, 6]


def test_gene_frequency_data_counts_each_layer_choice():
    freq = gene_frequency_data(GENERATIONS, 3, 6)
    assert freq.shape == (2, 3, 7)
    assert np.allclose(freq.sum(axis=2), 1.0)
    assert freq[0, 0, 0] == 0.25 and freq[0, 2, 6] == 0.75          # gen 0: one gene 0 at layer 1; 6 three times at layer 3
    assert freq[1, 0, 1] == 0.75 and freq[1, 2, 3] == 0.5


def test_diagram_data_rejects_a_mapping_that_does_not_fit():
    data = diagram_data({"best": "1-2-6", "last": "0-0-6"}, 3, 6)
    assert data.panels == [("best", (1, 2, 6)), ("last", (0, 0, 6))]
    with pytest.raises(Exception, match="does not fit"):
        diagram_data({"bad": "1-2-7"}, 3, 6)


def test_comparison_data_and_every_drawing_returns_a_figure():
    cells = [Cell(m, 0, t, s, v + s) for m, v in (("2-4-6", 80.0), ("1-2-6", 83.0)) for t in ("sst2", "cola") for s in range(3)]
    table = build_table(cells, ["1-2-6", "2-4-6"], ["sst2", "cola"], [(0, 0), (0, 1), (0, 2)], kinds={"2-4-6": ["uniform"]})
    data = comparison_data(table)
    assert data.tasks == ["SST-2", "CoLA", "average"]
    assert data.means.shape == (2, 3) and data.means[0, 0] == pytest.approx(84.0) and data.stds[0, 0] == pytest.approx(1.0)
    assert data.reference == "2-4-6" and data.verdicts == ["better", "reference"]
    assert data.labels == ["1-2-6 (given)", "2-4-6 (uniform)"]          # listed with --mappings
    assert comparison_data({**table, "source": {"run_dir": "runs/demo"}}).labels[0] == "1-2-6 (searched)"
    from matplotlib.figure import Figure

    figures = [draw_comparison(data), draw_evolution(evolution_data(GENERATIONS)),
               draw_gene_heatmap(gene_frequency_data(GENERATIONS, 3, 6)),
               draw_mapping_diagram(diagram_data({"best": "1-2-6"}, 3, 6))]
    assert all(isinstance(f, Figure) and f.axes for f in figures)
