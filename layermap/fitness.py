"""Proxy fitness (Jiao et al. 2020): distil on a fixed corpus slice, fine-tune on proxy tasks.

``fitness(g)`` = mean over the proxy tasks of the GLUE-style task score (percent) of a
student that was distilled with mapping ``g`` on the proxy slice and then fine-tuned on each
task's (subsampled) training set and scored on its dev set.

Everything but the mapping is fixed by the settings: every genome starts from the same
student initialisation (``distill.seed``), sees the same corpus slice in the same order, and
is fine-tuned on the same task subsamples with the same seed.  The teacher's outputs on the
slice are computed once and reused by every genome (:mod:`layermap.teacher_cache`).
"""

from __future__ import annotations

import copy
import platform
import resource
import time
from dataclasses import dataclass
from typing import Sequence

import torch

from .config import Config, digest
from .corpus import Segments, check_source, corpus_identity, load_segments
from .distill import LiveTeacher, TeacherSource, distill
from .mapping import LayerMapping
from .models import StudentSpec, Teacher, build_student, init_student_from_teacher, load_teacher, load_teacher_config, \
    pick_device, quiet_transformers, teacher_identity
from .records import EvaluationRecord, TaskScore

FITNESS_FORMAT = 1          # bump when the fitness computation changes meaning


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


class ProxyEvaluator:
    """Picklable proxy-fitness function: holds the config, loads heavy state lazily per process."""

    def __init__(self, config: Config, *, progress: bool = False) -> None:
        self.config = config
        self.progress = progress
        self._device = config.run.device
        self._fingerprint: str | None = None
        self._teacher_config = load_teacher_config(config.teacher.name, config.teacher.revision)
        check_source(config.corpus.path)                  # a missing corpus fails now, not inside the search
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
        spec = self.spec
        return {"teacher": self.config.teacher.name, "teacher_layers": self.teacher_layers,
                "teacher_hidden_size": int(self._teacher_config.hidden_size),
                "teacher_heads": int(self._teacher_config.num_attention_heads),
                "student": {"layers": spec.layers, "hidden_size": spec.hidden_size, "heads": spec.heads,
                            "ffn": spec.ffn, "init": self.config.student.init},
                "tasks": list(self.config.proxy.tasks)}

    @property
    def fingerprint(self) -> str:
        """Hash of everything that changes a fitness value, and of nothing else."""
        if self._fingerprint is None:
            from proxy_tasks import data_fingerprint

            c = self.config
            parts = {
                "format": FITNESS_FORMAT,
                "teacher": teacher_identity(c.teacher.name, c.teacher.revision),
                "student": self.describe()["student"],
                "corpus": corpus_identity(c.corpus.path),
                "slice": {k: getattr(c.corpus, k) for k in c.corpus.__dataclass_fields__ if k != "path"},
                "distill": {k: getattr(c.distill, k) for k in c.distill.__dataclass_fields__ if k != "checkpoint_every"},
                "proxy": {k: getattr(c.proxy, k) for k in c.proxy.__dataclass_fields__ if k != "glue_dir"},
                "data": {t: data_fingerprint(t, c.proxy.glue_dir or None) for t in c.proxy.tasks},
                "versions": {"torch": ".".join(torch.__version__.split(".")[:2]),
                             "transformers": _major_minor("transformers")},
            }
            self._fingerprint = digest(parts)[:32]
        return self._fingerprint

    def set_device(self, device: str) -> None:
        self._device = device
        self._state = None

    # -- evaluation ----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Load the teacher, tokenise the slice and fill the teacher cache (the driver calls this
        before starting workers, so they find everything on disk)."""
        self._load()

    def _load(self) -> _State:
        if self._state is not None:
            return self._state
        from proxy_tasks import load_task

        c = self.config
        quiet_transformers()
        device = pick_device(self._device)
        teacher = load_teacher(c.teacher.name, c.teacher.revision, device=device)
        segments = load_segments(c.corpus.path, teacher.tokenizer, seq_len=c.corpus.seq_len,
                                 max_segments=c.corpus.max_segments, fraction=c.corpus.fraction, seed=c.corpus.seed,
                                 max_documents=c.corpus.max_documents, cache_dir=c.run.cache_dir, progress=self.progress)
        if c.proxy.teacher_cache:
            from .teacher_cache import build_teacher_cache

            source: TeacherSource = build_teacher_cache(teacher, segments, cache_dir=c.run.cache_dir,
                                                        device=device, progress=self.progress)
        else:
            source = LiveTeacher(teacher.model)
        spec = self.spec
        init = build_student(teacher.model.config, spec, seed=c.distill.seed)
        tasks = tuple(load_task(t, c.proxy.glue_dir or None, max_train=c.proxy.max_train or None,
                                max_eval=c.proxy.max_eval or None, seed=c.proxy.seed) for t in c.proxy.tasks)
        self._state = _State(teacher=teacher, segments=segments, source=source, spec=spec,
                             init_state=copy.deepcopy(init.state_dict()), tasks=tasks, device=device)
        return self._state

    def new_student(self, mapping: LayerMapping):
        """The common initialisation (or teacher extraction for ``student.init = teacher``)."""
        st = self._load()
        student = build_student(st.teacher.model.config, st.spec, seed=self.config.distill.seed)
        student.load_state_dict(st.init_state)
        if self.config.student.init == "teacher":
            init_student_from_teacher(student, st.teacher.model, mapping)
        return student

    def evaluate(self, genes: Sequence[int]) -> EvaluationRecord:
        from proxy_tasks import finetune_and_score

        t_start = time.perf_counter()
        st = self._load()
        mapping = LayerMapping(tuple(genes), self.teacher_layers)
        student = self.new_student(mapping)
        if st.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(st.device)
        t0 = time.perf_counter()
        _, stats = distill(student, st.source, mapping, st.segments, self.config.distill,
                           teacher_width=st.teacher.hidden_size, device=st.device, progress=self.progress,
                           desc=f"distilling {mapping}")
        t_distill = time.perf_counter() - t0
        settings = finetune_settings(self.config)
        tasks: dict[str, TaskScore] = {}
        t_train = t_eval = 0.0
        for data in st.tasks:
            result = finetune_and_score(student, st.teacher.tokenizer, data, settings, device=st.device,
                                        progress=self.progress)
            tasks[result.task] = TaskScore(metrics=dict(result.metrics), score=float(result.score))
            t_train += result.train_seconds
            t_eval += result.eval_seconds
        fitness = sum(t.score for t in tasks.values()) / len(tasks)
        return EvaluationRecord(
            genome=mapping.text, fitness=float(fitness), tasks=tasks, distill_loss=stats.final_loss,
            timings={"distill": t_distill, "finetune": t_train, "eval": t_eval,
                     "total": time.perf_counter() - t_start},
            peak_memory_mb=_peak_memory_mb(st.device),
        )


def _major_minor(package: str) -> str:
    from importlib.metadata import version

    return ".".join(version(package).split(".")[:2])


def _peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory of this evaluation on a GPU; the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if platform.system() == "Darwin" else rss / 1024
