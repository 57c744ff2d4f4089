"""``search.strategy = "nsga2"``: a Pareto front over ``search.objectives``, noise-aware, resumable.

Genomes are shaped genome texts (``L4-H256-A4-F1024:3-6-9-12``) when ``shape.search = true`` — the grid of
``[shape]`` resolved against the teacher (:class:`layermap.shape.ShapeGrid`), the operators of
:mod:`layermap.searching.shaped_operators`, the evaluator wrapped in :class:`~layermap.evaluators.shaped.ShapedEvaluator`
— else plain mappings of the fixed ``[student]`` shape (then every cost objective is equal across genomes and the
front is by fitness alone).  Every fitness comes from the one evaluate step
(:func:`layermap.searching.state.evaluate`, seed set 0: cached, claimed, computed once); the other objectives
of a genome are its shape's costs: the evaluator's ``costs`` where it has them (the synthetic landscape), else
:func:`layermap.deploy.cost.objective_costs` (params and FLOPs by formula; latency measured once per shape and device
and kept in the store's ``latency`` table, apart from the accuracy records).

Noise: a genome's fitness standard error is its record's ``fitness_stderr`` (``proxy.repeats`` > 1), else
``search.noise_std``; a genome dominates another only beyond ``1.96`` of their combined errors on fitness
(:func:`layermap.searching.nsga2.dominates`), so genomes within noise of each other stay on the front together and
the ones plain Pareto domination would drop are marked tied.

Pseudocode (mu = search.population, lambda = search.offspring or mu, G = search.generations)::

    reference <- (fitness 0, 1.1 x each cost of the grid's largest shape (the fixed shape without shape.search))
    generation 0: population <- seeds + baselines (+ the uniform mapping at every grid depth) + random genomes
        evaluate(population); checkpoint(0)
    for gen in (last finished + 1) .. G:
        points <- the population's (fitness, costs) with their standard errors (failed genomes: none)
        repeat lambda times, until the child is new to the run (at most NOVELTY_TRIES breedings):
            r <- rng.random()                                       (as the GA's varOr)
            r < cx_prob:              child <- crossover of two binary-tournament winners (front rank, crowding)
            r < cx_prob + mut_prob:   child <- mutation of one winner
            else:                     child <- a copy of one winner
        evaluate(offspring)
        population <- NSGA-II survivors (fronts, crowding) of population + offspring, successes first
        front <- the noise-aware front of every genome the run evaluated (ties marked)
        hypervolume <- of that archive's Pareto front up to the reference; checkpoint(gen)
    the reference rows of every front member's shape (its undistilled student; once per shape, cached), which its
        headroom is read against (:func:`layermap.report.front.measure_front_references`)

Each checkpoint holds the population, the generator state, the reference point, the front (genome, objective
values, standard error, tied, params, flops), every evaluated genome's objective values and which of them are the
fixed-shape baselines (the uniform mapping at every grid depth of the ``[student]`` width; without
``shape.search`` the four baselines); the generation stats
hold the hypervolume and the reference.  A resumed run restores the population and generator state and so follows
the trajectory of an uninterrupted one (costs are recomputed: formulas, or latencies read back from the store).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

from ...deploy.cost import objective_costs
from ...evaluators.shaped import ShapedEvaluator, shape_and_genes
from ...report.results import GenerationStats
from ...logs import get_logger
from ...mapping import baseline, baselines, format_genes, parse_genes, repair
from ...shape import ShapedGenome, ShapeGrid, StudentShape
from ...storage.store import GenerationRow
from .. import nsga2
from ..novelty import offspring
from ..operators import crossover_two_point, initial_genomes, mutate_genes, parse_seed_mappings
from ..shaped_operators import crossover_shaped, initial_shaped, mutate_shaped
from ..state import SearchState, evaluate

REFERENCE_MARGIN = 1.1      # the reference point's costs: this times the largest shape's
FAILED = -1e12              # a failed genome's fitness when only failures are left to breed from
ALWAYS_COSTS = ("params", "flops")   # kept for every front member (formulas), whatever the objectives

_log = get_logger(__name__)


@dataclass(frozen=True)
class Space:
    """The genomes of the search: shaped (``grid`` set) or mappings of the ``fixed`` shape."""

    fixed: StudentShape
    grid: ShapeGrid | None
    teacher_layers: int
    constraint: str
    gene_prob: float

    def initial(self, search: SearchState, size: int) -> list[str]:
        s = search.config.search
        seeds = parse_seed_mappings(s.seed_mappings, self.fixed.layers, self.teacher_layers, self.constraint)
        if self.grid is None:
            genomes = initial_genomes(search.rng, size, self.fixed.layers, self.teacher_layers, self.constraint,
                                      seeds=seeds, seed_baselines=s.seed_baselines)
            return list(dict.fromkeys(format_genes(g) for g in genomes))
        anchor = self.grid.nearest(self.fixed)
        shaped = [ShapedGenome(anchor, g) for g in seeds if len(g) == anchor.layers]
        return [g.text for g in initial_shaped(search.rng, size, self.grid, self.teacher_layers, self.constraint,
                                               anchor=self.fixed, seeds=shaped, seed_baselines=s.seed_baselines)]

    def mutate(self, rng, text: str) -> str:
        if self.grid is None:
            genes = list(parse_genes(text))
            mutate_genes(rng, genes, self.teacher_layers, self.gene_prob or 1.0 / len(genes))
            return format_genes(repair(genes, self.teacher_layers, self.constraint))
        return mutate_shaped(rng, ShapedGenome.parse(text), self.grid, self.teacher_layers, self.constraint,
                             self.gene_prob).text

    def crossover(self, rng, a: str, b: str) -> str:
        if self.grid is None:
            ga, gb = list(parse_genes(a)), list(parse_genes(b))
            crossover_two_point(rng, ga, gb)
            return format_genes(repair(ga, self.teacher_layers, self.constraint))
        return crossover_shaped(rng, ShapedGenome.parse(a), ShapedGenome.parse(b), self.grid, self.teacher_layers,
                                self.constraint)[0].text

    def baselines(self) -> list[str]:
        """The fixed-shape baselines a front is read against: the uniform mapping at every grid depth of the anchor
        width (the ``[student]`` shape fitted to the grid), or the four baselines of the fixed shape."""
        n = self.teacher_layers
        if self.grid is None:
            return [format_genes(g) for g in baselines(self.fixed.layers, n).values()] if self.fixed.layers <= n else []
        home = self.grid.nearest(self.fixed)
        return [ShapedGenome(home.replace(layers=m), baseline("uniform", m, n)).text for m in self.grid.layers if m <= n]

    def shape_of(self, text: str) -> StudentShape:
        return shape_and_genes(text, self.fixed)[0]

    def largest(self) -> StudentShape:
        if self.grid is None:
            return self.fixed
        hidden = max(self.grid.hidden_sizes)
        return StudentShape(max(self.grid.layers), hidden, max(self.grid.heads_for(hidden)), max(self.grid.ffns_for(hidden)))


def fixed_shape(evaluator: Any) -> StudentShape:
    """The ``[student]`` shape of the run's evaluator (the synthetic one says it; the proxy's is its spec)."""
    shape = getattr(evaluator, "fixed_shape", None)
    if shape is not None:
        return shape
    spec = evaluator.spec
    return StudentShape(spec.layers, spec.hidden_size, spec.heads, spec.ffn)


def space_of(search: SearchState) -> Space:
    """The run's genome space; with ``shape.search`` the evaluator is wrapped to take shaped genomes."""
    c = search.config
    fixed, grid = fixed_shape(search.evaluator), None
    if c.shape.search:
        tc = search.evaluator.teacher_config
        sh = c.shape
        grid = ShapeGrid.resolve(teacher_layers=int(tc.num_hidden_layers), teacher_hidden=int(tc.hidden_size),
                                 teacher_heads=int(tc.num_attention_heads), teacher_ffn=int(tc.intermediate_size),
                                 layers=sh.layers, hidden_sizes=sh.hidden_sizes, heads=sh.heads, ffn_ratios=sh.ffn_ratios,
                                 hidden_step=sh.hidden_step, init=c.student.init)
        if not isinstance(search.evaluator, ShapedEvaluator):
            search.evaluator = ShapedEvaluator(search.evaluator)
    return Space(fixed, grid, search.teacher_layers, c.search.constraint, c.search.gene_mut_prob)


