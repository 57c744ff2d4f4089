"""Where fitness evaluations run: in-process, a local process pool, or Ray.

Every executor has one interface: ``submit(genomes)`` yields ``(genes, EvaluationRecord)`` pairs
as evaluations finish (any order), and ``close()``; ``genomes`` may be a lazy iterable (``local`` and
``process`` take each genome only when they start it, ``ray`` takes them all at once).  An evaluator with a ``run_job`` method (the
final stage, :mod:`layermap.final.compare`) gets its own job tuples instead of genomes and returns its
own records (:func:`run_job`).  Executors never touch the store: the
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
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
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
from .records import COMPLETE, EvaluationRecord

Genes = tuple[int, ...]

_WORKER: dict[str, Any] = {}   # per worker process: the evaluator, keyed by the driver's fingerprint


class Executor(Protocol):
    name: str

    def submit(self, genomes: Iterable[Genes]) -> Iterator[tuple[Genes, EvaluationRecord]]: ...

    def close(self) -> None: ...


def evaluate_safely(evaluator: Any, genes: Sequence[int]) -> EvaluationRecord:
    """``evaluator.evaluate(genes)``, with every exception and non-finite fitness turned into a failed record."""
    genes = tuple(int(g) for g in genes)
    text = format_genes(genes)
    start = time.perf_counter()
    try:
        record = evaluator.evaluate(genes)
    except Exception as exc:  # noqa: BLE001 - a failed genome must never crash the run
        _release_gpu_memory(exc)
        return EvaluationRecord.failure(text, describe_exception(exc), {"total": time.perf_counter() - start})
    wall = time.perf_counter() - start
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


def run_job(evaluator: Any, job: Sequence) -> Any:
    """One unit of work: ``evaluator.run_job(job)`` for an evaluator that has jobs of its own (the final
    stage's distillation and fine-tuning cells), else :func:`evaluate_safely` of a genome."""
    run = getattr(evaluator, "run_job", None)
    return run(tuple(job)) if run is not None else evaluate_safely(evaluator, job)


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

    def __init__(self, evaluator: Any, settings: RunSettings | None = None) -> None:
        self.evaluator = evaluator

    def submit(self, genomes: Iterable[Genes]) -> Iterator[tuple[Genes, EvaluationRecord]]:
        for genes in genomes:
            yield tuple(genes), run_job(self.evaluator, genes)

    def close(self) -> None:
        pass


class ProcessExecutor:
    """``settings.workers`` single-worker process pools (spawn), one genome in flight per worker."""

    name = "process"

    def __init__(self, evaluator: Any, settings: RunSettings | None = None) -> None:
        settings = settings or RunSettings(executor="process")
        try:
            pickle.dumps(evaluator)
        except Exception as exc:  # noqa: BLE001
            raise LayermapError(f"the evaluator cannot be sent to worker processes ({describe_exception(exc)}); use --executor local") from None
        self.evaluator = evaluator
        self.workers = settings.workers
        self.threads = settings.threads or max(1, (os.cpu_count() or 1) // settings.workers)
        self.device = settings.device
        self._key = _evaluator_key(evaluator)
        self._context = multiprocessing.get_context("spawn")
        self._slots: list[cf.ProcessPoolExecutor | None] = [None] * settings.workers
        self._running: dict[cf.Future, tuple[int, Genes]] = {}

    def submit(self, genomes: Iterable[Genes]) -> Iterator[tuple[Genes, EvaluationRecord]]:
        """Genomes are taken from ``genomes`` one at a time, as a worker becomes free (a lazy iterable sees each
        request only then: the search claims a genome in the shared cache just before it starts)."""
        source = iter(genomes)
        running: dict[cf.Future, tuple[int, Genes]] = {}
        self._running = running
        more = True
        while True:
            busy = {slot for slot, _ in running.values()}
            for slot in range(self.workers):
                if more and slot not in busy:
                    genes = next(source, None)
                    if genes is None:
                        more = False
                        break
                    genes = tuple(genes)
                    running[self._slot(slot).submit(_evaluate_in_worker, self._key, genes)] = (slot, genes)
            if not running:
                return
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: running[f][0]):
                slot, genes = running.pop(future)
                yield genes, self._collect(future, slot, genes)

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
                initargs=(self.evaluator, self._key, slot, self.threads, self.device),
            )
        return self._slots[slot]

    def _collect(self, future: cf.Future, slot: int, genes: Genes) -> EvaluationRecord:
        try:
            return future.result()
        except BrokenProcessPool as exc:
            pool, self._slots[slot] = self._slots[slot], None   # rebuilt on its next genome
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            return EvaluationRecord.failure(_label(genes), f"WorkerDied: the worker process evaluating this genome died "
                                            f"(crash outside Python, e.g. segfault or host out of memory): {exc}")
        except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable record
            return EvaluationRecord.failure(_label(genes), describe_exception(exc))


