"""NSGA-II, noise-aware: fronts, selection and hypervolume over several objectives (not yet wired into ``evolve``).

A :class:`Point` is one genome's objective values, in the order of the ``objectives`` names (``fitness`` is
maximised, every other objective — ``latency``, ``params``, ``flops`` — minimised), with the standard error of its
fitness where it has replicates.

**Noise-aware domination** (:func:`dominates`).  Fitness is a noisy measurement; latency is measured with a small
spread and params and FLOPs are exact.  So genome a dominates genome b only when a's fitness is higher *beyond
noise* — ``f_a - f_b > k * sqrt(se_a^2 + se_b^2)``, each se defaulting to ``noise_std`` (the seed std of one
fitness), ``k`` = :data:`NOISE_K` (1.96) — and a is no worse than b on every other objective.  Two genomes whose
fitnesses differ within noise never dominate each other: both stay on the front, and the one that plain Pareto
domination would have removed is marked ``tied`` (:func:`front`).  With ``noise_std = 0`` and no standard errors
this is Pareto domination except that an exact fitness tie does not dominate.  The relation is transitive, so
the fronts are well defined.

**Selection** (:func:`select`) is NSGA-II's survivor selection (Deb et al. 2002, as ``deap.tools.selNSGA2``) on
this domination: fronts in order, the last one cut by crowding distance (larger first, then input order), so it
is deterministic.  :func:`select_parents` is NSGA-II's binary tournament on (front rank, crowding distance),
drawing only from the given ``random.Random``.

**Hypervolume** (:func:`hypervolume`): the volume dominated by the plain Pareto front of the points up to a
stated reference point (in the objectives' own units, e.g. fitness 0 and latency 100 ms), by
``deap.benchmarks.tools.hypervolume`` (``deap.tools.hypervolume`` returns the least-contributing index, not the
value).  Points not strictly better than the reference on every objective add nothing.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

from ..errors import LayermapError

NOISE_K = 1.96
MAXIMISED = frozenset({"fitness"})
NOISY = "fitness"


class NSGA2Error(LayermapError):
    """Objectives or a reference point that do not fit the points given."""


@dataclass(frozen=True)
class Point:
    """One genome's objective values (``values[i]`` belongs to ``objectives[i]``) and its fitness standard error
    (``None`` = ``noise_std``)."""

    genome: str
    values: tuple[float, ...]
    se: float | None = None


@dataclass(frozen=True)
class FrontPoint:
    """A point of the noise-aware front as :func:`front` computes it (a run's front read back from its checkpoint is
    :class:`layermap.report.front.FrontMember`)."""

    point: Point
    tied: bool          # on the front only because its fitness is within noise of a genome that Pareto-dominates it


def _signs(objectives: Sequence[str], points: Sequence[Point]) -> tuple[int, ...]:
    if any(len(p.values) != len(objectives) for p in points):
        raise NSGA2Error(f"every point needs one value per objective ({', '.join(objectives)})")
    return tuple(1 if name in MAXIMISED else -1 for name in objectives)


def dominates(a: Point, b: Point, objectives: Sequence[str], noise_std: float = 0.0, k: float = NOISE_K) -> bool:
    """Whether ``a`` dominates ``b`` (module docstring): better beyond noise on fitness, no worse on the rest."""
    signs = _signs(objectives, (a, b))
    for name, sign, va, vb in zip(objectives, signs, a.values, b.values):
        if name == NOISY:
            margin = k * math.hypot(noise_std if a.se is None else a.se, noise_std if b.se is None else b.se)
            if not sign * (va - vb) > margin:
                return False
        elif sign * (va - vb) < 0:
            return False
    return NOISY in objectives or any(sign * (va - vb) > 0 for sign, va, vb in zip(signs, a.values, b.values))


def pareto_dominates(a: Point, b: Point, objectives: Sequence[str]) -> bool:
    """Plain Pareto domination: no worse on every objective and better on one (no noise)."""
    signs = _signs(objectives, (a, b))
    diffs = [sign * (va - vb) for sign, va, vb in zip(signs, a.values, b.values)]
    return all(d >= 0 for d in diffs) and any(d > 0 for d in diffs)


def sort_fronts(points: Sequence[Point], objectives: Sequence[str], noise_std: float = 0.0,
                k: float = NOISE_K) -> list[list[int]]:
    """Indices of ``points`` in non-dominated fronts (front 0 first; input order within a front)."""
    n = len(points)
    beaten_by = [0] * n
    beats: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(n):
            if i != j and dominates(points[i], points[j], objectives, noise_std, k):
                beats[i].append(j)
                beaten_by[j] += 1
    fronts, current = [], [i for i in range(n) if beaten_by[i] == 0]
    while current:
        fronts.append(current)
        following = []
        for i in current:
            for j in beats[i]:
                beaten_by[j] -= 1
                if beaten_by[j] == 0:
                    following.append(j)
        current = sorted(following)
    return fronts


def front(points: Sequence[Point], objectives: Sequence[str], noise_std: float = 0.0,
          k: float = NOISE_K) -> list[FrontPoint]:
    """The first noise-aware front, each member marked ``tied`` when some point Pareto-dominates it."""
    if not points:
        return []
    first = sort_fronts(points, objectives, noise_std, k)[0]
    return [FrontPoint(points[i], any(pareto_dominates(q, points[i], objectives) for q in points)) for i in first]


def crowding_distances(points: Sequence[Point], indices: Sequence[int]) -> dict[int, float]:
    """NSGA-II crowding distance of each index within its front: the sum over objectives of the normalised gap
    between its neighbours; the two ends of every objective get infinity."""
    distance = {i: 0.0 for i in indices}
    if len(indices) <= 2:
        return {i: math.inf for i in indices}
    for m in range(len(points[indices[0]].values)):
        order = sorted(indices, key=lambda i: (points[i].values[m], i))
        low, high = points[order[0]].values[m], points[order[-1]].values[m]
        distance[order[0]] = distance[order[-1]] = math.inf
        if high == low:
            continue
        for before, here, after in zip(order, order[1:], order[2:]):
            distance[here] += (points[after].values[m] - points[before].values[m]) / (high - low)
    return distance


def _ranked(points: Sequence[Point], objectives: Sequence[str], noise_std: float, k: float) -> list[tuple[int, float]]:
    """(front rank, crowding distance) of every point."""
    out: list[tuple[int, float]] = [(0, 0.0)] * len(points)
    for rank, indices in enumerate(sort_fronts(points, objectives, noise_std, k)):
        for i, d in crowding_distances(points, indices).items():
            out[i] = (rank, d)
    return out


def select(points: Sequence[Point], k: int, objectives: Sequence[str], noise_std: float = 0.0, *,
           noise_k: float = NOISE_K) -> list[Point]:
    """NSGA-II survivors: the ``k`` best by (front rank, larger crowding distance, input order)."""
    ranked = _ranked(points, objectives, noise_std, noise_k)
    order = sorted(range(len(points)), key=lambda i: (ranked[i][0], -ranked[i][1], i))
    return [points[i] for i in order[:k]]


def select_parents(rng: random.Random, points: Sequence[Point], k: int, objectives: Sequence[str],
                   noise_std: float = 0.0, *, noise_k: float = NOISE_K) -> list[Point]:
    """``k`` winners of binary tournaments: the lower front rank wins, then the larger crowding distance, then a coin."""
    ranked = _ranked(points, objectives, noise_std, noise_k)
    chosen = []
    for _ in range(k):
        i, j = rng.randrange(len(points)), rng.randrange(len(points))
        key_i, key_j = (ranked[i][0], -ranked[i][1]), (ranked[j][0], -ranked[j][1])
        winner = i if key_i < key_j else j if key_j < key_i else (i if rng.random() < 0.5 else j)
        chosen.append(points[winner])
    return chosen


class _Weighted:
    """What ``deap.benchmarks.tools.hypervolume`` reads of an individual: ``fitness.wvalues``."""

    def __init__(self, wvalues: tuple[float, ...]) -> None:
        self.fitness = self
        self.wvalues = wvalues


def hypervolume(points: Sequence[Point], objectives: Sequence[str], reference: Sequence[float]) -> float:
    """The hypervolume of the points' Pareto front up to ``reference`` (module docstring); 0 when none beats it."""
    from deap.benchmarks.tools import hypervolume as deap_hypervolume

    if len(reference) != len(objectives):
        raise NSGA2Error(f"the reference point {list(reference)} needs one value per objective ({', '.join(objectives)})")
    signs = _signs(objectives, points)
    inside = [p for p in points if all(s * (v - r) > 0 for s, v, r in zip(signs, p.values, reference))]
    best = [p for p in inside if not any(pareto_dominates(q, p, objectives) for q in inside)]
    if not best:
        return 0.0
    unique = list(dict.fromkeys(tuple(s * v for s, v in zip(signs, p.values)) for p in best))
    # DEAP minimises -wvalues; the reference is given in that space too
    return float(deap_hypervolume([_Weighted(w) for w in unique], [-s * r for s, r in zip(signs, reference)]))
