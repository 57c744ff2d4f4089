"""Figures (``layermap plot``): pure data extraction (tested) + matplotlib drawing, one module per figure family.

Each figure has an ``*_data`` function that reads plain records into a small typed value and a ``draw_*`` function
that takes that value and returns a :class:`matplotlib.figure.Figure` sized for a paper (6.5 in wide, 8 pt text):
``style`` (the paper rc, colours, a figure and how it is saved), ``search`` (a run's evolution curve and gene
heatmap), ``mappings`` (the mapping diagram), ``compare`` (a comparison's forest plot and bars), ``front`` (an nsga2
run's Pareto front and hypervolume), ``study`` (a replay's regret, the proxy's fidelity) and ``folder``
(:func:`plot_folder`: every figure of a run or compare folder, PNG at 300 dpi and SVG).

The package re-exports the names ``layermap.plots`` always had (``from layermap.plots import plot_folder``), like
``config``; its modules import ``style`` and the layers below (a run read back, ``final.comparison``), never
``study`` or the CLI.
"""

from .compare import (ComparisonData, ForestData, comparison_data, draw_comparison, draw_forest, forest_data,
                      plot_compare)
from .folder import plot_folder
from .mappings import DiagramData, diagram_data, draw_mapping_diagram
from .search import EvolutionData, draw_evolution, draw_gene_heatmap, evolution_data, gene_frequency_data, plot_run
from .style import BAR_COLOURS, BAR_HATCHES, PAPER_RC, WIDTH, bar_styles, reference_styles, save_figure

__all__ = ["BAR_COLOURS", "BAR_HATCHES", "PAPER_RC", "WIDTH", "ComparisonData", "DiagramData", "EvolutionData",
           "ForestData", "bar_styles", "comparison_data", "diagram_data", "draw_comparison", "draw_evolution",
           "draw_forest", "draw_gene_heatmap", "draw_mapping_diagram", "evolution_data", "forest_data",
           "gene_frequency_data", "plot_compare", "plot_folder", "plot_run", "reference_styles", "save_figure"]
