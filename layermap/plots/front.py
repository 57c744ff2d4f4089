"""The figure of an nsga2 run: its Pareto front and hypervolume curve (``layermap plot RUN_DIR``).

:func:`front_data` reads a :class:`layermap.report.front.RunFront` into plain lists (tested); :func:`draw_front`
draws two panels: fitness against the second objective (latency, params or FLOPs; params when fitness is the only
objective) with every evaluated genome in grey, the front as a step line with ± 1 standard error bars (ties hollow), the
fixed-shape baselines (the uniform mapping at each grid depth of the ``[student]`` width) as crosses, the
teacher's and the ``[student]`` shape's undistilled student's reference rows where the run has them, and under each
front member the undistilled student of its own shape (the floor its headroom is read against); and the
hypervolume per generation against the stated reference point.

Imports ``plots.style`` and a run's front read back (``report.front``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .style import PAPER_RC, WIDTH, figure, save_figure

UNITS = {"latency": ("latency (ms)", 1.0), "latency_int8": ("int8 ONNX latency (ms)", 1.0), "params": ("parameters (M)", 1e6), "flops": ("FLOPs per forward (G)", 1e9)}


@dataclass(frozen=True)
class FrontData:
    axis: str                                   # the x objective (or cost) drawn against fitness
    xlabel: str
    x: list[float]                              # front members, by x ascending
    fitness: list[float]
    se: list[float | None]
    tied: list[bool]
    labels: list[str]                           # shape:mapping of each member
    others_x: list[float]                       # every evaluated genome not on the front
    others_fitness: list[float]
    generations: list[int] = field(default_factory=list)
    hypervolume: list[float | None] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)
    teacher: float | None = None                # the teacher's reference-row fitness, where recorded
    baselines_x: list[float] = field(default_factory=list)       # the fixed-shape baselines (uniform mapping per depth)
    baselines_fitness: list[float] = field(default_factory=list)
    no_distillation: float | None = None        # the [student] shape's undistilled student (reference row)
    own_floor: list[float | None] = field(default_factory=list)  # each member's own shape's undistilled student
    floor_name: str = "no distillation"         # that row's name (student.init = "teacher": the truncation)


def front_data(front) -> FrontData:
    """The figure's data of a run's front (module docstring)."""
    axis = front.objectives[1] if len(front.objectives) > 1 else "params"
    xlabel, scale = UNITS[axis]
    members = sorted(front.members, key=lambda m: (m.costs[axis], -m.values["fitness"]))
    on_front = {m.genome for m in members}
    index = front.objectives.index(axis) if axis in front.objectives else None
    others = [(values[index] / scale, values[0]) for genome, (values, _) in front.points.items()
              if genome not in on_front and index is not None]
    teacher = front.references.teacher.fitness if front.references is not None else None
    base = [front.points[g][0] for g in front.baselines if g in front.points and index is not None]
    return FrontData(axis, xlabel, [m.costs[axis] / scale for m in members], [m.values["fitness"] for m in members],
                     [m.se for m in members], [m.tied for m in members], [m.genome for m in members],
                     [x for x, _ in others], [f for _, f in others], [g.generation for g in front.generations],
                     list(front.hypervolumes), list(front.reference), teacher,
                     [v[index] / scale for v in base], [v[0] for v in base],
                     front.references.no_distillation.fitness if front.references is not None else None,
                     [m.references.no_distillation.fitness if m.references is not None else None for m in members],
                     front.references.no_distillation.name if front.references is not None else "no distillation")


def draw_front(data: FrontData):
    import matplotlib

    with matplotlib.rc_context(PAPER_RC):
        fig = figure(WIDTH, 3.0)
        ax, hv = fig.subplots(1, 2, width_ratios=(2, 1))
        ax.scatter(data.others_x, data.others_fitness, s=8, color="0.7", label="evaluated", zorder=1)
        ax.step(data.x, data.fitness, where="post", color="C0", lw=1.0, zorder=2)
        errors = [e or 0.0 for e in data.se]
        for filled in (True, False):
            pick = [i for i, t in enumerate(data.tied) if t != filled]
            if pick:
                ax.errorbar([data.x[i] for i in pick], [data.fitness[i] for i in pick], yerr=[errors[i] for i in pick],
                            fmt="o", ms=4, color="C0", mfc="C0" if filled else "white", capsize=2, lw=0.8, zorder=3,
                            label="Pareto front (± 1 se)" if filled else "tied (within noise)")
        if data.baselines_x:
            ax.scatter(data.baselines_x, data.baselines_fitness, marker="x", s=22, color="C3", zorder=4,
                       label="fixed-shape baselines (uniform mapping)")
        if data.teacher is not None:
            ax.axhline(data.teacher, color="0.0", lw=0.9, ls=":", label=f"teacher {data.teacher:.2f}")
        if data.no_distillation is not None:
            ax.axhline(data.no_distillation, color="0.4", lw=0.9, ls="--",
                       label=f"{data.floor_name} ([student] shape) {data.no_distillation:.2f}")
        own = [i for i, v in enumerate(data.own_floor) if v is not None]
        if own:
            ax.scatter([data.x[i] for i in own], [data.own_floor[i] for i in own], marker="_", s=80, color="0.3",
                       zorder=3, label=f"{data.floor_name} (each member's own shape)")
        ax.set_xlabel(data.xlabel)
        ax.set_ylabel("fitness (proxy, %)")
        ax.legend(frameon=False, fontsize=6, loc="best")
        ax.set_title("Pareto front")
        gens = [g for g, v in zip(data.generations, data.hypervolume) if v is not None]
        hv.plot(gens, [v for v in data.hypervolume if v is not None], "o-", color="C2", ms=3, lw=1.2)
        hv.set_xlabel("generation")
        hv.set_ylabel("hypervolume")
        hv.set_title("reference point: fitness " + ", ".join(f"{v:.3g}" for v in data.reference[:1]) +
                     "".join(f", {data.axis if i == 1 else 'cost'} {v:.3g}" for i, v in enumerate(data.reference[1:], 1)),
                     fontsize=6)
    return fig


def plot_front(run_dir: str | Path, out: str | Path | None = None) -> list[Path]:
    """``RUN_DIR/plots/front.png`` and ``.svg`` of an nsga2 run."""
    from ..report.front import load_front

    out = Path(out) if out else Path(run_dir) / "plots"
    return save_figure(draw_front(front_data(load_front(run_dir))), out, "front")
