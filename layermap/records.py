"""Typed data passed between stages: evaluation records and the evaluator protocol."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Protocol, Sequence

COMPLETE = "complete"
FAILED = "failed"
RUNNING = "running"


@dataclass(frozen=True)
class TaskScore:
    """One proxy task's result: GLUE metrics in percent and their mean (the task score)."""

    metrics: dict[str, float]
    score: float


@dataclass(frozen=True)
class EvaluationRecord:
    """The outcome of one fitness evaluation of one genome.

    ``fitness`` is the mean of the task scores (percent) for a complete evaluation, ``None``
    for a failed one (the search gives a failed genome the worst fitness).
    ``timings`` holds wall seconds per stage: ``distill``, ``finetune``, ``eval``, ``total``.
    """

    genome: str
    status: str = COMPLETE
    fitness: float | None = None
    tasks: dict[str, TaskScore] = field(default_factory=dict)
    distill_loss: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    peak_memory_mb: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == COMPLETE and self.fitness is not None and math.isfinite(self.fitness)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "EvaluationRecord":
        d = dict(d)
        d["tasks"] = {k: TaskScore(**v) if isinstance(v, dict) else v for k, v in (d.get("tasks") or {}).items()}
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "EvaluationRecord":
        return cls.from_dict(json.loads(text))

    @classmethod
    def failure(cls, genome: str, error: str, timings: dict[str, float] | None = None) -> "EvaluationRecord":
        return cls(genome=genome, status=FAILED, fitness=None, error=error, timings=dict(timings or {}))


class Evaluator(Protocol):
    """What the search needs from a fitness function.

    An evaluator must be picklable (it travels to process-pool and Ray workers) and cheap to
    pickle: heavy state (teacher, data) is loaded lazily on the first ``evaluate`` in each
    process.  ``fingerprint`` identifies everything that changes a fitness value and is
    computed in the driver.
    """

    @property
    def fingerprint(self) -> str: ...

    def evaluate(self, genes: Sequence[int]) -> EvaluationRecord: ...
