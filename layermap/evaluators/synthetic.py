"""An analytic fitness landscape over genomes: a test and benchmark fixture for the GA machinery.

:class:`SyntheticEvaluator` is *not* a stand-in for the proxy fitness.  It exists so that the
search (operators, caching, executors, checkpoint / resume) can be tested and studied on a
landscape whose optimum is known, in milliseconds instead of minutes per genome:

    fitness(g) = 100 - sum_m penalty(g_m, o_m)  (+ optional deterministic noise)

where ``o`` is the known optimum genome (by default the ``uniform`` baseline shifted down by one
layer on the first student layer, so that no baseline is the optimum), ``penalty(g, o)`` is
``|g - o|`` for a mapped layer and ``zero_penalty`` for ``g = 0`` (no loss on that layer).  The
noise is a hash of the genome and ``seed``: the same genome always gets the same fitness, in any
process, which is what the cache and resume tests need.  It is uniform in ``[-noise, noise)``, or, with
``noise_dist = "gaussian"``, normal with standard deviation ``noise``.  Seed set ``r`` of a noise-aware search
(:meth:`SyntheticEvaluator.with_seed_set`) is the same landscape with ``seed + r``: another draw of the noise
for every genome, as another distillation and fine-tuning seed would give.

Two "tasks" (``syn_a``, ``syn_b``) are reported whose mean is the fitness, so records look like
the proxy's.  Options for failure tests: ``fail_genomes`` raise a ``RuntimeError``,
``nan_genomes`` return a NaN fitness, ``crash_genomes`` kill the evaluating process with
``os._exit`` (worker-death tests with the process or Ray executor; never with ``local``).
``delay`` sleeps per evaluation (kill tests); ``log_path`` appends ``genome pid device`` per call to a
file, so tests can count evaluator calls across processes.

**Two objectives** (the NSGA-II fixture, ``search.strategy = "nsga2"``).  :meth:`SyntheticEvaluator.with_shape` is
the landscape of a student of another shape: the optimum is the default one at its depth and the fitness loses
:func:`shape_penalty` (larger students score higher: ``SHAPE_WEIGHT`` x the missing fraction of the teacher's depth
and width, a fifth of it for a narrow FFN, a twentieth for fewer heads).  :meth:`SyntheticEvaluator.costs` gives ``params`` and ``flops`` by the
BERT formulas (:mod:`layermap.deploy.cost`) for the synthetic teacher family (:attr:`teacher_config`: vocabulary
``SYNTHETIC_VOCAB``) and a synthetic ``latency`` of ``flops / 1e6`` "ms" (nothing is timed).  So each shape's best
genome is known (its optimum mapping, penalty 0) and the true Pareto front is the non-dominated set of those.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import statistics
import os
import time
from dataclasses import dataclass, field
from typing import Sequence

from ..config import digest
from ..errors import LayermapError
from ..mapping import format_genes, parse_genes
from ..storage.records import EvaluationRecord, TaskScore
from ..executors.protocol import evaluate_each

KIND = "synthetic"
SHAPE_WEIGHT = 10.0
SYNTHETIC_VOCAB = 1000


@dataclass
class SyntheticEvaluator:
    """Deterministic, picklable evaluator with a known optimum (see the module docstring)."""

    teacher_layers: int = 12
    student_layers: int = 4
    optimum: tuple[int, ...] = ()
    zero_penalty: float = 4.0
    noise: float = 0.0
    seed: int = 0
    noise_dist: str = "uniform"    # uniform in [-noise, noise) | gaussian with std noise
    delay: float = 0.0
    fail_genomes: tuple[str, ...] = ()
    nan_genomes: tuple[str, ...] = ()
    crash_genomes: tuple[str, ...] = ()
    log_path: str = ""
    teacher_width: int = 64        # hidden sizes reported by describe() (for exports); no effect on fitness
    student_width: int = 32
    shape_loss: float = 0.0        # subtracted from every fitness (with_shape: the shape's penalty)
    shape_text: str = field(default="", compare=False)   # with_shape: the shape, logged before the genome
    device: str = field(default="cpu", compare=False)

    def __post_init__(self) -> None:
        if self.teacher_layers < 1 or self.student_layers < 1:
            raise LayermapError(
                f"SyntheticEvaluator needs positive layer counts, got teacher {self.teacher_layers} and student {self.student_layers}"
            )
        self.optimum = tuple(int(g) for g in (self.optimum or _default_optimum(self.student_layers, self.teacher_layers)))
        if len(self.optimum) != self.student_layers or not all(0 <= g <= self.teacher_layers for g in self.optimum):
            raise LayermapError(
                f"SyntheticEvaluator optimum {format_genes(self.optimum)} needs {self.student_layers} genes in 0..{self.teacher_layers}"
            )
        if self.noise_dist not in ("uniform", "gaussian"):
            raise LayermapError(f"SyntheticEvaluator noise_dist must be 'uniform' or 'gaussian', got {self.noise_dist!r}")
        for name in ("fail_genomes", "nan_genomes", "crash_genomes"):
            setattr(self, name, tuple(format_genes(parse_genes(t)) for t in getattr(self, name)))

    @property
    def fingerprint(self) -> str:
        """Hash of everything that changes a fitness (not ``delay``, ``log_path``, widths or ``device``)."""
        parts = {
            "kind": KIND, "teacher_layers": self.teacher_layers, "student_layers": self.student_layers,
            "optimum": list(self.optimum), "zero_penalty": self.zero_penalty, "noise": self.noise,
            "seed": self.seed, "fail": sorted(self.fail_genomes), "nan": sorted(self.nan_genomes),
            "crash": sorted(self.crash_genomes),
        }
        if self.noise_dist != "uniform":           # enters only when not the default, so older fingerprints stay
            parts["noise_dist"] = self.noise_dist
        if self.shape_loss:
            parts["shape_loss"] = self.shape_loss
        return digest(parts)

    def describe(self) -> dict:
        """Provenance for the run row; ``rebuild_synthetic`` turns it back into an evaluator."""
        return {
            "kind": KIND, "teacher": "synthetic", "teacher_layers": self.teacher_layers,
            "teacher_hidden_size": self.teacher_width,
            "student": {"layers": self.student_layers, "hidden_size": self.student_width},
            "params": {
                "teacher_layers": self.teacher_layers, "student_layers": self.student_layers,
                "optimum": list(self.optimum), "zero_penalty": self.zero_penalty, "noise": self.noise,
                "seed": self.seed, "noise_dist": self.noise_dist, "delay": self.delay, "fail_genomes": list(self.fail_genomes),
                "nan_genomes": list(self.nan_genomes), "crash_genomes": list(self.crash_genomes),
                "teacher_width": self.teacher_width, "student_width": self.student_width,
            },
        }

    @property
    def device_class(self) -> None:
        """None: the landscape computes on no device, so its records carry no environment to check."""
        return None

    def prepare(self) -> None:
        """Nothing to load."""

    def set_device(self, device: str) -> None:
        self.device = device                          # logged per evaluation (the executors' pinning tests)

    def evaluate_many(self, genomes: Sequence) -> list[EvaluationRecord | Exception]:
        return evaluate_each(self, genomes)

    def with_seed_set(self, seed_set: int) -> "SyntheticEvaluator":
        """Seed set ``seed_set`` of a noise-aware search: the same landscape, the noise drawn with ``seed + seed_set``."""
        return dataclasses.replace(self, seed=self.seed + seed_set)

    def score(self, genes: Sequence[int]) -> float:
        """The noiseless-plus-noise fitness of ``genes`` (no failure options, no delay)."""
        penalty = sum(self.zero_penalty if g == 0 else abs(g - o) for g, o in zip(genes, self.optimum))
        u = _unit_hash(format_genes(genes), self.seed)
        if self.noise_dist == "gaussian":
            u = statistics.NormalDist().inv_cdf(min(max((u + 1.0) / 2.0, 1e-12), 1.0 - 1e-12))
        return 100.0 - penalty - self.shape_loss + self.noise * u

    # -- the two-objective landscape (module docstring) ----------------------------------------------
    @property
    def teacher_config(self):
        """A BERT config of the synthetic teacher (what shape grids and cost formulas read)."""
        from types import SimpleNamespace

        heads = max(a for a in (4, 2, 1) if self.teacher_width % a == 0)
        return SimpleNamespace(model_type="bert", num_hidden_layers=self.teacher_layers, hidden_size=self.teacher_width,
                               num_attention_heads=heads, intermediate_size=4 * self.teacher_width,
                               vocab_size=SYNTHETIC_VOCAB, max_position_embeddings=512, type_vocab_size=2)

    @property
    def fixed_shape(self):
        """The shape of this evaluator's student (heads: the largest of 4, 2, 1 dividing its width; FFN 4 x width)."""
        from ..shape import StudentShape

        heads = max(a for a in (4, 2, 1) if self.student_width % a == 0)
        return StudentShape(self.student_layers, self.student_width, heads, 4 * self.student_width)

    def with_shape(self, shape) -> "SyntheticEvaluator":
        """The landscape of a student of ``shape``: the default optimum at its depth, fitness less its
        :func:`shape_penalty`."""
        return dataclasses.replace(self, student_layers=shape.layers, student_width=shape.hidden_size, optimum=(),
                                   shape_loss=shape_penalty(shape, self.teacher_layers, self.teacher_width,
                                                            self.teacher_config.num_attention_heads),
                                   shape_text=shape.text)

    def costs(self, shape, names: Sequence[str], store=None) -> dict[str, float]:
        """``params`` and ``flops`` by formula, ``latency`` = flops / 1e6 (synthetic, never timed), for the names asked."""
        from ..deploy.cost import shape_costs

        fixed = shape_costs(shape, self.teacher_config)
        values = {"params": float(fixed["params"]), "flops": float(fixed["flops"]), "latency": fixed["flops"] / 1e6}
        return {name: values[name] for name in names if name in values}

    def evaluate(self, genes: Sequence[int]) -> EvaluationRecord:
        genes = tuple(int(g) for g in genes)
        text = format_genes(genes)
        if len(genes) != self.student_layers or not all(0 <= g <= self.teacher_layers for g in genes):
            raise ValueError(f"genome {text} does not fit {self.student_layers} genes in 0..{self.teacher_layers}")
        start = time.perf_counter()
        self._log(text)
        if self.delay > 0:
            time.sleep(self.delay)
        if text in self.crash_genomes:
            os._exit(17)
        if text in self.fail_genomes:
            raise RuntimeError(f"synthetic failure for genome {text}")
        fitness = math.nan if text in self.nan_genomes else self.score(genes)
        spread = 2.0 * _unit_hash(text, self.seed + 1)
        tasks = {
            "syn_a": TaskScore(metrics={"accuracy": fitness + spread}, score=fitness + spread),
            "syn_b": TaskScore(metrics={"accuracy": fitness - spread}, score=fitness - spread),
        }
        total = time.perf_counter() - start
        return EvaluationRecord(genome=text, fitness=fitness, tasks=tasks, distill_loss=max(0.0, 100.0 - fitness) / 100.0,
                                timings={"total": total})

    def _log(self, text: str) -> None:
        if self.log_path:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(f"{self.shape_text + ':' if self.shape_text else ''}{text} {os.getpid()} {self.device} {self.seed}\n")


