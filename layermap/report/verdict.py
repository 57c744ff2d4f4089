"""Verdicts on a search's records: which genomes are tied with the best within seed noise, and whether the
best beats the best baseline beyond it (the sentence every run summary and ``layermap show`` ends with).

A fitness is one draw of a noisy measurement; every statement here says how large that noise is
(a record's own standard error, or the run's measured ``search.noise_std``) and is ``None`` where it is unknown.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import LayermapError
from ..extraction import baseline_texts
from ..mapping import baseline_names
from ..stats import OWN_SPREAD_MIN, paired_one_sided, pooled_residual_std, seed_set_shifts
from ..storage.records import EvaluationRecord
from ..evaluators.replicates import combined_records, racing_pick
from .results import confirm_seed_sets, final_seed_sets, run_genome, run_noise_std
from ..storage.store import RunRow, Store

PAIRED_ALPHA = 0.05     # one-sided level of the paired test of a racing run's answer against the best baseline


TIE_RULE = "best - fitness < 2 * sqrt(se_best^2 + se^2)"


def standard_error(record: EvaluationRecord, noise_std: float | None) -> float | None:
    """The standard error of a record's fitness: ``--noise-std`` if given, else the record's own.  For a record
    combining n seed sets: its own spread from OWN_SPREAD_MIN replicates on, else ``noise_std / sqrt(n)``."""
    n = record.seed_sets
    if n > 1:
        if n < OWN_SPREAD_MIN and noise_std is not None:
            return noise_std / n ** 0.5
        return record.fitness_stderr
    return noise_std if noise_std is not None else record.fitness_stderr


def within_noise_of_best(records: list[EvaluationRecord], noise_std: float | None = None) -> list[bool | None]:
    """For records sorted best first: is each one's fitness within noise of the best's?

    Rule (:data:`TIE_RULE`): ``best - fitness < 2 * sqrt(se_best**2 + se**2)``, i.e. the difference
    is under two standard errors of a difference.  ``None`` where a standard error is unknown.
    """
    if not records:
        return []
    best = records[0]
    se_best = standard_error(best, noise_std)
    out: list[bool | None] = []
    for record in records:
        se = standard_error(record, noise_std)
        if se is None or se_best is None:
            out.append(None)
        elif record is best:
            out.append(True)                 # the best is tied with itself (even with a zero standard error)
        else:
            out.append(best.fitness - record.fitness < 2.0 * (se_best ** 2 + se ** 2) ** 0.5)
    return out


def best_vs_baselines(records: list[EvaluationRecord], student_layers: int, teacher_layers: int,
                      noise_std: float | None, min_seed_sets: int = 1, confirm: int = 0,
                      genome: str = "coupled") -> dict | None:
    """The best genome against the best evaluated baseline, with the noise a difference must exceed.

    With ``min_seed_sets`` > 1 (a racing run: ``search.replicate_cap``) of which the last ``confirm`` are the
    confirmation's (``search.confirm_seed_sets``), the best and the baseline are chosen on the race's seed sets
    ``0 .. min_seed_sets - confirm - 1`` alone (:func:`layermap.evaluators.replicates.racing_pick`), and ``paired``
    holds the one-sided paired test of the best against the baseline (:func:`layermap.stats.paired_one_sided`) on the
    confirmation seed sets only, so the data that chose them never tests them (``confirm = 0``: on every common seed
    set, the data that chose them); ``beyond_noise`` is then ``p < PAIRED_ALPHA``.  ``genome``: the run's
    ``search.genome`` (a split search writes its baselines ``2-4-6+2-4-6``, :func:`layermap.extraction.baseline_texts`)."""
    if not records:
        return None
    names = baseline_texts(student_layers, teacher_layers, genome) if genome == "split" else \
        baseline_names(student_layers, teacher_layers)
    records = sorted(records, key=lambda r: -r.fitness)
    best = pick_best(records, min_seed_sets, confirm)
    records = [best] + [r for r in records if r is not best]
    base = [r for r in records if r.genome in names]
    if not base:
        return None
    ref = pick_best(base, min_seed_sets, confirm)
    se_best, se_ref = standard_error(best, noise_std), standard_error(ref, noise_std)
    needed = 2.0 * (se_best ** 2 + se_ref ** 2) ** 0.5 if se_best is not None and se_ref is not None else None
    diff = best.fitness - ref.fitness
    tied = sum(t is True for t in within_noise_of_best(records, noise_std))
    out = {"best": best.genome, "best_fitness": best.fitness, "baseline": ref.genome, "baseline_kind": names[ref.genome],
           "baseline_fitness": ref.fitness, "difference": diff, "difference_needed": needed,
           "beyond_noise": None if needed is None else bool(best.genome != ref.genome and diff >= needed),
           "within_noise_of_best": tied if needed is not None else None, "genomes": len(records),
           "best_seed_sets": best.seed_sets, "baseline_seed_sets": ref.seed_sets, "paired": None}
    if min_seed_sets > 1 and best.genome != ref.genome:
        race = min_seed_sets - confirm
        table = {r.genome: {k: v for k, v in _by_seed_set(r).items() if k < race} for r in records}
        shifts = seed_set_shifts(table, names)                # the baselines are racing's anchors
        paired = paired_one_sided(_by_seed_set(best), _by_seed_set(ref), noise_std, pooled_residual_std(table, shifts),
                                  keys=range(race, min_seed_sets) if confirm else None)
        paired["fresh"] = bool(confirm)               # tested on seed sets that took no part in choosing the two
        out["paired"] = paired
        if paired["p"] is not None:
            out["beyond_noise"] = bool(paired["p"] < PAIRED_ALPHA)
    return out


def pick_best(records: list[EvaluationRecord], min_seed_sets: int = 1, confirm: int = 0) -> EvaluationRecord:
    """The best of ``records`` (sorted best first): for a racing run (``min_seed_sets`` > 1) the racing rule on the
    race's seed sets (:func:`layermap.evaluators.replicates.racing_pick`), else the first."""
    return racing_pick(records, min_seed_sets - confirm) if min_seed_sets > 1 else records[0]


