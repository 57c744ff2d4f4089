"""Noisy search replays: every simulated evaluation is one noisy draw, and a method is judged by the *true*
quality of its final pick.

:mod:`layermap.study.replay` replays searches against a table's mean fitness, as if every evaluation were
exact.  Here each evaluation of a genome under seed set ``r`` answers one draw:

* ``seed sets`` (a table with several seed sets per genome): seed set ``r`` of a replay answers the table's
  value under the replay's ``r``-th seed set (the table's seed sets in an order drawn per replay), the same
  seed set for every genome, as common random numbers give.  A genome has at most as many replicates as the
  table has seed sets, so a racing run's cap is capped there.
* ``gaussian`` (``noise_std`` = S, meant for the noiseless synthetic landscape): the table's mean plus
  ``S * z``, ``z`` standard normal, drawn independently per (replay, genome, seed set).

Every method spends the same budget of evaluations (a replicate costs one, like a new genome) and answers
one genome, its *final pick*:

* ``ga``, ``random``, ``local``, ``aging``: each genome is evaluated once (seed set 0) and the pick is the
  best value seen, which is what these searches report (the GA's hall of fame, the others' incumbent);
  ``local`` and ``aging`` steer by the noisy values too.
* ``racing``: the shipped ``search.strategy = "racing"`` (:mod:`layermap.searching.strategies.racing`) driven by a noisy
  :class:`layermap.study.replay.TableEvaluator`, with ``search.noise_std`` set to the noise's std (the
  table's measured seed std for ``seed sets``) unless ``--set`` gives one.  Its evaluations are cut at the
  budget and the pick is the racing rule on what was evaluated by then: the best mean among genomes with
  the most replicates up to the cap (:func:`layermap.evaluators.replicates.final_pick`); the final race the
  run would add after its last generation is not given extra budget.

The measure is the *regret* of the pick: the table's best mean minus the pick's mean (0 = the optimum);
median, interquartile range and mean over replays, and how often the pick is the optimum.
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import LayermapError
from ..storage.records import EvaluationRecord
from ..evaluators.replicates import racing_pick
from ..mapping import format_genes, parse_genes
from .replay import (METHODS, Genes, Table, TableError, TableEvaluator, aging_evolution, ga_config, gaussian_draw,
                     landscape_stats, local_search, quantile, random_search, SHIFT_KEY)

NOISY_METHODS = METHODS + ("racing",)


@dataclass(frozen=True)
class NoiseModel:
    """How a noisy replay draws one evaluation: ``kind`` is ``"seed sets"`` or ``"gaussian"`` (std ``std``)."""

    kind: str
    std: float
    shift_std: float = 0.0          # gaussian: std of a shift common to every genome of one seed set


def noise_model(table: Table, noise_std: float | None, shift_std: float = 0.0) -> NoiseModel:
    """``gaussian`` with ``noise_std`` (and a common seed-set shift of std ``shift_std``) when given, else the
    table's seed sets (a table with one is refused)."""
    if not (shift_std >= 0 and math.isfinite(shift_std)):
        raise LayermapError(f"--shift-std must be a standard deviation >= 0, got {shift_std}")
    if shift_std and noise_std is None:
        raise LayermapError("--shift-std needs --noise-std: a table's own seed sets already carry their shifts")
    if noise_std is not None:
        if not (noise_std > 0 and math.isfinite(noise_std)):
            raise LayermapError(f"--noise-std must be a standard deviation > 0, got {noise_std}")
        return NoiseModel("gaussian", float(noise_std), float(shift_std))
    if len(table.seed_sets) < 2:
        raise TableError(f"the landscape table has only one seed set ({table.seed_sets[0]}), so a noisy replay has no "
                         "other draw of a genome to take; give a table with several seed sets per genome, or "
                         "--noise-std S for Gaussian noise around its fitness")
    return NoiseModel("seed sets", float(landscape_stats(table)["seed_noise_std"]))


@dataclass
class _Draw:
    """One replay's noise: the table's seed sets in this replay's order, or the Gaussian seed."""

    table: Table
    noise: NoiseModel
    seed: int

    def __post_init__(self) -> None:
        self.values: dict[str, list[float]] = {}
        if self.noise.kind == "seed sets":
            order = list(self.table.seed_sets)
            random.Random(7_919 * self.seed + 1).shuffle(order)
            per = {(r.genome, r.seed_set): r.fitness for r in self.table.rows}
            self.values = {format_genes(g): [per[(format_genes(g), s)] for s in order] for g in self.table.genomes}

    def value(self, genes: Genes, seed_set: int = 0) -> float:
        text = format_genes(genes)
        if self.values:
            return self.values[text][seed_set]
        return (self.table.fitness[genes] + self.noise.std * gaussian_draw(self.seed, text, seed_set)
                + self.noise.shift_std * gaussian_draw(self.seed, SHIFT_KEY, seed_set))

    def evaluator(self) -> TableEvaluator:
        return TableEvaluator({format_genes(g): v for g, v in self.table.fitness.items()}, self.table.teacher_layers,
                              self.table.student_layers, seed_values=self.values,
                              noise_std=0.0 if self.values else self.noise.std, noise_seed=self.seed,
                              shift_std=self.noise.shift_std)


