"""Records made safe from any outcome: what an executor hands back is always a valid record, failures included.

* :func:`evaluate_safely` / :func:`evaluate_chunk_safely`: an evaluator's ``evaluate`` / ``evaluate_many`` with every
  exception and non-finite fitness turned into a failed record carrying the error text (``Type: message (at
  file.py:123 in function)``, :func:`describe_exception`), stamped with the environment of the process that computed
  it; after a CUDA out-of-memory error the cached blocks are given back so the next genome can run;
* :class:`GenomeJobs`: the worker members of something whose jobs are genomes (``chunk_size``, ``run_jobs``,
  ``failure``), which the proxy evaluator has and :class:`GenomeWorker` gives any bare evaluator
  (:func:`as_worker`);
* :func:`on_fingerprint_device`: a record computed on another device class than the driver's fingerprint names
  becomes a failed record, never cached under the wrong fingerprint (a search's record and a compare cell alike).

May import ``storage``, ``config``, ``mapping``, ``errors`` and ``executors.protocol``.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ..config import RunSettings
from ..mapping import format_genes
from ..storage.records import COMPLETE, FAILED, EvaluationRecord, environment
from .protocol import Evaluator, Worker, missing_members, require_evaluator


def evaluate_safely(evaluator: Evaluator, genes: Sequence[int]) -> EvaluationRecord:
    """``evaluator.evaluate(genes)``, with every exception and non-finite fitness turned into a failed record,
    stamped with this process's environment (:func:`_stamped`)."""
    return _stamped(evaluator, _evaluate_safely(evaluator, genes))


def genome_job(genes: Sequence[int] | str) -> tuple[tuple[int, ...] | str, str]:
    """A job's genome as the evaluator takes it and its text: genes as ints, or a shaped or split genome's text as it is
    (``L4-H256-A4-F1024:3-6-9-12``, :mod:`layermap.evaluators.shaped`; ``1-2-3+2-4-6``,
    :mod:`layermap.extraction`)."""
    if isinstance(genes, str):
        return genes, genes
    genes = tuple(int(g) for g in genes)
    return genes, format_genes(genes)


def _evaluate_safely(evaluator: Evaluator, genes: Sequence[int]) -> EvaluationRecord:
    genes, text = genome_job(genes)
    start = time.perf_counter()
    try:
        record = evaluator.evaluate(genes)
    except Exception as exc:  # noqa: BLE001 - a failed genome must never crash the run
        _release_gpu_memory(exc)
        return EvaluationRecord.failure(text, describe_exception(exc), {"total": time.perf_counter() - start})
    return _checked(text, record, time.perf_counter() - start)


def evaluate_chunk_safely(evaluator: Evaluator, chunk: Sequence[Sequence[int]]) -> list[EvaluationRecord]:
    """One record per genome of ``chunk``: ``evaluator.evaluate_many(chunk)`` when the chunk holds more than one
    genome, else :func:`evaluate_safely` of it.  An exception of the whole chunk (e.g. CUDA out
    of memory) fails every genome of it; an exception the evaluator returns in a genome's place fails that genome."""
    return [_stamped(evaluator, r) for r in _evaluate_chunk_safely(evaluator, chunk)]


def _evaluate_chunk_safely(evaluator: Evaluator, chunk: Sequence[Sequence[int]]) -> list[EvaluationRecord]:
    chunk = [genome_job(genes)[0] for genes in chunk]
    if len(chunk) == 1:
        return [evaluate_safely(evaluator, chunk[0])]
    start = time.perf_counter()
    try:
        outcomes = list(evaluator.evaluate_many(chunk))
    except Exception as exc:  # noqa: BLE001 - a failed chunk must never crash the run
        _release_gpu_memory(exc)
        share = (time.perf_counter() - start) / len(chunk)
        return [EvaluationRecord.failure(genome_job(g)[1], describe_exception(exc), {"total": share}) for g in chunk]
    share = (time.perf_counter() - start) / len(chunk)
    if len(outcomes) != len(chunk):
        return [EvaluationRecord.failure(genome_job(g)[1], f"TypeError: evaluate_many returned {len(outcomes)} records "
                                         f"for {len(chunk)} genomes", {"total": share}) for g in chunk]
    records = []
    for genes, outcome in zip(chunk, outcomes):
        text = genome_job(genes)[1]
        if isinstance(outcome, BaseException):
            records.append(EvaluationRecord.failure(text, describe_exception(outcome), {"total": share}))
        else:
            records.append(_checked(text, outcome, outcome.timings.get("total", share)
                                    if isinstance(outcome, EvaluationRecord) else share))
    return records


def _checked(text: str, record: Any, wall: float) -> EvaluationRecord:
    """An evaluator's return value as a valid record: its genome text and wall time set, a non-finite fitness or a
    failure without a message turned into a failed record."""
    if not isinstance(record, EvaluationRecord):
        return EvaluationRecord.failure(text, f"TypeError: evaluator returned {type(record).__name__}, not an EvaluationRecord",
                                        {"total": wall})
    timings = {"total": wall, **record.timings}
    record = dataclasses.replace(record, genome=text, timings=timings)
    if record.status == COMPLETE and not record.ok:
        return dataclasses.replace(record, status="failed", fitness=None,
                                   error=f"ValueError: non-finite fitness {record.fitness!r} for genome {text}")
    if not record.ok and not record.error:
        return dataclasses.replace(record, status="failed", fitness=None, error="evaluator reported a failure without a message")
    return record


