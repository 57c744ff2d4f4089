"""Reference rows: the yardsticks every proxy score is read against.

A fitness alone says nothing: 61 is good where the teacher scores 62 and an undistilled student 50, and noise
where the undistilled student scores 60.  So beside every score layermap computes, with the same head, data,
subsamples and budget:

- ``teacher``: the teacher itself through the proxy head;
- ``no distillation``: the student spec at its random initialisation, 0 distillation steps
  (``student.init = "random"``); with ``student.init = "teacher"`` two rows take its place, the students a user gets
  without any search or distillation:

  - ``truncation``: the plain truncation, the bottom M teacher layers (``1-2-..-M``) copied into the student spec,
    0 distillation steps (:func:`layermap.extraction.truncation`);
  - ``random``: the same spec at its random initialisation, 0 distillation steps;

- ``constant``: the best constant prediction on each dev set (its majority class, or the positive class where
  F1 makes that score more; the mean, for regression), whose score needs no model.

(Runs made before the teacher-initialised rows have one ``no distillation`` row, the uniform mapping's layers copied;
they keep it under their own reference fingerprint.)

Each row is measured on ``proxy.reference_seed_sets`` seed sets (seed set r raises ``distill.seed`` and
``proxy.seed`` by r, as a replicate does); the row is their mean, and the **seed noise of a task score**,
``sigma``, is the pooled sample std over seed sets of the teacher and no-distillation rows (never below
:data:`MIN_TASK_NOISE`, so that two lucky draws cannot make a task look noiseless), raised to the measured seed std
of a distilled student's score where ``proxy.task_noise`` gives a larger one (the rows do not distil, so they miss
the distillation seed's share of the noise).

**Headroom recovered** by a student on a task = ``(student - floor) / (teacher - floor)``, floor = the best of the
non-teacher rows, max(no distillation, constant), or with teacher initialisation max(truncation, random, constant):
0 at the floor, 1 at the teacher.  The floor of an average over tasks is the mean of the task floors
(:func:`average_floor`).  A task where the teacher does not beat the
floor has no headroom (printed as "no headroom", never divided by).

**Per shape.** A joint shape-and-mapping search (``shape.search``) reads each genome against the undistilled student
of *its own* shape: :func:`shape_fingerprint` keys the rows of a shape by the run's reference fingerprint with the
shape's text; their teacher and constant rows are the run's (neither depends on the student), their no-distillation
row is measured for the shape on the same seed sets (:meth:`layermap.evaluators.proxy.ProxyEvaluator.shape_references`).

**Cache.** Rows are measured once per fingerprint and kept in the run's store and in the cache folder
(``<cache>/references/<fingerprint>.json``, :func:`cached_references`), written atomically through a temporary file of
the writer's own, so two runs measuring the same rows at once never share a temporary name.

**Validity.** A task is a valid proxy at given settings when ``teacher - floor >= VALIDITY_SIGMAS * sigma``.
Why 4: a student that recovers half the headroom then sits 2 sigma above the floor, and 4 sigma is the gap at
which one score at the floor and one at the teacher differ in a two-sided 5 % test with 80 % power
((1.96 + 0.84) * sqrt(2) = 3.96).  Below it, the task cannot tell a good student from an undistilled one, so the
proxy averages noise into the fitness.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import LayermapError
from ..logs import get_logger

_log = get_logger(__name__)

VALIDITY_SIGMAS = 4.0           # teacher - floor must reach this many seed noises
MIN_TASK_NOISE = 0.5            # points: the least seed noise a task is assumed to have
ROW_NAMES = ("teacher", "no distillation", "constant")
TRUNCATION, RANDOM = "truncation", "random"          # the undistilled students of student.init = "teacher"
ROW_WORDS = {"no distillation": "a student with no distillation", TRUNCATION: "the plain truncation (the bottom teacher "
             "layers, no distillation)", RANDOM: "a random student with no distillation",
             "constant": "the constant predictor"}


class InvalidProxyTask(LayermapError):
    """A proxy task at which the teacher does not beat the floor by a clear multiple of the seed noise."""


@dataclass(frozen=True)
class ReferenceRow:
    """One reference row: its task scores (mean over seed sets), the per-seed-set scores, and the fitness."""

    name: str
    tasks: dict[str, float]
    replicates: dict[str, list[float]] = field(default_factory=dict)

    @property
    def fitness(self) -> float:
        return float(np.mean(list(self.tasks.values())))

    def to_json(self) -> dict:
        return {"name": self.name, "fitness": self.fitness, "tasks": dict(self.tasks),
                "replicates": {k: list(v) for k, v in self.replicates.items()}}

    def per_seed_set(self) -> list[dict[str, float]]:
        """The row's task scores of each seed set (one dict per seed set), as :func:`build_references` takes them."""
        sets = max((len(v) for v in self.replicates.values()), default=0)
        if not sets:
            return [dict(self.tasks)]
        return [{t: v[r] for t, v in self.replicates.items()} for r in range(sets)]

    @classmethod
    def from_json(cls, d: dict) -> "ReferenceRow":
        return cls(name=d["name"], tasks={k: float(v) for k, v in d["tasks"].items()},
                   replicates={k: [float(x) for x in v] for k, v in d.get("replicates", {}).items()})