@dataclass(frozen=True)
class NoisyReplayResult:
    table: Table
    noise: NoiseModel
    budget: int
    seeds: int
    picks: dict[str, list[Genes]]                 # method -> final pick per replay
    evaluations: dict[str, list[int]]             # method -> evaluations spent per replay
    distinct: dict[str, list[int]]                # method -> distinct genomes evaluated per replay
    racing_settings: dict

    def to_json(self) -> dict:
        table = self.table
        ranked = table.ranked()
        optimum = table.fitness[ranked[0]]
        means = list(table.fitness.values())
        methods = {}
        for method, picks in self.picks.items():
            regrets = [optimum - table.fitness[g] for g in picks]
            methods[method] = {
                "picks": [format_genes(g) for g in picks], "regret": regrets,
                "regret_median": quantile(regrets, 0.5), "regret_q1": quantile(regrets, 0.25),
                "regret_q3": quantile(regrets, 0.75), "regret_mean": statistics.fmean(regrets),
                "optimum_rate": sum(r == 0 for r in regrets) / len(regrets),
                "evaluations_median": quantile(self.evaluations[method], 0.5),
                "distinct_genomes_median": quantile(self.distinct[method], 0.5),
            }
        if "racing" in methods:
            methods["racing"]["settings"] = self.racing_settings
        ga, race = (methods.get(m, {}).get("regret_median") for m in ("ga", "racing"))
        comparison = None
        if ga is not None and race is not None:
            comparison = {"racing_median_regret": race, "ga_median_regret": ga,
                          "ratio": race / ga if ga > 0 else (0.0 if race == 0 else math.inf),
                          "target": "racing's median final-pick regret <= half the GA's",
                          "target_met": race <= 0.5 * ga}
        return {
            "table": {"genomes": table.size, "seed_sets": list(table.seed_sets), "teacher_layers": table.teacher_layers,
                      "student_layers": table.student_layers, "constraint": table.constraint,
                      "optimum": format_genes(ranked[0]), "optimum_fitness": optimum,
                      "genome_spread": statistics.pstdev(means)},
            "noise": {"kind": self.noise.kind, "std": self.noise.std,
                      **({"shift_std": self.noise.shift_std} if self.noise.shift_std else {})},
            "budget": self.budget, "seeds": self.seeds, "measure": "final-pick regret: optimum mean - pick's mean",
            "methods": methods, "racing_vs_ga": comparison,
        }


def noisy_replay(table: Table, *, seeds: int = 20, budget: int | None = None, methods: Sequence[str] = NOISY_METHODS,
                 overrides: Sequence[str] = (), noise_std: float | None = None, shift_std: float = 0.0) -> NoisyReplayResult:
    """Replay every method ``seeds`` times with noisy evaluations (see the module docstring)."""
    budget = table.size if budget is None else int(budget)
    if budget < 1 or seeds < 1:
        raise LayermapError(f"bench search needs --budget >= 1 and --seeds >= 1, got {budget} and {seeds}")
    unknown = [m for m in methods if m not in NOISY_METHODS]
    if unknown:
        raise LayermapError(f"unknown search method(s) {', '.join(unknown)}; choose from {', '.join(NOISY_METHODS)}")
    noise = noise_model(table, noise_std, shift_std)
    racing = racing_overrides(table, noise, overrides)
    race_settings = ga_config(table, budget, 0, racing).search
    cap = race_settings.replicate_cap - race_settings.confirm_seed_sets
    settings = ga_config(table, budget, 0, overrides).search
    picks = {m: [] for m in methods}
    evaluations = {m: [] for m in methods}
    distinct = {m: [] for m in methods}
    for seed in range(seeds):
        draw = _Draw(table, noise, seed)
        observed = {g: draw.value(g, 0) for g in table.genomes}
        for index, method in enumerate(methods):
            rng = random.Random(1_000_003 * seed + index)
            if method in ("ga", "racing"):
                log = _run(table, budget, seed, overrides if method == "ga" else racing, draw)
                pick = _best_seen(log) if method == "ga" else _racing_pick(log, cap)
                spent = log
            else:
                if method == "random":
                    trajectory = random_search(table, budget, rng)
                elif method == "local":
                    trajectory = local_search(table, budget, rng, observed)
                else:
                    trajectory = aging_evolution(table, budget, rng, settings.population, settings.tournament_size, observed)
                spent = [(format_genes(g), 0, observed[g]) for g in trajectory[:budget]]
                pick = _best_seen(spent)
            picks[method].append(pick)
            evaluations[method].append(len(spent))
            distinct[method].append(len({t for t, _, _ in spent}))
    racing_settings = {k: v for k, v in dataclasses.asdict(ga_config(table, budget, 0, racing).search).items()
                       if k not in ("seed", "generations")}
    return NoisyReplayResult(table, noise, budget, seeds, picks, evaluations, distinct, racing_settings)


