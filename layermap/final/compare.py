"""The final stage: full task-agnostic distillation of each mapping, GLUE fine-tuning with seeds, a paired table.

::

    for each mapping m and distillation seed d:            # phase 1 (+ the teacher's fine-tuning, with loyalty)
        student(m, d) = distil(init(d), m, [compare] budget)     -> DIR/students/<m>/  (resumable checkpoints)
    for each student (m, d), task t, fine-tuning seed s:   # phase 2
        cell(m, d, t, s) = fine-tune student(m, d) on t with seed s, score on t's dev set
    table: per (m, t) mean ± std over the seed units (d, s); paired differences against the best baseline

Every mapping gets the same budget, the same initialisation (``random`` with seed d, or ``teacher``
extraction) and the same corpus order (seed d); every student sees the same task subsamples and the
same fine-tuning seeds, so differences are paired by seed.

Every finished job is a row of the ``cells`` table of ``DIR/layermap.sqlite`` under the compare
fingerprint (everything that shapes a result: teacher, student spec, corpus slice, distillation
budget, fine-tuning settings, and per task its data); a complete row is never computed again, so a
second identical ``compare`` computes nothing and a killed one resumes (a distillation from its last
checkpoint).  Jobs run through the search's executors (local, process pool, Ray); only this driver
writes the store.  Each cell's dev outputs are kept under ``DIR/outputs/`` so that loyalty to a
fine-tuned teacher (``--teacher-finetune``) is measured without fine-tuning a student again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from . import recipe
from .resolution import table_resolution
from .comparison import AVERAGE, Cell, build_table, kinds_of, loyalty, rivals_text, write_table
from ..config import Config, DistillSettings, digest, dump_toml
from ..distill.identity import teacher_label
from ..errors import LayermapError
from ..executors.registry import Executor, create_executor
from ..executors.safety import describe_exception
from ..logs import get_logger, live_progress
from ..extraction import canonical_text, check_config_extraction, gene_legend, parse_genome, start_mapping, truncation
from ..mapping import LayerMapping, baselines
from ..versions import library_versions, major_minor
from ..storage.records import COMPLETE, FAILED, environment
from ..storage.store import STORE_NAME, Store, now
from ..storage.runs import lock_run

_log = get_logger(__name__)
COMPARE_FORMAT = 2          # 2: the teacher's identity covers its tokenizer; hub names carry their resolved commit
DISTILL, FINETUNE, TEACHER = "distill", "finetune", "teacher"
TEACHER_MAPPING = "teacher"
NO_DISTILL = "no-distillation"   # the reference student: the spec at its initialisation, fine-tuned with 0 distillation steps
TRUNCATION, RANDOM = "truncation", "random"    # compare.init = "teacher": the reference students, keys of their own (an
                                               # old folder's no-distillation cells, the uniform layers copied, stay apart)
REFERENCE_STUDENTS = {NO_DISTILL: "no distillation", TRUNCATION: "truncation", RANDOM: "random"}   # job key -> row name
INFO_NAME = "compare.json"
QUANTIZE_FORMAT = 2             # 2: the int8 probe fitted with fp32's C, ONNX fp32 timed beside int8 (issue 28)
LOYALTY_SEED = 0                 # loyalty is measured against the teacher fine-tuned with this seed (teacher_outputs)

Job = tuple  # (kind, mapping, distill_seed, task, seed)


class CompareError(LayermapError):
    """A compare that cannot run as asked (a folder made with other settings, no mapping)."""


@dataclass(frozen=True)
class CompareResult:
    out: Path
    table: dict
    computed: int            # fine-tuning cells computed by this invocation
    cached: int              # fine-tuning cells found in the store
    failed: int              # fine-tuning cells that failed (or whose student failed) in this invocation
    distilled: int           # full distillations run by this invocation
    wall_time: float


def student_dir(out: str | Path, mapping: str, distill_seed: int) -> Path:
    """``DIR/students/<genome>/`` (distillation seed 0) or ``DIR/students/<genome>_seed<d>/``."""
    return Path(out) / "students" / (mapping if distill_seed == 0 else f"{mapping}_seed{distill_seed}")


def _outputs_path(out: Path, job: Job) -> Path:
    """A cell's saved dev outputs: ``outputs/<mapping>/<task>_d<d>_s<seed>.npz``; the teacher's, one file per fine-tuning
    seed, ``outputs/teacher/<task>_s<seed>.npz`` (before issue 28 one file per task, which every seed overwrote)."""
    kind, mapping, d, task, seed = job
    name = f"{task}_s{seed}.npz" if kind == TEACHER else f"{task}_d{d}_s{seed}.npz"
    return out / "outputs" / mapping / name


def _legacy_teacher_outputs(out: Path, task: str) -> Path:
    """The teacher's dev outputs of a folder made before they were kept per seed: one file per task."""
    return out / "outputs" / TEACHER_MAPPING / f"{task}.npz"


# [compare] keys that do not shape a cell: a folder grows with more tasks and seeds under one fingerprint, and with
# or without the reference rows (their cells have keys of their own); compare.teacher_cache shapes the students, but
# enters the fingerprint apart (_device_and_cache)
_NOT_SHAPING = frozenset({"tasks", "seeds", "distill_seeds", "checkpoint_every", "teacher_cache", "references"})
# keys that shape no cell but were once in the fingerprint, with the values a folder of that time may have recorded
# (compare.references, from the reference rows' arrival to issue 28): such a folder keeps its fingerprint
_ONCE_IN_FINGERPRINT = {"references": (True, False)}


def compare_fingerprint(config: Config, *, legacy: Mapping[str, Any] | None = None) -> str:
    """Hash of everything that shapes a distilled student and its fine-tuning (not the task list, seeds, reference
    rows, mappings, executors or paths).  ``legacy``: [compare] keys to hash as a folder of the time they entered the
    fingerprint did (:func:`accepted_fingerprints`)."""
    from ..distill.corpus import corpus_identity
    from ..distill.models import teacher_identity

    c = config
    parts = {
        "format": COMPARE_FORMAT,
        "teacher": teacher_identity(c.teacher.name, c.teacher.revision),
        "student": {k: getattr(c.student, k) for k in c.student.__dataclass_fields__},
        "corpus": corpus_identity(c.corpus.path), "corpus_seed": c.corpus.seed,
        "compare": {**{k: getattr(c.compare, k) for k in c.compare.__dataclass_fields__
                       if k not in _NOT_SHAPING and k not in recipe.RECIPE_DEFAULTS}, **(legacy or {})},
        "losses": {k: getattr(c.distill, k) for k in ("weight_decay", "max_grad_norm", "attention_weight",
                                                       "hidden_weight", "embedding_weight")},
        "versions": library_versions(),
    }
    if c.distill.precision != "fp32":          # enters only when not fp32, so folders from before it keep their key
        parts["precision"] = c.distill.precision
    if recipe.recipe_settings(c):              # the judge's recipe: only where it is not the old one (old folders' keys)
        parts["recipe"] = recipe.recipe_settings(c)
    parts.update(_device_and_cache(c))
    return digest(parts)[:32]


def accepted_fingerprints(config: Config) -> list[str]:
    """The fingerprints a compare folder made with ``config``'s settings may carry: today's, then those of the time a
    key that shapes no cell was in it (:data:`_ONCE_IN_FINGERPRINT`), so such a folder can still be extended."""
    legacy = [compare_fingerprint(config, legacy={key: value}) for key, values in _ONCE_IN_FINGERPRINT.items()
              for value in values]
    return [compare_fingerprint(config), *legacy]


# [compare] keys that shape the teacher's fine-tuning cells (the teacher row): neither the student nor the distillation
_TEACHER_SHAPING = ("max_train", "max_eval", "finetune_epochs", "finetune_batch_size", "finetune_learning_rate",
                    "finetune_seq_len")


def teacher_cell_fingerprint(config: Config) -> str:
    """Hash of what shapes a teacher fine-tuning cell: the teacher (weights and tokenizer), the fine-tuning settings,
    the library versions and the device class; not the student, the corpus or the distillation budget, so that every
    compare folder with this teacher and these fine-tuning settings keys its teacher row alike (``--teacher-from``)."""
    from ..distill.models import teacher_identity
    from ..executors.devices import fingerprint_device_class

    c = config
    parts = {"format": COMPARE_FORMAT, "kind": TEACHER, "teacher": teacher_identity(c.teacher.name, c.teacher.revision),
             "finetune": {k: getattr(c.compare, k) for k in _TEACHER_SHAPING},
             "versions": library_versions(),
             "device": fingerprint_device_class(c.run)}
    if recipe.recipe_settings(c):
        parts["recipe"] = recipe.recipe_settings(c)
    return digest(parts)[:32]


def _device_and_cache(config: Config) -> dict:
    """What shapes a cell beside the settings, entering only where it differs from what every folder before it had
    (so those keep their key): the device class the distillations and fine-tunings run on (a CUDA run differs from a
    CPU run of the same seeds), and the float16 teacher cache (its students differ from the live teacher's)."""
    from ..executors.devices import fingerprint_device_class

    shaping: dict = {}
    device = fingerprint_device_class(config.run)
    if device != "cpu":
        shaping["device"] = device
    if config.compare.teacher_cache:
        shaping["compare.teacher_cache"] = True
    return shaping


def distills(config: Config) -> bool:
    """False where ``compare.max_steps`` and ``compare.epochs`` are both 0: the students are their initialisation."""
    return bool(config.compare.max_steps or config.compare.epochs)


