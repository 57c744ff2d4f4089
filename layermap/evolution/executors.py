"""Where fitness evaluations run: in-process, a local process pool, or Ray.

Every executor has one interface: ``submit(jobs)`` yields ``(job, record)`` pairs as jobs finish (any order), and
``close()``; ``jobs`` may be a lazy iterable (``local`` and ``process`` take each job only when they start it, ``ray``
takes them all at once).  An executor runs a :class:`layermap.evolution.worker.Worker` (one contract: ``fingerprint``,
``device_class``, ``prepare``, ``set_device``, ``chunk_size``, ``run_jobs``): the search's seed-set worker, the final
stage's compare worker, or a bare :class:`~layermap.evolution.worker.Evaluator` wrapped in a :class:`GenomeWorker`
(its jobs are genomes).  Executors never touch the store: the
driver writes each record as it arrives.  Any exception inside ``evaluator.evaluate`` (NaN
fitness, CUDA out of memory, a bug) becomes a failed record carrying the error text, and a
worker that dies (segfault, ``os._exit``, host OOM) fails only its own genome:

* ``local``    sequential, in the driver process;
* ``process``  ``run.workers`` single-worker ``ProcessPoolExecutor`` slots (spawn context), so a
               dead worker is attributed to exactly the genome it was running and only its slot
               is rebuilt; each worker receives the evaluator once (initializer), sets
               ``torch.set_num_threads(run.threads or cores // workers)`` and is pinned to
               ``cuda:(slot % device_count)`` when CUDA is available (``run.device`` auto/cuda);
* ``ray``      optional (``pip install layermap[ray]``): remote tasks with ``run.cpus_per_eval``
               / ``run.gpus_per_eval``, ``max_retries=1`` (a dead worker is retried once, then
               recorded failed), streamed back with ``ray.wait``.

Chunks (``run.population = K``): every executor takes jobs from the stream ``worker.chunk_size(K)`` at a time and
hands each chunk to one worker process, which calls ``worker.run_jobs(chunk)``: for genomes ``evaluator.evaluate_many``
(the proxy evaluator distils the chunk as one lockstep population, :mod:`layermap.distill.population`; others evaluate
one by one, :func:`layermap.evolution.worker.evaluate_each`), one record per genome; a chunk of one is evaluated by
``evaluate``.  A chunk's records arrive together
when it is done, so a kill in the middle loses that chunk's genomes only (their store rows stay ``running`` and a
resume evaluates them again); a dead worker fails the genomes of its chunk.

Devices: a record's ``environment`` is stamped by the process that computed it (the worker), and every executor
checks it against the device class the driver's fingerprint names (``worker.device_class``, which for Ray is the
workers' class, :func:`worker_device`; a wrapper gives the class of what it wraps): a record computed on another device
class (a search's record or a compare cell) is a failed record, never cached under the wrong fingerprint.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import itertools
import multiprocessing
import os
import pickle
import sys
import time
import traceback
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, Sequence

from ..config import RunSettings
from ..errors import LayermapError
from ..mapping import format_genes
from ..storage.records import COMPLETE, FAILED, EvaluationRecord, environment
from .worker import Evaluator, Worker, missing_members, require_evaluator

Genes = tuple[int, ...]

_WORKER: dict[str, Any] = {}   # per worker process: the worker, keyed by its type, fingerprint and driver id


class Executor(Protocol):
    name: str

    def submit(self, genomes: Iterable[Genes]) -> Iterator[tuple[Genes, EvaluationRecord]]: ...

    def close(self) -> None: ...


def evaluate_safely(evaluator: Evaluator, genes: Sequence[int]) -> EvaluationRecord:
    """``evaluator.evaluate(genes)``, with every exception and non-finite fitness turned into a failed record,
    stamped with this process's environment (:func:`_stamped`)."""
    return _stamped(evaluator, _evaluate_safely(evaluator, genes))


