"""An nsga2 run's front written for others (``layermap export RUN_DIR --front DIR``): one mapping JSON per front
member with its student shape and objectives, and the shape a mapping file names (``distill``/``compare`` read it
back).  Imports a run's front read back (``report.front``), the genomes and ``distill.identity``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from ..distill.identity import teacher_label
from ..errors import LayermapError
from ..mapping import LayerMapping
from ..report.front import FrontMember, RunFront, load_front
from ..shape import StudentShape


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
