"""``search.strategy = "ga"``: DEAP's (mu + lambda) loop, checkpointed every generation, resumable on the same
trajectory.  :class:`GA` is the loop, read top to bottom in :meth:`GA.run`; its hooks are what the strategies built on
it change: ``begin`` (refuse a run it cannot do), ``initial`` (generation 0's genomes), ``last_generation``,
``score`` (a genome's selection fitness), ``settle`` (what else is evaluated once a generation is) and
``update_hall_of_fame``.  :class:`~layermap.searching.strategies.racing.Racing` and
:class:`~layermap.searching.strategies.enumerate.Enumerate` are GAs.

All randomness comes from one private ``random.Random(search.seed)`` whose state is checkpointed, so a resumed run
follows exactly the trajectory of an uninterrupted one.  May import the rest of ``searching`` but ``run``.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import statistics
import time

from deap import base, creator, tools

from ...report.results import GenerationStats
from ...logs import get_logger
from ...storage.store import GenerationRow
from ..novelty import NOVELTY_TRIES, offspring
from ..operators import (GenomeSpace, crossover_two_point, crossover_uniform, genome_space, select_survivors,
                         select_tournament)
from ..state import SearchState, evaluate

WORST = -math.inf       # the selection fitness of a failed genome

_log = get_logger(__name__)


def _ensure_creator() -> None:
    """The one place that calls ``creator.create`` (guarded: DEAP warns when a class is created twice)."""
    if not hasattr(creator, "LayermapFitness"):
        creator.create("LayermapFitness", base.Fitness, weights=(1.0,))
    if not hasattr(creator, "LayermapGenome"):
        creator.create("LayermapGenome", list, fitness=creator.LayermapFitness)


def build_toolbox(search: SearchState) -> base.Toolbox:
    """DEAP toolbox whose operators draw from ``search.rng`` (see :mod:`layermap.searching.operators`)."""
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


class GA:
    """The genetic algorithm: a genome's fitness is its one evaluation (seed set 0); nothing is re-evaluated."""

    name = "ga"

    # -- the hooks the strategies built on the GA change ----------------------------------------------------------
    def begin(self, search: SearchState) -> None:
        """Refuse, before anything is computed, a run this strategy cannot do (the GA does every run)."""

    def initial(self, search: SearchState) -> list:
        """Generation 0's genomes: seed mappings + baselines + random valid genomes (distinct)."""
        s = search.config.search
        return space_of(search).initial(search.rng, s.population, seeds=s.seed_mappings, seed_baselines=s.seed_baselines)

    def last_generation(self, search: SearchState) -> int:
        return search.config.search.generations

    def score(self, search: SearchState, text: str) -> float:
        record = search.memo.get(text)
        return record.fitness if record is not None and record.ok else WORST

    def settle(self, search: SearchState, individuals: list, generation: int, last: bool) -> None:
        """What else is evaluated once a generation is (the GA: nothing)."""

    def update_hall_of_fame(self, search: SearchState, hof: tools.HallOfFame, individuals: list, make) -> None:
        hof.update([ind for ind in individuals if math.isfinite(ind.fitness.values[0])])

    # -- the loop ------------------------------------------------------------------------------------------------
    def run(self, search: SearchState, start: GenerationRow | None) -> None:
        """Run, or continue from ``start``, the (mu + lambda) loop; checkpoint every finished generation.

        Pseudocode (mu = search.population, lambda = search.offspring or mu, G = last_generation)::

            if start is None:                                            # generation 0
                population <- initial(): seed mappings + baselines + random valid genomes (distinct)
                evaluate(population); hof.update(population); checkpoint(0)
            else:
                population, hof, rng state <- checkpoint of generation start
            (score gives every fitness and settle may evaluate more after each evaluate(): the GA's does nothing;
             racing's races the elites under new seed sets, its fitness is the shift-adjusted replicate mean, and
             the last generation ends with its final race and confirmation (strategies.racing))
            for gen in (last finished + 1) .. G:
                offspring <- lambda children, each new to the run and to this generation (searching.novelty):
                    r <- rng.random()                                        (DEAP varOr)
                    if r < cx_prob:              child <- crossover(two tournament winners)[0]
                    elif r < cx_prob + mut_prob: child <- mutation(one tournament winner)  # >= 1 gene changes
                    else:                        child <- copy(one tournament winner)
                    child <- repair(child) to the order constraint
                evaluate(offspring)          # memo -> shared cache -> claim -> executor (a genome another run
                                             #   has claimed: wait for its record); a failure scores -inf
                hof.update(offspring)
                population <- mu best distinct genomes of population + offspring     (elitist)
                statistics(gen); checkpoint(gen)    # population, fitnesses, hof, rng state
        """
        s = search.config.search
        toolbox = build_toolbox(search)
        self.begin(search)                          # racing: refuses a run it cannot anchor
        hof = tools.HallOfFame(s.hall_of_fame, similar=operator.eq)
        last = self.last_generation(search)
        mu, lambda_ = s.population, s.offspring or s.population
        text = space_of(search).text
        if start is None:
            clock = time.perf_counter()
            population = [toolbox.individual(g) for g in self.initial(search)]
            evaluated = self._evaluate(search, population, 0, last == 0)
            search.seen.update(text(ind) for ind in population)
            self.update_hall_of_fame(search, hof, population, toolbox.individual)
            _checkpoint(search, 0, population, hof, evaluated, clock)
            first = 1
        else:
            population = self._restore(search, toolbox, hof, start)
            first = start.generation + 1
            if search.retry:
                self._retry_failed(search, toolbox, population, hof, first)
        for gen in range(first, last + 1):
            clock = time.perf_counter()
            children, fresh, repeats = offspring(lambda: _breed(search, toolbox, population), text, search.seen, lambda_)
            if repeats and search.progress:
                _log.info(f"gen {gen}/{s.generations}: {repeats} of {lambda_} offspring repeat a known genome after "
                          f"{NOVELTY_TRIES} breedings each (few new genomes are left in the search space)")
            evaluated = self._evaluate(search, children, gen, gen == last, also=population)
            search.seen.update(fresh)
            self.update_hall_of_fame(search, hof, children, toolbox.individual)
            population = [toolbox.clone(ind) for ind in toolbox.survive(population + children, mu)]
            _checkpoint(search, gen, population, hof, evaluated, clock)

    # -- the loop's steps ----------------------------------------------------------------------------------------
    def _evaluate(self, search: SearchState, individuals: list, generation: int, last: bool, also: list = ()) -> int:
        """Evaluate ``individuals`` under seed set 0 (:func:`layermap.searching.state.evaluate`: only genomes
        neither the run nor the cache knows are computed), let the strategy settle, then give them and ``also`` (the
        parents, whose fitness a strategy may have moved) their fitness.  Returns the number of distinct genomes in
        ``individuals``."""
        text = space_of(search).text
        evaluated = evaluate(search, [(text(ind), 0) for ind in individuals], generation)
        self.settle(search, individuals, generation, last)
        for ind in [*individuals, *also]:
            ind.fitness.values = (self.score(search, text(ind)),)
        return evaluated

    def _retry_failed(self, search: SearchState, toolbox: base.Toolbox, population: list, hof: tools.HallOfFame,
                      generation: int) -> None:
        """Evaluate the run's failed genomes again (``run.retry_failed`` on resume), before ``generation`` breeds.

        Each attempt is a new row of the store under ``generation``; the failed rows stay, with their errors.
        The restored population takes the new fitnesses, and a success may enter the hall of fame."""
        space = space_of(search)
        retried = [toolbox.individual(space.genes(text)) for text in search.retry]
        evaluate(search, [(text, 0) for text in search.retry], generation)
        for ind in [*retried, *population]:
            if space.text(ind) in search.memo:
                ind.fitness.values = (self.score(search, space.text(ind)),)
        ok = sum(math.isfinite(ind.fitness.values[0]) for ind in retried)
        if search.progress:
            _log.info(f"retried {len(retried)} failed genome(s): {ok} succeeded, {len(retried) - ok} failed again")
        self.update_hall_of_fame(search, hof, retried, toolbox.individual)
        search.retry = []

    def _restore(self, search: SearchState, toolbox: base.Toolbox, hof: tools.HallOfFame, start: GenerationRow) -> list:
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
            ind.fitness.values = (self.score(search, space_of(search).text(genes)),)
            hof.insert(ind)
        return population


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
