"""A run's best mapping as JSON with its provenance (``layermap export``, the default format), and a record as
``show --json`` and ``export`` give it.  Imports ``storage``, ``extraction``, ``distill.identity`` and a run read
back (``report.results``).
"""

from __future__ import annotations

from datetime import datetime, timezone

from ..distill.identity import teacher_label
from ..extraction import gene_sentence
from ..storage.records import EvaluationRecord
from ..report.results import SearchResult
from ..storage.store import RunRow

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
    """Where the best mapping came from; with teacher initialisation also what its genes mean (``gene_meaning``, the
    sentence :func:`layermap.extraction.gene_sentence` builds)."""
    record = result.best_record
    identity = row.description.get("teacher_identity")            # runs before the label recorded none
    meaning = gene_sentence(result.best_mapping, "teacher") if result.init == "teacher" else None
    return {
        "teacher": teacher_label(row.description.get("teacher")), **({"teacher_identity": identity} if identity else {}),
        "student": row.description.get("student"), **({"gene_meaning": meaning} if meaning else {}),
        "fitness": record.fitness, "fitness_stderr": record.fitness_stderr, "replicates": record.seed_sets,
        "tasks": record_entry(record)["tasks"], "fingerprint": row.fingerprint,
        "run_id": row.run_id, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": "layermap evolve",
        **({"references": result.references.to_json(),
            "headroom": result.references.headroom(record.task_scores)}
           if result.references is not None else {}),
    }
