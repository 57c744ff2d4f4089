"""Plot data extraction (pure) on known records, and drawing returns a Figure."""

from __future__ import annotations

import numpy as np
import pytest

from layermap.final.comparison import Cell, build_table
from layermap.plots import (bar_styles, comparison_data, diagram_data, draw_comparison, draw_evolution, draw_forest,
                            draw_gene_heatmap, draw_mapping_diagram, evolution_data, gene_frequency_data)
from layermap.storage.store import GenerationRow


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
    assert data.score_label == "dev score (%)"                          # no held-out scoring split: the dev sets
    held_out = comparison_data({**table, "recipe": {"scored_on": "score", "score_examples": 1000}})
    assert held_out.score_label == "score on the held-out scoring split (%)"   # the judge's recipe reads held-out data
    from matplotlib.figure import Figure

    figures = [draw_comparison(data), draw_evolution(evolution_data(GENERATIONS)),
               draw_gene_heatmap(gene_frequency_data(GENERATIONS, 3, 6)),
               draw_mapping_diagram(diagram_data({"best": "1-2-6"}, 3, 6))]
    assert all(isinstance(f, Figure) and f.axes for f in figures)


def _family_table():
    """A baseline and four mappings on two tasks, 4 seed units: 1-1-1 gains clearly on sst2, 2-2-2 only
    borderline (better uncorrected, not after Holm), 3-3-3 and 4-4-4 are null."""
    ref = {"sst2": [60.0, 64.0, 58.0, 62.0], "cola": [10.0, 14.0, 8.0, 12.0]}
    offsets = {"1-1-1": (5.0, 5.2, 4.9, 5.1), "2-2-2": (1.0, 2.8, 0.8, 2.4),
               "3-3-3": (1.0, -1.0, 0.5, -0.5), "4-4-4": (-0.5, 0.5, 0.0, 0.2)}
    cells = [Cell("0-0-6", 0, t, s, v) for t, vs in ref.items() for s, v in enumerate(vs)]
    cells += [Cell(m, 0, t, s, v + o) for m, off in offsets.items() for t, vs in ref.items()
              for s, (v, o) in enumerate(zip(vs, off))]
    return build_table(cells, ["3-3-3", "2-2-2", "0-0-6", "1-1-1", "4-4-4"], ["sst2", "cola"],
                       [(0, s) for s in range(4)], kinds={"0-0-6": ["last"]})


def test_forest_data_extracts_differences_intervals_and_who_survives_holm():
    from layermap.plots import forest_data

    table = _family_table()
    data = forest_data(table)
    assert data.columns == ["average", "SST-2", "CoLA"] and data.correction == "Holm–Bonferroni"
    assert data.reference == "0-0-6" and data.reference_label == "0-0-6 (last)"
    assert data.mappings[0] == "1-1-1" and "0-0-6" not in data.mappings          # best mean difference first
    assert data.labels[0] == "1-1-1 (given)"
    means = data.mean[:, 0]
    assert list(means) == sorted(means, reverse=True)
    rows = {(r["mapping"], r["task"]): r["paired"] for r in table["rows"]}
    for i, m in enumerate(data.mappings):
        for j, t in enumerate(["average", "sst2", "cola"]):
            p = rows[(m, t)]
            assert data.mean[i, j] == pytest.approx(p["mean"])
            assert (data.low[i, j], data.high[i, j]) == pytest.approx((p["low"], p["high"]))
            assert data.p_adjusted[i, j] == pytest.approx(p["p_adjusted"])
            assert data.low[i, j] <= data.mean[i, j] <= data.high[i, j]
    i = data.mappings.index("2-2-2")
    assert data.low[i, 1] > 0 and not data.significant[i, 1]       # its interval clears 0, Holm does not
    assert data.nominal[i, 1] and not data.nominal[data.mappings.index("3-3-3")].any()
    assert data.significant[data.mappings.index("1-1-1"), 1]
    assert not data.significant[data.mappings.index("3-3-3")].any()
    from matplotlib.figure import Figure

    fig = draw_forest(data)
    assert isinstance(fig, Figure) and len(fig.axes) == 3