def distill_settings(config: Config, seed: int) -> DistillSettings:
    """The full distillation's settings for distillation seed ``seed``."""
    c, d = config.compare, config.distill
    return DistillSettings(max_steps=c.max_steps, epochs=c.epochs, batch_size=c.batch_size, learning_rate=c.learning_rate,
                           warmup_ratio=c.warmup_ratio, weight_decay=d.weight_decay, max_grad_norm=d.max_grad_norm,
                           attention_weight=d.attention_weight, hidden_weight=d.hidden_weight,
                           embedding_weight=d.embedding_weight, seed=seed, checkpoint_every=c.checkpoint_every,
                           precision=d.precision)


class CompareWorker:
    """Picklable runner of compare jobs; heavy state (teacher, corpus slice, task data) loads lazily per process.  A
    :class:`layermap.evolution.worker.Worker`: its device class is the one the compare fingerprint names (the Ray
    workers' in a Ray driver; after ``set_device``, this process's own), which every cell must be computed on."""

    def __init__(self, config: Config, out: str | Path, fingerprint: str, *, progress: bool = False) -> None:
        from ..executors.devices import fingerprint_device_class

        self.config = config
        self.out = Path(out).resolve()
        self.fingerprint = fingerprint
        self.progress = progress
        self._device = config.run.device
        self._device_class = fingerprint_device_class(config.run)
        self._teacher = None
        self._source = None
        self._segments = None
        self._tasks: dict[str, Any] = {}
        self.distill_groups: dict[int, list[str]] = {}   # distillation seed -> the mappings this compare distils

    def __getstate__(self) -> dict:
        d = dict(self.__dict__)
        d.update(_teacher=None, _source=None, _segments=None, _tasks={})
        return d

    def set_device(self, device: str) -> None:
        self._device = device
        self._device_class = self._device_obj().type
        self._teacher = self._source = None

    @property
    def device_class(self) -> str:
        return self._device_class

    def chunk_size(self, population: int) -> int:
        """One job per chunk: a distillation job distils its own population (:meth:`_population_chunk`)."""
        return 1

    def run_jobs(self, jobs: Sequence[Job]) -> list[dict]:
        return [self.run_job(tuple(job)) for job in jobs]

    def failure(self, job: Job, error: str) -> dict:
        """The failed cell of a job whose process died."""
        return {"status": FAILED, "error": error, "kind": job[0], "timings": {}}

    @property
    def init(self) -> str:
        return self.config.compare.init or self.config.student.init

    def prepare(self, distill: bool = True) -> None:
        """Load the teacher and, for distillations, tokenise the slice and fill the teacher cache (the driver
        calls this before any worker starts, so workers find everything on disk)."""
        self._load_teacher()
        if distill:
            self._load_corpus()
            self._check_population()

    def _check_population(self) -> None:
        """On a GPU with ``run.population`` > 1: a population the memory cannot hold is a ConfigError naming the
        largest that fits (exit 2), found by distilling one step of the worst case (:meth:`_trial_population`)."""
        k, device = self.config.run.population, self._device_obj()
        if k > 1 and device.type == "cuda":
            from ..distill.population import check_population_fits

            check_population_fits(k, self._trial_population, device)

    def _trial_population(self, k: int) -> None:
        """One full-distillation step of ``k`` students in the worst case a chunk can meet (every teacher layer read,
        ``k`` teacher tensors per mapped student layer)."""
        from ..distill.population import distill_population, worst_case_mappings

        teacher = self._load_teacher()
        segments, source = self._load_corpus()
        mappings = worst_case_mappings(k, self.config.student.layers, teacher.num_layers)
        settings = dataclasses.replace(distill_settings(self.config, 0), max_steps=1, checkpoint_every=0)
        distill_population([self._new_student(teacher, m, 0) for m in mappings], source, mappings, segments, settings,
                           teacher_width=teacher.hidden_size, device=self._device_obj())

    def _load_teacher(self):
        if self._teacher is None:
            from ..distill.models import load_teacher, pick_device, quiet_transformers

            quiet_transformers()
            self._teacher = load_teacher(self.config.teacher.name, self.config.teacher.revision,
                                         device=pick_device(self._device))
        return self._teacher

    def _load_corpus(self):
        if self._source is None:
            from ..distill.corpus import load_segments
            from ..distill.loop import LiveTeacher

            c, teacher = self.config, self._load_teacher()
            self._segments = load_segments(c.corpus.path, teacher.tokenizer, seq_len=c.compare.seq_len,
                                           max_segments=c.compare.max_segments, fraction=c.compare.fraction,
                                           seed=c.corpus.seed, max_documents=c.compare.max_documents,
                                           cache_dir=c.run.cache_dir, progress=self.progress)
            if c.compare.teacher_cache:
                from ..distill.teacher_cache import build_teacher_cache

                self._source = build_teacher_cache(teacher, self._segments, cache_dir=c.run.cache_dir,
                                                   device=self._device_obj(), progress=self.progress)
            else:
                self._source = LiveTeacher(teacher.model)
        return self._segments, self._source

    def _device_obj(self):
        from ..distill.models import pick_device

        return pick_device(self._device)

    def _task(self, name: str):
        if name not in self._tasks:
            self._tasks[name] = recipe.load_task_data(self.config, name)
        return self._tasks[name]

    def _finetune_settings(self, seed: int, learning_rate: float):
        from proxy_tasks import FinetuneSettings

        c = self.config.compare
        return FinetuneSettings(epochs=c.finetune_epochs, batch_size=c.finetune_batch_size, learning_rate=learning_rate,
                                max_seq_len=c.finetune_seq_len, seed=seed, pooling=c.finetune_pooling)

    def _rate(self, job: Job) -> float:
        """The learning rate of a cell: the grid's ``seed``-th for a selection cell, else the rate chosen for the
        cell's family (``DIR/recipe.json``, :mod:`layermap.final.recipe`), the only rate without a grid."""
        kind, family, _, task, index = job
        rates = recipe.grid(self.config)
        if kind == recipe.SELECT:
            return rates[index]
        if len(rates) == 1:
            return rates[0]
        chosen = recipe.read_choices(self.out).get(family, {}).get(task)
        if chosen is None:
            raise CompareError(f"no learning rate was chosen for {family} on {task} (its selection cells failed or "
                               f"{recipe.RECIPE_NAME} is missing); rerun the compare")
        return chosen

    # -- jobs -------------------------------------------------------------------------------------------
    def run_job(self, job: Job) -> dict:
        """Run one job; every exception becomes a failed record with its error (the compare goes on)."""
        from ..distill.models import quiet_transformers

        quiet_transformers()                                  # no weight-loading bars from worker processes
        kind, mapping, d, task, seed = job
        start = time.perf_counter()
        try:
            if kind == DISTILL:
                record = self._distill(mapping, d)
            elif kind == TEACHER or (kind == recipe.SELECT and mapping == TEACHER_MAPPING):
                record = self._finetune(job, self._load_teacher().model)
            else:
                record = self._finetune_student(job)
            record["status"] = COMPLETE
        except Exception as exc:  # noqa: BLE001 - one failed cell must not stop the comparison
            record = {"status": FAILED, "error": describe_exception(exc)}
        record.setdefault("timings", {})["total"] = time.perf_counter() - start
        record["environment"] = environment(self._device_obj())
        record.update(kind=kind, mapping=mapping, distill_seed=d, task=task, seed=seed)
        return record

    def _distill(self, text: str, seed: int) -> dict:
        from ..distill.loop import distill
        from ..distill.output import save_student

        folder = student_dir(self.out, text, seed)
        if not distills(self.config):                        # no distillation: the initialisation is the student
            from ..distill.loop import DistillStats

            teacher = self._load_teacher()
            mapping = self._genome(text, teacher)
            save_student(folder, self._new_student(teacher, mapping, seed), teacher.tokenizer, mapping, DistillStats(steps=0),
                         teacher=self.config.teacher.name)
            return {"distill_loss": None, "steps": 0, "timings": {"distill": 0.0}}
        if (folder / "distill_log.json").is_file():          # finished before its row was written (killed in between)
            log = json.loads((folder / "distill_log.json").read_text("utf-8"))
            return {"distill_loss": log["final_loss"], "steps": log["steps"], "timings": {"distill": log["seconds"]}}
        group = self._population_chunk(text, seed)
        if len(group) > 1:
            return self._distill_population(text, seed, group)
        teacher = self._load_teacher()
        segments, source = self._load_corpus()
        mapping = self._genome(text, teacher)
        student = self._new_student(teacher, mapping, seed)
        _, stats = distill(student, source, mapping, segments, distill_settings(self.config, seed),
                           teacher_width=teacher.hidden_size, device=self._device_obj(), progress=self.progress,
                           checkpoint_dir=folder / "checkpoints", desc=f"distilling {text} (full)",
                           run_digest=digest([self.fingerprint, segments.identity]))
        save_student(folder, student.cpu(), teacher.tokenizer, mapping, stats, teacher=self.config.teacher.name)
        first = float(np.mean(stats.losses[:10])) if stats.losses else float("nan")
        return {"distill_loss": stats.final_loss, "first_loss": first, "steps": stats.steps,
                "timings": {"distill": stats.seconds, "teacher": stats.teacher_seconds}}

    def _genome(self, text: str, teacher):
        """A compared mapping's text as the genome it names (a split genome ``1-2-3+2-4-6`` with teacher init)."""
        return parse_genome(text, teacher.num_layers, student_layers=self.config.student.layers, init=self.init)

    def _new_student(self, teacher, mapping, seed: int, init: str | None = None):
        """The student a distillation starts from: the spec's random initialisation with the distillation seed, or
        layers extracted from the teacher (``compare.init = "teacher"``: each student layer starts from the teacher
        layer the genome names, a split genome's init part).  ``init`` overrides the compare's initialisation (the
        reference rows)."""
        from ..distill.models import StudentSpec, build_student, init_student_from_teacher

        s = self.config.student
        spec = StudentSpec.resolve(teacher.model.config, s.layers, s.hidden_size, s.heads, s.ffn)
        student = build_student(teacher.model.config, spec, seed=seed)
        if (init or self.init) == "teacher":
            init_student_from_teacher(student, teacher.model, start_mapping(mapping))
        return student

    def _reference_student(self, name: str, seed: int):
        """A reference row's student, never distilled, with seed ``seed``: ``no-distillation`` the initialisation
        (random; with ``compare.init = "teacher"`` in a folder from before the truncation row, the uniform layers
        copied), ``truncation`` the bottom M teacher layers copied, ``random`` the random initialisation."""
        from ..mapping import baseline

        teacher = self._load_teacher()
        m, n = self.config.student.layers, teacher.num_layers
        if name == TRUNCATION:
            return self._new_student(teacher, truncation(m, n), seed, init="teacher")
        if name == RANDOM:
            return self._new_student(teacher, None, seed, init="random")
        return self._new_student(teacher, LayerMapping(baseline("uniform", m, n), n), seed)

    def _population_chunk(self, text: str, seed: int) -> list[str]:
        """The mappings distilled together with ``text`` (``run.population`` > 1): the chunk of this distillation
        seed's mappings that holds ``text``, less those already distilled.  They share the budget and the seed."""
        k = self.config.run.population
        group = self.distill_groups.get(seed, [])
        if k <= 1 or text not in group:
            return [text]
        start = group.index(text) // k * k
        return [m for m in group[start:start + k]
                if m == text or not (student_dir(self.out, m, seed) / "distill_log.json").is_file()]

    def _distill_population(self, text: str, seed: int, group: list[str]) -> dict:
        """Distil ``group`` as one lockstep population (:mod:`layermap.distill.population`) and save every student
        that finished; the record of ``text``.  The other mappings' jobs then find their students saved.  A lock
        file keeps two workers from distilling the same chunk; a population has no intermediate checkpoints (a kill
        restarts the chunk).  The distillation's wall time is shared equally among the chunk's students."""
        import fcntl

        from ..distill.output import save_student
        from ..distill.population import distill_population

        lock_path = self.out / "students" / f".population-seed{seed}-{group[0]}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            group = [m for m in group if not (student_dir(self.out, m, seed) / "distill_log.json").is_file()]
            if text in group:
                teacher = self._load_teacher()
                segments, source = self._load_corpus()
                mappings = [self._genome(m, teacher) for m in group]
                students = [self._new_student(teacher, mapping, seed) for mapping in mappings]
                settings = dataclasses.replace(distill_settings(self.config, seed), checkpoint_every=0)
                t0 = time.perf_counter()
                results = distill_population(students, source, mappings, segments, settings,
                                             teacher_width=teacher.hidden_size, device=self._device_obj(),
                                             progress=self.progress, desc=f"distilling {len(group)} mappings (full)")
                share = (time.perf_counter() - t0) / len(group)
                for m, r in zip(group, results):
                    if r.ok:
                        save_student(student_dir(self.out, m, seed), r.student.cpu(), teacher.tokenizer, r.mapping,
                                     r.stats, teacher=self.config.teacher.name)
                        log = student_dir(self.out, m, seed) / "distill_log.json"
                        data = json.loads(log.read_text("utf-8"))
                        data.update(seconds=share, population=len(group))
                        log.write_text(json.dumps(data, indent=1))
                    elif m == text:
                        raise r.error
        log = json.loads((student_dir(self.out, text, seed) / "distill_log.json").read_text("utf-8"))
        first = float(np.mean(log["losses"][:10])) if log["losses"] else float("nan")
        return {"distill_loss": log["final_loss"], "first_loss": first, "steps": log["steps"],
                "timings": {"distill": log["seconds"]}}

    def _finetune_student(self, job: Job) -> dict:
        from transformers import AutoModel

        _, mapping, d, _, _ = job
        if mapping in REFERENCE_STUDENTS:          # a reference row: a student never distilled
            return self._finetune(job, self._reference_student(mapping, d))
        folder = student_dir(self.out, mapping, d)
        if not (folder / "config.json").is_file():
            raise CompareError(f"the distilled student {folder} is missing; its distillation did not finish")
        student = AutoModel.from_pretrained(folder)
        return self._finetune(job, student)

    def _finetune(self, job: Job, encoder) -> dict:
        """Fine-tune ``encoder`` for ``job`` and score it: ``score`` is read on the scoring split where there is one
        (else the dev set), ``dev_score`` on the dev set, ``select_score`` on the selection split; the dev and
        held-out outputs of a measured cell are kept for loyalty."""
        from proxy_tasks import finetune_and_score
        from proxy_tasks.holdout import SCORE, SELECT as SELECT_SPLIT

        kind, _, _, task, seed = job
        rate = self._rate(job)
        settings = self._finetune_settings(recipe.SELECT_SEED if kind == recipe.SELECT else seed, rate)
        result = finetune_and_score(encoder, self._load_teacher().tokenizer, self._task(task), settings,
                                    device=self._device_obj(), progress=self.progress, keep_outputs=kind != recipe.SELECT)
        if kind != recipe.SELECT:
            path = _outputs_path(self.out, job)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.npz")
            np.savez(tmp, **{split: arr.astype(np.float32) for split, arr in (result.outputs or {}).items()})
            os.replace(tmp, path)
        held = result.held_out_score(SCORE)
        record = {"score": float(result.score if held is None else held), "metrics": dict(result.metrics),
                  "num_train": result.num_train, "num_eval": result.num_eval, "learning_rate": rate,
                  "timings": {"finetune": result.train_seconds, "eval": result.eval_seconds}}
        if result.held_out:
            record.update(dev_score=float(result.score), held_out={k: dict(v) for k, v in result.held_out.items()},
                          select_score=result.held_out_score(SELECT_SPLIT))
            if held is not None:
                record["metrics"] = dict(result.held_out[SCORE])
                record["dev_metrics"] = dict(result.metrics)
        if kind == recipe.SELECT:
            record["score"] = record.get("select_score")
        return record


