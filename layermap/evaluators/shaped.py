"""The evaluator of a joint shape-and-mapping search: a genome may be a shaped genome's text.

:class:`ShapedEvaluator` wraps the run's evaluator (the proxy fitness, or the synthetic landscape).  A job whose genome
is a shaped genome's text (``L4-H256-A4-F1024:3-6-9-12``, :class:`layermap.shape.ShapedGenome`) is evaluated by the
evaluator of that shape, ``base.with_shape(shape)`` (made once per shape and process), on its mapping genes; the record
takes the shaped text as its genome.  A plain mapping is evaluated by the base evaluator as before.

Fingerprints: the wrapper has the base evaluator's fingerprint, so a shaped record is stored under the base
fingerprint keyed by the shaped text (which holds the shape), and a fixed-shape record keeps the key it always had.
The members of the evaluator contract (:class:`layermap.executors.protocol.Evaluator`: fingerprint, device class,
prepare, set_device, evaluate, evaluate_many) are its own, the first two the base evaluator's; every other attribute
(``teacher_layers``, ``references``, ``describe``, ...) is the base evaluator's.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from ..shape import ShapedGenome, StudentShape
from ..storage.records import EvaluationRecord
from ..executors.protocol import Evaluator, evaluate_each, require_evaluator
from ..executors.safety import GenomeJobs


def is_shaped(text: str) -> bool:
    """Whether a genome text is a shaped genome's (``shape:mapping``)."""
    return ":" in text


def shape_and_genes(text: str, fixed: StudentShape) -> tuple[StudentShape, tuple[int, ...]]:
    """The student shape and mapping genes of a genome text; a plain mapping has the ``fixed`` shape."""
    from ..mapping import parse_genes

    if is_shaped(text):
        genome = ShapedGenome.parse(text)
        return genome.shape, genome.genes
    return fixed, parse_genes(text)


class ShapedEvaluator(GenomeJobs):
    """An evaluator that takes shaped genome texts as well as mapping genes (module docstring).  Its worker members
    (:class:`~layermap.executors.safety.GenomeJobs`) are its own, never the base evaluator's: a chunk goes through
    its own ``evaluate``."""

    def __init__(self, base: Evaluator) -> None:
        self.base = require_evaluator(base)
        self._of: dict[str, Any] = {}

    def __getstate__(self) -> dict:
        return {"base": self.base, "_of": {}}         # a worker makes its own per-shape evaluators

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __getattr__(self, name: str) -> Any:
        if name in ("base", "_of"):                   # not yet set (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.base, name)

    @property
    def fingerprint(self) -> str:
        return self.base.fingerprint

    @property
    def device_class(self) -> str | None:
        return self.base.device_class

    def of_shape(self, shape: StudentShape) -> Any:
        if shape.text not in self._of:
            self._of[shape.text] = self.base.with_shape(shape)
        return self._of[shape.text]

    def with_seed_set(self, seed_set: int) -> "ShapedEvaluator":
        return ShapedEvaluator(self.base.with_seed_set(seed_set))

    def set_device(self, device: str) -> None:
        for evaluator in (self.base, *self._of.values()):
            evaluator.set_device(device)

    def prepare(self) -> None:
        self.base.prepare()

    def evaluate(self, genome: Sequence[int] | str) -> EvaluationRecord:
        if isinstance(genome, str) and is_shaped(genome):
            shaped = ShapedGenome.parse(genome)
            record = self.of_shape(shaped.shape).evaluate(shaped.genes)
            return dataclasses.replace(record, genome=shaped.text)
        return self.base.evaluate(genome)

    def evaluate_many(self, genomes: Sequence) -> list[EvaluationRecord | Exception]:
        """One by one (a chunk may mix shapes, which cannot distil in one lockstep population)."""
        return evaluate_each(self, genomes)
