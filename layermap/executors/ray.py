"""``ray``: optional (``pip install layermap[ray]``): remote tasks with ``run.cpus_per_eval`` / ``run.gpus_per_eval``,
``max_retries=1`` (a dead worker is retried once, then recorded failed), streamed back with ``ray.wait``; ``ray`` itself
is imported only when this executor is made.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..config import RunSettings
from ..errors import LayermapError
from .devices import configure_torch, worker_device
from ..storage.records import EvaluationRecord
from .protocol import Evaluator, Worker
from .safety import as_worker, chunk_size, chunks, on_fingerprint_device

Genes = tuple[int, ...]

_WORKER: dict[str, Any] = {}   # per Ray process: the first worker it sees, kept so lazy state loads once


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
        for chunk in chunks(genomes, self.population):
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
                    records = [self.worker.failure(job, f"{type(exc).__name__}: {message}") for job in chunk]
                yield from zip(chunk, (on_fingerprint_device(self.worker, r) for r in records))

    def close(self) -> None:
        """Cancel tasks nobody will read (the driver stopped early); shut down a Ray this executor started."""
        for ref in list(self._pending):
            self._ray.cancel(ref, force=True)
        self._pending = {}
        if self._owns_ray:
            self._ray.shutdown()


def _evaluate_in_ray(key: str, worker: Worker, chunk: list, threads: int, device: str) -> list:
    """A Ray task; the first worker a Ray process sees is kept, so lazy state (teacher, data) loads once."""
    if key not in _WORKER:
        configure_torch(threads)
        worker.set_device(device)
        _WORKER[key] = worker
    return _WORKER[key].run_jobs(chunk)


def _worker_key(worker: Worker) -> str:
    return f"{type(worker).__qualname__}:{worker.fingerprint}:{os.getpid()}:{id(worker)}"


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