# -- the driver -------------------------------------------------------------------------------------------
def resolve_mappings(texts: Sequence[str], student_layers: int, teacher_layers: int, init: str = "random") -> list[str]:
    """Genome texts or baseline names -> canonical genome texts (duplicates dropped, order kept); with ``init =
    "teacher"`` also split genomes, a split genome ``u(g)+g`` written as its coupled equal ``g``
    (:func:`layermap.extraction.canonical_text`)."""
    out: list[str] = []
    for text in texts:
        genome = canonical_text(parse_genome(text.strip(), teacher_layers, student_layers=student_layers, init=init))
        if genome not in out:
            out.append(genome)
    if not out:
        raise CompareError("no mapping to compare; give --mappings 2-4-6,1-2-3 or a run folder")
    return out


@dataclass(frozen=True)
class RunPlan:
    """What a compare takes from a search's run folder."""

    config: dict                 # the run's resolved settings (its [compare] section included)
    mappings: list[str]          # the run's ``top`` best genomes, then the baselines
    proxy_fitness: dict[str, float]
    source: dict

    def settings(self, compare_from: Config | str | None = None) -> dict:
        """The run's settings as a dict, with the ``[compare]`` section of ``compare_from`` (a preset name,
        a TOML path or a Config) in place of the run's own when given."""
        from ..config import read_toml

        data = {k: dict(v) for k, v in self.config.items()}
        if isinstance(compare_from, Config):
            data["compare"] = compare_from.to_dict()["compare"]
        elif compare_from:
            data["compare"] = dict(read_toml(compare_from).get("compare", {}))
        return data


def plan_from_run(run_dir: str | Path, *, top: int = 1, with_baselines: bool = True) -> RunPlan:
    """The run's best ``top`` genomes (+ the four baselines), their proxy fitnesses and its settings."""
    from ..evaluators.replicates import combined_records
    from ..evolution.results import load_result
    from ..storage.runs import open_run

    if not Path(run_dir).is_dir():
        raise CompareError(f"run folder {os.fspath(run_dir)!r} does not exist; give the --out folder of 'layermap evolve'")
    _, store, row = open_run(run_dir)
    if (row.config.get("shape") or {}).get("search"):
        store.close()
        raise CompareError(f"run folder {os.fspath(run_dir)} searched the student's shape too, so its genomes have "
                           "different shapes and a compare folder holds one; write its front with 'layermap export "
                           f"{os.fspath(run_dir)} --front FRONT' and compare each member in its own folder with "
                           "'layermap compare --mappings FRONT/front-01-....json --config ... --out ...'")
    with store:
        result = load_result(store, row, run_dir)
        # a genome's proxy fitness is the mean over its replicates (seed sets), as the run ranked it
        done = [r.record for r in store.run_evaluations(row.run_id) if r.record is not None and r.record.ok]
        fitness = {g: rec.fitness for g, rec in combined_records(done).items()}
    if result.best_record is None:
        raise CompareError(f"run folder {os.fspath(run_dir)} has no finished evaluation to compare; let "
                           f"'layermap evolve --resume {os.fspath(run_dir)}' finish some first")
    ranked = sorted(fitness, key=lambda g: -fitness[g])
    best = ([result.best_record.genome] + [g for g in ranked if g != result.best_record.genome])[:top]   # racing: its pick first
    if any("+" in g for g in fitness):          # a split search: u(g)+g is compared as g (one student)
        best = [_canonical(g, row.teacher_layers) for g in best]
        fitness = {_canonical(g, row.teacher_layers): f for g, f in fitness.items()}
    mappings = list(best)
    if with_baselines:
        mappings += ["-".join(map(str, g)) for g in baselines(row.student_layers, row.teacher_layers).values()]
    source = {"run_dir": str(Path(run_dir).resolve()), "run_id": row.run_id, "best": result.best_record.genome,
              "best_fitness": result.best_record.fitness, "top": best}
    return RunPlan(dict(row.config), mappings, fitness, source)


