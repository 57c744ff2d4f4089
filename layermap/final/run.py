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

This module plans, runs, resumes and renders a compare folder (:func:`run_compare`, :func:`render_folder`,
:func:`plan_from_run`); the jobs, fingerprints, worker, borrowing, int8 and the table's text live in the modules
beside it (:mod:`layermap.final`).  May import every module of ``final`` and what they may import.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import recipe
from .resolution import table_resolution
from .comparison import AVERAGE, build_table, kinds_of, write_table
from ..config import Config, digest, dump_toml
from ..distill.identity import teacher_label
from ..executors.registry import Executor, create_executor
from ..logs import get_logger, live_progress
from ..extraction import check_config_extraction
from ..mapping import baselines
from ..storage.records import COMPLETE
from ..storage.store import STORE_NAME, Store, now
from ..storage.runs import lock_run
from .borrow import _borrow_rates, _borrow_teacher_cells
from .fingerprints import (_ONCE_IN_FINGERPRINT, _folder_settings, accepted_fingerprints, compare_fingerprint,
                           teacher_cell_fingerprint)
from .int8 import _quantize_into
from .jobs import (CompareError, DISTILL, FINETUNE, INFO_NAME, Job, LOYALTY_SEED, REFERENCE_STUDENTS, TEACHER,
                   TEACHER_MAPPING, _canonical, _describe_job, distills, reference_students, resolve_mappings,
                   student_dir, teacher_outputs)
from .report import (_budget, _cells, _slice_entry, _header, _loyalty_entry, _teacher_from_entry, dev_lines, dev_rows,
                     headroom_rows, reference_rows)
from .worker import CompareWorker

_log = get_logger(__name__)


@dataclass(frozen=True)
class CompareResult:
    out: Path
    table: dict
    computed: int            # fine-tuning cells computed by this invocation
    cached: int              # fine-tuning cells found in the store
    failed: int              # fine-tuning cells that failed (or whose student failed) in this invocation
    distilled: int           # full distillations run by this invocation
    wall_time: float


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
    from ..report.results import load_result
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


@dataclass(frozen=True)
class _Keys:
    """The store key of each job of one compare: a distillation's is the compare fingerprint, a fine-tuning cell's
    that fingerprint with its task and task data, a teacher cell's the teacher's own (no student in it), a recipe
    selection's its family's cell key with the learning rate it tries."""

    fingerprint: str
    cell_fp: Mapping[str, str]               # task -> a student cell's key
    teacher_cell_fp: Mapping[str, str]       # task -> a teacher cell's key
    rates: tuple[float, ...]                 # the recipe's learning-rate grid

    @classmethod
    def of(cls, config: Config, fingerprint: str, tasks: Sequence[str], data_fp: Mapping[str, str]) -> "_Keys":
        teacher_fp = teacher_cell_fingerprint(config)
        return cls(fingerprint, {t: digest([fingerprint, t, data_fp[t]])[:32] for t in tasks},
                   {t: digest([teacher_fp, t, data_fp[t]])[:32] for t in tasks}, recipe.grid(config))

    def __call__(self, job: Job) -> str:
        if job.kind == recipe.SELECT:
            base = self.teacher_cell_fp[job.task] if job.mapping == TEACHER_MAPPING else self.cell_fp[job.task]
            return recipe.select_fingerprint(base, self.rates[job.seed])
        if job.kind == TEACHER:
            return self.teacher_cell_fp[job.task]
        return self.fingerprint if job.kind == DISTILL else self.cell_fp[job.task]


@dataclass
class _Plan:
    """One compare's jobs and what is known of them: ``done`` maps each job to its complete cell row (from the store,
    borrowed, or computed by this invocation), None while it is missing."""

    genomes: list[str]
    tasks: list[str]
    units: list[tuple[int, int]]             # (distillation seed, fine-tuning seed)
    init: str
    wanted: list[Job]                        # the mappings' fine-tuning cells
    teacher_jobs: list[Job]
    reference_jobs: list[Job]                # the undistilled students' cells (compare.references)
    done: dict = field(default_factory=dict)

    def missing(self) -> list[Job]:
        return [job for job in self.wanted + self.reference_jobs if self.done[job] is None]

    def teacher_missing(self) -> list[Job]:
        return [job for job in self.teacher_jobs if self.done[job] is None]