@dataclass(frozen=True)
class TaskValidity:
    """The validity verdict of one task: its reference scores, its seed noise and the margin it needs.
    ``no_distillation`` is the best undistilled student's score (of ``students``: name -> score, where given)."""

    task: str
    teacher: float
    no_distillation: float
    constant: float
    sigma: float
    valid: bool
    students: dict[str, float] = field(default_factory=dict)

    @property
    def floor(self) -> float:
        return max(self.no_distillation, self.constant)

    @property
    def gap(self) -> float:
        return self.teacher - self.floor

    def sentence(self) -> str:
        students = self.students or {"no distillation": self.no_distillation}
        rows = ", ".join(f"{ROW_WORDS.get(name, name)} {score:.1f}" for name, score in students.items())
        return (f"proxy task {self.task} is not a valid proxy at these settings: the teacher scores {self.teacher:.1f}, "
                f"{rows} and the constant predictor "
                f"{self.constant:.1f}, so the teacher beats the floor by {self.gap:.1f} points, less than "
                f"{VALIDITY_SIGMAS:g} x its seed noise {self.sigma:.2f}")


@dataclass(frozen=True)
class References:
    """The reference rows of one set of proxy settings, with the seed noise of each task: the teacher, the undistilled
    students (``no_distillation``, the first of them, and ``extra``: with teacher initialisation ``truncation`` then
    ``random``) and the constant predictor."""

    teacher: ReferenceRow
    no_distillation: ReferenceRow
    constant: ReferenceRow
    sigma: dict[str, float]
    fingerprint: str = ""
    seed_sets: int = 1
    measured: dict[str, float] = field(default_factory=dict)   # proxy.task_noise: a distilled student's seed std
    extra: tuple[ReferenceRow, ...] = ()                       # further undistilled students (teacher init: random)

    def with_measured_noise(self, measured: dict[str, float]) -> "References":
        """These rows with each task's noise raised to a measured seed std of a distilled student's score where that is
        larger (``proxy.task_noise``: the reference rows do not distil, so they miss the distillation seed's share)."""
        if not measured:
            return self
        sigma = {t: max(s, measured.get(t, 0.0)) for t, s in self.sigma.items()}
        return dataclasses.replace(self, sigma=sigma, measured={t: v for t, v in measured.items() if t in sigma})

    @property
    def tasks(self) -> list[str]:
        return list(self.teacher.tasks)

    @property
    def students(self) -> list[ReferenceRow]:
        """The undistilled students' rows: ``no distillation``, or ``truncation`` and ``random``."""
        return [self.no_distillation, *self.extra]

    @property
    def rows(self) -> list[ReferenceRow]:
        return [self.teacher, *self.students, self.constant]

    @property
    def floor_rows(self) -> list[ReferenceRow]:
        """The rows whose best is the floor: every row but the teacher."""
        return [*self.students, self.constant]

    def floor(self, task: str) -> float:
        return max(r.tasks[task] for r in self.floor_rows)

    def average_floor(self) -> float:
        """The floor of the fitness (the mean over tasks): the mean of the task floors (:func:`average_floor`)."""
        return average_floor(*(r.tasks for r in self.floor_rows))

    def floor_words(self) -> str:
        """The floor's rows in words, e.g. "no distillation or the constant predictor"."""
        names = [r.name for r in self.students]
        return (", ".join(names[:-1]) + (", " if len(names) > 1 else "") + names[-1] if names else "") + \
            " or the constant predictor"

    @property
    def fitness_noise(self) -> float:
        """Seed noise of a fitness (the mean of the task scores) if the task noises are independent."""
        return math.sqrt(sum(s * s for s in self.sigma.values())) / len(self.sigma)

    def validity(self) -> dict[str, TaskValidity]:
        out = {}
        for t in self.tasks:
            sigma = self.sigma[t]
            out[t] = TaskValidity(task=t, teacher=self.teacher.tasks[t],
                                  no_distillation=max(r.tasks[t] for r in self.students), constant=self.constant.tasks[t],
                                  sigma=sigma, valid=self.teacher.tasks[t] - self.floor(t) >= VALIDITY_SIGMAS * sigma,
                                  students={r.name: r.tasks[t] for r in self.students} if self.extra else {})
        return out

    def headroom(self, task_scores: dict[str, float]) -> dict[str, float | None]:
        """Headroom recovered per task (None where the teacher does not beat the floor: no headroom), and under
        ``"mean"`` its mean over the valid tasks (over the tasks that have headroom where none is valid; None if
        none has)."""
        out: dict[str, float | None] = {}
        for t, score in task_scores.items():
            if t not in self.teacher.tasks:
                continue
            room = self.teacher.tasks[t] - self.floor(t)
            out[t] = (score - self.floor(t)) / room if room > 0 else None
        validity = self.validity()
        valid = [v for t, v in out.items() if v is not None and validity[t].valid]
        have = valid or [v for v in out.values() if v is not None]      # an invalid task's headroom is mostly noise
        out["mean"] = float(np.mean(have)) if have else None
        return out

    def check(self, allow: tuple[str, ...] = ()) -> list[TaskValidity]:
        """Raise :class:`InvalidProxyTask` (one sentence) for the first invalid task not in ``allow`` (``"*"`` allows
        every task); return the invalid tasks that were allowed."""
        allowed = []
        for v in self.validity().values():
            if v.valid:
                continue
            if "*" in allow or v.task in allow:
                allowed.append(v)
                continue
            raise InvalidProxyTask(
                f"{v.sentence()}; give the probe more training examples (proxy.max_train), drop the task "
                f"(--tasks), or keep it anyway with --set proxy.allow_invalid='[\"{v.task}\"]'")
        return allowed

    def to_json(self) -> dict:
        return {"fingerprint": self.fingerprint, "seed_sets": self.seed_sets,
                "rows": {r.name: r.to_json() for r in self.rows}, "sigma": dict(self.sigma),
                "fitness_noise": self.fitness_noise, "validity_sigmas": VALIDITY_SIGMAS, "measured_noise": dict(self.measured),
                "validity": {t: {"valid": v.valid, "gap": v.gap, "floor": v.floor, "sigma": v.sigma}
                             for t, v in self.validity().items()}}

    @classmethod
    def from_json(cls, d: dict) -> "References":
        rows = {name: ReferenceRow.from_json(r) for name, r in d["rows"].items()}
        students = [r for name, r in rows.items() if name not in ("teacher", "constant")]
        return cls(teacher=rows["teacher"], no_distillation=students[0], constant=rows["constant"],
                   sigma={k: float(v) for k, v in d["sigma"].items()}, fingerprint=d.get("fingerprint", ""),
                   seed_sets=int(d.get("seed_sets", 1)), extra=tuple(students[1:]))


