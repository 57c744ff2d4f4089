"""What a search works with, and its one evaluate step: ``evaluate(search, [(genome, seed set)], generation)``.

Every strategy (the GA, racing) gets its fitnesses through :func:`evaluate`, which for each distinct
``(genome, seed set)`` job

    looks it up in the run (seed set 0: ``search.memo``, r >= 1: ``search.replicas``), in the resumed
        backlog, then in the run's store and the shared fitness cache under the seed set's fingerprint;
    claims it in the store other runs share (a job another run holds is taken up again once the others are
        done, until the owner's record arrives or its claim can be taken over: computed once between runs);
    computes it through the run's one executor, built once around a :class:`SeedSetEvaluator`: one evaluator
        for every seed set, so a new seed set restarts neither the executor nor its workers;
    writes each record to the store as it arrives and releases its claim.

Seed set ``r`` evaluates a genome with ``distill.seed + r`` and ``proxy.seed + r``
(:func:`layermap.evaluators.replicates.seed_set_evaluator`); its records are cached under that fingerprint.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Sequence

from tqdm.auto import tqdm

from ..config import Config
from ..logs import get_logger, live_progress
from ..mapping import parse_genes
from ..storage import store as store_mod
from ..executors.registry import Executor, create_executor
from ..executors.safety import evaluate_chunk_safely, genome_failure, genome_job
from ..storage.records import EvaluationRecord
from ..evaluators.replicates import seed_set_evaluator
from ..storage.store import BUSY, CLAIMED, KNOWN, Store
from ..executors.protocol import Evaluator, require_evaluator

Job = tuple[str, int]          # (genome text, seed set)

_log = get_logger(__name__)


@dataclass
class SearchState:
    """What the generation loop and its strategy work with; built by ``run_search`` / ``resume_search``.  ``lock``
    holds ``RUN_DIR/run.lock`` while the run is driven."""

    config: Config
    evaluator: Evaluator
    store: Store
    run_id: str
    run_dir: Path
    fingerprint: str
    student_layers: int
    teacher_layers: int
    rng: random.Random
    memo: dict[str, EvaluationRecord]    # seed set 0 of every genome the run knows
    progress: bool
    executor: Executor | None = None
    owns_executor: bool = True
    lock: IO | None = None
    shared: Store | None = None          # the user-wide fitness store (run.shared_fitness)
    seen: set[str] = dataclasses.field(default_factory=set)   # genomes of finished generations (novelty of offspring)
    retry: list[str] = dataclasses.field(default_factory=list)  # failed genomes to evaluate again first (--retry-failed)
    claims: Store | None = None          # where genomes are claimed before they are computed: a store other runs share
    owner: str = ""                      # this driver's claim owner id (host:pid:run_id)
    replicas: dict[str, dict[int, EvaluationRecord]] = dataclasses.field(default_factory=dict)  # seed sets >= 1
    backlog: dict[Job, EvaluationRecord] = dataclasses.field(default_factory=dict)  # resumed replicates (racing)
    jobs: "SeedSetEvaluator | None" = None   # the one evaluator of every seed set (what the executor runs)


class SeedSetEvaluator:
    """The search's worker (:class:`layermap.executors.protocol.Worker`): one for every seed set, a job is ``(genes, seed
    set)``; seed set ``r``'s evaluator (``evaluator.with_seed_set(r)``) is made once per process and kept.  Chunks
    (``run.population``) are evaluated per seed set with ``evaluate_many`` as before
    (:func:`layermap.executors.safety.evaluate_chunk_safely`).  Its fingerprint and device class are the run's
    evaluator's (seed set 0's): every seed set computes on the same device class."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.base = require_evaluator(evaluator)
        self._of: dict[int, Evaluator] = {0: evaluator}

    def __getstate__(self) -> dict:
        return {"base": self.base, "_of": {0: self.base}}     # a worker makes its own seed-set evaluators

    def of(self, seed_set: int) -> Evaluator:
        if seed_set not in self._of:
            self._of[seed_set] = seed_set_evaluator(self.base, seed_set)
        return self._of[seed_set]

    def fingerprint_of(self, seed_set: int) -> str:
        return self.of(seed_set).fingerprint

    @property
    def fingerprint(self) -> str:
        return self.base.fingerprint

    @property
    def device_class(self) -> str | None:
        return self.base.device_class

    def prepare(self) -> None:
        self.base.prepare()

    def set_device(self, device: str) -> None:
        for evaluator in self._of.values():
            evaluator.set_device(device)

    def chunk_size(self, population: int) -> int:
        return max(1, int(population))

    def failure(self, job: Sequence, error: str) -> EvaluationRecord:
        """The failed record of a ``(genes, seed set)`` job whose process died."""
        genes, seed_set = job
        return dataclasses.replace(genome_failure(genes, error), seed_set=seed_set)

    def run_jobs(self, chunk: Sequence[Sequence]) -> list[EvaluationRecord]:
        out: list[EvaluationRecord | None] = [None] * len(chunk)
        by_set: dict[int, list[int]] = {}
        for i, (_, seed_set) in enumerate(chunk):
            by_set.setdefault(seed_set, []).append(i)
        for seed_set, where in by_set.items():
            records = evaluate_chunk_safely(self.of(seed_set), [chunk[i][0] for i in where])
            for i, record in zip(where, records):
                out[i] = dataclasses.replace(record, seed_set=seed_set)
        return out