class GenomeJobs:
    """The worker members of an evaluator whose jobs are genomes (genes, or a shaped or split genome's text): a chunk
    of ``run.population`` genomes, evaluated by :func:`evaluate_chunk_safely`, a dead process's genome failed by
    :func:`genome_failure`.  The proxy evaluator has them (so it is a :class:`~layermap.executors.protocol.Worker`
    itself); :class:`GenomeWorker` gives them to any bare evaluator."""

    def chunk_size(self, population: int) -> int:
        return max(1, int(population))

    def run_jobs(self, jobs: Sequence) -> list[EvaluationRecord]:
        return evaluate_chunk_safely(self, jobs)

    def failure(self, job: Any, error: str) -> EvaluationRecord:
        return genome_failure(job, error)


def genome_failure(job: Any, error: str) -> EvaluationRecord:
    """The failed record of a genome job whose process died: its genome text and the error."""
    return EvaluationRecord.failure(genome_job(job)[1], error)


class GenomeWorker(GenomeJobs):
    """The worker of a bare evaluator: its jobs are genomes (genes, or a shaped genome's text), each chunk evaluated by
    :func:`evaluate_chunk_safely`; fingerprint, device class, preparation and device are the evaluator's."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = require_evaluator(evaluator)

    @property
    def fingerprint(self) -> str:
        return self.evaluator.fingerprint

    @property
    def device_class(self) -> str | None:
        return self.evaluator.device_class

    def prepare(self) -> None:
        self.evaluator.prepare()

    def set_device(self, device: str) -> None:
        self.evaluator.set_device(device)

    def run_jobs(self, jobs: Sequence) -> list[EvaluationRecord]:
        return evaluate_chunk_safely(self.evaluator, jobs)


def as_worker(runnable: Worker | Evaluator) -> Worker:
    """What an executor runs: a :class:`~layermap.executors.protocol.Worker` as it is, an
    :class:`~layermap.executors.protocol.Evaluator` in a :class:`GenomeWorker`; anything else is a TypeError naming the
    members it lacks."""
    if isinstance(runnable, Worker):
        return runnable
    if isinstance(runnable, Evaluator):
        return GenomeWorker(runnable)
    raise TypeError(f"{type(runnable).__name__} is neither a worker nor an evaluator: it lacks "
                    f"{', '.join(missing_members(runnable, Worker))} of a worker (layermap.executors.protocol)")


def chunk_size(worker: Worker, settings: RunSettings | None) -> int:
    """Jobs per chunk: the worker's own size for ``run.population`` (1 without settings)."""
    return 1 if settings is None else max(1, int(worker.chunk_size(settings.population)))


def describe_exception(exc: BaseException) -> str:
    """``Type: message (at file.py:123 in function)`` - the type, message and last traceback line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}{where}"


def on_fingerprint_device(worker: Worker | Evaluator, record: Any) -> Any:
    """``record``, or a failed record when the process that computed it stamped another device class than the one
    the driver's fingerprint names (``worker.device_class``; None: a worker on no device, nothing to check): a result
    of one class must never be cached under the other's fingerprint.  A search's record and a compare cell (a dict with
    ``status`` and ``environment``) alike."""
    expected = worker.device_class
    if expected is None:
        return record
    if isinstance(record, EvaluationRecord):
        if not record.ok:
            return record
        got = record.environment.get("device")
    elif isinstance(record, dict) and record.get("status") == COMPLETE:
        got = (record.get("environment") or {}).get("device")
    else:
        return record
    if not got or got == expected:
        return record
    error = (f"DeviceMismatch: this {'genome' if isinstance(record, EvaluationRecord) else 'cell'} was evaluated on "
             f"{got}, but the run's fingerprint is for {expected}; make the workers use {expected} (run.device, and "
             "run.gpus_per_eval for Ray workers)")
    if isinstance(record, dict):
        return {**record, "status": FAILED, "error": error}
    return dataclasses.replace(EvaluationRecord.failure(record.genome, error, record.timings),
                               environment=record.environment)


def _stamped(evaluator: Evaluator, record: EvaluationRecord) -> EvaluationRecord:
    """A record of an evaluator that computes on a device (``device_class`` not None), failed ones included, carries
    the environment of the process that computed it: the record's own, else this process's (the evaluator's device
    class here: in a worker, its own)."""
    if record.environment or evaluator.device_class is None:
        return record
    return dataclasses.replace(record, environment=environment(evaluator.device_class))


def _release_gpu_memory(exc: BaseException) -> None:
    """After a CUDA out-of-memory error, give the cached blocks back so the next genome can run."""
    if "out of memory" not in str(exc).lower() or "torch" not in sys.modules:
        return
    torch = sys.modules["torch"]
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """``items`` in lists of ``size``, each taken from the (lazy) iterable only when it is asked for."""
    source = iter(items)
    while chunk := list(itertools.islice(source, size)):
        yield chunk
