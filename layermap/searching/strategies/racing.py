"""``search.strategy = "racing"``: the genetic search on shift-adjusted replicate means, its elites raced on shared
seed sets, its answer confirmed on seed sets that took no part in choosing it.

Seed set ``r`` raises ``distill.seed`` and ``proxy.seed`` by ``r``, which redraws the task subsamples and moves every
genome alike (a *common shift*, larger than the genome spread at the CPU budgets).  So a genome is never judged by a
plain mean over whichever seed sets it happens to have: the strategy fits a genome + seed-set additive model
(:func:`layermap.stats.seed_set_shifts`) and ranks genomes by their *shift-adjusted* means, and it compares a racer
with the leader only on the seed sets both have (paired by seed set).

**Anchors.** The shifts are measured on the *anchors* alone: every heuristic baseline (uniform, top, bottom, last),
evaluated under every race seed set in the first generation whatever its scores (:func:`anchor`).  Measured on the
genomes the race replicates instead, they would absorb the winner's curse: those genomes were chosen for their high
seed-set-0 values, so their later values fall back and the shift came out at -1.70 sigma for a true 0 (50 equal
genomes, the 5 best replicated), which lifted the leader's adjusted mean +2.34 sigma above its true fitness
(:func:`layermap.study.null_confirmation.shift_bias`).  A student deeper than the teacher has no baselines, so
racing refuses it (:meth:`Racing.begin`).

With ``R = search.replicate_cap`` and ``C = search.confirm_seed_sets``, the race uses seed sets ``0 .. R-C-1`` and
seed sets ``R-C .. R-1`` are kept for the confirmation.  Every genome is first evaluated under seed set 0, as in the
plain GA.  Then, each generation (after the offspring are evaluated, before selection), the anchors are brought to every race
seed set (the first generation only: afterwards they have them) and the *race* runs:

    repeat:
        means   <- every evaluated genome's shift-adjusted mean over its race seed sets
        racers  <- the search.hall_of_fame best genomes by mean, and the best baseline by mean; leader = the best
        for each racer t: paired difference t - leader over their common seed sets, with the standard error of
                 stats.paired_one_sided (sqrt(2) x the pooled residual std of the additive model, else sqrt(2) x
                 search.noise_std; from 3 pairs on the pairs' own spread where larger; unknown with neither and
                 one pair)
        wanted  <- for each racer within RACE_Z standard errors of the leader: whichever of the two has fewer race
                   seed sets (both when equal), if below R - C
        if wanted is empty: stop
        evaluate each wanted genome under its next seed set (one more replicate each)

Selection, the hall of fame and the checkpointed fitnesses are the shift-adjusted means.  After the last generation
the *final race* brings the leader, and the best baseline, to ``R - C`` seed sets (repeating while a newly replicated
leader loses its lead): the leader is the run's answer (:func:`layermap.evaluators.replicates.racing_pick`).  Then
the *confirmation* evaluates it and the best baseline under the ``C`` fresh seed sets, and the summary's one-sided
paired test of the answer against the best baseline uses those seed sets only (``layermap.report.verdict``), so
the data that chose the two never tests them: under no true difference it rejects at most its nominal 5 %.

The race draws no random numbers and depends only on the records, so a resumed run follows the same trajectory
(the replicates a killed run computed after its last checkpoint wait in ``search.backlog``).  Every replicate goes
through the one evaluate step of :mod:`layermap.searching.state`: cached under its seed set's fingerprint,
claimed (and waited for) like any genome, computed by the run's one executor.
"""

from __future__ import annotations

import math

from ...errors import LayermapError
from ...extraction import baseline_texts
from ...stats import paired_one_sided, pooled_residual_std, seed_set_shifts, shift_adjusted_mean
from ..operators import genome_space
from ..state import SearchState, evaluate
from .ga import GA

RACE_Z = 1.96           # a racer within this many standard errors of the leader is replicated again


def race_seed_sets(search: SearchState) -> int:
    """How many seed sets the race may use: ``search.replicate_cap - search.confirm_seed_sets``."""
    s = search.config.search
    return s.replicate_cap - s.confirm_seed_sets


class Racing(GA):
    """The racing strategy object the generation loop calls (:mod:`layermap.searching.strategies.ga`)."""

    name = "racing"

    def begin(self, search: SearchState) -> None:
        """Before the first generation: refuse a run without anchors (module docstring)."""
        if not anchors(search):
            raise LayermapError(f"search.strategy = \"racing\" measures the seed-set shifts on the baselines, which need a "
                                f"student no deeper than the teacher (got {search.student_layers} student and "
                                f"{search.teacher_layers} teacher layers); use search.strategy = \"ga\"")

    def score(self, search: SearchState, text: str) -> float:
        return mean_fitness(search, text)

    def settle(self, search: SearchState, individuals: list, generation: int, last: bool) -> None:
        """After ``individuals`` were evaluated under seed set 0: the anchors on every race seed set, the race of the
        elites; after the last generation also the final race and the confirmation."""
        anchor(search, generation)
        race(search, generation)
        if last:
            final_race(search, generation)
            confirm(search, generation)

    def update_hall_of_fame(self, search: SearchState, hof, individuals: list, make) -> None:
        """The hall of fame by shift-adjusted means over every genome the run has evaluated."""
        hof.clear()
        table = _Table(search)
        chosen = []
        for text, record in search.memo.items():
            if record is not None and record.ok:
                ind = make(genome_space(search.config, search.student_layers, search.teacher_layers).genes(text))
                ind.fitness.values = (table.mean(text),)
                chosen.append(ind)
        hof.update(chosen)