def _by_seed_set(record: EvaluationRecord) -> dict[int, float]:
    return dict(record.seed_set_fitness) if record.seed_set_fitness else {record.seed_set: float(record.fitness)}


def baseline_sentence(b: dict | None) -> str:
    """One sentence: does the search's best beat the best baseline beyond seed noise?"""
    if b is None:
        return "no baseline was evaluated, so the best cannot be compared with one"
    if b["best"] == b["baseline"]:
        head = f"the best genome is the {b['baseline_kind']} baseline {b['baseline']} ({b['best_fitness']:.2f})"
    else:
        head = (f"the best, {b['best']} ({b['best_fitness']:.2f}), leads the best baseline, {b['baseline_kind']} "
                f"{b['baseline']} ({b['baseline_fitness']:.2f}), by {b['difference']:.2f}")
    paired = b.get("paired")
    if paired is not None and paired["p"] is not None:
        verdict = (f"beyond seed noise (p < {PAIRED_ALPHA:g})" if b["beyond_noise"]
                   else "within seed noise: no significant difference")
        sets = f"{paired['n']} common seed set{'s' if paired['n'] != 1 else ''}"
        where = (f"on {sets} that took no part in choosing them" if paired.get("fresh")
                 else f"over {sets} (the seed sets that chose them)")
        return (f"{head} (means over {b['best_seed_sets']} and {b['baseline_seed_sets']} seed sets); one-sided paired "
                f"test {where}: difference {paired['difference']:+.2f} ± {paired['stderr']:.2f}, "
                f"p = {paired['p']:.3f}, so {verdict}")
    if b["difference_needed"] is None:
        return (head + "; seed noise unknown (set search.noise_std to the std benchmarks/bench_noise.py measures at "
                "this budget, pass --noise-std, or use proxy.repeats >= 2), so this ranking has no error bar")
    if b["best"] == b["baseline"]:
        verdict = "no searched genome beats it"
    elif b["beyond_noise"]:
        verdict = "beyond seed noise"
    else:
        verdict = "within seed noise: no significant difference"
    return (f"{head}; a difference needs {b['difference_needed']:.2f} to exceed seed noise, so {verdict} "
            f"({b['within_noise_of_best']} of {b['genomes']} genomes are within noise of the best)")


def noise_note(top: list[EvaluationRecord], ties: list[bool | None], noise_std: float | None,
                noise_from: str = "--noise-std") -> str:
    if any(t is None for t in ties):
        return ("no standard error for some genomes ('?'): rerun with proxy.repeats >= 2, or pass --noise-std SE "
                "(the seed std of one fitness that benchmarks/bench_noise.py measures at this budget)")
    source = (f"se = {noise_from} {noise_std:g} for every genome" if noise_std is not None
              else "se from each record's fine-tuning seeds (proxy.repeats; distillation-seed noise not included)")
    if any(r.seed_sets > 1 for r in top):
        source += (" (a mean over n seed sets: se = noise_std / sqrt(n) below 3 replicates, the replicates' own "
                   "spread / sqrt(n) from 3 on)")
    n = sum(bool(t) for t in ties)
    verdict = ("the best is ahead of every other listed genome beyond noise" if n == 1
               else f"{n} genomes are tied with the best within noise")
    return f"= within noise of the best: {TIE_RULE}; {source}; {verdict}"