def _canonical(text: str, teacher_layers: int) -> str:
    """A run's genome text as a compare keys it (:func:`layermap.extraction.canonical_text`)."""
    return canonical_text(parse_genome(text, teacher_layers)) if "+" in text else text


def reference_students(init: str) -> tuple[str, ...]:
    """The reference rows' students (job keys): ``no-distillation`` for a random initialisation; with
    ``compare.init = "teacher"`` the plain truncation and the random student (:data:`REFERENCE_STUDENTS`)."""
    return (TRUNCATION, RANDOM) if init == "teacher" else (NO_DISTILL,)


def run_compare(config: Config, mappings: Sequence[str], out: str | Path, *, proxy_fitness: Mapping[str, float] | None = None,
                source: Mapping[str, Any] | None = None, teacher_finetune: bool = False, progress: bool = True,
                executor: Executor | None = None, teacher_from: str | Path | None = None,
                quantize: bool = False, recipe_from: str | Path | None = None) -> CompareResult:
    """Compare ``mappings`` (genome texts or baseline names) at the ``[compare]`` budget in folder ``out``.

    ``recipe_from``: another compare folder of the same fine-tuning recipe whose chosen learning rates
    (``recipe.json``) are taken for the families it has (e.g. the same extracted students before distillation),
    so only the others are selected here (:func:`_borrow_rates`).

    ``teacher_from``: another compare folder whose teacher fine-tuning cells (same teacher, fine-tuning settings,
    task data, library versions and device class) are copied into this folder's store instead of fine-tuning the
    teacher again (:func:`_borrow_teacher_cells`).  ``quantize``: each distilled student (distillation seed 0) is also
    exported to ONNX and quantised to int8 (:func:`quantize_students`; the ``deploy`` extra), its int8 columns in the
    table."""
    from proxy_tasks import data_fingerprint, get_task

    from ..distill.corpus import check_source
    from ..distill.models import load_teacher_config, teacher_identity

    clock = time.perf_counter()
    if quantize:                                      # before any work: the extra, and a device the int8 runtime runs on
        from ..deploy.quantize import check_int8_device

        check_int8_device(config.latency)
    teacher_cfg = load_teacher_config(config.teacher.name, config.teacher.revision)
    check_config_extraction(config, teacher_cfg)        # compare.init = teacher: a student the teacher can be cut into
    n_layers, m_layers = int(teacher_cfg.num_hidden_layers), config.student.layers
    init = config.compare.init or config.student.init
    genomes = resolve_mappings(mappings, m_layers, n_layers, init)
    tasks = [get_task(t).name for t in config.compare.tasks]
    max_pos = getattr(teacher_cfg, "max_position_embeddings", None)
    for key in ("seq_len", "finetune_seq_len"):
        if max_pos is not None and getattr(config.compare, key) > max_pos:
            raise CompareError(f"compare.{key} = {getattr(config.compare, key)} exceeds the teacher's "
                               f"max_position_embeddings ({max_pos}); lower it")
    check_source(config.corpus.path)
    data_fp = {t: data_fingerprint(t, config.proxy.glue_dir or None) for t in tasks}
    out = Path(out)
    fingerprint = _claim_folder(out, config, compare_fingerprint(config))
    lock = lock_run(out)
    store = Store(out / STORE_NAME)
    try:
        kinds = kinds_of(genomes, {k: "-".join(map(str, g)) for k, g in baselines(m_layers, n_layers).items()})
        units = [(d, s) for d in range(config.compare.distill_seeds) for s in range(config.compare.seeds)]
        cell_fp = {t: digest([fingerprint, t, data_fp[t]])[:32] for t in tasks}
        teacher_fp = teacher_cell_fingerprint(config)
        teacher_cell_fp = {t: digest([teacher_fp, t, data_fp[t]])[:32] for t in tasks}

        rates = recipe.grid(config)

        def fp_of(job: Job) -> str:
            if job[0] == recipe.SELECT:
                base = teacher_cell_fp[job[3]] if job[1] == TEACHER_MAPPING else cell_fp[job[3]]
                return recipe.select_fingerprint(base, rates[job[4]])
            if job[0] == TEACHER:
                return teacher_cell_fp[job[3]]
            return fingerprint if job[0] == DISTILL else cell_fp[job[3]]

        wanted = [(FINETUNE, m, d, t, s) for m in genomes for t in tasks for d, s in units]
        refs = config.compare.references
        teacher_seeds = range(config.compare.seeds) if refs else range(1 if teacher_finetune else 0)
        teacher_jobs = [(TEACHER, TEACHER_MAPPING, 0, t, s) for t in tasks for s in teacher_seeds]
        reference_jobs = [(FINETUNE, name, d, t, s) for name in reference_students(init) for t in tasks
                          for d, s in units] if refs else []
        done = {job: store.lookup_cell(fp_of(job), job) for job in wanted + teacher_jobs + reference_jobs}
        for job in teacher_jobs:                   # a folder from before the teacher's own key: its row, under the cell key
            if done[job] is None:
                done[job] = store.lookup_cell(cell_fp[job[3]], job)
        borrowed = (_borrow_teacher_cells(Path(teacher_from), store, config, [j for j in teacher_jobs if done[j] is None],
                                          fp_of, data_fp, out) if teacher_from is not None else {})
        done.update(borrowed)
        missing = [job for job in wanted + reference_jobs if done[job] is None]
        students = list(dict.fromkeys((job[1], job[2]) for job in missing if job[1] not in REFERENCE_STUDENTS))
        distill_jobs = [(DISTILL, m, d, "", -1) for m, d in students
                        if not ((student_dir(out, m, d) / "config.json").is_file()
                                and store.lookup_cell(fingerprint, (DISTILL, m, d, "", -1)))]
        worker = CompareWorker(config, out, fingerprint)
        for t in tasks:                            # before any work: a training file that cannot spare the held-out splits
            worker._task(t)
        teacher_missing = [job for job in teacher_jobs if done[job] is None]
        families = list(dict.fromkeys([TEACHER_MAPPING] * bool(teacher_missing) + [j[1] for j in missing]))
        if recipe_from is not None and len(rates) > 1:
            given = _borrow_rates(Path(recipe_from), config, families, tasks)
            recipe.write_choices(out, given)
            families = [f for f in families if f not in given]
        selection = recipe.select_jobs(families, tasks, rates)
        done.update({job: store.lookup_cell(fp_of(job), job) for job in selection})
        if teacher_from is not None and selection:
            done.update(_borrow_teacher_cells(Path(teacher_from), store, config, [j for j in selection if j[1] == TEACHER_MAPPING
                                                                                  and done[j] is None], fp_of, data_fp, out))
        phase1 = distill_jobs + ([] if selection else teacher_missing)
        worker.distill_groups = {d: [j[1] for j in distill_jobs if j[2] == d] for d in {j[2] for j in distill_jobs}}
        select_missing = [job for job in selection if done[job] is None]
        runner = _Runner(store, fp_of, worker, config, executor, progress,
                         total=len(phase1) + len(select_missing) + len(missing) + (len(teacher_missing) if selection else 0))
        failed_students = set()
        try:
            for job, record in runner.run(phase1, prepare_corpus=bool(distill_jobs) and distills(config)):
                done[job] = record if record["status"] == COMPLETE else None
                if job[0] == DISTILL and record["status"] != COMPLETE:
                    failed_students.add((job[1], job[2]))
            if selection:                          # each family's learning rate, on the selection split
                for job, record in runner.run([j for j in select_missing if (j[1], 0) not in failed_students],
                                              prepare_corpus=False):
                    done[job] = record if record["status"] == COMPLETE else None
                recipe.write_choices(out, recipe.choose_rates(done, families, tasks, rates))
            phase2 = ([] if not selection else teacher_missing) + \
                [job for job in missing if (job[1], job[2]) not in failed_students]
            for job, record in runner.run(phase2, prepare_corpus=False):
                done[job] = record if record["status"] == COMPLETE else None
        finally:
            runner.close()
        teacher, ambiguous = teacher_outputs(out, tasks, borrowed=any(
            (done[job] or {}).get("borrowed_from") for job in teacher_jobs if job[4] == LOYALTY_SEED))
        cells = _cells(out, wanted, done, teacher if teacher_jobs else {})
        table = build_table(cells, genomes, tasks, units, kinds=kinds, proxy_fitness=proxy_fitness)
        if teacher_jobs:
            table["loyalty_teacher"] = _loyalty_entry(teacher, ambiguous)
        if refs:
            table["references"] = reference_rows(config, tasks, done, teacher_jobs, reference_jobs, worker)
            table["headroom"] = headroom_rows(table)
        table["resolution"] = table_resolution(table)
        table["recipe"] = recipe.recipe_entry(config, out, [TEACHER_MAPPING, *reference_students(init), *genomes])
        if recipe_from is not None:
            table["recipe"]["rates_from"] = Path(recipe_from).name
        if config.compare.score_examples:
            table["dev"] = dev_rows(config, tasks, done, wanted, teacher_jobs, reference_jobs, worker)
        computed = sum(1 for job in missing if done[job] is not None)
        table.update(
            fingerprint=fingerprint, created=now(), source=dict(source or {}),
            teacher={"name": teacher_label(config.teacher.name), "layers": n_layers,  # no machine path in a table
                     "identity": teacher_identity(config.teacher.name, config.teacher.revision)},
            student={"layers": m_layers, "hidden_size": config.student.hidden_size or int(teacher_cfg.hidden_size),
                     "init": worker.init},
            budget=_budget(config), seeds=config.compare.seeds, distill_seeds=config.compare.distill_seeds,
            teacher_scores={job[3]: done[job]["score"] for job in teacher_jobs if job[4] == 0 and done[job] is not None},
            teacher_from=_teacher_from_entry([done[job] for job in teacher_jobs]),
            cells={"computed": computed, "cached": len(wanted) + len(reference_jobs) - len(missing),
                   "failed": len(missing) - computed, "total": len(wanted) + len(reference_jobs),
                   "distillations": sum(1 for j in runner.finished if j[0] == DISTILL)},
            wall_time=time.perf_counter() - clock,
        )
        write_table(out, table, header=_header(table), footer=dev_lines(table))
        if quantize:                                  # after the table: a failure here loses none of it
            _quantize_into(table, config, out, [m for m in genomes if (m, 0) not in failed_students], tasks, progress)
        return CompareResult(out, table, computed, len(wanted) + len(reference_jobs) - len(missing), len(missing) - computed,
                             table["cells"]["distillations"], table["wall_time"])
    finally:
        store.close()
        lock.close()


