"""Where fitness evaluations run: in-process, a local process pool, or Ray; the registry of the three.

Every executor has one interface: ``submit(jobs)`` yields ``(job, record)`` pairs as jobs finish (any order), and
``close()``; ``jobs`` may be a lazy iterable (``local`` and ``process`` take each job only when they start it, ``ray``
takes them all at once).  An executor runs a :class:`layermap.executors.protocol.Worker` (one contract: ``fingerprint``,
``device_class``, ``prepare``, ``set_device``, ``chunk_size``, ``run_jobs``, ``failure``; nothing else is asked of it): the search's seed-set worker, the final
stage's compare worker, the proxy evaluator, or a bare :class:`~layermap.executors.protocol.Evaluator` wrapped in a
:class:`~layermap.executors.safety.GenomeWorker`
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
one by one, :func:`layermap.executors.protocol.evaluate_each`), one record per genome; a chunk of one is evaluated by
``evaluate``.  A chunk's records arrive together
when it is done, so a kill in the middle loses that chunk's genomes only (their store rows stay ``running`` and a
resume evaluates them again); a dead worker fails the genomes of its chunk.

Devices: a record's ``environment`` is stamped by the process that computed it (the worker), and every executor
checks it against the device class the driver's fingerprint names (``worker.device_class``, which for Ray is the
workers' class, :func:`layermap.executors.devices.worker_device`; a wrapper gives the class of what it wraps): a record computed on another device
class (a search's record or a compare cell) is a failed record, never cached under the wrong fingerprint.

One module per backend (:mod:`.local`, :mod:`.process`, :mod:`.ray`); :mod:`.safety` makes every outcome a record,
:mod:`.devices` says which device a run computes on.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Protocol

from ..config import RunSettings
from ..errors import LayermapError
from ..storage.records import EvaluationRecord
from .local import LocalExecutor
from .process import ProcessExecutor
from .protocol import Evaluator, Worker
from .ray import RayExecutor

Genes = tuple[int, ...]


class Executor(Protocol):
    name: str

    def submit(self, genomes: Iterable[Genes]) -> Iterator[tuple[Genes, EvaluationRecord]]: ...

    def close(self) -> None: ...


EXECUTORS: dict[str, type] = {"local": LocalExecutor, "process": ProcessExecutor, "ray": RayExecutor}


def create_executor(evaluator: Worker | Evaluator, settings: RunSettings, name: str | None = None) -> Executor:
    """The executor ``name`` (default ``settings.executor``) from the registry."""
    name = name or settings.executor
    if name not in EXECUTORS:
        raise LayermapError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
    return EXECUTORS[name](evaluator, settings)