def anchors(search: SearchState) -> list[str]:
    """The genomes the seed-set shifts are measured on: every heuristic baseline of the run's student and teacher
    depths (none for a student deeper than the teacher)."""
    if search.student_layers > search.teacher_layers:
        return []
    return list(baseline_texts(search.student_layers, search.teacher_layers, search.config.search.genome))


def anchor(search: SearchState, generation: int) -> int:
    """Evaluate every anchor under every race seed set (``0 .. R - C - 1``), whatever anyone's scores; what the run
    already has is not evaluated again (the first generation does the work).  Returns the number of jobs."""
    jobs = [(t, r) for t in anchors(search) for r in range(race_seed_sets(search))]
    return evaluate(search, jobs, generation) if jobs else 0


def replicate_values(search: SearchState, text: str, race_only: bool = True) -> dict[int, float]:
    """Seed set -> fitness of the genome's successful replicates known to the run (the race's seed sets only,
    unless ``race_only`` is false)."""
    limit = race_seed_sets(search) if race_only else math.inf
    out = {}
    first = search.memo.get(text)
    if first is not None and first.ok:
        out[0] = float(first.fitness)
    for r, record in sorted(search.replicas.get(text, {}).items()):
        if record.ok and r < limit:
            out[r] = float(record.fitness)
    return out


def next_seed_set(search: SearchState, text: str) -> int:
    """The genome's next race seed set: one past the highest it was evaluated under, failures included."""
    tried = [r for r in search.replicas.get(text, {}) if r < race_seed_sets(search)]
    return 1 + max(tried, default=0)


def mean_fitness(search: SearchState, text: str) -> float:
    """The selection fitness: the shift-adjusted mean over the race's successful replicates; ``-inf`` when seed set 0
    failed."""
    return _Table(search).mean(text)


def race(search: SearchState, generation: int) -> int:
    """Race the elites (see the module docstring); returns the number of replicates asked for."""
    cap = race_seed_sets(search)
    done = 0
    while True:
        table = _Table(search)
        racers = table.racers()
        if not racers:
            return done
        leader, wanted = racers[0], []
        for t in racers[1:]:
            if table.separated(leader, t):
                continue
            for a, b in ((t, leader), (leader, t)):
                if next_seed_set(search, a) <= next_seed_set(search, b) and next_seed_set(search, a) < cap:
                    wanted.append(a)
        wanted = list(dict.fromkeys(wanted))
        if not wanted:
            return done
        evaluate(search, [(t, next_seed_set(search, t)) for t in wanted], generation)
        done += len(wanted)


def final_race(search: SearchState, generation: int) -> int:
    """Bring the leader, and the best baseline, to the race's ``R - C`` seed sets (see the module docstring)."""
    cap = race_seed_sets(search)
    done = 0
    while True:
        table = _Table(search)
        ranked = table.ranked()
        if not ranked:
            return done
        wanted = [t for t in dict.fromkeys([ranked[0], table.best_baseline()])
                  if t is not None and next_seed_set(search, t) < cap]
        if not wanted:
            return done
        evaluate(search, [(t, next_seed_set(search, t)) for t in wanted], generation)
        done += len(wanted)


def confirm(search: SearchState, generation: int) -> int:
    """Evaluate the leader and the best baseline under the ``C`` confirmation seed sets (``R - C .. R - 1``)."""
    s = search.config.search
    table = _Table(search)
    ranked = table.ranked()
    if not ranked or not s.confirm_seed_sets:
        return 0
    chosen = [t for t in dict.fromkeys([ranked[0], table.best_baseline()]) if t is not None]
    jobs = [(t, r) for t in chosen for r in range(race_seed_sets(search), s.replicate_cap)]
    evaluate(search, jobs, generation)
    return len(jobs)


# -- helpers ------------------------------------------------------------------------------------------
class _Table:
    """The run's race seed sets as a genome x seed-set table, with the additive model fitted once."""

    def __init__(self, search: SearchState) -> None:
        self.search = search
        self.values = {t: replicate_values(search, t) for t, r in search.memo.items() if r is not None and r.ok}
        self.shifts = seed_set_shifts(self.values, anchors(search))
        self.pooled = pooled_residual_std(self.values, self.shifts)
        self.noise = search.config.search.noise_std or None

    def mean(self, text: str) -> float:
        values = self.values.get(text)
        return shift_adjusted_mean(values, self.shifts) if values else -math.inf

    def ranked(self) -> list[str]:
        return sorted(self.values, key=lambda t: (-self.mean(t), t))

    def best_baseline(self) -> str | None:
        names = set(anchors(self.search))
        return next((t for t in self.ranked() if t in names), None)

    def racers(self) -> list[str]:
        racers = self.ranked()[:self.search.config.search.hall_of_fame]
        base = self.best_baseline()
        if base is not None and base not in racers:
            racers.append(base)
        return racers

    def separated(self, a: str, b: str) -> bool:
        """Is ``b`` more than RACE_Z standard errors of a paired difference away from ``a`` (on their common seed
        sets)?  ``False`` where the error is unknown."""
        paired = paired_one_sided(self.values[a], self.values[b], self.noise, self.pooled)
        return paired["stderr"] is not None and abs(paired["difference"]) > RACE_Z * paired["stderr"]