def render_folder(out: str | Path) -> CompareResult:
    """Rewrite ``comparison.md/csv/json`` of an existing compare folder from the cells in its store, computing
    nothing (``layermap compare --render-only --out DIR``): the same mappings, tasks and seed units as its
    table, looked up under the fingerprint the folder was made with, so a folder of an older fingerprint
    format gets today's statistics and verdicts.  The task data must still be where the folder's
    ``config.toml`` says (its fingerprint keys the cells)."""
    import tomllib

    from proxy_tasks import data_fingerprint

    clock = time.perf_counter()
    out = Path(out)
    info, old_path = out / INFO_NAME, out / "comparison.json"
    if not (info.is_file() and old_path.is_file() and (out / STORE_NAME).is_file()):
        raise CompareError(f"{out} is not a compare folder with a table (compare.json, comparison.json and "
                           f"{STORE_NAME}); run 'layermap compare ... --out {out}' first")
    try:
        fingerprint = json.loads(info.read_text("utf-8"))["fingerprint"]
        old = json.loads(old_path.read_text("utf-8"))
        mappings, tasks = list(old["mappings"]), list(old["tasks"])
        units = [tuple(u) for u in old["units"]]
    except (ValueError, KeyError, TypeError):
        raise CompareError(f"{info} or {old_path} is damaged; rerun 'layermap compare' into a new --out folder") from None
    settings = tomllib.loads((out / "config.toml").read_text("utf-8")) if (out / "config.toml").is_file() else {}
    glue_dir = (settings.get("proxy") or {}).get("glue_dir") or None
    cell_fp = {t: digest([fingerprint, t, data_fingerprint(t, glue_dir)])[:32] for t in tasks}
    averages = {r["mapping"]: r for r in old["rows"] if r["task"] == AVERAGE}
    wanted = [(FINETUNE, m, d, t, seed) for m in mappings for t in tasks for d, seed in units]
    teacher_jobs = [(TEACHER, TEACHER_MAPPING, 0, t, 0) for t in (old.get("teacher_scores") or {})]
    with Store(out / STORE_NAME, upgrade=False) as store:           # read only: an old store stays as it is
        done = {job: store.lookup_cell(cell_fp[job[3]], job) for job in wanted + teacher_jobs}
    teacher, ambiguous = teacher_outputs(out, tasks, borrowed=bool(old.get("teacher_from")))
    cells = _cells(out, wanted, done, teacher if teacher_jobs else {})
    table = build_table(cells, mappings, tasks, units,
                        kinds={m: (averages.get(m) or {}).get("kind") or [] for m in mappings},
                        proxy_fitness={m: r["proxy_fitness"] for m, r in averages.items() if r.get("proxy_fitness") is not None})
    if teacher_jobs:
        table["loyalty_teacher"] = _loyalty_entry(teacher, ambiguous)
    found = sum(1 for job in wanted if done[job] is not None)
    keep = ("fingerprint", "created", "source", "teacher", "student", "budget", "seeds", "distill_seeds", "teacher_scores",
            "references", "teacher_from", "quantized", "quantize_error", "recipe", "dev")
    table.update({k: old[k] for k in keep if k in old})
    if table.get("references"):                    # the yardsticks' cells as they were; headroom from today's rule
        table["headroom"] = headroom_rows(table)
    table["resolution"] = table_resolution(table)
    table.update(fingerprint=fingerprint, rendered=now(),
                 cells={"computed": 0, "cached": found, "failed": 0, "missing": len(wanted) - found,
                        "total": len(wanted), "distillations": 0},
                 wall_time=time.perf_counter() - clock)
    write_table(out, table, header=_header(table), footer=dev_lines(table))
    return CompareResult(out, table, 0, found, 0, 0, table["wall_time"])


class _Runner:
    """Runs job lists through one executor (created on first need) and writes each record as it arrives."""

    def __init__(self, store: Store, fp_of, worker: CompareWorker, config: Config, executor: Executor | None,
                 progress: bool, total: int) -> None:
        self.store, self.fp_of, self.worker, self.config = store, fp_of, worker, config
        self.executor, self.owns = executor, executor is None
        self.progress, self.total, self.count = progress, total, 0
        self.finished: list[Job] = []
        self._prepared = 0             # 0 nothing, 1 the teacher, 2 the teacher and the corpus slice (+ its cache)

    def run(self, jobs: Sequence[Job], *, prepare_corpus: bool):
        if not jobs:
            return
        level = 2 if prepare_corpus else 1
        if level > self._prepared:
            self.worker.progress = self.progress and live_progress()
            self.worker.prepare(distill=prepare_corpus)
            self.worker.progress = False
            self._prepared = level
        if self.executor is None:
            self.executor = create_executor(self.worker, self.config.run)
        from tqdm.auto import tqdm

        live = live_progress()
        with tqdm(total=len(jobs), desc="compare", unit="job", file=sys.stderr,
                  disable=not (self.progress and live)) as bar:
            for job, record in self.executor.submit(jobs):
                job = tuple(job)
                self.store.save_cell(self.fp_of(job), job, record)
                self.finished.append(job)
                self.count += 1
                bar.update()
                if self.progress and not live:                 # no terminal: one log line per job
                    _log.info(f"compare {self.count}/{self.total}  {_describe_job(job)}  {_outcome(record)}  "
                              f"{record.get('timings', {}).get('total', 0.0):.0f}s")
                yield job, record

    def close(self) -> None:
        if self.executor is not None and self.owns:
            self.executor.close()


def _describe_job(job: Job) -> str:
    kind, mapping, d, task, seed = job
    if kind == DISTILL:
        return f"distill {mapping} (seed {d})"
    if kind == TEACHER:
        return f"teacher fine-tune {task}"
    if kind == recipe.SELECT:
        return f"select the rate of {mapping} on {task} (grid rate {seed + 1})"
    return f"{mapping} {task} seed {seed}" + (f" (distillation seed {d})" if d else "")


def _outcome(record: dict) -> str:
    if record["status"] != COMPLETE:
        return f"failed ({record.get('error')})"
    if record.get("score") is not None:
        return f"score {record['score']:.2f}"
    if record.get("steps") == 0:
        return "no distillation: the initialisation saved"
    return f"loss {record.get('distill_loss', float('nan')):.4f}"


def _cells(out: Path, wanted: Sequence[Job], done: Mapping[Job, dict | None],
           teacher: Mapping[str, Path | None]) -> list[Cell]:
    """Finished cells, with loyalty to the teacher's dev outputs ``teacher`` (task -> file, :func:`teacher_outputs`)."""
    cells = []
    for job in wanted:
        record = done.get(job)
        if record is None:
            continue
        loy = _loyalty(teacher.get(job[3]), _outputs_path(out, job))
        cells.append(Cell(mapping=job[1], distill_seed=job[2], task=job[3], seed=job[4], score=float(record["score"]),
                          metrics=dict(record.get("metrics", {})), loyalty=loy))
    return cells


def _loyalty(teacher_path: Path | None, student_path: Path) -> dict[str, float]:
    if teacher_path is None or not (teacher_path.is_file() and student_path.is_file()):
        return {}
    with np.load(teacher_path) as t, np.load(student_path) as s:
        splits = [k for k in t.files if k in s.files]
        if not splits:
            return {}
        return loyalty(np.concatenate([s[k] for k in splits]), np.concatenate([t[k] for k in splits]))