def _checked_inputs(config: Config, mappings: Sequence[str], quantize: bool):
    """Check what a compare needs before any work: the int8 extra, the teacher a student is cut from, the lengths
    against the teacher's positions, the corpus; -> (teacher config, genomes, tasks, task data fingerprints)."""
    from proxy_tasks import data_fingerprint, get_task

    from ..distill.corpus import check_source
    from ..distill.models import load_teacher_config

    if quantize:                                      # before any work: the extra, and a device the int8 runtime runs on
        from ..deploy.quantize import check_int8_device

        check_int8_device(config.latency)
    teacher_cfg = load_teacher_config(config.teacher.name, config.teacher.revision)
    check_config_extraction(config, teacher_cfg)        # compare.init = teacher: a student the teacher can be cut into
    genomes = resolve_mappings(mappings, config.student.layers, int(teacher_cfg.num_hidden_layers),
                               config.compare.init or config.student.init)
    tasks = [get_task(t).name for t in config.compare.tasks]
    max_pos = getattr(teacher_cfg, "max_position_embeddings", None)
    for key in ("seq_len", "finetune_seq_len"):
        if max_pos is not None and getattr(config.compare, key) > max_pos:
            raise CompareError(f"compare.{key} = {getattr(config.compare, key)} exceeds the teacher's "
                               f"max_position_embeddings ({max_pos}); lower it")
    check_source(config.corpus.path)
    return teacher_cfg, genomes, tasks, {t: data_fingerprint(t, config.proxy.glue_dir or None) for t in tasks}


def _plan(config: Config, genomes: list[str], tasks: list[str], teacher_finetune: bool, store: Store,
          keys: _Keys) -> _Plan:
    """Every job the table needs, each looked up in the store (a teacher cell of a folder from before the teacher's
    own key under the student cell key)."""
    init = config.compare.init or config.student.init
    units = [(d, s) for d in range(config.compare.distill_seeds) for s in range(config.compare.seeds)]
    refs = config.compare.references
    teacher_seeds = range(config.compare.seeds) if refs else range(1 if teacher_finetune else 0)
    plan = _Plan(genomes, tasks, units, init, [Job(FINETUNE, m, d, t, s) for m in genomes for t in tasks for d, s in units],
                 [Job(TEACHER, TEACHER_MAPPING, 0, t, s) for t in tasks for s in teacher_seeds],
                 [Job(FINETUNE, name, d, t, s) for name in reference_students(init) for t in tasks
                  for d, s in units] if refs else [])
    plan.done = {job: store.lookup_cell(keys(job), job) for job in plan.wanted + plan.teacher_jobs + plan.reference_jobs}
    for job in plan.teacher_jobs:
        if plan.done[job] is None:
            plan.done[job] = store.lookup_cell(keys.cell_fp[job.task], job)
    return plan


def _run_phases(runner: "_Runner", out: Path, plan: _Plan, phase1: list[Job], distill_jobs: list[Job],
                selection: list[Job], select_missing: list[Job], teacher_missing: list[Job], missing: list[Job],
                families: list[str], config: Config) -> set:
    """Phase 1 (distillations, and the teacher's cells unless a recipe is selected), each family's learning rate on
    the selection split, then phase 2 (the cells); -> the (mapping, distillation seed) students that failed."""
    done, failed_students = plan.done, set()
    try:
        for job, record in runner.run(phase1, prepare_corpus=bool(distill_jobs) and distills(config)):
            done[job] = record if record["status"] == COMPLETE else None
            if job.kind == DISTILL and record["status"] != COMPLETE:
                failed_students.add((job.mapping, job.distill_seed))
        if selection:                          # each family's learning rate, on the selection split
            for job, record in runner.run([j for j in select_missing if (j.mapping, 0) not in failed_students],
                                          prepare_corpus=False):
                done[job] = record if record["status"] == COMPLETE else None
            recipe.write_choices(out, recipe.choose_rates(done, families, plan.tasks, recipe.grid(config)))
        phase2 = ([] if not selection else teacher_missing) + \
            [job for job in missing if (job.mapping, job.distill_seed) not in failed_students]
        for job, record in runner.run(phase2, prepare_corpus=False):
            done[job] = record if record["status"] == COMPLETE else None
    finally:
        runner.close()
    return failed_students


