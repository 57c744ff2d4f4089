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
"""

from __future__ import annotations

import copy
import dataclasses
import math
import platform
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from ..config import Config, digest
from ..distill.identity import teacher_label
from ..logs import get_logger
from ..distill.corpus import Segments, check_source, corpus_identity, load_segments
from ..distill.loop import LiveTeacher, TeacherSource, distill
from ..extraction import Genome, SplitGenome, check_config_extraction, parse_genome, start_mapping
from ..mapping import LayerMapping
from ..distill.models import StudentSpec, Teacher, build_student, init_student_from_teacher, load_teacher, load_teacher_config, \
    pick_device, quiet_transformers, teacher_identity
from ..stats import mean_and_stderr, sample_var
from ..storage.records import EvaluationRecord, TaskScore, environment
from ..executors.protocol import evaluate_each
from ..executors.safety import GenomeJobs

if TYPE_CHECKING:
    from .references import References

_log = get_logger(__name__)

FITNESS_FORMAT = 3          # bump when the fitness computation or its fingerprint changes meaning (head/repeats
                            # enter the fingerprint only when not finetune/1, so records from before them keep their key).
                            # 2: the teacher's identity covers its tokenizer files, and hub names (teacher, datasets
                            # corpus, hub GLUE tasks) carry the commit their revision resolves to
                            # 3: the device class (cpu / cuda) and distill.precision enter: the same genome and seeds
                            # scored 60.54 on a CPU and 61.78 on CUDA, so a shared cache must not mix them.  Stores of
                            # format 2 stay readable (show, export, plot read rows, not fingerprints); their records
                            # are not reused by new runs


@dataclass
class _State:
    """What one process loads once and reuses for every genome."""

    teacher: Teacher
    segments: Segments
    source: TeacherSource
    spec: StudentSpec
    init_state: dict[str, torch.Tensor]
    tasks: tuple            # proxy_tasks.TaskData per task
    device: torch.device


def finetune_settings(config: Config):
    from proxy_tasks import FinetuneSettings

    p = config.proxy
    return FinetuneSettings(epochs=p.epochs, batch_size=p.batch_size, learning_rate=p.learning_rate,
                            max_seq_len=p.seq_len, seed=p.seed)


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
        self._state: _State | None = None

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
        return {"layers": spec.layers, "hidden_size": spec.hidden_size, "heads": spec.heads, "ffn": spec.ffn,
                "init": self.config.student.init}

    @property
    def fingerprint(self) -> str:
        """Hash of everything that changes a fitness value, and of nothing else."""
        if self._fingerprint is None:
            self._fingerprint = self.fingerprint_on(self.device_class)
        return self._fingerprint

    def fingerprint_on(self, device_class: str) -> str:
        """The fingerprint these settings have on a device of ``device_class`` (cpu, cuda, mps)."""
        c = self.config
        parts = self._identity_parts(device_class)
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
        parts = self._identity_parts(pick_device(self._device).type)
        parts.update({"kind": "references", "init_seed": c.distill.seed, "seed_sets": c.proxy.reference_seed_sets})
        if c.student.init == "teacher":      # the truncation and random rows, not the uniform extraction of old
            parts["rows"] = list(self._student_row_names())
        return digest(parts)[:32]

    def _student_row_names(self) -> tuple[str, ...]:
        """The undistilled students' reference rows: ``no distillation`` (random init), or ``truncation`` and
        ``random`` (teacher init, :mod:`layermap.evolution.references`)."""
        from .references import RANDOM, ROW_NAMES, TRUNCATION

        return (TRUNCATION, RANDOM) if self.config.student.init == "teacher" else (ROW_NAMES[1],)

    def _identity_parts(self, device_class: str) -> dict:
        from proxy_tasks import data_fingerprint

        c = self.config
        return {
            "format": FITNESS_FORMAT,
            "teacher": teacher_identity(c.teacher.name, c.teacher.revision),
            "student": self._student_description(),
            "proxy": _proxy_identity(c.proxy),
            "data": {t: data_fingerprint(t, c.proxy.glue_dir or None) for t in c.proxy.tasks},
            "device": device_class,
            "versions": {"torch": ".".join(torch.__version__.split(".")[:2]),
                         "transformers": _major_minor("transformers")},
        }

    @property
    def device_class(self) -> str:
        """``cpu`` or ``cuda`` (or ``mps``): the kind of device evaluations run on, part of the fingerprint.  In the
        driver of a Ray run, the workers' (:func:`layermap.evolution.executors.worker_device`); in a worker, its own."""
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
        records are kept by :class:`layermap.evolution.shaped_evaluator.ShapedEvaluator` under this evaluator's
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

    def _load(self) -> _State:
        if self._state is not None:
            return self._state

        c = self.config
        quiet_transformers()
        device = pick_device(self._device)
        started = time.perf_counter()
        _log.info(f"preparing: loading the teacher {teacher_label(c.teacher.name)}")      # INFO: a worker shows none
        teacher = load_teacher(c.teacher.name, c.teacher.revision, device=device)
        _log.info(f"preparing: tokenising the corpus {Path(c.corpus.path).name} into {c.corpus.seq_len}-token segments")
        segments = load_segments(c.corpus.path, teacher.tokenizer, seq_len=c.corpus.seq_len,
                                 max_segments=c.corpus.max_segments, fraction=c.corpus.fraction, seed=c.corpus.seed,
                                 max_documents=c.corpus.max_documents, cache_dir=c.run.cache_dir, progress=self.progress)
        if c.proxy.teacher_cache:
            from ..distill.teacher_cache import build_teacher_cache

            _log.info(f"preparing: caching the teacher's outputs on {len(segments)} segments")
            source: TeacherSource = build_teacher_cache(teacher, segments, cache_dir=c.run.cache_dir,
                                                        device=device, progress=self.progress)
        else:
            source = LiveTeacher(teacher.model)
        spec = self.spec
        init = build_student(teacher.model.config, spec, seed=c.distill.seed)
        tasks = self._load_tasks(c.proxy.seed)
        self._state = _State(teacher=teacher, segments=segments, source=source, spec=spec,
                             init_state=copy.deepcopy(init.state_dict()), tasks=tasks, device=device)
        _log.info(f"prepared in {time.perf_counter() - started:.0f}s: {len(segments)} segments, proxy tasks "
                  f"{', '.join(c.proxy.tasks)}; the first evaluation follows")
        return self._state

    def _load_tasks(self, seed: int) -> tuple:
        """The proxy tasks' data, subsampled with ``seed``."""
        from proxy_tasks import load_task

        p = self.config.proxy
        return tuple(load_task(t, p.glue_dir or None, max_train=p.max_train or None, max_eval=p.max_eval or None,
                               seed=seed) for t in p.tasks)

    def _reference_state(self) -> _State:
        """The loaded state, or, before any evaluation (``layermap validate``), the teacher and the tasks alone: the
        reference rows need neither the corpus nor the teacher's outputs on it."""
        if self._state is not None:
            return self._state

        c = self.config
        quiet_transformers()
        device = pick_device(self._device)
        teacher = load_teacher(c.teacher.name, c.teacher.revision, device=device)
        tasks = self._load_tasks(c.proxy.seed)
        return _State(teacher=teacher, segments=None, source=None, spec=self.spec, init_state={}, tasks=tasks,
                      device=device)

    def new_student(self, mapping: Genome):
        """The common initialisation (or teacher extraction for ``student.init = teacher``: each student layer starts
        from the teacher layer the genome names, a split genome's init part)."""
        st = self._load()
        student = build_student(st.teacher.model.config, st.spec, seed=self.config.distill.seed)
        student.load_state_dict(st.init_state)
        if self.config.student.init == "teacher":
            init_student_from_teacher(student, st.teacher.model, start_mapping(mapping))
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
        return _record(mapping, tasks, fitness_replicates, stats.final_loss, timings, st.device)

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
            out.append(_record(genome, tasks, replicates, r.stats.final_loss, t, st.device))
        return out

    def score_students(self, students: list, timings: list[dict[str, float]]) -> list[tuple | Exception]:
        """:meth:`score_student` with the probe head for K students of one spec: every task's features of all K come
        from one batched pass per batch (:func:`proxy_tasks.probe.probe_and_score_many`), the fits stay per student.
        A task that fails fails every student (the same data would fail each alone)."""
        try:
            return self._probe_scores(students, timings)
        except Exception as exc:  # noqa: BLE001
            return [exc for _ in students]

    def _probe_scores(self, students: list, timings: list[dict[str, float]],
                      task_data: tuple | None = None) -> list[tuple[dict[str, TaskScore], list[float]]]:
        """The probe head's (task scores, [fitness]) of each student, adding each kind of work's wall seconds to its
        ``timings`` (``finetune`` and ``eval``, and ``tokenize``, ``extract`` and ``fit``).  ``task_data``: other
        task subsamples than the evaluator's own (the reference rows' seed sets)."""
        from proxy_tasks.probe import probe_and_score_many

        st = self._load()
        settings = probe_settings(self.config.proxy)
        tasks: list[dict[str, TaskScore]] = [{} for _ in students]
        for t in timings:
            for key in ("finetune", "eval"):
                t.setdefault(key, 0.0)
        for data in (task_data if task_data is not None else st.tasks):
            for i, r in enumerate(probe_and_score_many(students, st.teacher.tokenizer, data, settings, device=st.device)):
                tasks[i][r.task] = TaskScore(metrics=dict(r.metrics), score=float(r.score), replicates=[float(r.score)])
                t = timings[i]
                t["finetune"] += r.train_seconds
                t["eval"] += r.eval_seconds
                for key, value in (("tokenize", r.tokenize_seconds), ("extract", r.extract_seconds),
                                   ("fit", r.fit_seconds)):
                    t[key] = t.get(key, 0.0) + value
        return [(t, [sum(s.score for s in t.values()) / len(t)]) for t in tasks]

    # -- reference rows --------------------------------------------------------------------------
    def references(self, store=None) -> "References":
        """The reference rows of these settings (:mod:`layermap.evolution.references`): from ``store`` or the file
        cache when they were measured before (same :attr:`reference_fingerprint`), else measured now and cached in
        both, so a check costs once per fingerprint."""
        from .references import cached_references

        return cached_references(self.reference_fingerprint, self.compute_references, self._cache_dir(),
                                 store).with_measured_noise(self.config.proxy.task_noise_map())

    def _cache_dir(self) -> Path:
        from ..distill.corpus import default_cache_dir

        return default_cache_dir(self.config.run.cache_dir)

    def compute_references(self) -> "References":
        """Measure the reference rows on ``proxy.reference_seed_sets`` seed sets: the teacher through the proxy head,
        the undistilled students (:meth:`_student_rows`: the spec at its random initialisation; with
        ``student.init = "teacher"`` the plain truncation and the random student), 0 distillation steps, and the
        constant predictor."""
        from .references import build_references, constant_scores

        st = self._reference_state()
        teacher, constant = [], []
        students: dict[str, list] = {name: [] for name in self._student_row_names()}
        for r, other in self._reference_scorers(st):
            _log.info(f"reference rows, seed set {r + 1} of {self.config.proxy.reference_seed_sets}: the teacher "
                      f"through the {self.config.proxy.head} head")
            teacher_scores, _ = other.score_student(st.teacher.model)
            teacher.append({t: s.score for t, s in teacher_scores.items()})
            for name, scores in self._student_rows(other, st, st.spec, r).items():
                students[name].append(scores)
            constant.append({d.task.name: constant_scores(d.task, {split: np.asarray([e.label for e in ex])
                                                                   for split, ex in d.dev.items()})
                             for d in other._state.tasks})
        return build_references(teacher, students, constant, fingerprint=self.reference_fingerprint)

    def shape_references(self, shape, store=None) -> "References":
        """The reference rows a genome of student ``shape`` (a :class:`layermap.shape.StudentShape`, joint shape search)
        is read against: these settings' teacher and constant rows (neither depends on the student) with the
        undistilled student of ``shape`` measured on the same seed sets.  The ``[student]`` shape's are
        :meth:`references`; another shape's are measured once and kept like them, under
        :func:`layermap.evolution.references.shape_fingerprint` (the reference fingerprint with the shape)."""
        from .references import build_references, cached_references, shape_fingerprint

        spec = StudentSpec.resolve(self._teacher_config, shape.layers, shape.hidden_size, shape.heads, shape.ffn)
        base = self.references(store)
        if spec == self.spec:
            return base
        key = shape_fingerprint(self.reference_fingerprint, shape.text)

        def measure() -> "References":
            st = self._reference_state()
            _log.info(f"reference rows of shape {shape.text}: the student with no distillation")
            students: dict[str, list] = {name: [] for name in self._student_row_names()}
            for r, other in self._reference_scorers(st):
                for name, scores in self._student_rows(other, st, spec, r).items():
                    students[name].append(scores)
            return build_references(base.teacher.per_seed_set(), students, base.constant.per_seed_set(),
                                    fingerprint=key)

        return cached_references(key, measure, self._cache_dir(), store).with_measured_noise(
            self.config.proxy.task_noise_map())

    def _reference_scorers(self, st: _State):
        """``(r, evaluator of seed set r scoring on st's teacher with seed set r's task subsamples)`` for every
        reference seed set."""
        c = self.config
        for r in range(c.proxy.reference_seed_sets):
            other = self.with_seed_set(r)
            other._state = dataclasses.replace(st, tasks=st.tasks if r == 0 else self._load_tasks(c.proxy.seed + r))
            yield r, other

    def _student_rows(self, scorer: "ProxyEvaluator", st: _State, spec: StudentSpec, r: int) -> dict[str, dict]:
        """Row name -> task scores of the undistilled ``spec`` students of seed set ``r``, scored by ``scorer``, 0
        distillation steps: ``no distillation``, the random initialisation with seed ``distill.seed + r``; with
        ``student.init = "teacher"`` ``truncation``, the bottom M teacher layers copied (the spec's random tensors
        the teacher lacks drawn with that seed), and ``random``, the random initialisation."""
        from ..extraction import truncation

        out = {}
        for name in self._student_row_names():
            student = build_student(st.teacher.model.config, spec, seed=self.config.distill.seed + r)
            if name == "truncation":
                init_student_from_teacher(student, st.teacher.model, truncation(spec.layers, self.teacher_layers))
            _log.info(f"reference rows, seed set {r + 1}: the student with no distillation"
                      + ("" if name == "no distillation" else f" ({name})"))
            scores, _ = scorer.score_student(student)
            out[name] = {t: s.score for t, s in scores.items()}
        return out

    def checkpoint_dir(self, mapping: LayerMapping) -> Path:
        """Where an evaluation's distillation checkpoints (``distill.checkpoint_every`` > 0) live until it
        finishes: a killed evaluation resumes from there in the next run or ``--resume``."""
        from ..distill.corpus import default_cache_dir

        return default_cache_dir(self.config.run.cache_dir) / "checkpoints" / self.fingerprint / mapping.text

    def score_student(self, student, timings: dict[str, float] | None = None, head: str | None = None,
                      task_data: tuple | None = None) -> tuple[dict[str, TaskScore], list[float]]:
        """Score a distilled student on the proxy tasks with ``head`` (default ``proxy.head``).

        Returns the task scores and the fitness of each replicate (fine-tuning seed
        ``proxy.seed + r`` for r < ``proxy.repeats``; one replicate for the probe).  Adds the wall
        seconds of each kind of work to ``timings``: ``finetune`` and ``eval`` always, and for the
        probe ``tokenize``, ``extract`` and ``fit`` as well.
        """
        st = self._load()
        head = head or self.config.proxy.head
        timings = timings if timings is not None else {}
        for key in ("finetune", "eval"):
            timings.setdefault(key, 0.0)
        if head == "probe":
            return self._probe_scores([student], [timings], task_data)[0]

        from proxy_tasks import finetune_and_score

        repeats = self.config.proxy.repeats if head == self.config.proxy.head else 1
        base = finetune_settings(self.config)
        task_data = task_data if task_data is not None else st.tasks
        runs: dict[str, list] = {data.task.name: [] for data in task_data}
        for r in range(repeats):
            settings = dataclasses.replace(base, seed=base.seed + r)
            for data in task_data:
                result = finetune_and_score(student, st.teacher.tokenizer, data, settings, device=st.device,
                                            progress=self.progress)
                runs[result.task].append(result)
                timings["finetune"] += result.train_seconds
                timings["eval"] += result.eval_seconds
        tasks = {}
        for name, results in runs.items():
            scores = [float(res.score) for res in results]
            score, _ = mean_and_stderr(scores)
            metrics = {k: sum(res.metrics[k] for res in results) / len(results) for k in results[0].metrics}
            std = math.sqrt(sample_var(scores)) if len(scores) > 1 else None
            tasks[name] = TaskScore(metrics=metrics, score=float(score), replicates=scores, std=std)
        fitness_replicates = [sum(runs[name][r].score for name in runs) / len(runs) for r in range(repeats)]
        return tasks, [float(f) for f in fitness_replicates]