def teacher_outputs(out: Path, tasks: Sequence[str], *, borrowed: bool) -> tuple[dict[str, Path | None], list[str]]:
    """task -> the dev outputs of the teacher fine-tuned with seed :data:`LOYALTY_SEED`, the one teacher every student
    cell's loyalty is measured against, and the tasks whose outputs exist only in an ambiguous old file.

    Why seed 0 and not the student cell's own seed: it is the teacher every folder has (``--teacher-finetune``
    fine-tunes it alone; the reference rows fine-tune it on every seed), so loyalty means the same in every folder
    and for every mapping.  A folder made before the outputs were kept per seed has one file per task; it is seed 0's
    only where the folder fine-tuned the teacher on seed 0 alone (made without reference rows) and did not copy it
    from another folder (``borrowed``); otherwise it holds whichever seed finished last, and loyalty is left out."""
    found, ambiguous = {}, []
    legacy_trusted = not borrowed and not _folder_settings_of(out).get("compare.references", False)
    for t in tasks:
        path, legacy = _outputs_path(out, (TEACHER, TEACHER_MAPPING, 0, t, LOYALTY_SEED)), _legacy_teacher_outputs(out, t)
        if path.is_file():
            found[t] = path
        elif legacy.is_file():
            found[t] = legacy if legacy_trusted else None
            if not legacy_trusted:
                ambiguous.append(t)
        else:
            found[t] = None
    return found, ambiguous


def _folder_settings_of(out: Path) -> dict:
    """The settings recorded in a compare folder's ``compare.json`` ({} where there is none)."""
    try:
        return json.loads((out / INFO_NAME).read_text("utf-8")).get("settings", {})
    except (OSError, ValueError):
        return {}


def _loyalty_entry(teacher: Mapping[str, Path | None], ambiguous: Sequence[str]) -> dict:
    """The table's ``loyalty_teacher``: which teacher loyalty is measured against, the tasks whose teacher outputs are an
    ambiguous old file, and those whose seed-0 teacher outputs are not in the folder at all (a failed cell, or a
    teacher row read with ``--teacher-from`` from a folder that had no unambiguous copy)."""
    absent = [t for t, path in teacher.items() if path is None and t not in ambiguous]
    return {"seed": LOYALTY_SEED, "ambiguous": list(ambiguous), "absent": absent}


def reference_rows(config: Config, tasks: Sequence[str], done: Mapping[Job, dict | None], teacher_jobs: Sequence[Job],
                   reference_jobs: Sequence[Job], worker: "CompareWorker") -> dict:
    """The compare table's yardsticks, per task and on the average: the fine-tuned teacher and the fine-tuned students
    with no distillation (mean and std over their seed units: ``no distillation``, or with teacher initialisation
    ``truncation`` and ``random``, :data:`REFERENCE_STUDENTS`), and the best constant predictor of each dev set."""
    from ..evaluators.references import constant_scores

    rows: dict[str, dict] = {}
    groups = [("teacher", teacher_jobs)] + [(REFERENCE_STUDENTS[key], [j for j in reference_jobs if j[1] == key])
                                           for key in dict.fromkeys(j[1] for j in reference_jobs)]
    for name, jobs in groups:
        per_task = {t: [done[j]["score"] for j in jobs if j[3] == t and done.get(j) is not None] for t in tasks}
        rows[name] = {t: {"mean": float(np.mean(v)) if v else None,
                          "std": float(np.std(v, ddof=1)) if len(v) > 1 else None, "n": len(v)}
                      for t, v in per_task.items()}
    constant = {}
    for t in tasks:
        data = worker._task(t)
        constant[t] = {"mean": _constant(data, scored=True), "std": None, "n": 1}
    rows["constant"] = constant
    for row in rows.values():
        means = [row[t]["mean"] for t in tasks]
        row[AVERAGE] = {"mean": float(np.mean(means)) if all(m is not None for m in means) else None, "std": None,
                        "n": min(row[t]["n"] for t in tasks)}
    return rows


def _constant(data, *, scored: bool) -> float:
    """The best constant predictor's score where the table reads its scores: the scoring split when there is one and
    ``scored``, else the dev splits."""
    from proxy_tasks.holdout import SCORE

    from ..evaluators.references import constant_scores

    if scored and SCORE in data.held_out:
        labels = np.asarray([e.label for e in data.held_out[SCORE]])
        return constant_scores(data.task, {split: labels for split in data.task.dev_splits})
    return constant_scores(data.task, {split: np.asarray([e.label for e in ex]) for split, ex in data.dev.items()})


def dev_rows(config: Config, tasks: Sequence[str], done: Mapping[Job, dict | None], wanted: Sequence[Job],
             teacher_jobs: Sequence[Job], reference_jobs: Sequence[Job], worker: "CompareWorker") -> dict:
    """The official dev scores of the same fine-tuned cells (a table whose verdicts read the scoring split): row ->
    task (and average) -> mean and std over its cells, for every mapping and the reference rows."""
    groups: dict[str, list[Job]] = {}
    for job in wanted:
        groups.setdefault(job[1], []).append(job)
    groups["teacher"] = list(teacher_jobs)
    if not reference_jobs:                          # as every folder before the teacher-initialised rows
        groups["no distillation"] = []
    for job in reference_jobs:
        groups.setdefault(REFERENCE_STUDENTS[job[1]], []).append(job)
    rows: dict[str, dict] = {}
    for name, jobs in groups.items():
        per_task = {t: [done[j]["dev_score"] for j in jobs if j[3] == t and (done.get(j) or {}).get("dev_score") is not None]
                    for t in tasks}
        row = {t: {"mean": float(np.mean(v)) if v else None, "std": float(np.std(v, ddof=1)) if len(v) > 1 else None}
               for t, v in per_task.items()}
        means = [row[t]["mean"] for t in tasks]
        row[AVERAGE] = {"mean": float(np.mean(means)) if None not in means else None, "std": None}
        rows[name] = row
    constant = {t: {"mean": _constant(worker._task(t), scored=False), "std": None} for t in tasks}
    constant[AVERAGE] = {"mean": float(np.mean([constant[t]["mean"] for t in tasks])), "std": None}
    rows["constant"] = constant
    return rows


def dev_lines(table: Mapping) -> list[str]:
    """The official dev scores' table (a table read on the scoring split), else nothing."""
    from proxy_tasks import get_task

    dev = table.get("dev")
    if not dev:
        return []
    tasks = table["tasks"]
    names = [get_task(t).glue_dir_name for t in tasks]
    lines = ["Official dev sets, the same fine-tuned students (mean ± std over the same seed units; the verdicts above "
             "read the scoring split, whose examples are more):", "",
             f"| row | {' | '.join(names)} | average |", "|---|" + "---|" * (len(tasks) + 1)]
    for name, row in dev.items():
        cells = [_fmt_cell(row[t]) for t in (*tasks, AVERAGE)]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return lines


def _fmt_cell(cell: Mapping) -> str:
    if cell.get("mean") is None:
        return "–"
    return f"{cell['mean']:.2f}" + (f" ± {cell['std']:.2f}" if cell.get("std") is not None else "")


def headroom_rows(table: Mapping) -> dict:
    """mapping -> task (and average) -> headroom recovered, (mean - floor) / (teacher - floor); a task's floor is
    the best non-teacher row (max(no distillation, constant), or max(truncation, random, constant)), the average's the mean
    over tasks of each task's floor (:func:`reference_floor`); None where the teacher does not beat the floor (no headroom) or a row is missing."""
    refs = table["references"]
    out: dict[str, dict] = {}
    for r in table["rows"]:
        t = r["task"]
        teacher, floor = refs["teacher"].get(t, {}).get("mean"), reference_floor(refs, table["tasks"], t)
        if None in (teacher, floor, r["mean"]):
            value = None
        else:
            value = (r["mean"] - floor) / (teacher - floor) if teacher > floor else None
        out.setdefault(r["mapping"], {})[t] = value
    return out


def reference_floor(refs: Mapping, tasks: Sequence[str], column: str) -> float | None:
    """The floor of a column of the table: a task's best non-teacher row, max(no distillation, constant) or with
    teacher initialisation max(truncation, random, constant); for the average, the mean over ``tasks`` of each task's
    floor (:func:`layermap.evolution.references.average_floor`, as the proxy takes it), never the max of the rows'
    averages.  None where a row is missing."""
    from ..evaluators.references import average_floor

    columns = tasks if column == AVERAGE else [column]
    values = {name: {t: refs[name].get(t, {}).get("mean") for t in columns} for name in floor_names(refs)}
    if any(v is None for row in values.values() for v in row.values()):
        return None
    return average_floor(*values.values())


def floor_names(refs: Mapping) -> list[str]:
    """The rows of a table's ``references`` whose best is the floor: every row but the teacher."""
    return [name for name in refs if name != "teacher"]


def _floor_words(refs: Mapping) -> str:
    """``max(no distillation, constant)``, or ``max(truncation, random, constant)``."""
    return f"max({', '.join(floor_names(refs))})"


