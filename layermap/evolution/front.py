"""The Pareto front of an nsga2 run, read back from its store: what ``show``, ``plot`` and ``export --front`` give.

:func:`load_front` reads the last finished generation's checkpoint (:mod:`layermap.searching.strategies.nsga2`): the
objectives, the hypervolume's reference point, the noise-aware front of every genome the run evaluated (ties
marked) and every evaluated genome's objective values, with the records of the front members (task scores, for the
headroom recovered where the run has reference rows).  Each member's headroom is read against the reference rows of
*its own* student shape (the undistilled student of that shape; the teacher and constant rows are the run's),
which the search measures for every front shape when it ends (:func:`measure_front_references`); a member whose
shape has none in the store (a run made before them, or one stopped before its end) has no headroom.  :func:`export_front` writes one JSON per front member in the
format of ``layermap export`` (:meth:`layermap.mapping.LayerMapping.to_dict`: ``distill --mapping FILE`` and
``compare --mappings FILE`` read it as it is) with the student shape in its metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..distill.identity import teacher_label
from ..errors import LayermapError
from ..mapping import LayerMapping
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


def student_flags(shape: StudentShape) -> str:
    """The ``layermap distill`` flags of a student of ``shape``."""
    return f"--student-layers {shape.layers} --hidden-size {shape.hidden_size} --heads {shape.heads} --ffn {shape.ffn}"


def member_json(front: RunFront, member: FrontMember) -> dict:
    """One front member as ``layermap export`` writes a mapping, its shape and objectives in the metadata."""
    row = front.row
    constraint = row.config.get("search", {}).get("constraint", "free")
    mapping = LayerMapping(member.genes, row.teacher_layers, constraint=constraint)
    identity = row.description.get("teacher_identity")
    return mapping.to_dict(
        genome=member.genome, shape={**member.shape.to_dict(), "text": member.shape.text},
        student_flags=student_flags(member.shape),
        teacher=teacher_label(row.description.get("teacher")), **({"teacher_identity": identity} if identity else {}),
        fitness=member.values["fitness"], fitness_stderr=member.se, objectives=member.values, costs=member.costs,
        tied=member.tied, headroom=member.headroom,
        no_distillation=member.references.no_distillation.fitness if member.references is not None else None,
        fingerprint=row.fingerprint, run_id=row.run_id,
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"), source="layermap evolve (nsga2 front)")


def export_front(run_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write ``front-NN-<shape>-<mapping>.json`` for every front member into ``out_dir`` (made if absent)."""
    front = load_front(run_dir)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LayermapError(f"--front {out} is a file; give a folder for the front's JSON files")
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, member in enumerate(front.members, 1):
            path = out / f"front-{i:02d}-{member.shape.text}-{'-'.join(map(str, member.genes))}.json"
            path.write_text(json.dumps(member_json(front, member), indent=2) + "\n", encoding="utf-8")
            paths.append(path)
    except OSError as exc:
        raise LayermapError(f"cannot write the front into {out} ({exc.strerror or exc}); check the folder's "
                            "permissions and free disk space") from None
    return paths


def shape_of_mapping_file(data: dict) -> StudentShape | None:
    """The student shape a mapping JSON names (an exported front member), else None."""
    shape = (data.get("metadata") or {}).get("shape") if isinstance(data, dict) else None
    if not isinstance(shape, dict):
        return None
    return StudentShape(int(shape["layers"]), int(shape["hidden_size"]), int(shape["heads"]), int(shape["ffn"]))