def test_forest_data_reads_a_table_made_before_the_correction():
    from layermap.plots import forest_data

    table = _family_table()
    del table["correction"]
    for r in table["rows"]:
        if r["paired"]:
            r["paired"].pop("p_adjusted")
            r["paired"]["verdict"] = r["paired"].pop("uncorrected_verdict")
    data = forest_data(table)
    assert data.correction == "uncorrected"
    i = data.mappings.index("2-2-2")
    assert data.significant[i, 1] and data.p_adjusted[i, 1] == pytest.approx(
        {(r["mapping"], r["task"]): r["paired"] for r in table["rows"]}[("2-2-2", "sst2")]["p"])


def test_bar_styles_stay_distinct_for_twenty_mappings_and_beyond():
    from matplotlib.colors import to_rgb

    for n in (12, 20, 60):
        styles = bar_styles(n)
        assert len(set(styles)) == n                                   # no two mappings share colour and hatch
    styles = bar_styles(20)
    assert len({c for c, _ in styles[:10]}) == 10 and all(h == "" for _, h in styles[:10])   # up to 10: colour alone
    assert all(h for _, h in styles[10:20])                             # 11-20: the colours again, hatched
    colours = [to_rgb(c) for c, _ in styles[:10]]
    assert min(sum((a - b) ** 2 for a, b in zip(x, y)) for i, x in enumerate(colours) for y in colours[i + 1:]) > 0.02
    # the 12-mapping table of results/compare-demo: 2-5-6 (1st) and 1-2-3 (11th) no longer look alike
    assert bar_styles(12)[0] != bar_styles(12)[10]


def test_evolution_band_follows_the_best_so_far_and_marks_the_best_baseline():
    gens = GENERATIONS + [_gen(2, ["1-2-6", "2-4-6", "6-6-6", "1-2-3"], [62.5, 61.0, 62.0, 63.0], 1)]
    plain = evolution_data(gens)
    assert plain.best_so_far == [63.0, 64.0, 64.0] and plain.best == [63.0, 64.0, 63.0]
    assert plain.best_genome == ["1-2-3", "1-2-6", "1-2-6"]
    assert plain.band == [None, None, None] and plain.band_label == "" and plain.baseline is None
    noisy = evolution_data(gens, noise_std=0.88, baselines={"2-4-6": 61.0, "1-2-3": 63.0, "0-0-6": None})
    assert noisy.band == [0.88, 0.88, 0.88] and "0.88" in noisy.band_label
    assert noisy.baseline == 63.0 and noisy.baseline_genome == "1-2-3"
    # a genome with replicates brings its own standard error; the others fall back on noise_std
    mixed = evolution_data(gens, noise_std=0.88, stderr={"1-2-6": 0.3, "1-2-3": None})
    assert mixed.band == [0.88, 0.3, 0.3] and "s.e." in mixed.band_label
    from matplotlib.figure import Figure

    assert isinstance(draw_evolution(noisy), Figure)
    refs = evolution_data(gens, references={"teacher": 70.0, "no distillation": 55.5, "constant": float("nan")})
    assert refs.references == {"teacher": 70.0, "no distillation": 55.5}          # a NaN row is not drawn
    fig = draw_evolution(refs)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "teacher 70.00" in labels and "no distillation 55.50" in labels


def test_a_compare_folder_gets_the_forest_plot_as_its_comparison_figure_and_the_bars_beside_it(tmp_path):
    import json

    from layermap.errors import LayermapError
    from layermap.plots import plot_folder, plot_run

    table = {**_family_table(), "student": {"layers": 3}, "teacher": {"layers": 6}}
    (tmp_path / "comparison.json").write_text(json.dumps(table))
    names = sorted(p.name for p in plot_folder(tmp_path))
    assert names == ["comparison.png", "comparison.svg", "comparison_bars.png", "comparison_bars.svg",
                     "mappings.png", "mappings.svg"]
    assert all((tmp_path / "plots" / n).stat().st_size > 0 for n in names)
    with pytest.raises(LayermapError, match="--noise-std"):
        plot_run(tmp_path, noise_std=-1.0)