def build_references(teacher: list[dict[str, float]], no_distillation: list[dict[str, float]] | dict[str, list],
                     constant: list[dict[str, float]], *, fingerprint: str = "") -> References:
    """References from the per-seed-set task scores of each row (one dict per seed set).  ``no_distillation``: the
    undistilled student's per-seed-set scores (the row ``no distillation``), or several undistilled students by name
    (``{"truncation": [...], "random": [...]}``, teacher initialisation).  A task's seed noise pools the seed-set
    variances of the teacher and every undistilled student."""
    named = no_distillation if isinstance(no_distillation, dict) else {ROW_NAMES[1]: no_distillation}
    head, students, tail = _row("teacher", teacher), [_row(n, v) for n, v in named.items()], _row("constant", constant)
    sigma = {}
    for t in head.tasks:
        variances = [float(np.var(r.replicates[t], ddof=1)) for r in (head, *students) if len(r.replicates[t]) > 1]
        pooled = math.sqrt(float(np.mean(variances))) if variances else 0.0
        sigma[t] = max(pooled, MIN_TASK_NOISE)
    return References(head, students[0], tail, sigma=sigma, fingerprint=fingerprint, seed_sets=len(teacher),
                      extra=tuple(students[1:]))


def shape_fingerprint(reference_fingerprint: str, shape_text: str) -> str:
    """The key of a student shape's reference rows in a joint shape search: the run's reference fingerprint with the
    shape's text (``L1-H192-A12-F672``)."""
    from ..config import digest

    return digest({"references": reference_fingerprint, "shape": shape_text})[:32]