def genome_job(genes: Sequence[int] | str) -> tuple[tuple[int, ...] | str, str]:
    """A job's genome as the evaluator takes it and its text: genes as ints, or a shaped or split genome's text as it is
    (``L4-H256-A4-F1024:3-6-9-12``, :mod:`layermap.evolution.shaped_evaluator`; ``1-2-3+2-4-6``,
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


class GenomeWorker:
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

    def chunk_size(self, population: int) -> int:
        return max(1, int(population))

    def run_jobs(self, jobs: Sequence) -> list[EvaluationRecord]:
        return evaluate_chunk_safely(self.evaluator, jobs)


def as_worker(runnable: Worker | Evaluator) -> Worker:
    """What an executor runs: a :class:`~layermap.evolution.worker.Worker` as it is, an
    :class:`~layermap.evolution.worker.Evaluator` in a :class:`GenomeWorker`; anything else is a TypeError naming the
    members it lacks."""
    if isinstance(runnable, Worker):
        return runnable
    if isinstance(runnable, Evaluator):
        return GenomeWorker(runnable)
    raise TypeError(f"{type(runnable).__name__} is neither a worker nor an evaluator: it lacks "
                    f"{', '.join(missing_members(runnable, Worker))} of a worker (layermap.evolution.worker)")


def chunk_size(worker: Worker, settings: RunSettings | None) -> int:
    """Jobs per chunk: the worker's own size for ``run.population`` (1 without settings)."""
    return 1 if settings is None else max(1, int(worker.chunk_size(settings.population)))


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    """``items`` in lists of ``size``, each taken from the (lazy) iterable only when it is asked for."""
    source = iter(items)
    while chunk := list(itertools.islice(source, size)):
        yield chunk


def _label(job: Sequence) -> str:
    """A genome's text, or a job tuple's parts joined by '-' (for failure records)."""
    return "-".join(str(part) for part in job)


