"""How the proxy scores a student: fine-tuned (``proxy.head = "finetune"``, ``proxy.repeats`` seeds) or probed
(``"probe"``: a linear probe on the frozen student's features) on each proxy task, and the record a genome gets.

A task score is GLUE-style (percent; a task with two metrics scores their mean); the fitness of a replicate is the
mean over the tasks of that seed's scores, and the record's fitness is the mean of the replicates with their
standard error.  Every function adds the wall seconds of each kind of work to the ``timings`` it is given:
``finetune`` and ``eval`` always, and for the probe ``tokenize``, ``extract`` and ``fit`` as well.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import resource

import torch

from ..config import Config
from ..extraction import Genome
from ..stats import mean_and_stderr, sample_var
from ..storage.records import EvaluationRecord, TaskScore, environment
from .proxy_state import ProxyState


def finetune_settings(config: Config):
    """The fine-tuning head's settings from ``[proxy]``."""
    from proxy_tasks import FinetuneSettings

    p = config.proxy
    return FinetuneSettings(epochs=p.epochs, batch_size=p.batch_size, learning_rate=p.learning_rate,
                            max_seq_len=p.seq_len, seed=p.seed, pooling=p.pooling)


def probe_settings(proxy):
    """The probe head's settings from ``[proxy]``."""
    from proxy_tasks.probe import ProbeSettings

    fixed = proxy.probe_c or None
    return ProbeSettings(max_seq_len=proxy.seq_len, pairs=proxy.probe_pairs, c=fixed, alpha=fixed)


def score_student(state: ProxyState, config: Config, student, timings: dict[str, float] | None = None,
                  head: str | None = None, task_data: tuple | None = None, *,
                  progress: bool = False) -> tuple[dict[str, TaskScore], list[float]]:
    """Score a distilled student on the proxy tasks with ``head`` (default ``proxy.head``).

    Returns the task scores and the fitness of each replicate (fine-tuning seed ``proxy.seed + r`` for r <
    ``proxy.repeats``; one replicate for the probe).  ``task_data``: other task subsamples than the state's own (the
    reference rows' seed sets)."""
    head = head or config.proxy.head
    timings = timings if timings is not None else {}
    for key in ("finetune", "eval"):
        timings.setdefault(key, 0.0)
    if head == "probe":
        return probe_scores(state, config, [student], [timings], task_data)[0]

    from proxy_tasks import finetune_and_score

    repeats = config.proxy.repeats if head == config.proxy.head else 1
    base = finetune_settings(config)
    task_data = task_data if task_data is not None else state.tasks
    runs: dict[str, list] = {data.task.name: [] for data in task_data}
    for r in range(repeats):
        settings = dataclasses.replace(base, seed=base.seed + r)
        for data in task_data:
            result = finetune_and_score(student, state.teacher.tokenizer, data, settings, device=state.device,
                                        progress=progress)
            runs[result.task].append(result)
            timings["finetune"] += result.train_seconds
            timings["eval"] += result.eval_seconds
    tasks = {}
    for name, results in runs.items():
        scores = [float(res.score) for res in results]
        score, _ = mean_and_stderr(scores)
        metrics = {k: sum(res.metrics[k] for res in results) / len(results) for k in results[0].metrics}
        std = math.sqrt(sample_var(scores)) if len(scores) > 1 else None
        tasks[name] = TaskScore(metrics=metrics, score=float(score), replicates=scores, std=std)
    fitness_replicates = [sum(runs[name][r].score for name in runs) / len(runs) for r in range(repeats)]
    return tasks, [float(f) for f in fitness_replicates]


def score_students(state: ProxyState, config: Config, students: list,
                   timings: list[dict[str, float]]) -> list[tuple | Exception]:
    """:func:`score_student` with the probe head for K students of one spec: every task's features of all K come
    from one batched pass per batch (:func:`proxy_tasks.probe.probe_and_score_many`), the fits stay per student.
    A task that fails fails every student (the same data would fail each alone)."""
    try:
        return probe_scores(state, config, students, timings)
    except Exception as exc:  # noqa: BLE001
        return [exc for _ in students]


def probe_scores(state: ProxyState, config: Config, students: list, timings: list[dict[str, float]],
                 task_data: tuple | None = None) -> list[tuple[dict[str, TaskScore], list[float]]]:
    """The probe head's (task scores, [fitness]) of each student, adding each kind of work's wall seconds to its
    ``timings``.  ``task_data``: other task subsamples than the state's own (the reference rows' seed sets)."""
    from proxy_tasks.probe import probe_and_score_many

    settings = probe_settings(config.proxy)
    tasks: list[dict[str, TaskScore]] = [{} for _ in students]
    for t in timings:
        for key in ("finetune", "eval"):
            t.setdefault(key, 0.0)
    for data in (task_data if task_data is not None else state.tasks):
        for i, r in enumerate(probe_and_score_many(students, state.teacher.tokenizer, data, settings,
                                                   device=state.device)):
            tasks[i][r.task] = TaskScore(metrics=dict(r.metrics), score=float(r.score), replicates=[float(r.score)])
            t = timings[i]
            t["finetune"] += r.train_seconds
            t["eval"] += r.eval_seconds
            for key, value in (("tokenize", r.tokenize_seconds), ("extract", r.extract_seconds),
                               ("fit", r.fit_seconds)):
                t[key] = t.get(key, 0.0) + value
    return [(t, [sum(s.score for s in t.values()) / len(t)]) for t in tasks]


def make_record(mapping: Genome, tasks: dict[str, TaskScore], fitness_replicates: list[float], distill_loss: float,
                timings: dict[str, float], device: torch.device) -> EvaluationRecord:
    """One genome's record: its fitness is the mean of its replicate fitnesses, with their standard error."""
    fitness, stderr = mean_and_stderr(fitness_replicates)
    return EvaluationRecord(
        genome=mapping.text, fitness=float(fitness), tasks=tasks, distill_loss=distill_loss, timings=timings,
        peak_memory_mb=peak_memory_mb(device), fitness_replicates=fitness_replicates, fitness_stderr=stderr,
        environment=environment(device),
    )


def peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory of this evaluation on a GPU; the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if platform.system() == "Darwin" else rss / 1024
