"""Replicates: one genome evaluated under several seed sets, and the estimate they give together.

Seed set ``r`` of a run evaluates a genome with ``distill.seed + r`` and ``proxy.seed + r`` (every other
setting unchanged), so it is an ordinary evaluation under another fingerprint: the evaluator of seed set
``r`` (:func:`seed_set_evaluator`) has the fingerprint of the settings with those seeds.  Seed set 0 is the
run's own fingerprint, so it hits exactly the cache entries of a plain (one seed set) evaluation, and a
replicate is cached under ``(fingerprint of its seeds, genome)`` like any fitness: a later run, or a run
whose seeds start where this one's replicates went, reuses it.  The store keeps one ``evaluations`` row per
replicate (its fingerprint column is the seed set's) and the record says which seed set it is
(``EvaluationRecord.seed_set``, relative to the run's seeds; 0 for every older record), so no schema change
was needed.

A genome's estimate (:func:`combine`) is the mean over its successful replicates with a standard error
(:func:`layermap.stats.replicate_mean`: its own spread from 3 replicates on, the run's measured
``search.noise_std / sqrt(n)`` below that).  A genome with one replicate keeps its record unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Sequence

from ..stats import mean_and_stderr, replicate_mean, sample_var
from ..storage.records import EvaluationRecord, TaskScore


class SeedSetsUnsupported(TypeError):
    """The evaluator cannot be evaluated under another seed set."""


def seed_set_evaluator(evaluator: Any, seed_set: int) -> Any:
    """The evaluator of seed set ``seed_set`` (``evaluator`` itself for 0): ``evaluator.with_seed_set(r)``."""
    if seed_set == 0:
        return evaluator
    make = getattr(evaluator, "with_seed_set", None)
    if make is None:
        raise SeedSetsUnsupported(f"{type(evaluator).__name__} has no with_seed_set(r): it cannot evaluate replicates")
    return make(seed_set)


def group_by_genome(records: Iterable[EvaluationRecord]) -> dict[str, dict[int, EvaluationRecord]]:
    """Records (in store order) by genome, then seed set; a later successful record of the same seed set (a retry)
    replaces an earlier one, a failure never replaces a success."""
    out: dict[str, dict[int, EvaluationRecord]] = {}
    for record in records:
        slot = out.setdefault(record.genome, {})
        old = slot.get(record.seed_set)
        if old is None or record.ok or not old.ok:
            slot[record.seed_set] = record
    return out


def combine(by_seed_set: dict[int, EvaluationRecord], noise_std: float | None = None) -> EvaluationRecord:
    """One record for a genome from its replicates (seed set -> record).

    With one successful replicate (or none) it is that record (or the first failure) unchanged.  With more,
    ``fitness`` is their mean, ``fitness_stderr`` its standard error, ``seed_set_fitness`` each seed set's
    fitness, and each task's score the mean over seed sets (``replicates`` = per seed set, ``std`` their spread);
    the other fields are seed set 0's (or the lowest successful seed set's)."""
    ok = {r: rec for r, rec in sorted(by_seed_set.items()) if rec.ok}
    if len(ok) <= 1:
        return next(iter(ok.values()), None) or by_seed_set[min(by_seed_set)]
    values = {r: float(rec.fitness) for r, rec in ok.items()}
    mean, stderr, _ = replicate_mean(list(values.values()), noise_std)
    base = next(iter(ok.values()))
    tasks = {}
    for name in base.tasks:
        scores = [rec.tasks[name].score for rec in ok.values() if name in rec.tasks]
        metrics = {k: sum(rec.tasks[name].metrics.get(k, math.nan) for rec in ok.values() if name in rec.tasks) / len(scores)
                   for k in base.tasks[name].metrics}
        m, _ = mean_and_stderr(scores)
        std = math.sqrt(sample_var(scores)) if len(scores) > 1 else None
        tasks[name] = TaskScore(metrics=metrics, score=m, replicates=scores, std=std)
    return dataclasses.replace(base, fitness=mean, fitness_stderr=stderr, fitness_replicates=[], tasks=tasks,
                               seed_set_fitness=values, seed_set=min(ok))


def combined_records(records: Iterable[EvaluationRecord], noise_std: float | None = None) -> dict[str, EvaluationRecord]:
    """Every genome's combined record (:func:`combine`), in the order genomes first appear."""
    return {genome: combine(slot, noise_std) for genome, slot in group_by_genome(records).items()}


def final_pick(records: Sequence[EvaluationRecord], min_seed_sets: int = 1) -> EvaluationRecord | None:
    """The answer of a run: the best mean among successful genomes with at least ``min_seed_sets`` replicates
    (the earliest listed on ties); when none has that many, the best among those with the most."""
    ok = [r for r in records if r.ok]
    if not ok:
        return None
    need = min(min_seed_sets, max(r.seed_sets for r in ok))
    best = None
    for record in ok:
        if record.seed_sets >= need and (best is None or record.fitness > best.fitness):
            best = record
    return best


def restrict(record: EvaluationRecord, seed_sets: int) -> EvaluationRecord:
    """A combined record seen through its first ``seed_sets`` seed sets only (``0 .. seed_sets - 1``): fitness the mean
    over those, ``seed_set_fitness`` those; a record without them (one seed set) is returned unchanged."""
    if not record.seed_set_fitness:
        return record
    kept = {r: v for r, v in record.seed_set_fitness.items() if r < seed_sets}
    if not kept or len(kept) == len(record.seed_set_fitness):
        return record
    return dataclasses.replace(record, fitness=sum(kept.values()) / len(kept), fitness_stderr=None,
                               seed_set_fitness=kept if len(kept) > 1 else {}, seed_set=min(kept))


def racing_pick(records: Sequence[EvaluationRecord], race_seed_sets: int) -> EvaluationRecord | None:
    """The answer of a racing run: the genome :func:`final_pick` chooses on the race's seed sets
    (``0 .. race_seed_sets - 1``) alone, so the confirmation seed sets after them take no part in the choice; the
    genome's full record is returned.  Ties go to the lowest genome text, as in the race."""
    full = {r.genome: r for r in records}
    restricted = sorted((restrict(r, race_seed_sets) for r in records), key=lambda r: (-(r.fitness or 0.0), r.genome))
    pick = final_pick(restricted, race_seed_sets)
    return None if pick is None else full[pick.genome]