def _assemble_table(config: Config, out: Path, plan: _Plan, teacher_cfg, worker: CompareWorker, runner: "_Runner",
                    missing: list[Job], kinds: Mapping, proxy_fitness: Mapping[str, float] | None,
                    source: Mapping[str, Any] | None, recipe_from: Sequence[Path], fingerprint: str,
                    clock: float) -> dict:
    """The comparison table of the cells in ``plan.done``, with its references, headroom, resolution, recipe, dev
    rows and the run's own entries (teacher, student, budget, cells counted, wall time)."""
    from ..distill.models import teacher_identity

    done, tasks, teacher_jobs, wanted = plan.done, plan.tasks, plan.teacher_jobs, plan.wanted
    teacher, ambiguous = teacher_outputs(out, tasks, borrowed=any(
        (done[job] or {}).get("borrowed_from") for job in teacher_jobs if job.seed == LOYALTY_SEED))
    cells = _cells(out, wanted, done, teacher if teacher_jobs else {})
    table = build_table(cells, plan.genomes, tasks, plan.units, kinds=kinds, proxy_fitness=proxy_fitness)
    if teacher_jobs:
        table["loyalty_teacher"] = _loyalty_entry(teacher, ambiguous)
    if config.compare.references:
        table["references"] = reference_rows(config, tasks, done, teacher_jobs, plan.reference_jobs, worker)
        table["headroom"] = headroom_rows(table)
    table["resolution"] = table_resolution(table)
    table["recipe"] = recipe.recipe_entry(config, out, [TEACHER_MAPPING, *reference_students(plan.init), *plan.genomes])
    if recipe_from:
        table["recipe"]["rates_from"] = ", ".join(Path(f).name for f in recipe_from)
    if config.compare.score_examples:
        table["dev"] = dev_rows(config, tasks, done, wanted, teacher_jobs, plan.reference_jobs, worker)
    computed = sum(1 for job in missing if done[job] is not None)
    total = len(wanted) + len(plan.reference_jobs)
    table.update(
        fingerprint=fingerprint, created=now(), source=dict(source or {}),
        teacher={"name": teacher_label(config.teacher.name), "layers": int(teacher_cfg.num_hidden_layers),
                 "identity": teacher_identity(config.teacher.name, config.teacher.revision)},  # no machine path
        student={"layers": config.student.layers, "hidden_size": config.student.hidden_size or int(teacher_cfg.hidden_size),
                 "init": worker.init, **_slice_entry(config, teacher_cfg, worker.init)},
        budget=_budget(config), seeds=config.compare.seeds, distill_seeds=config.compare.distill_seeds,
        teacher_scores={job.task: done[job]["score"] for job in teacher_jobs if job.seed == 0 and done[job] is not None},
        teacher_from=_teacher_from_entry([done[job] for job in teacher_jobs]),
        cells={"computed": computed, "cached": total - len(missing), "failed": len(missing) - computed, "total": total,
               "distillations": sum(1 for j in runner.finished if j.kind == DISTILL)},
        wall_time=time.perf_counter() - clock,
    )
    return table