def rebuild_synthetic(description: dict) -> SyntheticEvaluator:
    """The evaluator a run row's ``describe()`` came from (for resuming synthetic runs)."""
    if description.get("kind") != KIND:
        raise LayermapError("this run was not made with the synthetic evaluator")
    params = dict(description["params"])
    for name in ("optimum", "fail_genomes", "nan_genomes", "crash_genomes"):
        params[name] = tuple(params.get(name, ()))
    return SyntheticEvaluator(**params)


def shape_penalty(shape, teacher_layers: int, teacher_width: int, teacher_heads: int = 1) -> float:
    """What a student of ``shape`` loses against the teacher's size: ``SHAPE_WEIGHT`` x (the missing fraction of the
    teacher's depth + of its width + a fifth of the missing fraction of a 4 x hidden FFN + a twentieth of the missing
    fraction of its heads, which cost no parameters: fewer heads at the same size are dominated)."""
    missing = (max(0.0, 1 - shape.layers / teacher_layers) + max(0.0, 1 - shape.hidden_size / teacher_width)
               + 0.2 * max(0.0, 1 - shape.ffn / (4 * shape.hidden_size))
               + 0.05 * max(0.0, 1 - shape.heads / teacher_heads))
    return SHAPE_WEIGHT * missing


def read_call_log(path: str | os.PathLike, with_seed: bool = False) -> list:
    """Genomes in the order ``log_path`` recorded their evaluations (one per call, any process); with ``with_seed``
    ``(genome, seed)`` pairs (the seed tells a racing run's seed sets apart)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.split() for line in f if line.strip()]
            return [(p[0], int(p[3]) if len(p) > 3 else 0) if with_seed else p[0] for p in lines]
    except FileNotFoundError:
        return []


def _default_optimum(student_layers: int, teacher_layers: int) -> tuple[int, ...]:
    """Evenly spread genes, the first one a layer lower: not one of the four baselines."""
    genes = [max(1, min(teacher_layers, math.floor(m * teacher_layers / student_layers + 0.5))) for m in range(1, student_layers + 1)]
    genes[0] = max(1, genes[0] - 1) if teacher_layers > 1 else genes[0]
    return tuple(genes)


def _unit_hash(text: str, seed: int) -> float:
    """A deterministic number in [-1, 1) from a genome and a seed, equal in every process."""
    h = hashlib.sha256(f"{seed}:{text}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**63 - 1.0