def describe_exception(exc: BaseException) -> str:
    """``Type: message (at file.py:123 in function)`` - the type, message and last traceback line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}{where}"


class LocalExecutor:
    """Sequential evaluation in the driver process."""

    name = "local"

    def __init__(self, evaluator: Worker | Evaluator, settings: RunSettings | None = None) -> None:
        self.worker = as_worker(evaluator)
        self.population = chunk_size(self.worker, settings)

    def submit(self, genomes: Iterable[Genes]) -> Iterator[tuple[Genes, EvaluationRecord]]:
        for chunk in _chunks(genomes, self.population):
            chunk = [tuple(genes) for genes in chunk]
            yield from zip(chunk, (on_fingerprint_device(self.worker, r) for r in self.worker.run_jobs(chunk)))

    def close(self) -> None:
        pass


class ProcessExecutor:
    """``settings.workers`` single-worker process pools (spawn), one chunk (``run.population`` genomes, default one)
    in flight per worker."""

    name = "process"

    def __init__(self, evaluator: Worker | Evaluator, settings: RunSettings | None = None) -> None:
        settings = settings or RunSettings(executor="process")
        worker = as_worker(evaluator)
        try:
            pickle.dumps(worker)
        except Exception as exc:  # noqa: BLE001
            raise LayermapError(f"the evaluator cannot be sent to worker processes ({describe_exception(exc)}); use --executor local") from None
        self.worker = worker
        self.workers = settings.workers
        self.threads = settings.threads or max(1, (os.cpu_count() or 1) // settings.workers)
        self.device = settings.device
        self.population = chunk_size(worker, settings)
        self._key = _worker_key(worker)
        self._context = multiprocessing.get_context("spawn")
        self._slots: list[cf.ProcessPoolExecutor | None] = [None] * settings.workers
        self._running: dict[cf.Future, tuple[int, list[Genes]]] = {}

    def submit(self, genomes: Iterable[Genes]) -> Iterator[tuple[Genes, EvaluationRecord]]:
        """Genomes are taken from ``genomes`` a chunk at a time, as a worker becomes free (a lazy iterable sees each
        request only then: the search claims a genome in the shared cache just before it starts)."""
        source = _chunks(genomes, self.population)
        running: dict[cf.Future, tuple[int, list[Genes]]] = {}
        self._running = running
        more = True
        while True:
            busy = {slot for slot, _ in running.values()}
            for slot in range(self.workers):
                if more and slot not in busy:
                    chunk = next(source, None)
                    if chunk is None:
                        more = False
                        break
                    chunk = [tuple(genes) for genes in chunk]
                    running[self._slot(slot).submit(_evaluate_in_worker, self._key, chunk)] = (slot, chunk)
            if not running:
                return
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: running[f][0]):
                slot, chunk = running.pop(future)
                yield from zip(chunk, (on_fingerprint_device(self.worker, r) for r in self._collect(future, slot, chunk)))

    def close(self) -> None:
        """Shut the workers down; evaluations still running (the driver stopped reading) are terminated."""
        abandoned = bool(self._running)
        for slot, pool in enumerate(self._slots):
            if pool is None:
                continue
            if abandoned:
                for process in list(getattr(pool, "_processes", {}).values()):
                    process.terminate()
            pool.shutdown(wait=not abandoned, cancel_futures=True)
            self._slots[slot] = None

    def _slot(self, slot: int) -> cf.ProcessPoolExecutor:
        if self._slots[slot] is None:
            self._slots[slot] = cf.ProcessPoolExecutor(
                max_workers=1, mp_context=self._context, initializer=_init_worker,
                initargs=(self.worker, self._key, slot, self.threads, self.device),
            )
        return self._slots[slot]

    def _collect(self, future: cf.Future, slot: int, chunk: list[Genes]) -> list[EvaluationRecord]:
        try:
            return future.result()
        except BrokenProcessPool as exc:
            pool, self._slots[slot] = self._slots[slot], None   # rebuilt on its next genome
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            return [EvaluationRecord.failure(_label(genes), f"WorkerDied: the worker process evaluating this genome died "
                                             f"(crash outside Python, e.g. segfault or host out of memory): {exc}")
                    for genes in chunk]
        except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable record
            return [EvaluationRecord.failure(_label(genes), describe_exception(exc)) for genes in chunk]


class RayExecutor:
    """Ray remote tasks (``max_retries=1``), results streamed with ``ray.wait``."""

    name = "ray"

    def __init__(self, evaluator: Worker | Evaluator, settings: RunSettings | None = None) -> None:
        settings = settings or RunSettings(executor="ray")
        worker = as_worker(evaluator)
        ray = _import_ray()
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            ray.init(address=settings.ray_address or None, include_dashboard=False, ignore_reinit_error=True,
                     runtime_env=None if settings.ray_address else _local_runtime_env())
        self._ray = ray
        self._key = _worker_key(worker)
        self.worker = worker
        self._worker_ref = ray.put(worker)
        self._threads = settings.threads or max(1, int(settings.cpus_per_eval))
        self._device = worker_device(settings)
        self._pending: dict = {}
        self.population = chunk_size(worker, settings)
        self._task = ray.remote(_evaluate_in_ray).options(
            num_cpus=settings.cpus_per_eval, num_gpus=settings.gpus_per_eval, max_retries=1)

    def submit(self, genomes: Iterable[Genes]) -> Iterator[tuple[Genes, EvaluationRecord]]:
        ray = self._ray
        pending = {}
        for chunk in _chunks(genomes, self.population):
            chunk = [tuple(g) for g in chunk]
            pending[self._task.remote(self._key, self._worker_ref, chunk, self._threads, self._device)] = chunk
        self._pending = pending
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                chunk = pending.pop(ref)
                try:
                    records = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - worker died twice, or the task could not run
                    message = (str(exc).strip().splitlines() or [""])[0][:300]
                    records = [EvaluationRecord.failure(_label(genes), f"{type(exc).__name__}: {message}") for genes in chunk]
                yield from zip(chunk, (on_fingerprint_device(self.worker, r) for r in records))

    def close(self) -> None:
        """Cancel tasks nobody will read (the driver stopped early); shut down a Ray this executor started."""
        for ref in list(self._pending):
            self._ray.cancel(ref, force=True)
        self._pending = {}
        if self._owns_ray:
            self._ray.shutdown()


EXECUTORS: dict[str, type] = {"local": LocalExecutor, "process": ProcessExecutor, "ray": RayExecutor}


def create_executor(evaluator: Worker | Evaluator, settings: RunSettings, name: str | None = None) -> Executor:
    """The executor ``name`` (default ``settings.executor``) from the registry."""
    name = name or settings.executor
    if name not in EXECUTORS:
        raise LayermapError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
    return EXECUTORS[name](evaluator, settings)


# -- worker side ---------------------------------------------------------------------------------
def _init_worker(worker: Worker, key: str, slot: int, threads: int, device: str) -> None:
    """Process-pool initializer: threads, device pinning, the worker kept for every task, and the worker's
    warnings on its stderr as ``layermap: warning: ...`` lines (a spawned process starts with no log handler)."""
    import logging

    from ..logs import get_logger, log_to_stderr

    if not get_logger().handlers:
        log_to_stderr(logging.WARNING)
    _configure_torch(threads)
    worker.set_device(_pick_device(slot, device))
    _WORKER[key] = worker


def _evaluate_in_worker(key: str, chunk: list) -> list:
    return _WORKER[key].run_jobs(chunk)


def _evaluate_in_ray(key: str, worker: Worker, chunk: list, threads: int, device: str) -> list:
    """A Ray task; the first worker a Ray process sees is kept, so lazy state (teacher, data) loads once."""
    if key not in _WORKER:
        _configure_torch(threads)
        worker.set_device(device)
        _WORKER[key] = worker
    return _WORKER[key].run_jobs(chunk)


def worker_device(settings: RunSettings) -> str:
    """The device setting the workers evaluate on, as the driver knows it before any worker starts: a Ray worker
    gets ``cuda:0`` exactly when it is given GPUs (``run.gpus_per_eval`` > 0 and ``run.device`` not cpu), else the CPU,
    whatever the driver has; local and process workers use ``run.device`` on the driver's machine."""
    if settings.executor == "ray":
        return "cpu" if settings.device == "cpu" or settings.gpus_per_eval == 0 else "cuda:0"
    return settings.device


