"""What a proxy evaluator loads once per process and reuses for every genome: the teacher, the corpus slice, the
teacher's outputs on it (live or cached), the student's common initialisation and the proxy tasks' data.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Config
from ..distill.corpus import Segments, load_segments
from ..distill.identity import teacher_label
from ..distill.loop import LiveTeacher, TeacherSource
from ..distill.models import StudentSpec, Teacher, build_student, load_teacher, quiet_transformers
from ..logs import get_logger

_log = get_logger(__name__)


@dataclass
class ProxyState:
    """What one process loads once and reuses for every genome (``segments`` and ``source`` are None in the state
    the reference rows need alone, :func:`load_reference_state`)."""

    teacher: Teacher
    segments: Segments | None
    source: TeacherSource | None
    spec: StudentSpec
    init_state: dict[str, torch.Tensor]
    tasks: tuple            # proxy_tasks.TaskData per task
    device: torch.device


def load_state(config: Config, spec: StudentSpec, device: torch.device, *, progress: bool = False) -> ProxyState:
    """Load the teacher, tokenise the slice, fill the teacher cache (``proxy.teacher_cache``), build the common
    initialisation (``distill.seed``) and load the proxy tasks, saying each step on the log."""
    c = config
    quiet_transformers()
    started = time.perf_counter()
    _log.info(f"preparing: loading the teacher {teacher_label(c.teacher.name)}")      # INFO: a worker shows none
    teacher = load_teacher(c.teacher.name, c.teacher.revision, device=device)
    _log.info(f"preparing: tokenising the corpus {Path(c.corpus.path).name} into {c.corpus.seq_len}-token segments")
    segments = load_segments(c.corpus.path, teacher.tokenizer, seq_len=c.corpus.seq_len,
                             max_segments=c.corpus.max_segments, fraction=c.corpus.fraction, seed=c.corpus.seed,
                             max_documents=c.corpus.max_documents, cache_dir=c.run.cache_dir, progress=progress)
    if c.proxy.teacher_cache:
        from ..distill.teacher_cache import build_teacher_cache

        _log.info(f"preparing: caching the teacher's outputs on {len(segments)} segments")
        source: TeacherSource = build_teacher_cache(teacher, segments, cache_dir=c.run.cache_dir,
                                                    device=device, progress=progress)
    else:
        source = LiveTeacher(teacher.model)
    init = build_student(teacher.model.config, spec, seed=c.distill.seed)
    tasks = load_tasks(c, c.proxy.seed)
    state = ProxyState(teacher=teacher, segments=segments, source=source, spec=spec,
                       init_state=copy.deepcopy(init.state_dict()), tasks=tasks, device=device)
    _log.info(f"prepared in {time.perf_counter() - started:.0f}s: {len(segments)} segments, proxy tasks "
              f"{', '.join(c.proxy.tasks)}; the first evaluation follows")
    return state


def load_reference_state(config: Config, spec: StudentSpec, device: torch.device) -> ProxyState:
    """The teacher and the tasks alone (before any evaluation, ``layermap validate``): the reference rows need neither
    the corpus nor the teacher's outputs on it."""
    quiet_transformers()
    teacher = load_teacher(config.teacher.name, config.teacher.revision, device=device)
    return ProxyState(teacher=teacher, segments=None, source=None, spec=spec, init_state={},
                      tasks=load_tasks(config, config.proxy.seed), device=device)


def load_tasks(config: Config, seed: int) -> tuple:
    """The proxy tasks' data, subsampled with ``seed``."""
    from proxy_tasks import load_task

    p = config.proxy
    return tuple(load_task(t, p.glue_dir or None, max_train=p.max_train or None, max_eval=p.max_eval or None,
                           seed=seed) for t in p.tasks)
