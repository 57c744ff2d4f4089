"""Writing a distilled student: a folder that ``AutoModel.from_pretrained`` loads, plus provenance."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from .identity import teacher_label
from .loop import DistillStats
from ..mapping import LayerMapping


def save_student(out: str | Path, student, tokenizer, mapping: LayerMapping, stats: DistillStats, *,
                 teacher: str) -> Path:
    """Save weights (safetensors) + config + tokenizer, ``mapping.json`` (the teacher as :func:`teacher_label`
    names it) and ``distill_log.json``;
    the resumable checkpoint is removed once the final model is written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    student.save_pretrained(out)
    tokenizer.save_pretrained(out)
    mapping.to_json(out / "mapping.json", teacher=teacher_label(teacher), created=time.strftime("%Y-%m-%dT%H:%M:%S"))
    log = {"steps": stats.steps, "losses": stats.losses, "final_loss": stats.final_loss, "seconds": stats.seconds,
           "teacher_seconds": stats.teacher_seconds, "segments": stats.segments,
           "segments_per_second": stats.segments_per_second}
    (out / "distill_log.json").write_text(json.dumps(log, indent=1))
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return out