def _borrow_rates(source: Path, config: Config, families: Sequence[str], tasks: Sequence[str]) -> dict:
    """family -> task -> rate chosen in compare folder ``source`` (``--recipe-from``), for the families that have a
    rate there for every task.  ``source`` must have been made with this fine-tuning recipe (the teacher, the task
    data sizes, ``finetune_*`` and the recipe keys); else one sentence."""
    recorded = _folder_settings_of(source)
    if not recorded or not (source / recipe.RECIPE_NAME).is_file():
        raise CompareError(f"--recipe-from {source} is not a compare folder that chose learning rates (no {INFO_NAME} "
                           f"and {recipe.RECIPE_NAME}); give a folder written by layermap compare with a rate grid")
    ours = _folder_settings(config)
    keys = ["teacher.name", *(f"compare.{k}" for k in (*_TEACHER_SHAPING, *recipe.RECIPE_DEFAULTS))]
    differ = [k for k in keys if recorded.get(k) != ours.get(k)]
    if differ:
        raise CompareError(f"--recipe-from {source} chose its rates under another recipe ({', '.join(differ)} "
                           "differ); give a folder with this compare's fine-tuning settings")
    chosen = recipe.read_choices(source)
    given = {f: dict(chosen[f]) for f in families if all(t in chosen.get(f, {}) for t in tasks)}
    _log.info(f"learning rates of {len(given)} of {len(families)} student famil{'y' if len(families) == 1 else 'ies'} "
              f"read from {source}")
    return given


def _borrow_teacher_cells(source: Path, store: Store, config: Config, jobs: Sequence[Job], fp_of, data_fp: Mapping,
                          out: Path) -> dict:
    """Copy the teacher fine-tuning cells ``jobs`` from compare folder ``source`` into ``store`` (and their dev outputs,
    for loyalty); returns job -> record for those found.  A cell is found under the teacher's own key (same teacher,
    fine-tuning settings, task data, versions and device class); in a folder from before that key, under its cell key,
    when its recorded teacher identity, fine-tuning settings and device class are this compare's and its record's
    library versions match.  A folder that is not a compare folder is one sentence; cells it lacks are computed."""
    from ..distill.models import teacher_identity

    info = source / INFO_NAME
    if not (info.is_file() and (source / STORE_NAME).is_file()):
        raise CompareError(f"--teacher-from {source} is not a compare folder (no {INFO_NAME} and {STORE_NAME}); give a "
                           "folder written by layermap compare")
    if source.resolve() == out.resolve():
        return {}
    recorded = json.loads(info.read_text("utf-8"))
    legacy_fp = None
    table_path = source / "comparison.json"
    settings = recorded.get("settings", {})
    ours = _folder_settings(config)
    same_settings = all(settings.get(f"compare.{k}") == ours.get(f"compare.{k}") for k in _TEACHER_SHAPING) and \
        settings.get("device") == ours.get("device")
    if same_settings and table_path.is_file():
        table = json.loads(table_path.read_text("utf-8"))
        if table.get("teacher", {}).get("identity") == teacher_identity(config.teacher.name, config.teacher.revision):
            legacy_fp = recorded.get("fingerprint")
    versions = library_versions()
    found: dict = {}
    other = Store(source / STORE_NAME)
    try:
        for job in jobs:
            record = other.lookup_cell(fp_of(job), job)
            if record is None and legacy_fp is not None:
                record = other.lookup_cell(digest([legacy_fp, job[3], data_fp[job[3]]])[:32], job)
                env = (record or {}).get("environment", {})
                if record is not None and any(major_minor(env.get(k)) != v for k, v in versions.items()):
                    record = None
            if record is None:
                continue
            src, dst = _outputs_path(source, job), _outputs_path(out, job)
            if job[4] == LOYALTY_SEED:               # also an old folder's one file per task, where it is seed 0's
                src = teacher_outputs(source, [job[3]], borrowed=bool(record.get("borrowed_from")))[0][job[3]] or src
            record = {**record, "borrowed_from": source.name}
            store.save_cell(fp_of(job), job, record)
            if src.is_file() and not dst.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(src.read_bytes())
            found[job] = record
    finally:
        other.close()
    _log.info(f"teacher row: {len(found)} of {len(jobs)} fine-tuning cell(s) read from {source}")
    return found


def quantize_students(config: Config, out: Path, mappings: Sequence[str], tasks: Sequence[str], *,
                      progress: bool = True) -> dict:
    """``compare --quantize``: each distilled student ``DIR/students/<m>/`` (distillation seed 0) through
    :func:`layermap.deploy.quantize.quantize_student` into ``DIR/onnx/<m>/`` (ONNX fp32 and dynamic int8, latency
    under ``[latency]``, the probe-head dev scores of fp32 and int8 on the compare's tasks with
    ``compare.max_train`` examples, and their agreement); a student whose ``quantize.json`` was written under the
    same settings is read back, not measured again.  Returns mapping -> its ``quantize.json`` payload."""
    from dataclasses import asdict

    from ..deploy.quantize import check_int8_device, quantize_student

    check_int8_device(config.latency)
    settings = config.latency
    c = config.compare
    wanted = {"settings": asdict(settings), "tasks": list(tasks), "max_train": c.max_train or None,
              "max_eval": c.max_eval or None, "max_seq_len": c.finetune_seq_len, "format": QUANTIZE_FORMAT}
    reports: dict = {}
    for m in mappings:
        folder, dest = student_dir(out, m, 0), out / "onnx" / m
        saved = dest / "quantize.json"
        if saved.is_file():
            payload = json.loads(saved.read_text("utf-8"))
            if payload.get("request") == wanted:
                reports[m] = payload
                continue
        if progress:
            _log.info(f"quantize {m}: ONNX export, int8, latency and probe scores of fp32 and int8")
        report = quantize_student(folder, dest, settings=settings, tasks=tuple(tasks), glue_dir=config.proxy.glue_dir or None,
                                  max_train=wanted["max_train"], max_eval=wanted["max_eval"],
                                  max_seq_len=wanted["max_seq_len"])
        payload = {**report.to_dict(), "request": wanted}
        payload["student"], payload["out_dir"] = f"students/{m}", f"onnx/{m}"     # no machine path in a table
        saved.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        reports[m] = payload
    return reports


def _quantize_into(table: dict, config: Config, out: Path, mappings: Sequence[str], tasks: Sequence[str],
                   progress: bool) -> None:
    """``--quantize`` once the table is written: the int8 columns added and the table written again; a failure leaves
    the table as written, with a sentence saying why, and ends in one sentence (:class:`CompareError`)."""
    try:
        table["quantized"] = quantize_students(config, out, mappings, tasks, progress=progress)
    except Exception as exc:  # noqa: BLE001 - whatever broke, the comparison itself is done and kept
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        table["quantize_error"] = reason
        write_table(out, table, header=_header(table))
        raise CompareError(f"the comparison is written to {out / 'comparison.md'}, but --quantize failed: {reason}") from None
    write_table(out, table, header=_header(table))


def quantized_lines(table: Mapping) -> list[str]:
    """The int8 columns of ``compare --quantize`` as a Markdown table."""
    q = table.get("quantized") or {}
    if table.get("quantize_error") and not q:
        return [f"Int8 students: not measured, `--quantize` failed ({table['quantize_error']})."]
    if not q:
        return []
    first = next(iter(q.values()))
    s = first["settings"]
    lines = [f"Int8 students (`--quantize`: ONNX Runtime dynamic int8 of each distilled student; latency on "
             f"{first['device']}, {s['threads']} thread(s), batch {s['batch_size']} × {s['seq_len']} tokens, median of "
             f"{s['repeats']}, PyTorch fp32 / ONNX fp32 / ONNX int8, so the runtime's change and int8's are apart; sizes "
             "of the same ONNX graph in fp32 and int8; scores through the linear probe head on the frozen encoder, not "
             "fine-tuned, its C cross-validated once on fp32's features and used for int8 too, with the share of equal "
             "dev predictions of fp32 and int8):", "",
             "| mapping | size ONNX fp32 → int8 (MB) | latency PyTorch fp32 / ONNX fp32 / ONNX int8 (ms) | "
             "probe average fp32 → int8 | agreement |", "|---|---|---|---|---|"]
    for m, r in q.items():
        tasks = r.get("tasks") or []
        fp32 = float(np.mean([t["fp32"] for t in tasks])) if tasks else None
        int8 = float(np.mean([t["int8"] for t in tasks])) if tasks else None
        agree = float(np.mean([t["agreement"] for t in tasks])) if tasks else None
        lat = r["latency"]
        lines.append(f"| {m} | {r['size_mb']['onnx_fp32']:.1f} → {r['size_mb']['onnx_int8']:.1f} | "
                     + " / ".join(f"{lat[k]['median_ms']:.2f}" for k in ("torch-fp32", "onnx-fp32", "onnx-int8")) + " | "
                     + (f"{fp32:.2f} → {int8:.2f} | {agree:.1f} % |" if fp32 is not None else "– | – |"))
    return lines


def _teacher_from_entry(records: Sequence[dict | None]) -> dict | None:
    """The folder the teacher row's cells (``records``) were read from and how many (None when all were computed
    here)."""
    names = [r["borrowed_from"] for r in records if r is not None and r.get("borrowed_from")]
    return {"folder": names[0], "cells": len(names)} if names else None


def _budget(config: Config) -> dict:
    c = config.compare
    return {"max_steps": c.max_steps, "epochs": c.epochs, "batch_size": c.batch_size, "seq_len": c.seq_len,
            "learning_rate": c.learning_rate, "max_segments": c.max_segments, "fraction": c.fraction,
            "finetune": {"max_train": c.max_train, "max_eval": c.max_eval, "epochs": c.finetune_epochs,
                         "batch_size": c.finetune_batch_size, "learning_rate": c.finetune_learning_rate,
                         "seq_len": c.finetune_seq_len}}


