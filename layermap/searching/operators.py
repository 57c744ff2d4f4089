"""Genetic operators over integer genomes, drawing only from a private ``random.Random``.

DEAP's ``tools.cxTwoPoint``, ``tools.cxUniform`` and ``tools.selTournament`` draw from the global
``random`` module, which would make a checkpoint depend on process-global state.  These are the
same operators (same semantics, in place on list-like individuals, DEAP-style return values) with
the generator passed first, so that the search can checkpoint and restore one ``Random``.

A genome is ``M`` genes in ``0..N`` (``0`` = no loss on that student layer); variation is followed
by :func:`layermap.mapping.repair` to the order constraint.  A split genome (``search.genome = "split"``) is 2M genes,
read by :class:`GenomeSpace`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable, MutableSequence, Sequence

from ..errors import LayermapError
from ..extraction import SPLIT, SplitGenome, as_split, baseline_texts, genome_text, parse_genome
from ..mapping import (LayerMapping, MappingError, baselines, enumerate_space, parse_genes, repair,
                       satisfies, space_size)

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


def _add_random(genomes: list[Genes], wanted: int, tries: int, draw: Callable[[], Genes]) -> set[Genes]:
    """Append distinct ``draw()`` genomes to ``genomes`` until it holds ``wanted`` or ``tries`` draws are spent; returns
    the set of genomes it holds."""
    known = set(genomes)
    for _ in range(tries):
        if len(genomes) >= wanted:
            break
        genes = draw()
        if genes not in known:
            genomes.append(genes)
            known.add(genes)
    return known


def initial_genomes(rng: random.Random, size: int, student_layers: int, teacher_layers: int, constraint: str, *,
                    seeds: Sequence[Genes] = (), seed_baselines: bool = True) -> list[Genes]:
    """The first population: ``seeds``, then the baselines that satisfy the constraint, then random
    valid genomes; all distinct where the space allows (copies only when it is smaller than ``size``)."""
    candidates = list(seeds)
    if seed_baselines and student_layers <= teacher_layers:
        candidates += [g for g in baselines(student_layers, teacher_layers).values() if satisfies(g, constraint)]
    genomes = list(dict.fromkeys(tuple(g) for g in candidates))[:size]
    wanted = min(size, space_size(student_layers, teacher_layers, constraint))
    known = _add_random(genomes, wanted, 200 * size, lambda: random_genome(rng, student_layers, teacher_layers, constraint))
    for genes in enumerate_space(student_layers, teacher_layers, constraint):   # only for tiny or crowded spaces
        if len(genomes) >= wanted:
            break
        if genes not in known:
            genomes.append(genes)
            known.add(genes)
    while len(genomes) < size:
        genomes.append(genomes[rng.randrange(len(genomes))])
    return genomes


# -- the split genome (search.genome = "split", layermap.extraction) ----------------------------------------------
@dataclass(frozen=True)
class GenomeSpace:
    """How a GA individual (a list of ints) reads, for ``search.genome``.

    ``coupled``: M genes in ``0..N``, text ``2-4-6``.  ``split``: 2M genes, the init part (``1..N``: the teacher layer
    each student layer starts from) then the imitation part (``0..N``), text ``1-2-3+2-4-6``
    (:class:`layermap.extraction.SplitGenome`).  Crossover acts on the 2M genes as on any list (a two-point cut may
    fall in either part or across them, position m of each part staying student layer m's); mutation draws each gene
    from its own part's range; repair clips the init part to ``1..N`` and repairs the imitation part alone to the order
    constraint."""

    kind: str
    student_layers: int
    teacher_layers: int
    constraint: str = "free"

    @property
    def split(self) -> bool:
        return self.kind == "split"

    def text(self, genes: Sequence[int]) -> str:
        return genome_text(genes, self.student_layers, self.kind)

    def genes(self, text: str) -> Genes:
        """The individual's genes of a genome text (a coupled text in a split search: its split equal, ``u(g)+g``)."""
        if not self.split:
            return parse_genes(text)
        if SPLIT in text:
            return SplitGenome.parse(text, self.teacher_layers).flat
        return as_split(LayerMapping(parse_genes(text), self.teacher_layers)).flat

    def repair(self, genes: Sequence[int]) -> Genes:
        if not self.split:
            return repair(genes, self.teacher_layers, self.constraint)
        m, n = self.student_layers, self.teacher_layers
        init = tuple(min(max(int(g), 1), n) for g in genes[:m])
        return init + repair(genes[m:], n, self.constraint)

    def mutation_prob(self, gene_mut_prob: float) -> float:
        """The per-gene mutation probability: ``search.gene_mut_prob``, else one gene in expectation (1/M, split 1/2M)."""
        return gene_mut_prob or 1.0 / (self.student_layers * (2 if self.split else 1))

    def mutate(self, rng: random.Random, genes: MutableSequence[int], prob: float) -> tuple:
        """:func:`mutate_genes`, or for a split genome its own-range redraws (:func:`mutate_split`)."""
        if not self.split:
            return mutate_genes(rng, genes, self.teacher_layers, prob)
        return mutate_split(rng, genes, self.student_layers, self.teacher_layers, prob)

    def initial(self, rng: random.Random, size: int, *, seeds: Sequence[str] = (), seed_baselines: bool = True) -> list[Genes]:
        """The first population: ``search.seed_mappings`` (coupled texts become ``u(g)+g``), the baselines (as split
        genomes ``u(g)+g`` in a split search) and random valid genomes, all distinct where the space allows."""
        m, n = self.student_layers, self.teacher_layers
        if not self.split:
            parsed = parse_seed_mappings(seeds, m, n, self.constraint)
            return initial_genomes(rng, size, m, n, self.constraint, seeds=parsed, seed_baselines=seed_baselines)
        candidates = [self.seed(text) for text in seeds]
        if seed_baselines and m <= n:
            candidates += [self.genes(t) for t in baseline_texts(m, n) if satisfies(parse_genes(t), self.constraint)]
        genomes = list(dict.fromkeys(candidates))[:size]
        wanted = min(size, n ** m * space_size(m, n, self.constraint))
        _add_random(genomes, wanted, 200 * size,
                    lambda: tuple(rng.randint(1, n) for _ in range(m)) + random_genome(rng, m, n, self.constraint))
        while len(genomes) < size:
            genomes.append(genomes[rng.randrange(len(genomes))])
        return genomes

    def seed(self, text: str) -> Genes:
        """A ``search.seed_mappings`` entry as an individual, checked against the teacher and student depth."""
        m, n = self.student_layers, self.teacher_layers
        try:
            genome = parse_genome(text, n, student_layers=m, constraint=self.constraint)
        except LayermapError as exc:
            raise MappingError(f"search.seed_mappings: {exc}") from None
        return as_split(genome).flat if self.split else genome.genes


def genome_space(config, student_layers: int, teacher_layers: int) -> GenomeSpace:
    """The :class:`GenomeSpace` of a run's settings (a :class:`layermap.config.Config` or its dict)."""
    search = config.search if hasattr(config, "search") else SimpleNamespace(**(config or {}).get("search", {}))
    return GenomeSpace(getattr(search, "genome", "coupled"), int(student_layers), int(teacher_layers),
                       getattr(search, "constraint", "free"))


def mutate_split(rng: random.Random, genes: MutableSequence[int], student_layers: int, teacher_layers: int,
                 prob: float) -> tuple:
    """Per-gene mutation of a split genome's 2M genes: each gene, with probability ``prob``, is redrawn as another value
    of its part's range (init ``1..N``, imitation ``0..N``); when none was drawn, one gene that can change is, so a
    mutant always differs from its parent (an init gene of a 1-layer teacher cannot change)."""
    m, n = student_layers, teacher_layers

    def redraw(i: int) -> None:
        if i < m:                                       # init part: another teacher layer in 1..N
            genes[i] = 1 + _other_value(rng, genes[i] - 1, n - 1)
        else:
            genes[i] = _other_value(rng, genes[i], n)

    changeable = [i for i in range(len(genes)) if i >= m or n > 1]
    changed = False
    for i in changeable:
        if rng.random() < prob:
            redraw(i)
            changed = True
    if not changed and changeable:
        redraw(changeable[rng.randrange(len(changeable))])
    return (genes,)
