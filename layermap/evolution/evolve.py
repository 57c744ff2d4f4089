"""The genetic search over layer mappings: DEAP toolbox, the generation loop, checkpoint / resume.

``run_search`` starts a run in a folder (``config.toml``, ``run.json`` and, by default, the store
``layermap.sqlite``); ``resume_search`` continues it from its last finished generation.  Fitness
comes from an evaluator (``layermap.evolution.fitness.ProxyEvaluator`` for real runs) through the one evaluate step
of :mod:`layermap.evolution.search_state`: every genome is looked up first in the run's memo, then in the shared
cache under the evaluator's fingerprint, and only unknown genomes are evaluated; a genome is claimed in the shared
store before it is computed (two runs with the same settings started together compute it once, the second waiting
for the first's record after computing the rest of its generation).  What a genome's selection fitness is, and what
else is evaluated once a generation is, belongs to the strategy object (:func:`strategy_of`: the GA's ``Plain``,
:class:`layermap.evolution.racing.Racing`).  All randomness comes from one private ``random.Random(search.seed)`` whose state is
checkpointed, so a resumed run follows exactly the trajectory of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
import random
import sqlite3
import statistics
import time
import uuid
from pathlib import Path
from typing import Callable, Sequence

from deap import base, creator, tools

from ..config import Config, ConfigError, dump_toml, load_config, parse_override
from ..distill.corpus import default_cache_dir
from ..errors import LayermapError
from ..executors.registry import Executor
from ..logs import get_logger
from ..mapping import enumerate_space
from .operators import (GenomeSpace, crossover_two_point, crossover_uniform, genome_space, select_survivors,
                        select_tournament)
from .racing import Racing
from ..storage.records import EvaluationRecord
from .results import GenerationStats, SearchResult, load_result
from .search_state import SearchState, evaluate
from .search_state import close as close_executor
from ..executors.protocol import Evaluator
from ..storage.store import STORE_NAME, GenerationRow, RunRow, Store, StoreError, now
from ..storage.claims import ClaimHeartbeat, claim_owner
from ..storage.runs import RunInfo, lock_run, open_run, write_run_info

CONFIG_NAME = "config.toml"
WORST = -math.inf       # the selection fitness of a failed genome
RESUMABLE_RUN_KEYS = ("executor", "workers", "threads", "device", "ray_address", "gpus_per_eval", "cpus_per_eval", "cache_dir",
                      "shared_fitness", "retry_failed")
SHARED_CACHE_NAME = "fitness.sqlite"
BREEDING = ("ga", "racing")   # strategies that breed generations here (nsga2 breeds in layermap.evolution.nsga2_search;
                              # the others evaluate one fixed generation 0)
NOVELTY_TRIES = 50      # breedings per offspring slot before a genome the run already knows is accepted


class Plain:
    """The GA's strategy object: a genome's fitness is its one evaluation (seed set 0); nothing is re-evaluated."""

    name = "ga"

    def begin(self, search: SearchState) -> None:
        pass

    def score(self, search: SearchState, text: str) -> float:
        record = search.memo.get(text)
        return record.fitness if record is not None and record.ok else WORST

    def settle(self, search: SearchState, individuals: list, generation: int, last: bool) -> None:
        pass

    def update_hall_of_fame(self, search: SearchState, hof: tools.HallOfFame, individuals: list, make) -> None:
        hof.update([ind for ind in individuals if math.isfinite(ind.fitness.values[0])])


STRATEGY_OBJECTS: dict[str, type] = {"racing": Racing}    # search.strategy -> its object; every other one is Plain


def strategy_of(search: SearchState):
    """The strategy object of ``search.strategy``: what it checks before the first generation (``begin``), what a
    genome's selection fitness is, and what happens once a generation is evaluated (``settle``: racing's anchors, race,
    final race and confirmation)."""
    return STRATEGY_OBJECTS.get(search.config.search.strategy, Plain)()

_log = get_logger(__name__)


def _ensure_creator() -> None:
    """The one place that calls ``creator.create`` (guarded: DEAP warns when a class is created twice)."""
    if not hasattr(creator, "LayermapFitness"):
        creator.create("LayermapFitness", base.Fitness, weights=(1.0,))
    if not hasattr(creator, "LayermapGenome"):
        creator.create("LayermapGenome", list, fitness=creator.LayermapFitness)


def build_toolbox(search: SearchState) -> base.Toolbox:
    """DEAP toolbox whose operators draw from ``search.rng`` (see :mod:`layermap.evolution.operators`)."""
    _ensure_creator()
    s, rng, space = search.config.search, search.rng, space_of(search)
    toolbox = base.Toolbox()
    toolbox.register("individual", creator.LayermapGenome)
    toolbox.register("mate", crossover_two_point if s.crossover == "two_point" else crossover_uniform, rng)
    toolbox.register("mutate", space.mutate, rng, prob=space.mutation_prob(s.gene_mut_prob))
    toolbox.register("select", select_tournament, rng, tournsize=s.tournament_size)
    toolbox.register("survive", select_survivors)
    toolbox.register("repair", space.repair)
    return toolbox


def space_of(search: SearchState) -> GenomeSpace:
    """How the run's individuals read (``search.genome``: coupled, or split with its ``1-2-3+2-4-6`` texts)."""
    return genome_space(search.config, search.student_layers, search.teacher_layers)