def racing_overrides(table: Table, noise: NoiseModel, overrides: Sequence[str]) -> list[str]:
    """The ``--set`` overrides plus racing: ``search.strategy = "racing"``, ``search.noise_std`` = the noise's std
    (unless given), no confirmation seed sets (unless given: the confirmation never changes the pick, and the replay
    scores the pick) and a cap no larger than the table's seed sets (seed-set noise)."""
    given = {text.split("=", 1)[0].strip() for text in overrides}
    out = [*overrides, 'search.strategy="racing"']
    if "search.noise_std" not in given:
        out.append(f"search.noise_std={noise.std!r}")
    if "search.confirm_seed_sets" not in given:
        out.append("search.confirm_seed_sets=0")
    cap = ga_config(table, 1, 0, out).search.replicate_cap
    if noise.kind == "seed sets" and cap > len(table.seed_sets):
        out.append(f"search.replicate_cap={len(table.seed_sets)}")
    return out


def format_noisy_report(result: dict) -> str:
    table, noise = result["table"], result["noise"]
    lines = [f"table: {table['genomes']} genomes ({table['constraint']}), optimum {table['optimum']} "
             f"({table['optimum_fitness']:.2f}), genome spread (std of means) {table['genome_spread']:.2f}; noise: "
             f"{noise['kind']}, std {noise['std']:.2f}; budget {result['budget']} evaluations, {result['seeds']} replays",
             f"{'method':8s} {'median regret':>13s} {'IQR':>15s} {'mean':>6s} {'optimum':>8s} {'evals':>6s} {'genomes':>8s}"]
    for method, e in result["methods"].items():
        lines.append(f"{method:8s} {e['regret_median']:13.2f} {e['regret_q1']:7.2f}-{e['regret_q3']:<7.2f} "
                     f"{e['regret_mean']:6.2f} {100 * e['optimum_rate']:7.0f}% {e['evaluations_median']:6.0f} "
                     f"{e['distinct_genomes_median']:8.0f}")
    c = result.get("racing_vs_ga")
    if c:
        lines.append(f"racing / GA median final-pick regret: {c['racing_median_regret']:.2f} / {c['ga_median_regret']:.2f} "
                     f"= {c['ratio']:.2f} (target <= 0.5: {'met' if c['target_met'] else 'not met'})")
    return "\n".join(lines)


# -- helpers ------------------------------------------------------------------------------------------
def _run(table: Table, budget: int, seed: int, overrides: Sequence[str], draw: _Draw) -> list[tuple[str, int, float]]:
    """The real search (``run_search``) against the noisy table; its evaluations ``(genome, seed set, value)`` in
    order, cut at the budget."""
    from ..searching.run import run_search

    config = ga_config(table, budget, seed, overrides)
    evaluator = draw.evaluator()
    with tempfile.TemporaryDirectory(prefix="layermap-noisy-replay-") as tmp:
        run_search(config, evaluator, Path(tmp) / "run", progress=False)
    return list(evaluator.log[:budget])


def _best_seen(log: Sequence[tuple[str, int, float]]) -> Genes:
    """The genome with the best single value seen (the earliest on ties)."""
    best = max(range(len(log)), key=lambda i: (log[i][2], -i))
    return parse_genes(log[best][0])


def _racing_pick(log: Sequence[tuple[str, int, float]], cap: int) -> Genes:
    """The racing rule on the evaluations made: the best mean on the race's seed sets (``0 .. cap - 1``) among genomes
    with the most of them (:func:`layermap.evaluators.replicates.racing_pick`)."""
    values: dict[str, dict[int, float]] = {}
    for text, r, value in log:
        values.setdefault(text, {})[r] = value
    records = [EvaluationRecord(genome=t, fitness=statistics.fmean(v.values()), seed_set=min(v),
                                seed_set_fitness=dict(v) if len(v) > 1 else {}) for t, v in sorted(values.items())]
    return parse_genes(racing_pick(records, cap).genome)