def ranked_records(store: Store, row: RunRow) -> list[EvaluationRecord]:
    """The run's successful records, one per genome (its replicates combined: mean over seed sets), best first."""
    done = [r.record for r in store.run_evaluations(row.run_id) if r.record is not None and r.record.ok]
    return sorted(combined_records(done, run_noise_std(row.config)).values(), key=lambda rec: -rec.fitness)


@dataclass(frozen=True)
class Verdict:
    """A run's verdict: its best genome against its best evaluated baseline, with the noise a difference must
    exceed (``difference_needed``, two standard errors of a difference) and the genomes tied with the best.

    ``baseline``/``difference``/``difference_needed``/``beyond_noise`` are ``None`` where no baseline was
    evaluated or a standard error is unknown; ``sentence`` says the same in words (what ``layermap show`` and
    the evolve summary print)."""

    run_id: str
    best: str | None
    best_fitness: float | None
    baseline: str | None
    baseline_kind: str | None
    baseline_fitness: float | None
    difference: float | None
    difference_needed: float | None
    beyond_noise: bool | None
    ties: int | None                  # genomes within noise of the best, the best included
    genomes: int
    noise_std: float | None           # the standard error used for every genome, or None (each record's own)
    noise_std_from: str | None        # where noise_std came from ("search.noise_std", the caller's argument)
    tie_rule: str
    sentence: str
    best_seed_sets: int = 1           # seed sets behind the best's fitness (a mean when > 1)
    baseline_seed_sets: int | None = None
    paired: dict | None = None        # a racing run: the one-sided paired test of the best against the baseline

    def to_dict(self) -> dict:
        return asdict(self)


def verdict_of(records: list[EvaluationRecord], run_id: str, student_layers: int, teacher_layers: int,
               noise_std: float | None = None, noise_std_from: str | None = None, min_seed_sets: int = 1,
               confirm: int = 0, genome: str = "coupled") -> Verdict:
    """The :class:`Verdict` on a run's successful records (any order); ``min_seed_sets`` and ``confirm`` as in
    :func:`best_vs_baselines` (a racing run: its ``search.replicate_cap`` and ``search.confirm_seed_sets``).  The best
    is the run's answer (a racing run's capped pick) whether or not a baseline was evaluated."""
    b = best_vs_baselines(records, student_layers, teacher_layers, noise_std, min_seed_sets, confirm, genome)
    ranked = sorted(records, key=lambda r: -r.fitness)
    best = pick_best(ranked, min_seed_sets, confirm) if ranked else None
    return Verdict(
        run_id=run_id, best=best.genome if best else None, best_fitness=best.fitness if best else None,
        baseline=b["baseline"] if b else None, baseline_kind=b["baseline_kind"] if b else None,
        baseline_fitness=b["baseline_fitness"] if b else None, difference=b["difference"] if b else None,
        difference_needed=b["difference_needed"] if b else None, beyond_noise=b["beyond_noise"] if b else None,
        ties=b["within_noise_of_best"] if b else _ties(ranked, best, noise_std), genomes=len(records),
        noise_std=noise_std, noise_std_from=noise_std_from if noise_std is not None else None, tie_rule=TIE_RULE,
        sentence=baseline_sentence(b), best_seed_sets=best.seed_sets if best else 1,
        baseline_seed_sets=b["baseline_seed_sets"] if b else None, paired=b["paired"] if b else None)


def run_verdict(store: Store, row: RunRow, noise_std: float | None = None,
                noise_std_from: str = "noise_std") -> Verdict:
    """The :class:`Verdict` on the run ``row`` of ``store``: ``noise_std`` if given, else the run's measured
    ``search.noise_std``, else each record's own standard error."""
    noise_std, noise_std_from = resolve_noise(row, noise_std, noise_std_from)
    return verdict_of(ranked_records(store, row), row.run_id, row.student_layers, row.teacher_layers,
                      noise_std, noise_std_from, final_seed_sets(row.config), confirm_seed_sets(row.config),
                      run_genome(row.config))


def resolve_noise(row: RunRow, noise_std: float | None, noise_std_from: str) -> tuple[float | None, str | None]:
    """(the standard error to use for every genome, where it came from): ``noise_std`` if given, else the run's
    ``search.noise_std``, else ``(None, None)`` (each record's own)."""
    if noise_std is not None and not noise_std >= 0:
        raise LayermapError(f"{noise_std_from} must be a standard error >= 0, got {noise_std}")
    if noise_std is None and run_noise_std(row.config):
        return run_noise_std(row.config), "search.noise_std"
    return noise_std, noise_std_from if noise_std is not None else None


def _ties(ranked: list[EvaluationRecord], best: EvaluationRecord | None, noise_std: float | None) -> int | None:
    """Genomes within noise of ``best`` (the run's answer), itself included."""
    ties = within_noise_of_best([best] + [r for r in ranked if r is not best] if best else [], noise_std)
    return None if not ties or any(t is None for t in ties) else sum(ties)
