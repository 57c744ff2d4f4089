"""Typed data passed between stages: evaluation records (the evaluator and worker protocols: :mod:`.worker`)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

COMPLETE = "complete"
FAILED = "failed"
RUNNING = "running"


@dataclass(frozen=True)
class TaskScore:
    """One proxy task's result: GLUE metrics in percent and their mean (the task score).

    With ``proxy.repeats = R > 1`` the task is fine-tuned with R seeds: ``replicates`` holds the R
    task scores (in seed order), ``metrics`` and ``score`` are their means and ``std`` their sample
    standard deviation.  A single run (R = 1, the probe head, records written before repeats
    existed) has ``replicates`` of length 0 or 1 and ``std`` ``None``.
    """

    metrics: dict[str, float]
    score: float
    replicates: list[float] = field(default_factory=list)
    std: float | None = None


@dataclass(frozen=True)
class EvaluationRecord:
    """The outcome of one fitness evaluation of one genome.

    ``fitness`` is the mean of the task scores (percent) for a complete evaluation, ``None``
    for a failed one (the search gives a failed genome the worst fitness).
    ``timings`` holds wall seconds per stage: ``distill``, ``finetune``, ``eval``, ``total`` (and,
    for the cost benchmark, finer parts such as ``distill_teacher``).
    ``fitness_replicates`` holds the fitness of each fine-tuning seed (mean over the tasks of that
    seed's scores) and ``fitness_stderr`` the standard error of their mean, ``fitness``; both are
    empty / ``None`` for a single replicate.  The standard error covers fine-tuning seeds only: the
    distillation seed is fixed inside a fitness (measure its effect with ``benchmarks/bench_noise.py``).
    ``environment`` says where the record was computed (:func:`environment`): device, GPU name, torch
    threads, library versions.  It is recorded, not part of the fingerprint (docs/engine.md, "run.population, distill.precision and the device class").
    ``seed_set`` is the seed set the record was computed under, relative to the run's seeds (seed set r:
    ``distill.seed + r`` and ``proxy.seed + r``; 0 for every record before replicates existed).  A record that
    combines a genome's replicates (:func:`layermap.evaluators.replicates.combine`) has ``fitness`` = their mean,
    ``fitness_stderr`` = its standard error and ``seed_set_fitness`` = each seed set's fitness (seed set -> fitness).
    """

    genome: str
    status: str = COMPLETE
    fitness: float | None = None
    tasks: dict[str, TaskScore] = field(default_factory=dict)
    distill_loss: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    peak_memory_mb: float | None = None
    error: str | None = None
    fitness_replicates: list[float] = field(default_factory=list)
    fitness_stderr: float | None = None
    environment: dict[str, str | int] = field(default_factory=dict)   # where it was computed (see environment())
    seed_set: int = 0                                                  # seed set r: distill.seed + r, proxy.seed + r
    seed_set_fitness: dict[int, float] = field(default_factory=dict)  # a combined record: seed set -> fitness

    @property
    def ok(self) -> bool:
        return self.status == COMPLETE and self.fitness is not None and math.isfinite(self.fitness)

    @property
    def task_scores(self) -> dict[str, float]:
        """Task name -> its score (what a headroom is computed from)."""
        return {name: task.score for name, task in self.tasks.items()}

    def to_dict(self) -> dict:
        """All fields, except ``seed_set`` 0 and an empty ``seed_set_fitness``: a plain record's JSON stays what it was
        before replicates existed, so older layermap versions still read the stores this one writes."""
        d = asdict(self)
        if not d["seed_set"]:
            del d["seed_set"]
        if not d["seed_set_fitness"]:
            del d["seed_set_fitness"]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "EvaluationRecord":
        d = dict(d)
        d["tasks"] = {k: TaskScore(**v) if isinstance(v, dict) else v for k, v in (d.get("tasks") or {}).items()}
        if d.get("seed_set_fitness"):
            d["seed_set_fitness"] = {int(k): float(v) for k, v in d["seed_set_fitness"].items()}
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "EvaluationRecord":
        return cls.from_dict(json.loads(text))

    @property
    def replicates(self) -> int:
        """How many fine-tuning seeds the fitness averages (1 for an old or single-seed record)."""
        return max(1, len(self.fitness_replicates))

    @property
    def seed_sets(self) -> int:
        """How many seed sets (replicates of the whole evaluation) the fitness averages: 1 for a single evaluation."""
        return max(1, len(self.seed_set_fitness))

    @classmethod
    def failure(cls, genome: str, error: str, timings: dict[str, float] | None = None) -> "EvaluationRecord":
        return cls(genome=genome, status=FAILED, fitness=None, error=error, timings=dict(timings or {}))


def json_safe(value):
    """``value`` with every non-finite float (NaN, ±inf) replaced by ``None``, through dicts, lists and tuples, so
    that ``json.dumps`` writes strict JSON every reader can parse."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def environment(device) -> dict[str, str | int]:
    """Where a result is computed: device type and GPU name, torch threads, Python and library versions."""
    import platform

    import torch

    from ..versions import installed_versions

    env: dict[str, str | int] = {"device": str(getattr(device, "type", device)), "threads": torch.get_num_threads(),
                                 "python": platform.python_version(), "host": platform.node()}
    if env["device"] == "cuda" and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(device)
    env.update(installed_versions())
    return env