class RayExecutor:
    """Ray remote tasks (``max_retries=1``), results streamed with ``ray.wait``."""

    name = "ray"

    def __init__(self, evaluator: Any, settings: RunSettings | None = None) -> None:
        settings = settings or RunSettings(executor="ray")
        ray = _import_ray()
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            ray.init(address=settings.ray_address or None, include_dashboard=False, ignore_reinit_error=True,
                     runtime_env=None if settings.ray_address else _local_runtime_env())
        self._ray = ray
        self._key = _evaluator_key(evaluator)
        self._evaluator_ref = ray.put(evaluator)
        self._threads = settings.threads or max(1, int(settings.cpus_per_eval))
        self._device = "cpu" if settings.device == "cpu" or settings.gpus_per_eval == 0 else "cuda:0"
        self._pending: dict = {}
        self._task = ray.remote(_evaluate_in_ray).options(
            num_cpus=settings.cpus_per_eval, num_gpus=settings.gpus_per_eval, max_retries=1)

    def submit(self, genomes: Iterable[Genes]) -> Iterator[tuple[Genes, EvaluationRecord]]:
        ray = self._ray
        pending = {self._task.remote(self._key, self._evaluator_ref, tuple(g), self._threads, self._device): tuple(g)
                   for g in genomes}
        self._pending = pending
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                genes = pending.pop(ref)
                try:
                    record = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - worker died twice, or the task could not run
                    message = (str(exc).strip().splitlines() or [""])[0][:300]
                    record = EvaluationRecord.failure(_label(genes), f"{type(exc).__name__}: {message}")
                yield genes, record

    def close(self) -> None:
        """Cancel tasks nobody will read (the driver stopped early); shut down a Ray this executor started."""
        for ref in list(self._pending):
            self._ray.cancel(ref, force=True)
        self._pending = {}
        if self._owns_ray:
            self._ray.shutdown()


EXECUTORS: dict[str, type] = {"local": LocalExecutor, "process": ProcessExecutor, "ray": RayExecutor}


def create_executor(evaluator: Any, settings: RunSettings, name: str | None = None) -> Executor:
    """The executor ``name`` (default ``settings.executor``) from the registry."""
    name = name or settings.executor
    if name not in EXECUTORS:
        raise LayermapError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
    return EXECUTORS[name](evaluator, settings)


# -- worker side ---------------------------------------------------------------------------------
def _init_worker(evaluator: Any, key: str, slot: int, threads: int, device: str) -> None:
    """Process-pool initializer: threads, device pinning, the evaluator kept for every task, and the worker's
    warnings on its stderr as ``layermap: warning: ...`` lines (a spawned process starts with no log handler)."""
    import logging

    from ..logs import get_logger, log_to_stderr

    if not get_logger().handlers:
        log_to_stderr(logging.WARNING)
    _configure_torch(threads)
    if hasattr(evaluator, "set_device"):
        evaluator.set_device(_pick_device(slot, device))
    _WORKER[key] = evaluator


def _evaluate_in_worker(key: str, genes: Genes) -> EvaluationRecord:
    return run_job(_WORKER[key], genes)


def _evaluate_in_ray(key: str, evaluator: Any, genes: Genes, threads: int, device: str) -> EvaluationRecord:
    """A Ray task; the first evaluator a worker process sees is kept, so lazy state (teacher, data) loads once."""
    if key not in _WORKER:
        _configure_torch(threads)
        if hasattr(evaluator, "set_device"):
            evaluator.set_device(device)
        _WORKER[key] = evaluator
    return run_job(_WORKER[key], genes)


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


def _evaluator_key(evaluator: Any) -> str:
    fingerprint = getattr(evaluator, "fingerprint", "")
    return f"{type(evaluator).__qualname__}:{fingerprint}:{os.getpid()}:{id(evaluator)}"


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