def evolve(search: SearchState, start: GenerationRow | None) -> None:
    """Run, or continue from ``start``, the (mu + lambda) loop; checkpoint every finished generation.

    Pseudocode (mu = search.population, lambda = search.offspring or mu, G = search.generations)::

        if start is None:                                            # generation 0
            population <- seed mappings + baselines + random valid genomes (distinct)
            evaluate(population); hof.update(population); checkpoint(0)
        else:
            population, hof, rng state <- checkpoint of generation start
        (search.strategy = "enumerate[-mapped]": generation 0 is the whole space and G counts as 0)
        (a strategy object, strategy_of(search), gives every fitness (score) and may evaluate more after each
         evaluate() (settle): the GA's does nothing; racing's races the elites under new seed sets, its fitness is
         the shift-adjusted replicate mean, and the last generation ends with its final race and confirmation
         (layermap.evolution.racing))
        for gen in (last finished + 1) .. G:
            offspring <- []
            repeat lambda times:
                repeat up to NOVELTY_TRIES times, until child is new to the run and to this generation:
                    r <- rng.random()                                        (DEAP varOr)
                    if r < cx_prob:              child <- crossover(two tournament winners)[0]
                    elif r < cx_prob + mut_prob: child <- mutation(one tournament winner)  # >= 1 gene changes
                    else:                        child <- copy(one tournament winner)
                    child <- repair(child) to the order constraint
                (after NOVELTY_TRIES the last child is kept; the log says how many were not new)
            evaluate(offspring)          # memo -> shared cache -> claim -> executor (a genome another run
                                         #   has claimed: wait for its record); a failure scores -inf
            hof.update(offspring)
            population <- mu best distinct genomes of population + offspring     (elitist)
            statistics(gen); checkpoint(gen)    # population, fitnesses, hof, rng state
    """
    s = search.config.search
    if s.strategy == "nsga2":                   # a Pareto front over search.objectives: its own loop
        from .nsga2_search import evolve_nsga2

        return evolve_nsga2(search, start)
    toolbox = build_toolbox(search)
    strategy = strategy_of(search)
    strategy.begin(search)                      # racing: refuses a run it cannot anchor
    hof = tools.HallOfFame(s.hall_of_fame, similar=operator.eq)
    last = s.generations if s.strategy in BREEDING else 0
    mu, lambda_ = s.population, s.offspring or s.population
    if start is None:
        clock = time.perf_counter()
        genomes = (space_of(search).initial(search.rng, mu, seeds=s.seed_mappings, seed_baselines=s.seed_baselines)
                   if s.strategy in BREEDING else _enumerated(search))
        population = [toolbox.individual(g) for g in genomes]
        evaluated = _evaluate(search, strategy, population, 0, last == 0)
        search.seen.update(space_of(search).text(ind) for ind in population)
        strategy.update_hall_of_fame(search, hof, population, toolbox.individual)
        _checkpoint(search, 0, population, hof, evaluated, clock)
        first = 1
    else:
        population = _restore(search, strategy, toolbox, hof, start)
        first = start.generation + 1
        if search.retry:
            _retry_failed(search, strategy, toolbox, population, hof, first)
    for gen in range(first, last + 1):
        clock = time.perf_counter()
        offspring, fresh, repeats = [], set(), 0
        for _ in range(lambda_):
            for _ in range(NOVELTY_TRIES):
                child = _breed(search, toolbox, population)
                text = space_of(search).text(child)
                if text not in search.seen and text not in fresh:
                    break
            else:
                repeats += 1
            fresh.add(text)
            offspring.append(child)
        if repeats and search.progress:
            _log.info(f"gen {gen}/{s.generations}: {repeats} of {lambda_} offspring repeat a known genome after "
                      f"{NOVELTY_TRIES} breedings each (few new genomes are left in the search space)")
        evaluated = _evaluate(search, strategy, offspring, gen, gen == last, also=population)
        search.seen.update(fresh)
        strategy.update_hall_of_fame(search, hof, offspring, toolbox.individual)
        population = [toolbox.clone(ind) for ind in toolbox.survive(population + offspring, mu)]
        _checkpoint(search, gen, population, hof, evaluated, clock)


