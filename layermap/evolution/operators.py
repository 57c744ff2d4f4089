"""Genetic operators over integer genomes, drawing only from a private ``random.Random``.

DEAP's ``tools.cxTwoPoint``, ``tools.cxUniform`` and ``tools.selTournament`` draw from the global
``random`` module, which would make a checkpoint depend on process-global state.  These are the
same operators (same semantics, in place on list-like individuals, DEAP-style return values) with
the generator passed first, so that the search can checkpoint and restore one ``Random``.

A genome is ``M`` genes in ``0..N`` (``0`` = no loss on that student layer); variation is followed
by :func:`layermap.mapping.repair` to the order constraint.
"""

from __future__ import annotations

import random
from typing import Callable, MutableSequence, Sequence

from ..mapping import LayerMapping, MappingError, baselines, enumerate_space, repair, satisfies, space_size

Genes = tuple[int, ...]


def crossover_two_point(rng: random.Random, a: MutableSequence[int], b: MutableSequence[int]) -> tuple:
    """Swap the genes between two cut points (DEAP ``cxTwoPoint``).

    For ``M = 2`` there is only one cut point, so this is a one-point crossover (swap the second
    gene); for ``M = 1`` there is nothing to cross and both are returned unchanged.
    """
    size = min(len(a), len(b))
    if size < 2:
        return a, b
    if size == 2:
        a[1], b[1] = b[1], a[1]
        return a, b
    p1 = rng.randint(1, size)
    p2 = rng.randint(1, size - 1)
    if p2 >= p1:
        p2 += 1
    else:
        p1, p2 = p2, p1
    a[p1:p2], b[p1:p2] = b[p1:p2], a[p1:p2]
    return a, b


def crossover_uniform(rng: random.Random, a: MutableSequence[int], b: MutableSequence[int], indpb: float = 0.5) -> tuple:
    """Swap each gene with probability ``indpb`` (DEAP ``cxUniform``)."""
    for i in range(min(len(a), len(b))):
        if rng.random() < indpb:
            a[i], b[i] = b[i], a[i]
    return a, b


def mutate_genes(rng: random.Random, genes: MutableSequence[int], teacher_layers: int, prob: float) -> tuple:
    """Replace each gene, with probability ``prob``, by a uniformly drawn *other* value in ``0..N``;
    when no gene was drawn, one uniformly chosen gene is replaced, so a mutant always differs from its
    parent (DEAP's per-gene mutation leaves ``(1 - prob)^M`` of mutants unchanged: 30 % for M = 3)."""
    changed = False
    for i, g in enumerate(genes):
        if rng.random() < prob:
            genes[i] = _other_value(rng, g, teacher_layers)
            changed = True
    if not changed and len(genes) and teacher_layers >= 1:
        i = rng.randrange(len(genes))
        genes[i] = _other_value(rng, genes[i], teacher_layers)
    return (genes,)


def _other_value(rng: random.Random, g: int, teacher_layers: int) -> int:
    value = rng.randrange(teacher_layers)          # 0..N-1, then skip over the current value
    return value + 1 if value >= g else value


def select_tournament(rng: random.Random, individuals: Sequence, k: int, tournsize: int,
                      key: Callable = lambda ind: ind.fitness) -> list:
    """``k`` winners of tournaments among ``tournsize`` random aspirants (DEAP ``selTournament``)."""
    chosen = []
    for _ in range(k):
        aspirants = [individuals[rng.randrange(len(individuals))] for _ in range(tournsize)]
        chosen.append(max(aspirants, key=key))
    return chosen


def select_survivors(pool: Sequence, mu: int, fitness: Callable = lambda ind: ind.fitness.values[0]) -> list:
    """(mu + lambda) truncation: the ``mu`` best *distinct* genomes of parents + offspring.

    Ties keep pool order (parents first).  Copies of a genome fill in only when the pool holds fewer
    than ``mu`` distinct genomes, so the population does not collapse onto one genome.
    """
    order = sorted(range(len(pool)), key=lambda i: (-fitness(pool[i]), i))
    seen: set[Genes] = set()
    distinct, copies = [], []
    for i in order:
        genes = tuple(pool[i])
        (copies if genes in seen else distinct).append(i)
        seen.add(genes)
    return [pool[i] for i in (distinct + copies)[:mu]]


def random_genome(rng: random.Random, student_layers: int, teacher_layers: int, constraint: str, tries: int = 20) -> Genes:
    """A random valid genome: uniform genes, redrawn up to ``tries`` times, then repaired."""
    genes: Genes = ()
    for _ in range(tries):
        genes = tuple(rng.randint(0, teacher_layers) for _ in range(student_layers))
        if satisfies(genes, constraint):
            return genes
    return repair(genes, teacher_layers, constraint)


def parse_seed_mappings(texts: Sequence[str], student_layers: int, teacher_layers: int, constraint: str) -> list[Genes]:
    """``search.seed_mappings`` as genomes, checked against the teacher and student depth."""
    out = []
    for text in texts:
        try:
            out.append(LayerMapping.parse(text, teacher_layers, student_layers=student_layers, constraint=constraint).genes)
        except MappingError as exc:
            raise MappingError(f"search.seed_mappings: {exc}") from None
    return out


def initial_genomes(rng: random.Random, size: int, student_layers: int, teacher_layers: int, constraint: str, *,
                    seeds: Sequence[Genes] = (), seed_baselines: bool = True) -> list[Genes]:
    """The first population: ``seeds``, then the baselines that satisfy the constraint, then random
    valid genomes; all distinct where the space allows (copies only when it is smaller than ``size``)."""
    candidates = list(seeds)
    if seed_baselines and student_layers <= teacher_layers:
        candidates += [g for g in baselines(student_layers, teacher_layers).values() if satisfies(g, constraint)]
    genomes = list(dict.fromkeys(tuple(g) for g in candidates))[:size]
    wanted = min(size, space_size(student_layers, teacher_layers, constraint))
    known = set(genomes)
    for _ in range(200 * size):
        if len(genomes) >= wanted:
            break
        genes = random_genome(rng, student_layers, teacher_layers, constraint)
        if genes not in known:
            genomes.append(genes)
            known.add(genes)
    for genes in enumerate_space(student_layers, teacher_layers, constraint):   # only for tiny or crowded spaces
        if len(genomes) >= wanted:
            break
        if genes not in known:
            genomes.append(genes)
            known.add(genes)
    while len(genomes) < size:
        genomes.append(genomes[rng.randrange(len(genomes))])
    return genomes
