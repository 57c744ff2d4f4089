"""The mapping diagram: the teacher and student layer stacks with one line per (student layer, teacher layer) pair,
one panel per mapping (a search's best and the baselines, or a comparison's mappings); a split genome's panel also
draws where each student layer starts from.  Imports ``plots.style``, ``mapping`` and ``errors``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..errors import LayermapError
from ..mapping import parse_genes
from .style import PAPER_RC, WIDTH, figure

@dataclass(frozen=True)
class DiagramData:
    teacher_layers: int
    student_layers: int
    panels: list[tuple[str, tuple[int, ...]]]     # (title, genes: the teacher layer each student layer imitates)
    starts: list[tuple[int, ...] | None] = field(default_factory=list)   # per panel: a split genome's init part



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


def draw_mapping_diagram(data: DiagramData):
    import matplotlib
    from matplotlib.patches import Rectangle

    n, m = data.teacher_layers, data.student_layers
    with matplotlib.rc_context(PAPER_RC):
        k = len(data.panels)
        fig = figure(min(WIDTH, 1.35 * k + 0.3), 0.24 * (n + 1) + 0.9)
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
