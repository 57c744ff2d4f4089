"""The proxy evaluator's reference rows, measured: the teacher through the proxy head, the undistilled students and
the constant predictor, on ``proxy.reference_seed_sets`` seed sets (what the rows *are*, their cache, headroom and
validity: :mod:`layermap.evaluators.references`).

Each function takes the :class:`~layermap.evaluators.proxy.ProxyEvaluator` whose settings the rows belong to; seed set
``r`` is scored by that evaluator's seed-set ``r`` copy (:func:`reference_scorers`) on the same teacher, with seed set
``r``'s task subsamples.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Iterator

import numpy as np

from ..distill.models import StudentSpec, build_student, init_student_from_teacher
from ..logs import get_logger
from .proxy_state import ProxyState, load_tasks
from .references import RANDOM, ROW_NAMES, TRUNCATION, References, build_references, cached_references, \
    constant_scores, shape_fingerprint

if TYPE_CHECKING:
    from .proxy import ProxyEvaluator

_log = get_logger(__name__)


def student_row_names(init: str) -> tuple[str, ...]:
    """The undistilled students' reference rows for ``student.init``: ``no distillation`` (random init), or
    ``truncation`` and ``random`` (teacher init, :mod:`layermap.evaluators.references`)."""
    return (TRUNCATION, RANDOM) if init == "teacher" else (ROW_NAMES[1],)


def compute_references(evaluator: "ProxyEvaluator") -> References:
    """Measure the reference rows on ``proxy.reference_seed_sets`` seed sets: the teacher through the proxy head,
    the undistilled students (:func:`student_rows`: the spec at its random initialisation; with ``student.init =
    "teacher"`` the plain truncation and the random student), 0 distillation steps, and the constant predictor."""
    config = evaluator.config
    st = evaluator.reference_state()
    teacher, constant = [], []
    students: dict[str, list] = {name: [] for name in student_row_names(config.student.init)}
    for r, other in reference_scorers(evaluator, st):
        _log.info(f"reference rows, seed set {r + 1} of {config.proxy.reference_seed_sets}: the teacher "
                  f"through the {config.proxy.head} head")
        teacher_scores, _ = other.score_student(st.teacher.model)
        teacher.append({t: s.score for t, s in teacher_scores.items()})
        for name, scores in student_rows(evaluator, other, st, st.spec, r).items():
            students[name].append(scores)
        constant.append({d.task.name: constant_scores(d.task, {split: np.asarray([e.label for e in ex])
                                                               for split, ex in d.dev.items()})
                         for d in other.reference_state().tasks})
    return build_references(teacher, students, constant, fingerprint=evaluator.reference_fingerprint)


def shape_references(evaluator: "ProxyEvaluator", shape, store=None) -> References:
    """The reference rows a genome of student ``shape`` (a :class:`layermap.shape.StudentShape`, joint shape search) is
    read against: the evaluator's teacher and constant rows (neither depends on the student) with the undistilled
    student of ``shape`` measured on the same seed sets.  The ``[student]`` shape's are ``evaluator.references()``;
    another shape's are measured once and kept like them, under
    :func:`layermap.evaluators.references.shape_fingerprint` (the reference fingerprint with the shape)."""
    spec = StudentSpec.resolve(evaluator.teacher_config, shape.layers, shape.hidden_size, shape.heads, shape.ffn)
    base = evaluator.references(store)
    if spec == evaluator.spec:
        return base
    key = shape_fingerprint(evaluator.reference_fingerprint, shape.text)

    def measure() -> References:
        st = evaluator.reference_state()
        _log.info(f"reference rows of shape {shape.text}: the student with no distillation")
        students: dict[str, list] = {name: [] for name in student_row_names(evaluator.config.student.init)}
        for r, other in reference_scorers(evaluator, st):
            for name, scores in student_rows(evaluator, other, st, spec, r).items():
                students[name].append(scores)
        return build_references(base.teacher.per_seed_set(), students, base.constant.per_seed_set(), fingerprint=key)

    return cached_references(key, measure, evaluator.cache_dir(), store).with_measured_noise(
        evaluator.config.proxy.task_noise_map())


def reference_scorers(evaluator: "ProxyEvaluator", st: ProxyState) -> Iterator[tuple[int, "ProxyEvaluator"]]:
    """``(r, evaluator of seed set r scoring on st's teacher with seed set r's task subsamples)`` for every
    reference seed set."""
    c = evaluator.config
    for r in range(c.proxy.reference_seed_sets):
        other = evaluator.with_seed_set(r)
        other.use_state(dataclasses.replace(st, tasks=st.tasks if r == 0 else load_tasks(c, c.proxy.seed + r)))
        yield r, other


def student_rows(evaluator: "ProxyEvaluator", scorer: "ProxyEvaluator", st: ProxyState, spec: StudentSpec,
                 r: int) -> dict[str, dict]:
    """Row name -> task scores of the undistilled ``spec`` students of seed set ``r``, scored by ``scorer``, 0
    distillation steps: ``no distillation``, the random initialisation with seed ``distill.seed + r``; with
    ``student.init = "teacher"`` ``truncation``, the bottom M teacher layers copied (the spec's random tensors
    the teacher lacks drawn with that seed), and ``random``, the random initialisation."""
    from ..extraction import truncation

    out = {}
    for name in student_row_names(evaluator.config.student.init):
        student = build_student(st.teacher.model.config, spec, seed=evaluator.config.distill.seed + r)
        if name == "truncation":
            init_student_from_teacher(student, st.teacher.model, truncation(spec.layers, evaluator.teacher_layers),
                                      evaluator.config.student.slice)
        _log.info(f"reference rows, seed set {r + 1}: the student with no distillation"
                  + ("" if name == "no distillation" else f" ({name})"))
        scores, _ = scorer.score_student(student)
        out[name] = {t: s.score for t, s in scores.items()}
    return out