def _record(mapping: Genome, tasks: dict[str, TaskScore], fitness_replicates: list[float], distill_loss: float,
            timings: dict[str, float], device: torch.device) -> EvaluationRecord:
    """One genome's record: its fitness is the mean of its replicate fitnesses, with their standard error."""
    fitness, stderr = mean_and_stderr(fitness_replicates)
    return EvaluationRecord(
        genome=mapping.text, fitness=float(fitness), tasks=tasks, distill_loss=distill_loss, timings=timings,
        peak_memory_mb=_peak_memory_mb(device), fitness_replicates=fitness_replicates, fitness_stderr=stderr,
        environment=environment(device),
    )


def _proxy_identity(proxy) -> dict:
    """The proxy settings that change a fitness.  ``head`` and ``repeats`` enter only when they differ
    from the single fine-tuning run every record before them had, so those records keep their key."""
    d = {k: getattr(proxy, k) for k in proxy.__dataclass_fields__ if k not in _NOT_FITNESS}
    if d.get("head") == "finetune":
        del d["head"]
    if d.get("repeats") == 1:
        del d["repeats"]
    if d.get("head") == "probe":                 # the probe does not fine-tune: its settings do not matter
        for k in ("epochs", "batch_size", "learning_rate"):    # (seed stays: it draws the task subsamples)
            d.pop(k, None)
    else:                                        # fine-tuning does not probe
        for k in ("probe_pairs", "probe_c"):
            d.pop(k, None)
    return d


_NOT_FITNESS = ("glue_dir", "reference_seed_sets", "allow_invalid", "task_noise")   # proxy keys that change no fitness


def probe_settings(proxy):
    """The probe head's settings from ``[proxy]``."""
    from proxy_tasks.probe import ProbeSettings

    fixed = proxy.probe_c or None
    return ProbeSettings(max_seq_len=proxy.seq_len, pairs=proxy.probe_pairs, c=fixed, alpha=fixed)


def _major_minor(package: str) -> str:
    from importlib.metadata import version

    return major_minor(version(package))


def major_minor(text: str | None) -> str | None:
    """``2.13.0+cpu`` -> ``2.13``: the part of a version a fingerprint holds (None for none)."""
    return ".".join(str(text).split(".")[:2]) if text else None


def _peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory of this evaluation on a GPU; the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if platform.system() == "Darwin" else rss / 1024