def _header(table: dict) -> list[str]:
    b, s = table["budget"], table["student"]
    steps = f"{b['max_steps']} steps" if b["max_steps"] else f"{b['epochs']:g} epochs"
    distilled = bool(b["max_steps"] or b["epochs"])
    ft = b["finetune"]
    avg = [r["std"] for r in table["rows"] if r["task"] == AVERAGE and r["std"] is not None]
    noise = (f"Seed noise: the standard deviation of a mapping's average over seeds is {min(avg):.2f}–{max(avg):.2f} points."
             if avg else "Seed noise: not measured (one seed).")
    n_units = len(table["units"])
    rec = table.get("recipe") or {}
    rate = (f"learning rate {ft['learning_rate']:g}" if len(rec.get("rates", [0])) < 2
            else "learning rate chosen per student family (below)")
    where = (f"the scoring split ({rec['score_examples']} held-out training examples per task; the dev sets below)"
             if rec.get("scored_on") == "score" else "GLUE dev metrics")
    lines = [
        f"# Final-stage comparison ({len(table['mappings'])} mappings, {len(table['tasks'])} tasks, {n_units} seed units)",
        "",
        f"Teacher `{teacher_label(table['teacher']['name'])}` ({table['teacher']['layers']} layers"
        + (f", {table['teacher']['identity']}" if table["teacher"].get("identity") else "") + f") → {s['layers']}-layer, "
        f"{s['hidden_size']}-wide student, initialisation `{s['init']}`. "
        + (_gene_words(table) if s["init"] == "teacher" else "")
        + (f"Full distillation: {steps} of {b['batch_size']} × {b['seq_len']} tokens, learning rate "
           f"{b['learning_rate']:g}. " if distilled else "No distillation: each student is its initialisation. ")
        + "Fine-tuning: "
        f"{ft['max_train'] or 'all'} training examples per task, {ft['epochs']:g} epochs, {rate}, "
        f"{table['seeds']} seeds × {table['distill_seeds']} distillation seed(s). "
        f"Scores: {where} in percent (two-metric tasks: their mean), mean ± std over seed units.",
        "",
        f"{noise} Each mapping is compared with the reference ({table['reference_kind']}: {table['reference']}) "
        f"by the paired difference over the shared {_unit_words(table)}, with a 95 % Student-t interval; "
        f"'better' only when paired t-tests against {rivals_text(table)} all find it above (Holm–Bonferroni-adjusted p "
        "below 0.05 within each task, and for the average), 'worse' only when the test against the reference finds "
        "it below (the note under the table says how).",
    ]
    if recipe.recipe_lines(table):
        lines += ["", *recipe.recipe_lines(table)]
    if table.get("references"):
        lines += ["", *reference_lines(table)]
    if table.get("quantized") or table.get("quantize_error"):
        lines += ["", *quantized_lines(table)]
    elif table.get("teacher_scores"):
        lines += ["", "Fine-tuned teacher (seed 0): " + ", ".join(f"{t} {v:.2f}" for t, v in table["teacher_scores"].items())]
    return lines


def _gene_words(table: Mapping) -> str:
    """What a compared mapping's genes mean with teacher initialisation (:func:`layermap.extraction.gene_legend`: a
    mapping's gene, gene 0 and a split mapping ``i+k``)."""
    legend = gene_legend("teacher", "coupled")
    return f"Mappings: {legend}. "


def reference_lines(table: Mapping) -> list[str]:
    """The yardsticks as a Markdown table (teacher, no distillation or truncation and random, constant; mean ± std
    over seed units) and each
    mapping's headroom recovered on the average, with a sentence when the students have not learnt."""
    from ..evaluators.references import format_headroom

    refs, tasks = table["references"], [*table["tasks"], AVERAGE]

    def cell(d):
        if d.get("mean") is None:
            return "–"
        return f"{d['mean']:.2f}" + (f" ± {d['std']:.2f}" if d.get("std") is not None else "")

    students = ("for a student with no distillation" if TRUNCATION not in refs else
                f"for the plain truncation (the bottom {table['student']['layers']} teacher layers copied, no distillation) "
                "and a random student with no distillation")
    lines = [f"Reference rows (the same fine-tuning for the teacher and {students}; the constant "
             "is the best constant prediction on each dev set):", "",
             "| reference | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for name in refs:
        lines.append(f"| {name} | " + " | ".join(cell(refs[name].get(t, {})) for t in tasks) + " |")
    floors = [reference_floor(refs, table["tasks"], t) for t in tasks]
    lines.append(f"| floor: {_floor_words(refs)}; average: mean of the task floors | "
                 + " | ".join("–" if f is None else f"{f:.2f}" for f in floors) + " |")
    borrowed = table.get("teacher_from")
    if borrowed:
        lines += ["", f"The teacher row's {borrowed['cells']} fine-tuning cell(s) were read from the compare folder "
                      f"`{borrowed['folder']}` (the same teacher, fine-tuning settings, task data, library versions and "
                      "device class; `--teacher-from`)."]
    room = table.get("headroom", {})
    lines += ["", "Headroom recovered on the average, (mapping − floor) / (teacher − floor) with the floor the mean over "
              f"tasks of each task's {_floor_words(refs)}: "
              + ", ".join(f"{m} {format_headroom(room.get(m, {}).get(AVERAGE))}" for m in table["mappings"]) + "."]
    sentence = not_learnt_sentence(table)
    return lines + (["", sentence] if sentence else [])


def not_learnt_sentence(table: Mapping) -> str | None:
    """The sentence a table carries when its students cannot be ranked (:func:`layermap.evolution.references.not_learnt`,
    the proxy's rule): it names the condition that fired, the teacher's average less than the noise margin above the
    floor, or the best mapping's (the teacher then given with its own distance from the floor)."""
    from ..evaluators.references import noise_margin, not_learnt

    refs = table["references"]
    best = max((r["mean"] for r in table["rows"] if r["task"] == AVERAGE and r["mean"] is not None), default=None)
    teacher, floor = refs["teacher"][AVERAGE]["mean"], reference_floor(refs, table["tasks"], AVERAGE)
    if None in (best, teacher, floor):
        return None
    avg_std = [r["std"] for r in table["rows"] if r["task"] == AVERAGE and r["std"] is not None]
    noise = max(avg_std) if avg_std else 0.0
    where = f"the floor {floor:.2f} (the mean over tasks of each task's {_floor_words(refs)})"
    margin = (f"less than the noise margin {noise_margin(noise):.2f} (1.96 × √2 × the largest seed std of an average, "
              f"{noise:.2f})")
    sentences = {
        "teacher": (f"**The students cannot be ranked at this budget:** the teacher's average {teacher:.2f} is "
                    f"{teacher - floor:+.2f} from {where}, {margin}, so no student can be told from the floor; the "
                    "ranking of the mappings is noise."),
        "best": (f"**The students have not learnt at this budget:** the best mapping's average {best:.2f} is "
                 f"{best - floor:+.2f} from {where}, {margin}, while the teacher's {teacher:.2f} is "
                 f"{teacher - floor:+.2f} from it; the ranking of the mappings is noise."),
    }
    return sentences.get(not_learnt(teacher, best, floor, noise))


def _unit_words(table: dict) -> str:
    """What the table's verdicts pair over, in words."""
    if table.get("unit") == "distillation seed":
        return "distillation seeds (each a student's mean over its fine-tuning seeds)"
    if table.get("unit") == "fine-tuning seed":
        return "fine-tuning seeds of one distilled student per mapping"
    return "seed units"


def _claim_folder(out: Path, config: Config, fingerprint: str) -> str:
    """The fingerprint the compare folder ``out`` keys its cells by: a new folder records ``fingerprint`` (today's,
    :func:`compare_fingerprint`); an existing one must have been made with the same settings, its recorded
    fingerprint one of :func:`accepted_fingerprints`."""
    info = out / INFO_NAME
    if info.is_file():
        try:
            recorded = json.loads(info.read_text("utf-8"))
        except ValueError:
            raise CompareError(f"{info} is damaged; remove the folder {out} or choose another --out") from None
        if recorded.get("fingerprint") not in (fingerprint, *accepted_fingerprints(config)):
            then = recorded.get("settings", {})
            now_s = _folder_settings(config)
            keys = [k for k in sorted(set(then) | set(now_s)) if k.removeprefix("compare.") not in _ONCE_IN_FINGERPRINT]
            changed = next((k for k in keys if then.get(k) != now_s.get(k)),
                           "the teacher, its tokenizer, the data, a library version or layermap's fingerprint format")
            raise CompareError(f"compare folder {out} was made with other settings ({changed} differs); use the same "
                               "settings to extend it, or choose a new --out folder")
        return recorded["fingerprint"]
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CompareError(f"--out {out} exists and is not a compare folder; choose a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    payload = {"fingerprint": fingerprint, "created": now(), "settings": _folder_settings(config)}
    info.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    (out / "config.toml").write_text(dump_toml(config), encoding="utf-8")
    return fingerprint


def _folder_settings(config: Config) -> dict:
    """The settings a compare folder is bound to, flattened (``section.key``) for naming what changed."""
    d = config.to_dict()
    flat = {f"{sec}.{k}": v for sec in ("teacher", "student") for k, v in d[sec].items()}
    flat["teacher.name"] = teacher_label(config.teacher.name)          # compare.json names no machine path
    flat.update({"corpus.path": config.corpus.path, "corpus.seed": config.corpus.seed})
    flat.update({f"compare.{k}": v for k, v in d["compare"].items() if k not in _NOT_SHAPING})
    flat.update(_device_and_cache(config))
    return json.loads(json.dumps(flat))
