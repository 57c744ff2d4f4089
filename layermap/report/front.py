"""The Pareto front of an nsga2 run, read back from its store: what ``show``, ``plot`` and ``export --front`` give.

:func:`load_front` reads the last finished generation's checkpoint (:mod:`layermap.searching.strategies.nsga2`): the
objectives, the hypervolume's reference point, the noise-aware front of every genome the run evaluated (ties
marked) and every evaluated genome's objective values, with the records of the front members (task scores, for the
headroom recovered where the run has reference rows).  Each member's headroom is read against the reference rows of
*its own* student shape (the undistilled student of that shape; the teacher and constant rows are the run's),
which the search measures for every front shape when it ends (:func:`measure_front_references`); a member whose
shape has none in the store (a run made before them, or one stopped before its end) has no headroom.
:func:`layermap.exporting.front.export_front` writes one JSON per front member.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import LayermapError
from ..shape import StudentShape
from ..storage.records import EvaluationRecord
from ..evaluators.references import References, references_of
from .results import GenerationStats
from ..evaluators.shaped import shape_and_genes
from ..storage.store import RunRow
from ..storage.runs import open_run


@dataclass(frozen=True)
class FrontMember:
    genome: str                      # as the run names it: shaped text, or a mapping of the fixed shape
    shape: StudentShape
    genes: tuple[int, ...]
    values: dict[str, float]         # objective -> value (fitness first)
    costs: dict[str, float]          # params, flops (and the cost objectives)
    se: float | None                 # the fitness standard error used (record's, else search.noise_std; None: unknown)
    tied: bool                       # on the front only within noise of a genome that Pareto-dominates it
    headroom: float | None           # headroom recovered (mean over tasks) against its own shape's reference rows
    record: EvaluationRecord | None
    references: References | None = None   # the reference rows of its shape (None: not measured, or none in the run)


@dataclass(frozen=True)
class RunFront:
    row: RunRow
    objectives: tuple[str, ...]
    reference: tuple[float, ...]
    noise_std: float
    members: list[FrontMember]       # by the second objective ascending (fitness descending when there is none)
    points: dict[str, tuple[tuple[float, ...], float | None]]   # every evaluated genome: values, se
    generations: list[GenerationStats]
    references: References | None    # the run's own, of its [student] shape
    baselines: tuple[str, ...] = ()  # the fixed-shape baselines the run evaluated (uniform mapping per grid depth)

    @property
    def unmeasured(self) -> list[str]:
        """The shapes of front members whose reference rows the run does not have although it has its own."""
        if self.references is None:
            return []
        return list(dict.fromkeys(m.shape.text for m in self.members if m.references is None))

    @property
    def hypervolumes(self) -> list[float | None]:
        return [g.hypervolume for g in self.generations]


def is_nsga2(row: RunRow) -> bool:
    return (row.config or {}).get("search", {}).get("strategy") == "nsga2"


def is_nsga2_run(run_dir: str | Path) -> bool:
    """Whether the run folder holds an nsga2 run."""
    _, store, row = open_run(run_dir)
    store.close()
    return is_nsga2(row)


def load_front(run_dir: str | Path) -> RunFront:
    """The front of the nsga2 run in ``run_dir`` (module docstring)."""
    _, store, row = open_run(run_dir)
    with store:
        if not is_nsga2(row):
            raise LayermapError(f"run folder {run_dir} is not an nsga2 run (search.strategy = "
                                f"{row.config.get('search', {}).get('strategy', 'ga')!r}), so it has no Pareto front; "
                                f"use 'layermap export {run_dir}' for its best mapping")
        gens = store.generations(row.run_id)
        if not gens:
            raise LayermapError(f"run folder {run_dir} has no finished generation yet; let "
                                f"'layermap evolve --resume {run_dir}' finish one")
        records = {r.genome: r.record for r in store.run_evaluations(row.run_id)
                   if r.record is not None and r.record.ok and r.record.seed_set == 0}
        refs = references_of(store, row.description, row.config)
        cp = gens[-1].checkpoint
        fixed = StudentShape.parse(cp["fixed_shape"])
        shapes = {m["genome"]: shape_and_genes(m["genome"], fixed) for m in cp["front"]}
        own = {shape.text: refs if shape == fixed else references_of(store, row.description, row.config, shape.text)
               for shape, _ in shapes.values()} if refs is not None else {}
    objectives, noise = tuple(cp["objectives"]), float(cp.get("noise_std") or 0.0)
    members = []
    for m in cp["front"]:
        shape, genes = shapes[m["genome"]]
        record, rows = records.get(m["genome"]), own.get(shape.text)
        room = rows.headroom(record.task_scores)["mean"] if rows is not None and record is not None else None
        members.append(FrontMember(m["genome"], shape, genes, dict(zip(objectives, m["values"])), dict(m["costs"]),
                                   m["se"] if m["se"] is not None else (noise or None), bool(m["tied"]), room, record,
                                   rows))
    key = (lambda m: (m.values[objectives[1]], -m.values["fitness"])) if len(objectives) > 1 else \
        (lambda m: -m.values["fitness"])
    points = {g: (tuple(v), se) for g, (v, se) in cp["points"].items()}
    return RunFront(row, objectives, tuple(cp["reference"]), noise, sorted(members, key=key), points,
                    [GenerationStats(**g.stats) for g in gens], refs, tuple(cp.get("baselines", ())))


def measure_front_references(evaluator, front_genomes, fixed: StudentShape, store) -> list[str]:
    """Measure (once per shape; cached) the reference rows of the student shape of every genome in ``front_genomes``
    with ``evaluator.shape_references`` (the proxy fitness; an evaluator without it, a synthetic landscape, has none):
    what the search does when it ends, and what fills a run made before per-shape rows.  Returns the shapes."""
    measure = getattr(evaluator, "shape_references", None)
    if measure is None:
        return []
    shapes = list(dict.fromkeys(shape_and_genes(g, fixed)[0] for g in front_genomes))
    for shape in shapes:
        measure(shape, store)
    return [shape.text for shape in shapes]


def measure_run_front_references(run_dir: str | Path, evaluator) -> list[str]:
    """:func:`measure_front_references` for the front of the nsga2 run in ``run_dir`` (its last checkpoint), kept in
    its store: how a run made before per-shape reference rows gets them.  ``evaluator`` must be the run's (the same
    reference fingerprint), else a LayermapError."""
    _, store, row = open_run(run_dir, upgrade=True)
    with store:
        want, have = row.description.get("reference_fingerprint"), getattr(evaluator, "reference_fingerprint", None)
        if not want or want != have:
            raise LayermapError(f"the evaluator's reference rows ({have}) are not those of run {row.run_id} ({want}): "
                                "build it from the run's own settings")
        gens = store.generations(row.run_id)
        if not gens:
            return []
        cp = gens[-1].checkpoint
        return measure_front_references(evaluator, [m["genome"] for m in cp["front"]],
                                        StudentShape.parse(cp["fixed_shape"]), store)