class Costs:
    """Each shape's cost objectives, computed once per shape (latency: measured once per device, in the store)."""

    def __init__(self, search: SearchState) -> None:
        self.search = search
        self.names = tuple(dict.fromkeys([*search.config.search.objectives[1:], *ALWAYS_COSTS]))
        self._of: dict[str, dict[str, float]] = {}

    def of(self, shape: StudentShape) -> dict[str, float]:
        if shape.text not in self._of:
            evaluator = self.search.evaluator
            own = getattr(evaluator, "costs", None)
            self._of[shape.text] = (own(shape, self.names, self.search.store) if own is not None else
                                    objective_costs(shape, self.names, evaluator.teacher_config,
                                                    self.search.config.latency, self.search.store))
        return self._of[shape.text]


def reference_point(space: Space, costs: Costs, objectives) -> tuple[float, ...]:
    """Fitness 0 and :data:`REFERENCE_MARGIN` x the largest shape's costs (module docstring)."""
    largest = costs.of(space.largest())
    return tuple(0.0 if name == "fitness" else REFERENCE_MARGIN * largest[name] for name in objectives)


def point_of(search: SearchState, space: Space, costs: Costs, text: str, failed: float | None = None) -> nsga2.Point | None:
    """The genome's objective values (fitness first) and fitness standard error; None for a failed genome
    (unless ``failed`` gives it a fitness)."""
    record = search.memo.get(text)
    ok = record is not None and record.ok
    if not ok and failed is None:
        return None
    shape_costs = costs.of(space.shape_of(text))
    values = tuple((float(record.fitness) if ok else failed) if name == "fitness" else shape_costs[name]
                   for name in search.config.search.objectives)
    return nsga2.Point(text, values, record.fitness_stderr if ok else None)


