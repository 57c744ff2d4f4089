"""The one contract between the executors and what they run (:mod:`layermap.executors`): the worker protocol.

Two protocols, checked at runtime (``isinstance``), so that no wrapper can hide a member again (a wrapper without
``device_class`` once turned the executors' device check off for every search):

* :class:`Evaluator`, a fitness function: ``evaluate(genes)`` and ``evaluate_many(chunk)`` give records (the proxy
  fitness, the synthetic landscape, a replayed table, the shaped wrapper);
* :class:`Worker`, what an executor runs: ``run_jobs(chunk)`` gives one record per job, ``failure(job, error)`` the
  failed record of a job whose process died (the search's seed-set worker,
  :class:`layermap.searching.state.SeedSetEvaluator`; the proxy evaluator,
  :class:`layermap.evaluators.proxy.ProxyEvaluator`, whose jobs are genomes; :class:`layermap.executors.safety.GenomeWorker`,
  what an executor makes of a bare evaluator; the final stage's :class:`layermap.final.worker.CompareWorker`).

Both say, explicitly (:class:`Computes`, the part they share):

* ``fingerprint``: the hash of everything that changes a result, computed in the driver (a wrapper gives the one of
  what it wraps);
* ``device_class``: the device class (``cpu``, ``cuda``, ``mps``) the fingerprint names (in a Ray driver the
  workers', :func:`layermap.executors.devices.worker_device`; in a worker after ``set_device``, its own), which every
  record must have been computed on; ``None`` for one that computes on no device (a synthetic landscape, a table), whose
  records carry no environment and are not checked;
* ``prepare()``: load in the driver what workers then find on disk (teacher, corpus slice, teacher cache); may do
  nothing;
* ``set_device(device)``: compute on ``device`` from now on (a worker process's own device); may do nothing.

A worker also says ``chunk_size(population)``, how many jobs one chunk holds (``run.population`` for genome jobs; 1
for the final stage, which groups its own distillations).  An executor asks nothing else of what it runs: no
``getattr``, no private member.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from ..storage.records import EvaluationRecord


@runtime_checkable
class Computes(Protocol):
    """What an evaluator and a worker both say (module docstring)."""

    @property
    def fingerprint(self) -> str: ...

    @property
    def device_class(self) -> str | None: ...

    def prepare(self) -> None: ...

    def set_device(self, device: str) -> None: ...


@runtime_checkable
class Evaluator(Computes, Protocol):
    """A fitness function (module docstring).  It must be picklable and cheap to pickle: heavy state loads lazily in
    each process."""

    def evaluate(self, genes: Sequence[int]) -> EvaluationRecord: ...

    def evaluate_many(self, genomes: Sequence) -> list[EvaluationRecord | Exception]: ...


@runtime_checkable
class Worker(Computes, Protocol):
    """What an executor runs (module docstring)."""

    def chunk_size(self, population: int) -> int: ...

    def run_jobs(self, jobs: Sequence) -> list: ...

    def failure(self, job, error: str): ...


def missing_members(thing: object, protocol: type) -> list[str]:
    """The members of ``protocol`` (and of the protocols it extends) that ``thing`` lacks, for an error that names
    them."""
    names = [n for base in reversed(protocol.__mro__) if base in (Computes, Evaluator, Worker)
             for n in base.__dict__ if not n.startswith("_")]
    return [n for n in dict.fromkeys(names) if not hasattr(thing, n)]


def require_evaluator(evaluator: object) -> Evaluator:
    """``evaluator``, or a TypeError naming what it lacks of the :class:`Evaluator` contract."""
    if not isinstance(evaluator, Evaluator):
        raise TypeError(f"{type(evaluator).__name__} is not an evaluator: it lacks "
                        f"{', '.join(missing_members(evaluator, Evaluator))} (layermap.executors.protocol.Evaluator)")
    return evaluator


def evaluate_each(evaluator: Evaluator, genomes: Sequence) -> list[EvaluationRecord | Exception]:
    """``evaluate_many`` one genome at a time: each genome's record, or the exception its evaluation raised (the
    executor turns it into that genome's failed record)."""
    out: list[EvaluationRecord | Exception] = []
    for genes in genomes:
        try:
            out.append(evaluator.evaluate(genes))
        except Exception as exc:  # noqa: BLE001 - one genome's failure is its own
            out.append(exc)
    return out
