"""Genetic operators over shaped genomes (:class:`layermap.shape.ShapedGenome`: a student shape and its mapping).

Every operator draws only from the ``random.Random`` it is given (as :mod:`layermap.searching.operators`), returns
new immutable genomes, and keeps them valid: the shape is one of the grid's and the mapping has one gene per
student layer in ``0..N`` under the order constraint.

* :func:`mutate_shaped` changes one part, drawn uniformly among the parts the grid lets vary: the layer count
  (one grid step; the mapping is resized by :func:`resize_genes`), the hidden size (one grid step; heads and FFN
  move to the nearest grid values, the FFN keeping its ratio to hidden), the head count (another divisor of the
  hidden size), the FFN size (one grid step) or the mapping (:func:`~layermap.searching.operators.mutate_genes`,
  then repair).  A mutant always differs from its parent.
* :func:`crossover_shaped` swaps each of hidden size, heads, FFN between the parents with probability 1/2 (then
  heads and FFN move to the nearest grid value that fits the hidden size); the mapping travels with the layer
  count, and when both parents have the same depth their mappings are crossed two-point as today.
* :func:`initial_shaped` is the first population: seeds, the four baselines at the anchor shape (the ``[student]``
  shape fitted to the grid), the uniform mapping at every other grid depth of the anchor's width, then random
  genomes, all distinct.
* :func:`novel_offspring` breeds until a child is new to the run, up to ``tries`` times (then keeps the last),
  as the GA does with :data:`layermap.searching.novelty.NOVELTY_TRIES`.
"""

from __future__ import annotations

import math
import random
from typing import Callable, Collection, Sequence

from ..mapping import baseline, baselines, repair, satisfies
from ..shape import ShapedGenome, ShapeGrid, StudentShape
from .novelty import novel
from .operators import crossover_two_point, mutate_genes, random_genome

Genes = tuple[int, ...]
PARTS = ("layers", "hidden", "heads", "ffn", "mapping")
MUTATION_TRIES = 20


def resize_genes(genes: Sequence[int], layers: int, teacher_layers: int, constraint: str) -> Genes:
    """The mapping ``genes`` for a student of ``layers`` layers: student layer m' takes the gene at the same relative
    depth, ``genes[ceil(m' * M / M') - 1]`` (so the last layer keeps the last gene, and a uniform mapping stays
    uniform-like: 3-6-9-12 -> 6-12 at 2 layers), then the result is repaired to the order constraint (a deeper
    student's repeated genes move to the nearest free teacher layers under ``increasing``: 2-4 -> 2-3-4-5)."""
    m_old = len(genes)
    if layers == m_old:
        return tuple(genes)
    resized = [genes[math.ceil(m * m_old / layers) - 1] for m in range(1, layers + 1)]
    if constraint == "increasing":
        resized = _spread_repeats(resized, teacher_layers)
    return repair(resized, teacher_layers, constraint)


def _spread_repeats(genes: list[int], teacher_layers: int) -> list[int]:
    """Raise each repeated non-zero gene to one above the gene before it (capped at N), so that repair keeps them."""
    out, last = list(genes), 0
    for i, g in enumerate(out):
        if g > 0:
            out[i] = min(max(g, last + 1), teacher_layers)
            last = out[i]
    return out


def random_shaped(rng: random.Random, grid: ShapeGrid, teacher_layers: int, constraint: str) -> ShapedGenome:
    """A uniformly drawn grid shape with a random valid mapping (:func:`~layermap.searching.operators.random_genome`)."""
    hidden = rng.choice(grid.hidden_sizes)
    shape = StudentShape(rng.choice(grid.layers), hidden, rng.choice(grid.heads_for(hidden)),
                         rng.choice(grid.ffns_for(hidden)))
    return ShapedGenome(shape, random_genome(rng, shape.layers, teacher_layers, constraint))


def mutate_shaped(rng: random.Random, genome: ShapedGenome, grid: ShapeGrid, teacher_layers: int, constraint: str,
                  gene_prob: float = 0.0) -> ShapedGenome:
    """One part of ``genome`` changed (module docstring); ``gene_prob`` is the per-gene probability of a mapping
    mutation (0 = 1/M).  The result differs from ``genome`` unless the grid and space hold nothing else."""
    parts = _variable_parts(grid, genome.shape, teacher_layers)
    child = genome
    for _ in range(MUTATION_TRIES):
        child = _mutate_part(rng, rng.choice(parts), genome, grid, teacher_layers, constraint, gene_prob)
        if child != genome:
            break
    return child


def _variable_parts(grid: ShapeGrid, shape: StudentShape, teacher_layers: int) -> list[str]:
    sizes = {"layers": len(grid.layers), "hidden": len(grid.hidden_sizes), "heads": len(grid.heads_for(shape.hidden_size)),
             "ffn": len(grid.ffns_for(shape.hidden_size)), "mapping": teacher_layers + 1}
    return [part for part in PARTS if sizes[part] > 1] or ["mapping"]


