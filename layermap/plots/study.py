"""The figures of the trust studies: a replay's anytime regret (``layermap bench replay --plot``,
:mod:`layermap.study.replay`) and the proxy's fidelity scatter (``layermap bench fidelity --plot``,
:mod:`layermap.study.fidelity`); each draws the JSON its study wrote.  Imports ``plots.style`` only (a study imports
this module, never the other way).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Mapping

from .style import PAPER_RC, WIDTH, figure


def draw_regret(result_json: dict, title: str | None = None):
    """Median anytime regret per method with its interquartile band; returns a matplotlib Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.rc_context(PAPER_RC):
        fig, ax = plt.subplots(figsize=(4.5, 2.8))
        for method, entry in result_json["methods"].items():
            med = entry["regret"]["median"]
            t = list(range(1, len(med) + 1))
            nan = float("nan")
            ax.plot(t, [nan if v is None else v for v in med], label=method, lw=1.2)
            ax.fill_between(t, [nan if v is None else v for v in entry["regret"]["q1"]],
                            [nan if v is None else v for v in entry["regret"]["q3"]], alpha=0.15)
        table = result_json["table"]
        ax.set_xlabel("distinct genomes evaluated")
        ax.set_ylabel("regret (fitness points below the optimum)")
        ax.set_title(title or f"{table['genomes']} genomes, {len(table['seed_sets'])} seed set(s), "
                              f"{result_json['seeds']} replays: median and IQR")
        ax.legend(frameon=False)
        fig.tight_layout()
    return fig


def draw_fidelity(results: Mapping[str, Mapping], *, title: str | None = None):
    """Scatter of final score against proxy fitness, one panel per proxy source (error bars: replicate std)."""
    import matplotlib

    font = PAPER_RC["font.size"]
    with matplotlib.rc_context(PAPER_RC):
        fig = figure(WIDTH, 2.6)
        axes = fig.subplots(1, len(results), squeeze=False)[0]
        for ax, (source, r) in zip(axes, results.items()):
            for m in r["mappings"]:
                xerr = statistics.stdev(m["proxy_replicates"]) if len(m["proxy_replicates"]) > 1 else None
                yerr = statistics.stdev(m["final_replicates"]) if len(m["final_replicates"]) > 1 else None
                ax.errorbar(m["proxy"], m["final"], xerr=xerr, yerr=yerr, fmt="o", ms=3, lw=0.6, color="0.2", capsize=1.5)
                ax.annotate(m["mapping"], (m["proxy"], m["final"]), xytext=(2, 2), textcoords="offset points",
                            fontsize=font - 2)
            ax.set_xlabel(f"proxy fitness ({Path(str(source)).name})")
            ax.set_ylabel("final GLUE average")
            ax.set_title(f"τ = {r['kendall_tau']:+.2f} (p = {r['tau_p_value']:.2f}), n = {r['n']}", fontsize=font)
        if title:
            fig.suptitle(title, fontsize=font)
        return fig
