"""The paper style every figure shares: the rc (8 pt text), the width (6.5 in), the bar colours and hatches, the
reference rows' line styles, a figure and how it is saved (PNG at 300 dpi and SVG).  Imports nothing of layermap."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

PAPER_RC = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
            "ytick.labelsize": 7, "svg.fonttype": "none", "axes.spines.top": False, "axes.spines.right": False}
WIDTH = 6.5          # inches: a full text width


BAR_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf")                      # matplotlib's tab10, in its order
BAR_HATCHES = ("", "////", "....", "xxxx", "\\\\\\\\", "oo")  # one per round of the ten colours


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


def bar_styles(n: int) -> list[tuple[str, str]]:
    """(colour, hatch) for ``n`` mappings: the ten tab10 colours, then again with a hatch per round, so no
    two of the first 60 mappings share both."""
    return [(BAR_COLOURS[i % len(BAR_COLOURS)], BAR_HATCHES[(i // len(BAR_COLOURS)) % len(BAR_HATCHES)])
            for i in range(n)]


def figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def nan_list(values: Sequence[float | None]) -> list[float]:
    return [np.nan if v is None else v for v in values]


def save_figure(fig, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    fig.savefig(paths[0], dpi=300)
    fig.savefig(paths[1])
    return paths