def known(search: SearchState, text: str, seed_set: int) -> EvaluationRecord | None:
    """The run's record of ``text`` under ``seed_set`` (None when it has none)."""
    return search.memo.get(text) if seed_set == 0 else search.replicas.get(text, {}).get(seed_set)


def fingerprint_of(search: SearchState, seed_set: int) -> str:
    return search.fingerprint if seed_set == 0 else _jobs(search).fingerprint_of(seed_set)


def evaluate(search: SearchState, jobs: Iterable[Job], generation: int) -> int:
    """Give the run a record of every ``(genome, seed set)`` job; compute only what neither the run, the store nor
    the shared cache knows (see the module docstring).  Returns the number of distinct jobs."""
    distinct = list(dict.fromkeys((text, int(r)) for text, r in jobs))
    pending, cached, same = [], 0, {}
    student = _student_of(search)
    for text, r in distinct:
        if known(search, text, r) is not None:
            continue
        record = search.backlog.pop((text, r), None)       # resumed: computed by this run after its last checkpoint
        if record is not None:
            _remember(search, text, r, record)
            continue
        twin = _twin(search, student, text, r, pending)
        if twin is not None:                               # the same student under another genome: evaluated once
            same[(text, r)] = twin
            continue
        fp = fingerprint_of(search, r)
        record = search.store.lookup(fp, text) or (search.shared.lookup(fp, text) if search.shared else None)
        if record is None:
            pending.append((text, r))
            continue
        _use_cached(search, record, r, generation)
        cached += 1
    said = False
    while pending:
        busy = _compute(search, pending, generation, cached)
        if len(busy) == len(pending):                    # all held by other runs: wait for them
            if search.progress and not said:
                names = ", ".join(_name(j) for j in busy[:4])
                _log.info(f"gen {generation}/{search.config.search.generations}: waiting for {len(busy)} genome(s) another "
                          f"run is computing under the same fingerprint ({names}{' ...' if len(busy) > 4 else ''})")
                said = True
            time.sleep(store_mod.CLAIM_POLL_SECONDS)
        pending = busy
    for (text, r), twin in same.items():
        record = known(search, twin, r)
        if record is not None:
            _use_cached(search, dataclasses.replace(record, genome=text), r, generation)   # noted as cached
    return len(distinct)


def close(search: SearchState) -> None:
    """Close the executor the run made."""
    if search.executor is not None and search.owns_executor:
        search.executor.close()


# -- helpers ------------------------------------------------------------------------------------------
def _name(job: Job) -> str:
    return job[0] if job[1] == 0 else f"{job[0]} (seed set {job[1]})"


def _student_of(search: SearchState):
    """With ``student.init = "teacher"`` and no distillation, the function naming the student a genome text makes
    (:func:`layermap.extraction.undistilled_student_text`: ``0-0-6`` and ``2-4-6`` are one student); else None (a
    distilled student also depends on what its layers imitate)."""
    c = search.config
    if c.student.init != "teacher" or c.distill.max_steps or c.distill.epochs:
        return None
    from ..extraction import undistilled_student_text

    @functools.lru_cache(maxsize=None)             # _twin asks again for every genome the run knows: parse each once
    def student(text: str) -> str:
        return undistilled_student_text(text, search.teacher_layers, search.student_layers)

    return student