class NSGA2:
    """The nsga2 strategy object (module docstring)."""

    name = "nsga2"

    def run(self, search: SearchState, start: GenerationRow | None) -> None:
        evolve_nsga2(search, start)


def evolve_nsga2(search: SearchState, start: GenerationRow | None) -> None:
    """Run, or continue from ``start`` (a checkpointed generation), the NSGA-II loop (module docstring)."""
    s = search.config.search
    space = space_of(search)
    costs = Costs(search)
    objectives = s.objectives
    reference = reference_point(space, costs, objectives)
    mu, lambda_ = s.population, s.offspring or s.population
    if start is None:
        clock = time.perf_counter()
        population = space.initial(search, mu)
        evaluated = evaluate(search, [(t, 0) for t in population], 0)
        search.seen.update(population)
        _checkpoint(search, space, costs, reference, 0, population, evaluated, clock)
        first = 1
    else:
        cp = start.checkpoint
        version, internal, gauss = cp["rng_state"]
        search.rng.setstate((version, tuple(internal), gauss))
        population = list(cp["population"])
        first = start.generation + 1
        if search.retry:
            evaluate(search, [(t, 0) for t in search.retry], first)
            search.retry = []
    for gen in range(first, s.generations + 1):
        clock = time.perf_counter()
        parents = _parents(search, space, costs, population)
        children, _, _ = offspring(lambda: _breed(search, space, parents), str, search.seen, lambda_)
        evaluated = evaluate(search, [(t, 0) for t in children], gen)
        search.seen.update(children)
        population = _survivors(search, space, costs, list(dict.fromkeys(population + children)), mu)
        _checkpoint(search, space, costs, reference, gen, population, evaluated, clock)
    from ...report.front import measure_front_references

    measure_front_references(search.evaluator, [m.point.genome for m in archive_front(search, space, costs)[1]],
                             space.fixed, search.store)