def _mutate_part(rng: random.Random, part: str, genome: ShapedGenome, grid: ShapeGrid, teacher_layers: int,
                 constraint: str, gene_prob: float) -> ShapedGenome:
    shape, genes = genome.shape, genome.genes
    if part == "layers":
        layers = _step(rng, grid.layers, shape.layers)
        return ShapedGenome(shape.replace(layers=layers), resize_genes(genes, layers, teacher_layers, constraint))
    if part == "hidden":
        hidden = _step(rng, grid.hidden_sizes, shape.hidden_size)
        return ShapedGenome(grid.fit(shape.layers, hidden, shape.heads, shape.ffn * hidden / shape.hidden_size), genes)
    if part == "heads":
        others = [a for a in grid.heads_for(shape.hidden_size) if a != shape.heads]
        return ShapedGenome(shape.replace(heads=rng.choice(others)), genes) if others else genome
    if part == "ffn":
        return ShapedGenome(shape.replace(ffn=_step(rng, grid.ffns_for(shape.hidden_size), shape.ffn)), genes)
    mutated = list(genes)
    mutate_genes(rng, mutated, teacher_layers, gene_prob or 1.0 / len(genes))
    return ShapedGenome(shape, repair(mutated, teacher_layers, constraint))


def _step(rng: random.Random, values: Sequence[int], current: int) -> int:
    """A neighbour of ``current`` in the sorted grid ``values`` (one step down or up, drawn evenly where both exist)."""
    i = values.index(current) if current in values else min(range(len(values)), key=lambda j: abs(values[j] - current))
    options = [j for j in (i - 1, i + 1) if 0 <= j < len(values)]
    return values[rng.choice(options)] if options else values[i]


def crossover_shaped(rng: random.Random, a: ShapedGenome, b: ShapedGenome, grid: ShapeGrid, teacher_layers: int,
                     constraint: str) -> tuple[ShapedGenome, ShapedGenome]:
    """Two children of ``a`` and ``b`` (module docstring); each child keeps its own parent's depth and mapping."""
    sa, sb = a.shape.to_dict(), b.shape.to_dict()
    for key in ("hidden_size", "heads", "ffn"):
        if rng.random() < 0.5:
            sa[key], sb[key] = sb[key], sa[key]
    ga, gb = list(a.genes), list(b.genes)
    if len(ga) == len(gb):
        crossover_two_point(rng, ga, gb)
    return (ShapedGenome(grid.fit(**sa), repair(ga, teacher_layers, constraint)),
            ShapedGenome(grid.fit(**sb), repair(gb, teacher_layers, constraint)))


def initial_shaped(rng: random.Random, size: int, grid: ShapeGrid, teacher_layers: int, constraint: str, *,
                   anchor: StudentShape, seeds: Sequence[ShapedGenome] = (), seed_baselines: bool = True,
                   tries: int = 200) -> list[ShapedGenome]:
    """The first population (module docstring); fewer than ``size`` only when the grid and space hold fewer."""
    candidates = list(seeds)
    if seed_baselines:
        home = grid.nearest(anchor)
        candidates += [ShapedGenome(home, g) for g in baselines(home.layers, teacher_layers).values()
                       if home.layers <= teacher_layers]
        candidates += [ShapedGenome(home.replace(layers=m), baseline("uniform", m, teacher_layers))
                       for m in grid.layers if m != home.layers and m <= teacher_layers]
    valid = [g for g in candidates if satisfies(g.genes, constraint)]
    genomes = list(dict.fromkeys(valid))[:size]
    for _ in range(tries * size):
        if len(genomes) >= size:
            break
        genome = random_shaped(rng, grid, teacher_layers, constraint)
        if genome not in genomes:
            genomes.append(genome)
    return genomes


def novel_offspring(breed: Callable[[], ShapedGenome], seen: Collection[str], tries: int) -> tuple[ShapedGenome, bool]:
    """``breed()`` until its child's text is not in ``seen``, at most ``tries`` times; returns the child and whether
    it is new (after ``tries`` the last child is kept, as the GA does): :func:`layermap.searching.novelty.novel` on a
    shaped genome's text."""
    return novel(breed, lambda genome: genome.text, seen, tries)


def is_valid(genome: ShapedGenome, grid: ShapeGrid, teacher_layers: int, constraint: str) -> bool:
    """Whether ``genome`` is a grid shape with a mapping of ``0..N`` genes that respects the constraint."""
    return (grid.contains(genome.shape) and all(0 <= g <= teacher_layers for g in genome.genes)
            and satisfies(genome.genes, constraint))
