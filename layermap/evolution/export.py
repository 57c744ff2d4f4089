"""What ``layermap export`` writes: the best mapping with its provenance, or TextBrewer ``intermediate_matches``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import LayermapError
from ..mapping import LayerMapping
from .records import EvaluationRecord
from .results import SearchResult, load_result
from .store import RunRow, open_run

FORMATS = ("json", "textbrewer")
DEFAULT_NAMES = {"json": "best_mapping.json", "textbrewer": "intermediate_matches.json"}


@dataclass(frozen=True)
class Rendered:
    """An export before it is written: the file's text and, for TextBrewer, the provenance beside it."""

    mapping: LayerMapping
    fitness: float
    text: str
    provenance: dict | None
    replicates: int = 1        # seed sets the fitness averages


@dataclass(frozen=True)
class Exported:
    """What :func:`export_run` wrote."""

    mapping: LayerMapping
    fitness: float
    path: Path
    provenance_path: Path | None
    replicates: int = 1        # seed sets the fitness averages


def render_export(run_dir: str | Path, format: str = "json") -> Rendered:
    """The best mapping of a run as ``format`` (``json``: the mapping with its provenance; ``textbrewer``:
    exactly ``DistillationConfig``'s keys, so that ``DistillationConfig.from_json_file`` loads it, with the
    provenance kept apart)."""
    if format not in FORMATS:
        raise LayermapError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}")
    _, store, row = open_run(run_dir)
    with store:
        result = load_result(store, row, run_dir)
    if result.best_record is None:
        raise LayermapError(f"run folder {run_dir} has no successful evaluation yet ({result.failed} failed); let "
                            f"'layermap evolve --resume {run_dir}' finish some, or see 'layermap show {run_dir}'")
    mapping = result.best_mapping
    metadata = provenance(row, result)
    if format == "json":
        return Rendered(mapping, result.best_record.fitness, json.dumps(mapping.to_dict(**metadata), indent=2) + "\n", None,
                        result.best_record.seed_sets)
    # the general stage has no prediction-layer loss (kd_loss_weight 0)
    payload = {"intermediate_matches": textbrewer_matches(mapping, *widths(row)), "kd_loss_weight": 0,
               "hard_label_weight": 0}
    beside = {"mapping": mapping.text, **metadata, "layer_numbering": TEXTBREWER_NUMBERING}
    return Rendered(mapping, result.best_record.fitness, json.dumps(payload, indent=2) + "\n", beside,
                    result.best_record.seed_sets)


def export_run(run_dir: str | Path, path: str | Path | None = None, format: str = "json") -> Exported:
    """Write the best mapping of the run in ``run_dir`` to ``path`` (default: ``best_mapping.json`` or
    ``intermediate_matches.json`` in the run folder); TextBrewer's provenance goes to
    ``<name>.provenance.json`` beside it."""
    rendered = render_export(run_dir, format)
    default = DEFAULT_NAMES[format]
    path = Path(path) if path else Path(run_dir) / default
    if path.is_dir():
        raise LayermapError(f"-o {path} is a folder; give a file name, e.g. -o {path / default}")
    if not path.parent.is_dir():
        raise LayermapError(f"-o {path}: the folder {path.parent} does not exist; create it first or write elsewhere")
    try:
        path.write_text(rendered.text, encoding="utf-8")
        sibling = None
        if rendered.provenance is not None:
            sibling = path.with_name(f"{path.stem}.provenance.json")
            sibling.write_text(json.dumps(rendered.provenance, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise LayermapError(f"cannot write {path} ({exc.strerror or exc}); check the folder's permissions and free "
                            "disk space") from None
    return Exported(rendered.mapping, rendered.fitness, path, sibling, rendered.replicates)


TEXTBREWER_NUMBERING = ("hidden 0 = embeddings, k = layer k; attention k = layer k (as in TextBrewer's "
                        "examples/matches.py); an adaptor returning outputs.attentions as-is is 0-based, so subtract 1 "
                        "from attention layer_T/layer_S there. TextBrewer builds one projection per hidden match; "
                        "layermap shares one projection across all layers.")


def textbrewer_matches(mapping: LayerMapping, student_width: int, teacher_width: int) -> list[dict]:
    """TextBrewer ``intermediate_matches`` for a mapping: a hidden-state MSE per (student m, teacher k) pair,
    embeddings (0, 0) included, through a linear projection when the widths differ, and an attention MSE
    per non-embedding pair."""
    matches = []
    for m, k in mapping.pairs():
        hidden = {"layer_T": k, "layer_S": m, "feature": "hidden", "loss": "hidden_mse", "weight": 1}
        if student_width != teacher_width:
            hidden["proj"] = ["linear", student_width, teacher_width]
        matches.append(hidden)
        if m > 0:
            matches.append({"layer_T": k, "layer_S": m, "feature": "attention", "loss": "attention_mse", "weight": 1})
    return matches


def record_entry(record: EvaluationRecord) -> dict:
    """A record as ``show --json`` and ``export`` give it; ``replicates`` = the seed sets its fitness averages (the
    mean of ``fitness_seed_sets``, seed set -> fitness); ``fitness_replicates`` = fine-tuning seeds inside one."""
    return {"mapping": record.genome, "fitness": record.fitness, "fitness_stderr": record.fitness_stderr,
            "replicates": record.seed_sets,
            "fitness_seed_sets": {str(k): v for k, v in sorted(record.seed_set_fitness.items())} or {str(record.seed_set): record.fitness},
            "fitness_replicates": record.fitness_replicates,
            "tasks": {name: {"score": t.score, "metrics": t.metrics, "replicates": t.replicates, "std": t.std}
                      for name, t in record.tasks.items()}}


def provenance(row: RunRow, result: SearchResult) -> dict:
    record = result.best_record
    return {
        "teacher": row.description.get("teacher"), "student": row.description.get("student"),
        "fitness": record.fitness, "fitness_stderr": record.fitness_stderr, "replicates": record.seed_sets,
        "tasks": record_entry(record)["tasks"], "fingerprint": row.fingerprint,
        "run_id": row.run_id, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": "layermap evolve",
    }


def widths(row: RunRow) -> tuple[int, int]:
    """(student, teacher) hidden sizes from the evaluator's description, else from the config."""
    d = row.description
    teacher = int(d.get("teacher_hidden_size") or 0)
    student = d.get("student") if isinstance(d.get("student"), dict) else {}
    width = int(student.get("hidden_size") or d.get("student_hidden_size") or row.config.get("student", {}).get("hidden_size") or 0)
    if teacher and not width:
        width = teacher                   # student.hidden_size = 0 means the teacher's width
    if not teacher and width:
        raise LayermapError(f"run {row.run_id} does not record the teacher's hidden size, so the projection of a "
                            f"{width}-wide student cannot be written; export --format json instead")
    return width, teacher or width
