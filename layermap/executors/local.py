"""``local``: sequential evaluation in the driver process (:mod:`layermap.executors.registry`)."""

from __future__ import annotations

from typing import Iterable, Iterator

from ..config import RunSettings
from ..storage.records import EvaluationRecord
from .protocol import Evaluator, Worker
from .safety import as_worker, chunk_size, chunks, on_fingerprint_device

Genes = tuple[int, ...]


class LocalExecutor:
    """Sequential evaluation in the driver process."""

    name = "local"

    def __init__(self, evaluator: Worker | Evaluator, settings: RunSettings | None = None) -> None:
        self.worker = as_worker(evaluator)
        self.population = chunk_size(self.worker, settings)

    def submit(self, genomes: Iterable[Genes]) -> Iterator[tuple[Genes, EvaluationRecord]]:
        for chunk in chunks(genomes, self.population):
            chunk = [tuple(genes) for genes in chunk]
            yield from zip(chunk, (on_fingerprint_device(self.worker, r) for r in self.worker.run_jobs(chunk)))

    def close(self) -> None:
        pass