def _enumerated(search: SearchState) -> list[tuple[int, ...]]:
    """``search.strategy = "enumerate"``: every genome of the space under the order constraint
    (``"enumerate-mapped"``: only those without a zero gene), shuffled by the search's generator so that a
    partly finished table is a uniform sample; they are evaluated as generation 0 and nothing is bred."""
    s = search.config.search
    genomes = [g for g in enumerate_space(search.student_layers, search.teacher_layers, s.constraint)
               if s.strategy == "enumerate" or 0 not in g]
    search.rng.shuffle(genomes)
    return genomes


def _breed(search: SearchState, toolbox: base.Toolbox, population: list):
    """One child by DEAP's varOr: crossover, mutation or reproduction of tournament winners, then repair."""
    s = search.config.search
    r = search.rng.random()
    if r < s.cx_prob:
        child = toolbox.mate(*map(toolbox.clone, toolbox.select(population, 2)))[0]
    elif r < s.cx_prob + s.mut_prob:
        child = toolbox.mutate(toolbox.clone(toolbox.select(population, 1)[0]))[0]
    else:
        child = toolbox.clone(toolbox.select(population, 1)[0])
    child[:] = toolbox.repair(child)
    del child.fitness.values
    return child


def run_search(config: Config, evaluator: Evaluator, run_dir: str | Path, *, executor: Executor | None = None,
               progress: bool = True) -> SearchResult:
    """Start a new search in ``run_dir`` (which must be empty or absent) and run it to the end.  An ``executor``, if
    given, is submitted ``(genes, seed set)`` jobs: build it around
    ``layermap.evolution.search_state.SeedSetEvaluator(evaluator)``."""
    run_dir = Path(run_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise StoreError(f"run folder {run_dir} is not empty; pass --resume {run_dir} to continue it, or choose a new --out folder")
    student_layers, teacher_layers = int(evaluator.student_layers), int(evaluator.teacher_layers)
    for text in config.search.seed_mappings:                     # checked against the depths before the folder exists
        genome_space(config, student_layers, teacher_layers).seed(text)
    fingerprint = evaluator.fingerprint
    store_path = Path(config.run.store_path).expanduser().resolve() if config.run.store_path else (run_dir / STORE_NAME).resolve()
    made_here = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    lock, store = lock_run(run_dir), None
    try:
        store = Store(store_path)
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        (run_dir / CONFIG_NAME).write_text(dump_toml(config), encoding="utf-8")
        store.create_run(run_id, fingerprint=fingerprint, config_toml=dump_toml(config), config=config.to_dict(),
                         description=_describe(evaluator), teacher_layers=teacher_layers, student_layers=student_layers,
                         run_dir=str(run_dir.resolve()))
        stored_as = STORE_NAME if not config.run.store_path else str(store_path)     # relative: the folder can move
        write_run_info(run_dir, RunInfo(run_id=run_id, store=stored_as, created=now()))
    except BaseException:
        if store is not None:
            store.close()
        lock.close()
        for name in ("run.json", CONFIG_NAME, "run.lock"):     # leave no half-made run behind
            (run_dir / name).unlink(missing_ok=True)
        raise
    search = SearchState(config, evaluator, store, run_id, run_dir, fingerprint, student_layers, teacher_layers,
                         random.Random(config.search.seed), {}, progress, executor, executor is None, lock)
    try:
        return _drive(search, None)
    except Exception:
        _remove_if_nothing_finished(run_dir, store_path, run_id, made_here)
        raise


def _remove_if_nothing_finished(run_dir: Path, store_path: Path, run_id: str, made_here: bool) -> None:
    """A new run that failed before any evaluation finished (bad GLUE data, a teacher without weights, ...)
    leaves no folder behind, so that the same command works once the input is fixed."""
    try:
        with Store(store_path) as store:
            finished = [r for r in store.run_evaluations(run_id) if r.status != "running"]
            if finished or store.generations(run_id):
                return
    except (LayermapError, OSError, sqlite3.Error):
        return
    own_store = store_path == (run_dir / STORE_NAME).resolve()
    names = ["run.json", CONFIG_NAME, "run.lock"] + ([STORE_NAME, STORE_NAME + "-wal", STORE_NAME + "-shm",
                                                       STORE_NAME + "-journal"] if own_store else [])
    for name in names:
        (run_dir / name).unlink(missing_ok=True)
    if made_here:
        try:
            run_dir.rmdir()
        except OSError:
            pass


def check_proxy_inputs(config: Config) -> None:
    """What can be checked of the teacher, corpus and device before a run folder is made or a genome is
    computed: each failure is one sentence (ModelError, CorpusError)."""
    from ..distill.corpus import check_source
    from ..distill.models import check_seq_len, load_teacher_config, pick_device, WEIGHT_FILES

    from ..extraction import check_config_extraction

    pick_device(config.run.device)
    teacher_cfg = load_teacher_config(config.teacher.name, config.teacher.revision)
    check_config_extraction(config, teacher_cfg)      # teacher initialisation: a student the teacher can be cut into
    check_seq_len(teacher_cfg, config.corpus.seq_len, "corpus.seq_len")
    check_seq_len(teacher_cfg, config.proxy.seq_len, "proxy.seq_len")
    local = Path(config.teacher.name).expanduser()
    if local.is_dir() and not any((local / f).is_file() for f in WEIGHT_FILES):
        from ..distill.models import ModelError

        raise ModelError(f"teacher directory {config.teacher.name!r} has no weights ({', '.join(WEIGHT_FILES[:2])}); "
                         "point --teacher at a folder written by save_pretrained")
    check_source(config.corpus.path)


def resume_search(run_dir: str | Path, evaluator_factory: Callable[[Config], Evaluator] | None = None, *,
                  executor: Executor | None = None, progress: bool = True, overrides: Sequence[str] = ()) -> SearchResult:
    """Continue the run in ``run_dir`` from its last finished generation.

    Finished evaluations are reused (none re-run); evaluations left ``running`` by a killed process
    are run again.  ``overrides`` (``--set`` strings such as ``run.workers=4``) may change only the
    ``run.*`` settings that do not change a fitness (``RESUMABLE_RUN_KEYS``).  A different fingerprint,
    or a ``config.toml`` edited since the start, is a :class:`StoreError`.  ``evaluator_factory``
    defaults to :func:`default_evaluator_factory`.
    """
    run_dir = Path(run_dir)
    info, store, row = open_run(run_dir, upgrade=True)
    try:
        lock = lock_run(run_dir)
    except BaseException:
        store.close()
        raise
    try:
        config = _resumed_config(run_dir, row, overrides)
        evaluator = (evaluator_factory or default_evaluator_factory(row))(config)
        if evaluator.fingerprint != row.fingerprint:
            was = former_device_class(evaluator, row.fingerprint)
            if was:
                raise StoreError(f"run {row.run_id} in {run_dir} was computed on {was}, but this resume would compute on "
                                 f"{evaluator.device_class} (its fitnesses differ by device class); resume it on {was} "
                                 f"(run.device = {'cpu' if was == 'cpu' else was + ':0'}), or start a new run with a "
                                 "new --out folder")
            raise StoreError(
                f"run {row.run_id} in {run_dir} was computed under fingerprint {row.fingerprint}, but the evaluator now gives "
                f"{evaluator.fingerprint} (teacher, data, corpus or library versions changed); start a new run with a new --out folder"
            )
        store.discard_unfinished(row.run_id)
        rows = store.run_evaluations(row.run_id)
        memo = {r.genome: r.record for r in rows if r.record is not None and r.record.seed_set == 0}
        start = store.last_generation(row.run_id)
        replicas: dict[str, dict[int, EvaluationRecord]] = {}     # racing: replicates up to the checkpoint ...
        backlog: dict[tuple[str, int], EvaluationRecord] = {}      # ... and after it (the race asks for them again)
        for r in rows:
            if r.record is not None and r.record.seed_set > 0:
                if start is None or r.generation > start.generation:
                    backlog[(r.genome, r.record.seed_set)] = r.record
                else:
                    replicas.setdefault(r.genome, {})[r.record.seed_set] = r.record
        retry = [g for g, rec in memo.items() if not rec.ok] if config.run.retry_failed else []
        for genome in retry:
            del memo[genome]
        seen = {r.genome for r in rows if start is not None and r.generation <= start.generation}
    except BaseException:
        store.close()
        lock.close()
        raise
    search = SearchState(config, evaluator, store, row.run_id, run_dir, row.fingerprint, row.student_layers,
                         row.teacher_layers, random.Random(config.search.seed), memo, progress, executor, executor is None, lock,
                         seen=seen, retry=retry, replicas=replicas, backlog=backlog)
    return _drive(search, start)


def former_device_class(evaluator: Evaluator, fingerprint: str) -> str | None:
    """The device class (cpu, cuda, mps) under which ``evaluator``'s settings give ``fingerprint``, when it is not the
    evaluator's own; None when the fingerprint differs for another reason (or the evaluator has no device)."""
    other = getattr(evaluator, "fingerprint_on", None)
    if other is None:
        return None
    return next((c for c in ("cpu", "cuda", "mps") if c != evaluator.device_class and other(c) == fingerprint), None)


def default_evaluator_factory(row: RunRow) -> Callable[[Config], Evaluator]:
    """The evaluator a run was made with: the synthetic landscape it describes, else the proxy fitness."""
    if row.description.get("kind") == "synthetic":
        from ..evaluators.synthetic import rebuild_synthetic

        return lambda config: rebuild_synthetic(row.description)
    from ..evaluators.proxy import ProxyEvaluator

    return lambda config: ProxyEvaluator(config)


# -- the loop's helpers ------------------------------------------------------------------------------
def _open_shared_fitness(search: SearchState) -> Store | None:
    """``<cache_dir>/fitness.sqlite``, unless disabled or it is the run's own store."""
    if not search.config.run.shared_fitness:
        return None
    path = (default_cache_dir(search.config.run.cache_dir) / SHARED_CACHE_NAME).resolve()
    return None if path == search.store.path.resolve() else Store(path)


def _claim_store(search: SearchState) -> Store | None:
    """The store other runs share with this one (the user-wide cache, else a ``run.store_path`` store), where genomes
    are claimed; ``None`` for a run alone with its private store."""
    if search.shared is not None:
        return search.shared
    private = search.store.path.resolve() == (search.run_dir / STORE_NAME).resolve()
    return None if private else search.store


def _drive(search: SearchState, start: GenerationRow | None) -> SearchResult:
    clock = time.perf_counter()
    heartbeat = None
    try:
        search.shared = _open_shared_fitness(search)
        search.claims = _claim_store(search)
        if search.claims is not None:
            search.owner = claim_owner(search.run_id)
            heartbeat = ClaimHeartbeat(search.claims.path, search.owner).start()
        from ..evaluators.references import ensure_references

        ensure_references(search.evaluator, search.store, search.config.proxy.allow_invalid)   # refuses an invalid task
        search.store.set_run_status(search.run_id, "running")
        try:
            evolve(search, start)
        except BaseException:
            search.store.set_run_status(search.run_id, "interrupted")
            raise
        finally:
            close_executor(search)
        search.store.set_run_status(search.run_id, "finished")
        return load_result(search.store, search.store.get_run(search.run_id), search.run_dir, time.perf_counter() - clock)
    finally:
        if heartbeat is not None:
            heartbeat.stop()
        if search.claims is not None:
            try:
                search.claims.release(search.owner)          # what an interrupted generation still held
            except sqlite3.Error:
                pass                                         # they go stale
        search.store.close()
        if search.shared is not None:
            search.shared.close()
        if search.lock is not None:
            search.lock.close()


def _evaluate(search: SearchState, strategy, individuals: list, generation: int, last: bool, also: list = ()) -> int:
    """Evaluate ``individuals`` under seed set 0 (:func:`layermap.evolution.search_state.evaluate`: only genomes
    neither the run nor the cache knows are computed), let the strategy settle, then give them and ``also`` (the
    parents, whose fitness a strategy may have moved) their fitness.  Returns the number of distinct genomes in
    ``individuals``."""
    text = space_of(search).text
    evaluated = evaluate(search, [(text(ind), 0) for ind in individuals], generation)
    strategy.settle(search, individuals, generation, last)
    for ind in [*individuals, *also]:
        ind.fitness.values = (strategy.score(search, text(ind)),)
    return evaluated


def _retry_failed(search: SearchState, strategy, toolbox: base.Toolbox, population: list, hof: tools.HallOfFame,
                  generation: int) -> None:
    """Evaluate the run's failed genomes again (``run.retry_failed`` on resume), before ``generation`` breeds.

    Each attempt is a new row of the store under ``generation``; the failed rows stay, with their errors.
    The restored population takes the new fitnesses, and a success may enter the hall of fame."""
    space = space_of(search)
    retried = [toolbox.individual(space.genes(text)) for text in search.retry]
    evaluate(search, [(text, 0) for text in search.retry], generation)
    for ind in [*retried, *population]:
        if space.text(ind) in search.memo:
            ind.fitness.values = (strategy.score(search, space.text(ind)),)
    ok = sum(math.isfinite(ind.fitness.values[0]) for ind in retried)
    if search.progress:
        _log.info(f"retried {len(retried)} failed genome(s): {ok} succeeded, {len(retried) - ok} failed again")
    strategy.update_hall_of_fame(search, hof, retried, toolbox.individual)
    search.retry = []


def _checkpoint(search: SearchState, generation: int, population: list, hof: tools.HallOfFame, evaluated: int,
                clock: float) -> None:
    fitnesses = [ind.fitness.values[0] for ind in population]
    ok = [f for f in fitnesses if math.isfinite(f)]
    best = max(range(len(population)), key=lambda i: fitnesses[i]) if ok else None
    counts = search.store.count_evaluations(search.run_id, generation)
    stats = GenerationStats(
        generation=generation, best=max(ok) if ok else None, mean=statistics.fmean(ok) if ok else None,
        std=statistics.pstdev(ok) if ok else None, unique=len({tuple(ind) for ind in population}), evaluated=evaluated,
        computed=counts.computed, cached=counts.cached, failed=counts.failed,
        best_genome=space_of(search).text(population[best]) if best is not None else None,
        wall_time=time.perf_counter() - clock,
    )
    state = search.rng.getstate()
    checkpoint = {
        "generation": generation,
        "population": [list(ind) for ind in population],
        "fitnesses": [f if math.isfinite(f) else None for f in fitnesses],
        "hall_of_fame": [list(ind) for ind in hof],
        "rng_state": [state[0], list(state[1]), state[2]],
    }
    search.store.save_generation(search.run_id, generation, population=[space_of(search).text(ind) for ind in population],
                                 fitnesses=checkpoint["fitnesses"], stats=dataclasses.asdict(stats), checkpoint=checkpoint)


def _restore(search: SearchState, strategy, toolbox: base.Toolbox, hof: tools.HallOfFame, start: GenerationRow) -> list:
    """Population, hall of fame and generator state as checkpointed after ``start.generation``."""
    cp = start.checkpoint
    version, internal, gauss = cp["rng_state"]
    search.rng.setstate((version, tuple(internal), gauss))
    population = []
    for genes, fitness in zip(cp["population"], cp["fitnesses"]):
        ind = toolbox.individual(genes)
        ind.fitness.values = (WORST if fitness is None else fitness,)
        population.append(ind)
    for genes in reversed(cp["hall_of_fame"]):      # reversed: DEAP inserts ties in front, this restores their order
        ind = toolbox.individual(genes)
        ind.fitness.values = (strategy.score(search, space_of(search).text(genes)),)
        hof.insert(ind)
    return population


def _resumed_config(run_dir: Path, row: RunRow, overrides: Sequence[str]) -> Config:
    """``RUN_DIR/config.toml`` with the allowed ``run.*`` overrides; refused if it no longer matches the run row."""
    for text in overrides:
        section, key, _ = parse_override(text)
        if section != "run" or key not in RESUMABLE_RUN_KEYS:
            raise ConfigError(f"{section}.{key} cannot change on --resume (it would mix results); only "
                              f"{', '.join('run.' + k for k in RESUMABLE_RUN_KEYS)} may - start a new run to change it")
    config = load_config(str(run_dir / CONFIG_NAME), overrides)
    ignored = ("run", "compare")        # neither changes a fitness
    now_settings = _normalised({k: v for k, v in config.to_dict().items() if k not in ignored})
    # a setting added to layermap after the run started counts as its default value
    then = _normalised({k: {**v, **row.config.get(k, {})} for k, v in Config().to_dict().items() if k not in ignored})
    if now_settings != then:
        changed = next((f"{sec}.{key}" for sec in then for key in then[sec]
                        if now_settings.get(sec, {}).get(key) != then[sec][key]), "a section")
        raise StoreError(f"{run_dir / CONFIG_NAME} differs from the settings run {row.run_id} started with ({changed}); "
                         "restore it, or start a new run with a new --out folder")
    return config


def _normalised(d: dict) -> dict:
    return json.loads(json.dumps(d, sort_keys=True))


def _describe(evaluator: Evaluator) -> dict:
    describe = getattr(evaluator, "describe", None)
    return dict(describe()) if callable(describe) else {"evaluator": type(evaluator).__name__}