def _twin(search: SearchState, student, text: str, seed_set: int, pending: list[Job]) -> str | None:
    """Another genome text of the same student (``student``, :func:`_student_of`) that the run knows under
    ``seed_set`` or is about to compute, else None."""
    if student is None:
        return None
    key = student(text)
    known_texts = search.memo if seed_set == 0 else {t for t, by in search.replicas.items() if seed_set in by}
    for other in itertools.chain((key,), known_texts, (t for t, r in pending if r == seed_set)):
        if other != text and student(other) == key and (known(search, other, seed_set) is not None
                                                        or (other, seed_set) in pending):
            return other
    return None


def _remember(search: SearchState, text: str, seed_set: int, record: EvaluationRecord) -> None:
    if seed_set == 0:
        search.memo[text] = record
    else:
        search.replicas.setdefault(text, {})[seed_set] = record


def _use_cached(search: SearchState, record: EvaluationRecord, seed_set: int, generation: int) -> None:
    record = dataclasses.replace(record, seed_set=seed_set)    # this run's seed set, whichever run computed it
    search.store.record_cached(search.run_id, fingerprint_of(search, seed_set), generation, record)
    _remember(search, record.genome, seed_set, record)


def _jobs(search: SearchState) -> SeedSetEvaluator:
    if search.jobs is None:
        search.jobs = SeedSetEvaluator(search.evaluator)
    return search.jobs


def _executor(search: SearchState) -> Executor:
    """The run's one executor, created (and the evaluator prepared) only once something must be computed."""
    if search.executor is None:
        jobs = _jobs(search)
        jobs.prepare()
        search.executor = create_executor(jobs, search.config.run)
    return search.executor


def _compute(search: SearchState, pending: list[Job], generation: int, cached: int) -> list[Job]:
    """Claim and evaluate ``pending`` through the executor; returns the jobs another run holds.

    Each job is claimed when the executor takes it (the process pool takes one per free worker), so two runs
    started together share a generation's work; a job whose record appeared meanwhile is taken from the
    cache.  Each record is written as it arrives and its claim released."""
    store, run_id, total = search.store, search.run_id, search.config.search.generations
    busy: list[Job] = []
    rows: dict[Job, int] = {}

    def claimed():
        for text, r in pending:
            fp = fingerprint_of(search, r)
            status = search.claims.claim(fp, text, search.owner) if search.claims is not None else CLAIMED
            if status == KNOWN:
                _use_cached(search, search.claims.lookup(fp, text), r, generation)
            elif status == BUSY:
                busy.append((text, r))
            else:
                rows[(text, r)] = store.start_evaluation(run_id, fp, text, generation)
                yield (text if ":" in text or "+" in text else parse_genes(text), r)   # a shaped or split genome
                                                                                        # travels as its text

    stream = claimed()
    first = next(stream, None)
    if first is None:                                    # nothing to compute: no executor, no teacher loaded
        return busy
    if search.progress and search.executor is None and search.evaluator.device_class is not None:   # it loads a model
        run = search.config.run                          # a piped log is not silent while the evaluator prepares
        _log.info(f"gen {generation}/{total}: evaluating {len(pending)} genome(s) on "
                  f"{run.workers} {run.executor} worker(s); preparing first")
    with tqdm(total=len(pending), desc=f"gen {generation}/{total}", unit="eval",
              file=sys.stderr, disable=not (search.progress and live_progress())) as bar:
        bar.set_postfix(cached=cached, best=_best_known(search.memo))
        for (genes, r), record in _executor(search).submit(itertools.chain([first], stream)):
            text = genome_job(genes)[1]
            fp = fingerprint_of(search, r)
            record = dataclasses.replace(record, genome=text, seed_set=r)
            store.finish_evaluation(rows[(text, r)], record)
            if search.shared is not None:
                search.shared.remember(fp, record)
            if search.claims is not None:
                search.claims.release(search.owner, fp, text)
            _remember(search, text, r, record)
            done = [j for j in rows if known(search, *j) is not None]
            bar.set_postfix(cached=cached, failed=sum(not known(search, *j).ok for j in done),
                            best=_best_known(search.memo))
            bar.update()
            if search.progress and bar.disable:             # no terminal: one log line per evaluation
                outcome = f"fitness {record.fitness:.2f}" if record.ok else f"failed ({record.error})"
                _log.info(f"gen {generation}/{total}  eval {len(done)}/{len(pending)}  {_name((text, r))}  "
                          f"{outcome}  {record.timings.get('total', 0.0):.0f}s  (cached {cached}, best "
                          f"{_best_known(search.memo)})")
    return busy


def _best_known(memo: dict[str, EvaluationRecord]) -> str:
    scores = [r.fitness for r in memo.values() if r.ok]
    return f"{max(scores):.2f}" if scores else "-"