def run_compare(config: Config, mappings: Sequence[str], out: str | Path, *, proxy_fitness: Mapping[str, float] | None = None,
                source: Mapping[str, Any] | None = None, teacher_finetune: bool = False, progress: bool = True,
                executor: Executor | None = None, teacher_from: str | Path | None = None,
                quantize: bool = False, recipe_from: str | Path | Sequence[str | Path] | None = None) -> CompareResult:
    """Compare ``mappings`` (genome texts or baseline names) at the ``[compare]`` budget in folder ``out``.

    ``recipe_from``: another compare folder (or several, the first given winning) of the same fine-tuning recipe whose
    chosen learning rates (``recipe.json``) are taken for the families they have (e.g. the same extracted students
    before distillation, one folder a task), so only the others are selected here (:func:`_borrow_rates`).

    ``teacher_from``: another compare folder whose teacher fine-tuning cells (same teacher, fine-tuning settings,
    task data, library versions and device class) are copied into this folder's store instead of fine-tuning the
    teacher again (:func:`_borrow_teacher_cells`).  ``quantize``: each distilled student (distillation seed 0) is also
    exported to ONNX and quantised to int8 (:func:`quantize_students`; the ``deploy`` extra), its int8 columns in the
    table.

    Read top to bottom: inputs checked (:func:`_checked_inputs`), jobs keyed (:class:`_Keys`) and looked up
    (:func:`_plan`), cells borrowed, the recipe's selection planned, the phases run (:func:`_run_phases`), the table
    assembled (:func:`_assemble_table`) and written."""
    clock = time.perf_counter()
    teacher_cfg, genomes, tasks, data_fp = _checked_inputs(config, mappings, quantize)
    out = Path(out)
    recipe_from = [] if recipe_from is None else \
        [Path(recipe_from)] if isinstance(recipe_from, (str, Path)) else [Path(f) for f in recipe_from]
    fingerprint = _claim_folder(out, config, compare_fingerprint(config))
    lock = lock_run(out)
    store = Store(out / STORE_NAME)
    try:
        n_layers, m_layers = int(teacher_cfg.num_hidden_layers), config.student.layers
        kinds = kinds_of(genomes, {k: "-".join(map(str, g)) for k, g in baselines(m_layers, n_layers).items()})
        keys = _Keys.of(config, fingerprint, tasks, data_fp)
        plan = _plan(config, genomes, tasks, teacher_finetune, store, keys)
        done, rates = plan.done, keys.rates
        borrowed = (_borrow_teacher_cells(Path(teacher_from), store, config, plan.teacher_missing(), keys, data_fp, out)
                    if teacher_from is not None else {})
        done.update(borrowed)
        missing = plan.missing()
        students = list(dict.fromkeys((job.mapping, job.distill_seed) for job in missing if job.mapping not in REFERENCE_STUDENTS))
        distill_jobs = [Job(DISTILL, m, d, "", -1) for m, d in students
                        if not ((student_dir(out, m, d) / "config.json").is_file()
                                and store.lookup_cell(fingerprint, Job(DISTILL, m, d, "", -1)))]
        worker = CompareWorker(config, out, fingerprint)
        for t in tasks:                            # before any work: a training file that cannot spare the held-out splits
            worker._task(t)
        teacher_missing = plan.teacher_missing()
        families = list(dict.fromkeys([TEACHER_MAPPING] * bool(teacher_missing) + [j.mapping for j in missing]))
        if recipe_from and len(rates) > 1:
            given = _borrow_rates(recipe_from, config, families, tasks)
            recipe.write_choices(out, given)
            families = [f for f in families if f not in given]
        selection = [Job(*job) for job in recipe.select_jobs(families, tasks, rates)]
        done.update({job: store.lookup_cell(keys(job), job) for job in selection})
        if teacher_from is not None and selection:
            done.update(_borrow_teacher_cells(Path(teacher_from), store, config, [j for j in selection if j.mapping == TEACHER_MAPPING
                                                                                  and done[j] is None], keys, data_fp, out))
        phase1 = distill_jobs + ([] if selection else teacher_missing)
        worker.distill_groups = {d: [j.mapping for j in distill_jobs if j.distill_seed == d] for d in {j.distill_seed for j in distill_jobs}}
        select_missing = [job for job in selection if done[job] is None]
        runner = _Runner(store, keys, worker, config, executor, progress,
                         total=len(phase1) + len(select_missing) + len(missing) + (len(teacher_missing) if selection else 0))
        failed_students = _run_phases(runner, out, plan, phase1, distill_jobs, selection, select_missing, teacher_missing,
                                      missing, families, config)
        table = _assemble_table(config, out, plan, teacher_cfg, worker, runner, missing, kinds, proxy_fitness, source,
                                recipe_from, fingerprint, clock)
        write_table(out, table, header=_header(table), footer=dev_lines(table))
        if quantize:                                  # after the table: a failure here loses none of it
            _quantize_into(table, config, out, [m for m in genomes if (m, 0) not in failed_students], tasks, progress)
        cells = table["cells"]
        return CompareResult(out, table, cells["computed"], cells["cached"], cells["failed"], cells["distillations"],
                             table["wall_time"])
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
    wanted = [Job(FINETUNE, m, d, t, seed) for m in mappings for t in tasks for d, seed in units]
    teacher_jobs = [Job(TEACHER, TEACHER_MAPPING, 0, t, 0) for t in (old.get("teacher_scores") or {})]
    with Store(out / STORE_NAME, upgrade=False) as store:           # read only: an old store stays as it is
        done = {job: store.lookup_cell(cell_fp[job.task], job) for job in wanted + teacher_jobs}
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
                job = Job(*job)
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


def _outcome(record: dict) -> str:
    if record["status"] != COMPLETE:
        return f"failed ({record.get('error')})"
    if record.get("score") is not None:
        return f"score {record['score']:.2f}"
    if record.get("steps") == 0:
        return "no distillation: the initialisation saved"
    return f"loss {record.get('distill_loss', float('nan')):.4f}"


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
