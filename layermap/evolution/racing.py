"""``search.strategy = "racing"``: the genetic search on replicate means, its elites raced under new seed sets.

Every genome is first evaluated under seed set 0, as in the plain GA.  Then, each generation (after the
offspring are evaluated, before selection), the *race*:

    repeat:
        estimates <- mean and standard error of every evaluated genome's replicates (stats.replicate_mean)
        racers    <- the search.hall_of_fame best genomes by mean, and the best baseline by mean
        wanted    <- racers with fewer than search.replicate_cap seed sets whose interval
                     mean +- RACE_Z * se overlaps another racer's (an unknown se overlaps everything)
        if wanted is empty: stop
        evaluate each wanted genome under its next seed set (one more replicate each)

so replicates are spent where they decide the ranking at the top, and a genome stops being replicated
once its interval separates from the other racers' or it reaches the cap.  Selection, the hall of fame and
the checkpointed fitnesses are the replicate means.  After the last generation the *final race* brings the
genome with the best mean, and the best baseline, to ``R = search.replicate_cap`` seed sets (repeating
while a newly replicated leader loses its lead), and the run's answer is the best mean among genomes with
at least R seed sets (:func:`layermap.evolution.replicates.final_pick`); the summary compares it with the
best baseline by a one-sided paired test over their common seed sets (:func:`layermap.stats.paired_one_sided`).

The race draws no random numbers and depends only on the records, so a resumed run follows the same
trajectory: the replicates it finds in its store from after its last checkpoint wait in ``search.backlog``
until the replayed race asks for them again, so that every decision sees what it saw the first time.  Replicates of seed sets ``r >= 1`` are looked up in the
run's store and the shared cache under the seed set's fingerprint, then computed through an executor of the
seed set's evaluator; one such executor is kept at a time (a process pool restarts its workers when the seed
set changes).
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Iterable

from ..logs import get_logger
from ..mapping import baseline_names, format_genes, parse_genes
from ..stats import replicate_mean
from .executors import create_executor
from .replicates import seed_set_evaluator
from .store import KNOWN

if TYPE_CHECKING:
    from .evolve import SearchState

RACE_Z = 1.96           # half-width of a racer's interval in standard errors (a 95 % normal interval)

_log = get_logger(__name__)


def replicate_values(search: "SearchState", text: str) -> dict[int, float]:
    """Seed set -> fitness of the genome's successful replicates known to the run."""
    out = {}
    first = search.memo.get(text)
    if first is not None and first.ok:
        out[0] = float(first.fitness)
    for r, record in sorted(search.replicas.get(text, {}).items()):
        if record.ok:
            out[r] = float(record.fitness)
    return out


def seed_sets_tried(search: "SearchState", text: str) -> int:
    """How many seed sets the genome was evaluated under, failures included (the next one is this number)."""
    return 1 + max(search.replicas.get(text, {0: None}))


def mean_fitness(search: "SearchState", text: str) -> float:
    """The selection fitness: the mean over successful replicates; ``-inf`` when seed set 0 failed."""
    first = search.memo.get(text)
    if first is None or not first.ok:
        return -math.inf
    values = replicate_values(search, text)
    return sum(values.values()) / len(values)


def estimate(search: "SearchState", text: str) -> tuple[float, float | None]:
    values = list(replicate_values(search, text).values())
    mean, se, _ = replicate_mean(values, search.config.search.noise_std or None)
    return mean, se


def race(search: "SearchState", individuals: list, generation: int) -> int:
    """Race the elites of ``individuals`` (see the module docstring), then give every individual its mean.

    Returns the number of replicates evaluated (computed or cached)."""
    s = search.config.search
    texts = list(dict.fromkeys(format_genes(ind) for ind in individuals))
    known = [t for t in dict.fromkeys([*texts, *search.memo]) if search.memo.get(t) is not None and search.memo[t].ok]
    done = 0
    while True:
        racers = _racers(search, known)
        bounds = {t: _interval(search, t) for t in racers}
        wanted = [t for t in racers if seed_sets_tried(search, t) < s.replicate_cap
                  and any(_overlap(bounds[t], bounds[o]) for o in racers if o != t)]
        if not wanted:
            break
        evaluate_replicates(search, [(t, seed_sets_tried(search, t)) for t in wanted], generation)
        done += len(wanted)
    for ind in individuals:
        ind.fitness.values = (mean_fitness(search, format_genes(ind)),)
    return done