def fingerprint_device_class(settings: RunSettings) -> str:
    """The device class (cpu, cuda, mps) the results of a run with ``settings`` are computed on, as a fingerprint
    names it: the Ray workers' (:func:`worker_device`), else that of ``run.device`` here."""
    if settings.executor == "ray":
        return worker_device(settings).split(":")[0]
    from ..distill.models import pick_device

    return pick_device(settings.device).type


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


def _configure_torch(threads: int) -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    torch.set_num_threads(max(1, int(threads)))


def _pick_device(slot: int, device: str) -> str:
    """``auto``/``cuda``: ``cuda:(slot % count)`` when CUDA is available; ``cpu`` and ``cuda:N`` are kept."""
    if device == "cpu" or device.startswith("cuda:"):
        return device
    try:
        import torch
        if torch.cuda.is_available():
            return f"cuda:{slot % torch.cuda.device_count()}"
    except ImportError:  # pragma: no cover
        pass
    return "cpu" if device == "auto" else device


def _worker_key(worker: Worker) -> str:
    return f"{type(worker).__qualname__}:{worker.fingerprint}:{os.getpid()}:{id(worker)}"


def _release_gpu_memory(exc: BaseException) -> None:
    """After a CUDA out-of-memory error, give the cached blocks back so the next genome can run."""
    if "out of memory" not in str(exc).lower() or "torch" not in sys.modules:
        return
    torch = sys.modules["torch"]
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _local_runtime_env() -> dict:
    """Local Ray workers must import ``layermap`` even when it is not installed (a source checkout)."""
    root = str(Path(__file__).resolve().parents[1])
    paths = [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise LayermapError("the ray executor needs Ray, which is not installed; run: pip install 'layermap[ray]' "
                            "(or use --executor process)") from None
    return ray