def cached_references(fingerprint: str, measure: Callable[[], References], cache_dir: str | Path,
                      store=None) -> References:
    """The reference rows under ``fingerprint``: from ``store``, else from ``<cache_dir>/references/<fingerprint>.json``,
    else ``measure()`` now; kept in both (the file written by :func:`write_atomically`)."""
    path = Path(cache_dir) / "references" / f"{fingerprint}.json"
    payload = store.lookup_references(fingerprint) if store is not None else None
    in_store = payload is not None
    if payload is None and path.exists():
        payload = json.loads(path.read_text(encoding="utf-8"))
    if payload is None:
        payload = measure().to_json()
        write_atomically(path, json.dumps(payload, indent=1, sort_keys=True))
    if store is not None and not in_store:
        store.save_references(fingerprint, payload)
    return References.from_json(payload)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file of this writer's own in the same folder (``tempfile``: a
    name unique to the process and the call), renamed into place with ``os.replace``: a reader finds the old file or
    the new one, never half of one, and two writers of the same path never write to one temporary file (the last
    rename wins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _row(name: str, per_set: list[dict[str, float]]) -> ReferenceRow:
    tasks = list(per_set[0])
    reps = {t: [float(s[t]) for s in per_set] for t in tasks}
    return ReferenceRow(name=name, tasks={t: float(np.mean(v)) for t, v in reps.items()}, replicates=reps)


def format_headroom(value: float | None) -> str:
    """A headroom for a table: a percentage, or "no headroom" where the teacher does not beat the floor."""
    return "no headroom" if value is None else f"{round(100 * value):d} %"     # an int: never "-0 %"


def constant_scores(task, dev_labels: dict[str, np.ndarray]) -> float:
    """The task score of the best constant predictor on the dev splits: the class whose constant prediction scores
    best (the majority class for accuracy; the positive class where F1 counts and pays more), or the mean for a
    regression task (a constant prediction has correlation 0)."""
    from proxy_tasks.metrics import compute_metrics, task_score

    if task.is_regression:
        return float(task_score(compute_metrics(task, {s: np.full(len(y), float(np.mean(y))) for s, y in dev_labels.items()},
                                                dev_labels)))
    return max(float(task_score(compute_metrics(task, {s: np.full(len(y), c) for s, y in dev_labels.items()}, dev_labels)))
               for c in range(task.num_labels))


def describe(refs: References) -> list[str]:
    """Lines for a summary: each row's fitness and task scores, the seed noise and each task's validity."""
    tasks = refs.tasks
    head = f"{'reference':<16} {'fitness':>7}  " + "  ".join(f"{t:>7}" for t in tasks)
    lines = [head]
    for r in refs.rows:
        lines.append(f"{r.name:<16} {r.fitness:7.2f}  " + "  ".join(f"{r.tasks[t]:7.2f}" for t in tasks))
    lines.append(f"{'seed noise':<16} {refs.fitness_noise:7.2f}  " + "  ".join(f"{refs.sigma[t]:7.2f}" for t in tasks))
    validity = refs.validity()
    lines.append(f"{'valid proxy':<16} {'':>7}  " + "  ".join(f"{'yes' if validity[t].valid else 'NO':>7}" for t in tasks))
    return lines


def ensure_references(evaluator, store=None, allow: tuple[str, ...] = ()) -> References | None:
    """The evaluator's reference rows (measured once per reference fingerprint, cached in ``store`` and the file
    cache), after refusing an invalid task not in ``allow`` (:meth:`References.check`); None for an evaluator
    without reference rows (a synthetic landscape)."""
    measure = getattr(evaluator, "references", None)
    if not callable(measure):
        return None
    refs = measure(store)
    for v in refs.check(allow):
        _log.warning(f"{v.sentence()}; kept because proxy.allow_invalid names it")
    return refs


def references_of(store, description: dict, config: dict | None = None, shape_text: str | None = None) -> References | None:
    """The reference rows a run recorded (its description names their fingerprint), with the run's
    ``proxy.task_noise`` applied, or None for a run from before them or of an evaluator without them.  With
    ``shape_text`` (a student shape other than the run's ``[student]`` one, in a joint shape search): the rows of that
    shape, kept under :func:`shape_fingerprint` (None where they were never measured)."""
    fp = (description or {}).get("reference_fingerprint")
    if fp and shape_text is not None:
        fp = shape_fingerprint(fp, shape_text)
    payload = store.lookup_references(fp) if fp else None
    if not payload:
        return None
    from ..config.sections import _task_noise

    return References.from_json(payload).with_measured_noise(_task_noise(tuple(
        ((config or {}).get("proxy") or {}).get("task_noise") or ())))


def learnt_sentence(refs: References | None, fitness: float | None, noise_std: float | None = None) -> str | None:
    """One sentence when a score cannot rank students: the teacher within noise of the floor (on average over the
    tasks), or ``fitness`` (the best genome's) within noise of the floor; None otherwise.  Within noise = less
    than 1.96 * sqrt(2) seed noises of a fitness (a two-sided 5 % comparison of two single scores) with
    ``noise_std`` as that noise, else the references' own estimate."""
    if refs is None or fitness is None:
        return None
    sigma = noise_std or refs.fitness_noise
    floor = refs.average_floor()
    teacher = refs.teacher.fitness
    margin = noise_margin(sigma)
    reason = not_learnt(teacher, fitness, floor, sigma)
    if reason == "teacher":
        return (f"the students have not learnt at this budget: the teacher's fitness {teacher:.2f} is within noise "
                f"(± {margin:.2f}) of the floor {floor:.2f} ({refs.floor_words()}), so the "
                "proxy cannot rank students and the ranking is noise")
    if reason == "best":
        words = (f"a student with no distillation or the constant predictor" if not refs.extra
                 else refs.floor_words())
        return (f"the students have not learnt at this budget: the best fitness {fitness:.2f} is within noise "
                f"(± {margin:.2f}) of the floor {floor:.2f} that {words} "
                f"reaches (teacher {teacher:.2f}), so the ranking is noise")
    return None


def noise_margin(sigma: float) -> float:
    """How far apart two single scores of seed noise ``sigma`` must be to differ at a two-sided 5 %: 1.96 * sqrt(2)
    * sigma."""
    return 1.96 * math.sqrt(2) * sigma


def average_floor(*rows: dict[str, float]) -> float:
    """The floor of an average over tasks: the mean over tasks of each task's floor, the max over the rows (no
    distillation and the constant; with teacher initialisation the truncation, the random student and the constant),
    never the max of the rows' averages (a task where another row wins would lower it)."""
    return float(np.mean([max(row[t] for row in rows) for t in rows[0]]))


def not_learnt(teacher: float, best: float, floor: float, sigma: float) -> str | None:
    """The one rule, for the proxy (:func:`learnt_sentence`) and the final stage's table alike, of when scores cannot
    rank students: ``"teacher"`` when the teacher is within :func:`noise_margin` of the floor (max of no distillation
    and the constant predictor), ``"best"`` when the best student is, else None."""
    margin = noise_margin(sigma)
    if teacher - floor < margin:
        return "teacher"
    if best - floor < margin:
        return "best"
    return None


def headroom_line(refs: References | None, task_scores: dict[str, float]) -> str:
    """``headroom recovered 43 % (sst2 61 %, mrpc 25 %)`` for a summary line; "" without references."""
    if refs is None:
        return ""
    h = refs.headroom(task_scores)
    per = ", ".join(f"{t} {format_headroom(h[t])}" for t in task_scores if t in h)
    return f"headroom recovered {format_headroom(h['mean'])} ({per})"