def _parents(search: SearchState, space: Space, costs: Costs, population: list[str]) -> list[nsga2.Point]:
    points = [p for p in (point_of(search, space, costs, t) for t in population) if p is not None]
    return points or [point_of(search, space, costs, t, failed=FAILED) for t in population]


def _breed(search: SearchState, space: Space, parents: list[nsga2.Point]) -> str:
    s, rng = search.config.search, search.rng
    objectives, noise = s.objectives, s.noise_std

    def pick(k: int) -> list[str]:
        return [p.genome for p in nsga2.select_parents(rng, parents, k, objectives, noise)]

    r = rng.random()
    if r < s.cx_prob:
        return space.crossover(rng, *pick(2))
    if r < s.cx_prob + s.mut_prob:
        return space.mutate(rng, pick(1)[0])
    return pick(1)[0]


def _survivors(search: SearchState, space: Space, costs: Costs, pool: list[str], mu: int) -> list[str]:
    """NSGA-II survivors among the successes, then failures (in pool order) while places are left."""
    points = [p for p in (point_of(search, space, costs, t) for t in pool) if p is not None]
    chosen = [p.genome for p in nsga2.select(points, mu, search.config.search.objectives, search.config.search.noise_std)]
    taken = set(chosen)
    return chosen + [t for t in pool if t not in taken][:mu - len(chosen)]


def archive_front(search: SearchState, space: Space, costs: Costs):
    """The points of every successful genome the run evaluated, and their noise-aware front."""
    points = [p for p in (point_of(search, space, costs, t) for t in search.memo) if p is not None]
    return points, nsga2.front(points, search.config.search.objectives, search.config.search.noise_std)


def _checkpoint(search: SearchState, space: Space, costs: Costs, reference: tuple[float, ...], generation: int,
                population: list[str], evaluated: int, clock: float) -> None:
    objectives = search.config.search.objectives
    points, front = archive_front(search, space, costs)
    hv = nsga2.hypervolume(points, objectives, reference) if points else 0.0
    fitnesses = [search.memo[t].fitness if t in search.memo and search.memo[t].ok else None for t in population]
    ok = [f for f in fitnesses if f is not None and math.isfinite(f)]
    best = max((t for t, f in zip(population, fitnesses) if f is not None), key=lambda t: search.memo[t].fitness,
               default=None)
    counts = search.store.count_evaluations(search.run_id, generation)
    stats = GenerationStats(
        generation=generation, best=max(ok) if ok else None, mean=statistics.fmean(ok) if ok else None,
        std=statistics.pstdev(ok) if ok else None, unique=len(set(population)), evaluated=evaluated,
        computed=counts.computed, cached=counts.cached, failed=counts.failed, best_genome=best,
        wall_time=time.perf_counter() - clock, hypervolume=hv, reference=list(reference), front_size=len(front))
    state = search.rng.getstate()
    members = [{"genome": m.point.genome, "values": list(m.point.values), "se": m.point.se, "tied": m.tied,
                "shape": space.shape_of(m.point.genome).text,
                "costs": costs.of(space.shape_of(m.point.genome))} for m in front]
    checkpoint = {
        "generation": generation, "strategy": "nsga2", "population": population, "fitnesses": fitnesses,
        "hall_of_fame": [list(parse_genes(m["genome"])) for m in members] if space.grid is None else [],
        "rng_state": [state[0], list(state[1]), state[2]],
        "objectives": list(objectives), "reference": list(reference), "fixed_shape": space.fixed.text,
        "shape_search": space.grid is not None, "noise_std": search.config.search.noise_std,
        "front": members, "points": {p.genome: [list(p.values), p.se] for p in points},
        "baselines": [t for t in space.baselines() if t in search.memo],
    }
    search.store.save_generation(search.run_id, generation, population=population, fitnesses=fitnesses,
                                 stats=dataclasses.asdict(stats), checkpoint=checkpoint)
    if search.progress:
        _log.info(f"gen {generation}/{search.config.search.generations}: front of {len(front)} genome(s) "
                  f"({sum(m.tied for m in front)} tied), hypervolume {hv:.6g} (reference {list(reference)})")