def final_race(search: "SearchState", generation: int) -> int:
    """Bring the best mean, and the best baseline, to ``search.replicate_cap`` seed sets (see the module docstring)."""
    cap = search.config.search.replicate_cap
    done = 0
    while True:
        known = [t for t, r in search.memo.items() if r is not None and r.ok]
        if not known:
            return done
        leader = min(known, key=lambda t: (-mean_fitness(search, t), t))
        base = _best_baseline(search, known)
        wanted = [t for t in dict.fromkeys([leader, base]) if t is not None and seed_sets_tried(search, t) < cap]
        if not wanted:
            return done
        evaluate_replicates(search, [(t, seed_sets_tried(search, t)) for t in wanted], generation)
        done += len(wanted)


def rebuild_hall_of_fame(search: "SearchState", hof, make) -> None:
    """The hall of fame by replicate means over every genome the run has evaluated (``make(genes)`` builds an
    individual)."""
    hof.clear()
    individuals = []
    for text, record in search.memo.items():
        if record is not None and record.ok:
            ind = make(parse_genes(text))
            ind.fitness.values = (mean_fitness(search, text),)
            individuals.append(ind)
    hof.update(individuals)


def evaluate_replicates(search: "SearchState", wanted: Iterable[tuple[str, int]], generation: int) -> None:
    """Evaluate each ``(genome, seed set)`` (seed set >= 1) once: from the run's store or the shared cache
    under the seed set's fingerprint, else through the seed set's executor.  Records are written as they arrive."""
    store, run_id = search.store, search.run_id
    pending: dict[int, list[str]] = {}
    for text, r in wanted:
        record = search.backlog.pop((text, r), None)      # resumed: this run computed it after its last checkpoint
        if record is not None:
            search.replicas.setdefault(text, {})[r] = record
            continue
        fp = _evaluator(search, r).fingerprint
        record = store.lookup(fp, text) or (search.shared.lookup(fp, text) if search.shared else None)
        if record is None and search.claims is not None and search.claims.claim(fp, text, search.owner) == KNOWN:
            record = search.claims.lookup(fp, text)
        if record is not None:
            record = dataclasses.replace(record, seed_set=r)
            store.record_cached(run_id, fp, generation, record)
            search.replicas.setdefault(text, {})[r] = record
        else:
            pending.setdefault(r, []).append(text)
    for r, texts in sorted(pending.items()):
        fp = _evaluator(search, r).fingerprint
        rows = {t: store.start_evaluation(run_id, fp, t, generation) for t in texts}
        for genes, record in _executor(search, r).submit(parse_genes(t) for t in texts):
            text = format_genes(genes)
            record = dataclasses.replace(record, seed_set=r)
            store.finish_evaluation(rows[text], record)
            if search.shared is not None:
                search.shared.remember(fp, record)
            if search.claims is not None:
                search.claims.release(search.owner, fp, text)
            search.replicas.setdefault(text, {})[r] = record
            if search.progress:
                outcome = f"fitness {record.fitness:.2f}" if record.ok else f"failed ({record.error})"
                _log.info(f"gen {generation}: replicate {text} seed set {r}: {outcome}")


def close_replicate_executor(search: "SearchState") -> None:
    if search.replicate_executor is not None:
        search.replicate_executor[1].close()
        search.replicate_executor = None


# -- helpers ------------------------------------------------------------------------------------------
def _racers(search: "SearchState", known: list[str]) -> list[str]:
    s = search.config.search
    ranked = sorted(known, key=lambda t: (-mean_fitness(search, t), t))
    racers = ranked[:s.hall_of_fame]
    base = _best_baseline(search, known)
    if base is not None and base not in racers:
        racers.append(base)
    return racers


def _best_baseline(search: "SearchState", known: list[str]) -> str | None:
    if search.student_layers > search.teacher_layers:
        return None
    names = baseline_names(search.student_layers, search.teacher_layers)
    base = [t for t in known if t in names]
    return min(base, key=lambda t: (-mean_fitness(search, t), t)) if base else None


def _interval(search: "SearchState", text: str) -> tuple[float, float]:
    mean, se = estimate(search, text)
    if se is None:
        return -math.inf, math.inf
    return mean - RACE_Z * se, mean + RACE_Z * se


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _evaluator(search: "SearchState", r: int):
    cached = search.seed_set_evaluators.get(r)
    if cached is None:
        cached = search.seed_set_evaluators[r] = seed_set_evaluator(search.evaluator, r)
    return cached


def _executor(search: "SearchState", r: int):
    """The executor of seed set ``r``; the one of another seed set is closed first (one replicate executor at a time)."""
    if search.replicate_executor is not None and search.replicate_executor[0] != r:
        close_replicate_executor(search)
        search.seed_set_evaluators.clear()           # drop the loaded teacher of the last seed set
    if search.replicate_executor is None:
        evaluator = _evaluator(search, r)
        if hasattr(evaluator, "prepare"):
            evaluator.prepare()
        search.replicate_executor = (r, create_executor(evaluator, search.config.run))
    return search.replicate_executor[1]
