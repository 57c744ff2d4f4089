"""Proxy fitness (Jiao et al. 2020): distil on a fixed corpus slice, fine-tune on proxy tasks.

``fitness(g)`` = mean over the proxy tasks of the GLUE-style task score (percent) of a
student that was distilled with mapping ``g`` on the proxy slice and then fine-tuned on each
task's (subsampled) training set and scored on its dev set.

Everything but the mapping is fixed by the settings: every genome starts from the same
student initialisation (``distill.seed``), sees the same corpus slice in the same order, and
is fine-tuned on the same task subsamples with the same seed.  The teacher's outputs on the
slice are computed once and reused by every genome (:mod:`layermap.distill.teacher_cache`).

Noise: ``proxy.repeats = R`` fine-tunes each task with seeds ``proxy.seed + r`` (r < R); the
fitness is the mean of the R replicate fitnesses and the record keeps every replicate and the
standard error.  ``proxy.head = "probe"`` replaces fine-tuning by a linear probe on the frozen
student's features (:mod:`proxy_tasks.probe`): no fine-tuning seed, a fraction of the cost.

The evaluator is this module; what it loads (:mod:`.proxy_state`), how its fingerprint is made
(:mod:`.proxy_identity`), how it scores a student (:mod:`.proxy_scoring`) and how it measures its reference rows
(:mod:`.proxy_references`) are modules of their own.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch

from ..config import Config, digest
from ..distill.corpus import check_source, corpus_identity
from ..distill.identity import teacher_label
from ..distill.loop import distill
from ..distill.models import StudentSpec, build_student, init_student_from_teacher, load_teacher_config, pick_device, \
    teacher_identity
from ..executors.protocol import evaluate_each
from ..executors.safety import GenomeJobs
from ..extraction import Genome, SplitGenome, check_config_extraction, parse_genome, slice_matters, start_mapping
from ..mapping import LayerMapping
from ..storage.records import EvaluationRecord, TaskScore
from . import proxy_references, proxy_scoring
from .proxy_identity import identity_parts
from .proxy_scoring import make_record
from .proxy_state import ProxyState, load_reference_state, load_state

if TYPE_CHECKING:
    from .references import References


class ProxyEvaluator(GenomeJobs):
    """Picklable proxy-fitness function: holds the config, loads heavy state lazily per process.  An evaluator and a
    worker (:class:`~layermap.executors.protocol.Worker`: its jobs are genomes, :class:`~layermap.executors.safety.GenomeJobs`)."""

    def __init__(self, config: Config, *, progress: bool = False) -> None:
        self.config = config
        self.progress = progress
        self._device = config.run.device
        from ..executors.devices import fingerprint_device_class

        self._device_class = fingerprint_device_class(config.run) if config.run.executor == "ray" else None
        self._fingerprint: str | None = None
        self._teacher_config = load_teacher_config(config.teacher.name, config.teacher.revision)
        check_config_extraction(config, self._teacher_config)    # a student the teacher extraction cannot cut: exit 2
        check_source(config.corpus.path)                  # a missing corpus fails now, not inside the search
        from ..distill.precision import check_precision

        if self._device_class != "cuda":                  # Ray GPU workers check it where they run
            check_precision(config.distill.precision, pick_device(self._device) if self._device_class is None
                            else torch.device(self._device_class))       # tf32/bf16 where it cannot run: exit 2
        self._state: ProxyState | None = None

    def __getstate__(self) -> dict:
        d = dict(self.__dict__)
        d["_state"] = None          # never ship the teacher to a worker: it loads its own
        return d

    # -- description ---------------------------------------------------------------------------
    @property
    def teacher_layers(self) -> int:
        return int(self._teacher_config.num_hidden_layers)

    @property
    def student_layers(self) -> int:
        return self.config.student.layers

    @property
    def spec(self) -> StudentSpec:
        s = self.config.student
        return StudentSpec.resolve(self._teacher_config, s.layers, s.hidden_size, s.heads, s.ffn)

    def describe(self) -> dict:
        c = self.config
        return {"teacher": teacher_label(c.teacher.name), "teacher_identity": teacher_identity(c.teacher.name, c.teacher.revision),
                "teacher_layers": self.teacher_layers,
                "teacher_hidden_size": int(self._teacher_config.hidden_size),
                "teacher_heads": int(self._teacher_config.num_attention_heads),
                "student": self._student_description(),
                "tasks": list(self.config.proxy.tasks), "reference_fingerprint": self.reference_fingerprint}

    def _student_description(self) -> dict:
        spec = self.spec
        s = self.config.student
        sliced = slice_matters(s.init, spec.hidden_size, spec.heads, spec.ffn, self._teacher_config)
        return {"layers": spec.layers, "hidden_size": spec.hidden_size, "heads": spec.heads, "ffn": spec.ffn,
                "init": s.init, **s.slice_identity(sliced)}              # (older records' keys hold)

    @property
    def fingerprint(self) -> str:
        """Hash of everything that changes a fitness value, and of nothing else."""
        if self._fingerprint is None:
            self._fingerprint = self.fingerprint_on(self.device_class)
        return self._fingerprint

    def fingerprint_on(self, device_class: str) -> str:
        """The fingerprint these settings have on a device of ``device_class`` (cpu, cuda, mps)."""
        c = self.config
        parts = identity_parts(c, self._student_description(), device_class)
        parts.update({
            "corpus": corpus_identity(c.corpus.path),
            "slice": {k: getattr(c.corpus, k) for k in c.corpus.__dataclass_fields__ if k != "path"},
            "distill": {k: getattr(c.distill, k) for k in c.distill.__dataclass_fields__ if k != "checkpoint_every"},
        })
        return digest(parts)[:32]

    @property
    def reference_fingerprint(self) -> str:
        """Hash of everything that changes the reference rows: the fitness's settings without the corpus and the
        distillation budget (no reference row distils), with the student's initialisation seed and the number of
        seed sets, on the device class this process measures them on (:meth:`references` runs where it is called: in
        a Ray driver that is the driver's own device, not its workers' class)."""
        c = self.config
        parts = identity_parts(c, self._student_description(), pick_device(self._device).type)
        parts.update({"kind": "references", "init_seed": c.distill.seed, "seed_sets": c.proxy.reference_seed_sets})
        if c.student.init == "teacher":      # the truncation and random rows, not the uniform extraction of old
            parts["rows"] = list(proxy_references.student_row_names(c.student.init))
        return digest(parts)[:32]

    @property
    def device_class(self) -> str:
        """``cpu`` or ``cuda`` (or ``mps``): the kind of device evaluations run on, part of the fingerprint.  In the
        driver of a Ray run, the workers' (:func:`layermap.executors.devices.worker_device`); in a worker, its own."""
        return self._device_class or pick_device(self._device).type

    def set_device(self, device: str) -> None:
        """Compute on ``device`` from now on (a worker's own device: its records are stamped with it)."""
        before = self.device_class
        self._device, self._device_class = device, None
        if self.device_class != before:
            self._fingerprint = None           # another device class is another fingerprint
        self._state = None

    def with_seed_set(self, seed_set: int) -> "ProxyEvaluator":
        """The evaluator of seed set ``seed_set`` (a replicate): ``distill.seed`` and ``proxy.seed`` raised by it, so
        its fingerprint is that of those settings and its records are cached like any other fitness."""
        c = self.config
        other = copy.copy(self)
        other.config = c.replace(distill=dataclasses.replace(c.distill, seed=c.distill.seed + seed_set),
                                 proxy=dataclasses.replace(c.proxy, seed=c.proxy.seed + seed_set))
        other._fingerprint = None
        other._state = None
        return other

    @property
    def teacher_config(self):
        """The teacher's ``transformers`` config (depth, widths, vocabulary): what a shape grid and costs need."""
        return self._teacher_config

    def with_shape(self, shape) -> "ProxyEvaluator":
        """The evaluator of a student of ``shape`` (a :class:`layermap.shape.StudentShape`; a joint shape search):
        ``config.student``'s sizes replaced by it, the teacher, corpus and tasks this process loaded shared.  Its
        records are kept by :class:`layermap.evaluators.shaped.ShapedEvaluator` under this evaluator's
        fingerprint, keyed by the shaped genome's text."""
        st = self._load()
        other = copy.copy(self)
        other.config = self.config.replace(student=dataclasses.replace(
            self.config.student, layers=shape.layers, hidden_size=shape.hidden_size, heads=shape.heads, ffn=shape.ffn))
        other._fingerprint = None
        spec = other.spec
        init = build_student(st.teacher.model.config, spec, seed=other.config.distill.seed)
        other._state = dataclasses.replace(st, spec=spec, init_state=copy.deepcopy(init.state_dict()))
        return other

    # -- evaluation ----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Load the teacher, tokenise the slice and fill the teacher cache (the driver calls this
        before starting workers, so they find everything on disk).  On a GPU with ``run.population`` > 1 it also
        distils one step of a population of that size: one that does not fit the memory is a ConfigError
        naming the largest that does."""
        st = self._load()
        k = self.config.run.population
        if k > 1 and st.device.type == "cuda":
            from ..distill.population import check_population_fits

            check_population_fits(k, self._trial_population, st.device)

    def _trial_population(self, k: int) -> None:
        """One distillation step of ``k`` students in the worst case a chunk can meet (the memory check of
        :meth:`prepare`): all teacher layers read, ``k`` teacher tensors per mapped student layer."""
        from ..distill.population import distill_population, worst_case_mappings

        st = self._load()
        mappings = worst_case_mappings(k, self.student_layers, self.teacher_layers)
        settings = dataclasses.replace(self.config.distill, max_steps=1, checkpoint_every=0)
        distill_population([self.new_student(m) for m in mappings], st.source, mappings, st.segments,
                           settings, teacher_width=st.teacher.hidden_size, device=st.device)

    def _load(self) -> ProxyState:
        if self._state is None:
            self._state = load_state(self.config, self.spec, pick_device(self._device), progress=self.progress)
        return self._state

    def use_state(self, state: ProxyState) -> None:
        """Score on ``state`` from now on (the reference rows' seed sets share one teacher)."""
        self._state = state

    def reference_state(self) -> ProxyState:
        """The loaded state, or, before any evaluation (``layermap validate``), the teacher and the tasks alone: the
        reference rows need neither the corpus nor the teacher's outputs on it."""
        return self._state if self._state is not None else load_reference_state(self.config, self.spec,
                                                                                 pick_device(self._device))

    def new_student(self, mapping: Genome):
        """The common initialisation (or teacher extraction for ``student.init = teacher``: each student layer starts
        from the teacher layer the genome names, a split genome's init part)."""
        st = self._load()
        student = build_student(st.teacher.model.config, st.spec, seed=self.config.distill.seed)
        student.load_state_dict(st.init_state)
        if self.config.student.init == "teacher":
            init_student_from_teacher(student, st.teacher.model, start_mapping(mapping), self.config.student.slice)
        return student

    def genome(self, genes: Sequence[int] | str) -> Genome:
        """A job's genome: genes (a coupled genome) or a split genome's text (``1-2-3+2-4-6``, which needs
        ``student.init = "teacher"``)."""
        if isinstance(genes, str):
            return parse_genome(genes, self.teacher_layers, student_layers=self.student_layers,
                                init=self.config.student.init)
        return LayerMapping(tuple(genes), self.teacher_layers)

    def evaluate(self, genes: Sequence[int] | str) -> EvaluationRecord:
        t_start = time.perf_counter()
        st = self._load()
        mapping = self.genome(genes)
        student = self.new_student(mapping)
        if st.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(st.device)
        t0 = time.perf_counter()
        checkpoints = self.checkpoint_dir(mapping) if self.config.distill.checkpoint_every else None
        _, stats = distill(student, st.source, mapping, st.segments, self.config.distill,
                           teacher_width=st.teacher.hidden_size, device=st.device, progress=self.progress,
                           desc=f"distilling {mapping}", checkpoint_dir=checkpoints, run_digest=self.fingerprint)
        t_distill = time.perf_counter() - t0
        timings = {"setup": t0 - t_start, "distill": t_distill, "distill_teacher": stats.teacher_seconds,
                   "distill_student": stats.seconds - stats.teacher_seconds}
        tasks, fitness_replicates = self.score_student(student, timings)
        timings["total"] = time.perf_counter() - t_start
        if checkpoints is not None:
            shutil.rmtree(checkpoints, ignore_errors=True)
        return make_record(mapping, tasks, fitness_replicates, stats.final_loss, timings, st.device)

    def evaluate_many(self, genomes: Sequence[Sequence[int]]) -> list[EvaluationRecord | Exception]:
        """Evaluate a chunk of genomes as one lockstep population (``run.population``): their students are distilled
        together against one teacher pass per batch (:func:`layermap.distill.population.distill_population`), then
        scored (the probe extracts all students' features in one pass per batch; fine-tuning runs per student).

        Returns one :class:`EvaluationRecord` per genome, or the exception that genome's evaluation raised (a NaN in
        one student fails that genome alone).  The distillation's wall time is shared equally among the genomes.
        With ``distill.checkpoint_every`` > 0 (resumable per-genome distillations) the genomes are evaluated one
        by one, as :meth:`evaluate` does."""
        if len(genomes) == 1 or self.config.distill.checkpoint_every:
            return evaluate_each(self, genomes)
        t_start = time.perf_counter()
        st = self._load()
        genomes_ = [self.genome(genes) for genes in genomes]
        mappings = [g.mapping if isinstance(g, SplitGenome) else g for g in genomes_]     # what each distils towards
        students = [self.new_student(g) for g in genomes_]
        if st.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(st.device)
        t0 = time.perf_counter()
        from ..distill.population import distill_population

        results = distill_population(students, st.source, mappings, st.segments, self.config.distill,
                                     teacher_width=st.teacher.hidden_size, device=st.device, progress=self.progress,
                                     desc=f"distilling {len(mappings)} genomes in lockstep")
        k = len(mappings)
        t_distill = (time.perf_counter() - t0) / k
        setup = (t0 - t_start) / k
        ok = [r for r in results if r.ok]
        timings = {id(r): {"setup": setup, "distill": t_distill, "distill_teacher": r.stats.teacher_seconds / k,
                           "distill_student": t_distill - r.stats.teacher_seconds / k} for r in ok}
        scored: dict[int, tuple] = {}
        if ok and self.config.proxy.head == "probe":
            for r, outcome in zip(ok, self.score_students([r.student for r in ok], [timings[id(r)] for r in ok])):
                scored[id(r)] = outcome
        else:
            for r in ok:
                try:
                    scored[id(r)] = self.score_student(r.student, timings[id(r)])
                except Exception as exc:  # noqa: BLE001 - one genome's failure is its own
                    scored[id(r)] = exc
        out: list[EvaluationRecord | Exception] = []
        for r, genome in zip(results, genomes_):
            if not r.ok:
                out.append(r.error)
                continue
            outcome = scored[id(r)]
            if isinstance(outcome, Exception):
                out.append(outcome)
                continue
            tasks, replicates = outcome
            t = timings[id(r)]
            t["total"] = sum(v for key, v in t.items() if key in ("setup", "distill", "finetune", "eval"))
            out.append(make_record(genome, tasks, replicates, r.stats.final_loss, t, st.device))
        return out

    def score_students(self, students: list, timings: list[dict[str, float]]) -> list[tuple | Exception]:
        """:func:`layermap.evaluators.proxy_scoring.score_students`: the probe head for K students in one pass."""
        return proxy_scoring.score_students(self._load(), self.config, students, timings)

    # -- reference rows --------------------------------------------------------------------------
    def references(self, store=None) -> "References":
        """The reference rows of these settings (:mod:`layermap.evaluators.references`): from ``store`` or the file
        cache when they were measured before (same :attr:`reference_fingerprint`), else measured now and cached in
        both, so a check costs once per fingerprint."""
        from .references import cached_references

        return cached_references(self.reference_fingerprint, self.compute_references, self.cache_dir(),
                                 store).with_measured_noise(self.config.proxy.task_noise_map())

    def cache_dir(self) -> Path:
        from ..distill.corpus import default_cache_dir

        return default_cache_dir(self.config.run.cache_dir)

    def compute_references(self) -> "References":
        """Measure the reference rows (:func:`layermap.evaluators.proxy_references.compute_references`)."""
        return proxy_references.compute_references(self)

    def shape_references(self, shape, store=None) -> "References":
        """The reference rows of a genome of student ``shape``
        (:func:`layermap.evaluators.proxy_references.shape_references`)."""
        return proxy_references.shape_references(self, shape, store)

    def checkpoint_dir(self, mapping: LayerMapping) -> Path:
        """Where an evaluation's distillation checkpoints (``distill.checkpoint_every`` > 0) live until it
        finishes: a killed evaluation resumes from there in the next run or ``--resume``."""
        from ..distill.corpus import default_cache_dir

        return default_cache_dir(self.config.run.cache_dir) / "checkpoints" / self.fingerprint / mapping.text

    def score_student(self, student, timings: dict[str, float] | None = None, head: str | None = None,
                      task_data: tuple | None = None) -> tuple[dict[str, TaskScore], list[float]]:
        """Score a distilled student on the proxy tasks with ``head`` (default ``proxy.head``): the task scores and
        each replicate's fitness (:func:`layermap.evaluators.proxy_scoring.score_student`)."""
        return proxy_scoring.score_student(self._load(), self.config, student, timings, head, task_data,
                                           progress=self.progress)
