"""``process``: ``run.workers`` single-worker ``ProcessPoolExecutor`` slots (spawn context), so a dead worker is
attributed to exactly the chunk it was running and only its slot is rebuilt; each worker receives the worker once
(initializer), sets ``torch.set_num_threads(run.threads or cores // workers)`` and is pinned to
``cuda:(slot % device_count)`` when CUDA is available (``run.device`` auto/cuda).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import pickle
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Iterable, Iterator

from ..config import RunSettings
from ..errors import LayermapError
from .devices import configure_torch, pick_worker_device
from ..storage.records import EvaluationRecord
from .protocol import Evaluator, Worker
from .safety import as_worker, chunk_size, chunks, describe_exception, on_fingerprint_device

Genes = tuple[int, ...]

_WORKER: dict[str, Any] = {}   # per worker process: the worker, keyed by its type, fingerprint and driver id


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
        source = chunks(genomes, self.population)
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
            return [self.worker.failure(job, f"WorkerDied: the worker process evaluating this genome died (crash outside "
                                        f"Python, e.g. segfault or host out of memory): {exc}") for job in chunk]
        except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable record
            return [self.worker.failure(job, describe_exception(exc)) for job in chunk]


# -- worker side ---------------------------------------------------------------------------------
def _init_worker(worker: Worker, key: str, slot: int, threads: int, device: str) -> None:
    """Process-pool initializer: threads, device pinning, the worker kept for every task, and the worker's
    warnings on its stderr as ``layermap: warning: ...`` lines (a spawned process starts with no log handler)."""
    import logging

    from ..logs import get_logger, log_to_stderr

    if not get_logger().handlers:
        log_to_stderr(logging.WARNING)
    configure_torch(threads)
    worker.set_device(pick_worker_device(slot, device))
    _WORKER[key] = worker


def _evaluate_in_worker(key: str, chunk: list) -> list:
    return _WORKER[key].run_jobs(chunk)


def _worker_key(worker: Worker) -> str:
    return f"{type(worker).__qualname__}:{worker.fingerprint}:{os.getpid()}:{id(worker)}"
