"""The compare worker (:class:`CompareWorker`): it implements the worker protocol
(:mod:`layermap.executors.protocol`) for the final stage's jobs: distil a student, fine-tune it (or the teacher, or a
reference student) on a task with a seed and score it, each job one record.  May import ``jobs``, ``fingerprints``,
``recipe``, ``config``, ``distill``, ``executors``, ``storage`` and the top-level modules.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import recipe
from ..config import Config, digest
from ..executors.safety import describe_exception
from ..extraction import parse_genome, start_mapping, truncation
from ..mapping import LayerMapping
from ..storage.records import COMPLETE, FAILED, environment
from .jobs import (CompareError, DISTILL, Job, RANDOM, REFERENCE_STUDENTS, TEACHER, TEACHER_MAPPING, TRUNCATION,
                   _outputs_path, distill_settings, distills, student_dir)


class CompareWorker:
    """Picklable runner of compare jobs; heavy state (teacher, corpus slice, task data) loads lazily per process.  A
    :class:`layermap.executors.protocol.Worker`: its device class is the one the compare fingerprint names (the Ray
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
        return [self.run_job(Job(*job)) for job in jobs]

    def failure(self, job: Job, error: str) -> dict:
        """The failed cell of a job whose process died."""
        return {"status": FAILED, "error": error, "kind": Job(*job).kind, "timings": {}}

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
            init_student_from_teacher(student, teacher.model, start_mapping(mapping), s.slice)
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
