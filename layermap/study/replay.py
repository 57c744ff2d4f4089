"""Search replays against an exhaustive landscape table: does the genetic search earn its cost?

A *landscape table* holds the proxy fitness of every genome of a small search space under one or more
seed sets (``results/benchmarks/landscape.csv``, or the SQLite store of a ``search.strategy =
"enumerate"`` run).  The table's fitness of a genome is its mean over the seed sets.  Searches are then
replayed against it without training, the way NAS benchmarks do, and each replay is reduced to its
*trajectory*: the distinct table genomes in the order the search evaluated them.

* ``ga``      the shipped genetic algorithm itself: :func:`layermap.searching.run.run_search` (its operators,
              selection, novelty rule and elitism) driven by :class:`TableEvaluator`, a table lookup,
              in a temporary folder.  The search settings are the shipped defaults (``--set`` changes
              them), the order constraint is the table's, and the generations are extended until the
              budget is spent.  An offspring outside the table (e.g. a zero gene when the table has
              none) is answered as a failed genome (worst fitness) and costs no evaluation.
* ``random``  random search without replacement (a random permutation of the table).
* ``local``   first-improvement local search: neighbours of a genome are the table genomes that differ
              in exactly one gene, visited in random order; the first better neighbour is taken; a
              genome with no better neighbour restarts the search from a random unevaluated genome.
* ``aging``   regularized (aging) evolution (Real et al. 2019): a population of ``P`` random genomes;
              each step samples ``S`` of them, mutates the best one (one gene changed, a genome not yet
              evaluated preferred, up to 50 draws as in the GA), adds the child and removes the oldest.
              ``P`` = ``search.population``, ``S`` = ``search.tournament_size``.

From the trajectories: evaluations to reach the optimum, the top 1 % and the top 5 % of the table (the
``k = ceil(q N)`` best genomes, ties included), censored at the budget (``None``); median and
interquartile range over seeds; success rates; anytime regret curves (optimum minus best fitness found
after ``t`` evaluations); where each heuristic baseline ranks; and the random-search expectation
``(N + 1) / (k + 1)`` (a uniformly random permutation of ``N`` genomes reaches one of ``k`` targets after
that many evaluations on average) next to the measured mean.
"""

from __future__ import annotations

import math
import random
import sqlite3
import statistics
import tempfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from ..config import Config, ConfigError, digest, parse_override
from ..errors import LayermapError
from ..mapping import baselines, format_genes, parse_genes
from ..stats import pearson, spearman_rho
from ..storage.records import EvaluationRecord
from ..executors.protocol import evaluate_each
from ..searching.novelty import NOVELTY_TRIES, novel
from ..plots.study import draw_regret  # noqa: F401  (drawn in plots/study.py; re-exported from its old home)
from .landscape import (Genes, LandscapeRow, Table, TableError, build_table, load_table,  # noqa: F401  (re-exported)
                        read_csv_rows, read_store_rows, write_csv)

METHODS = ("ga", "random", "local", "aging")
TARGETS = (("optimum", None), ("top1", 0.01), ("top5", 0.05))


# -- the searches: each returns the distinct table genomes in evaluation order (at most `budget`) ---------
def neighbours(table: Table, genes: Genes) -> list[Genes]:
    """Table genomes that differ from ``genes`` in exactly one gene."""
    out = []
    for i in range(len(genes)):
        for v in range(table.teacher_layers + 1):
            if v != genes[i]:
                n = genes[:i] + (v,) + genes[i + 1:]
                if n in table.fitness:
                    out.append(n)
    return out


def random_search(table: Table, budget: int, rng: random.Random) -> list[Genes]:
    order = table.genomes
    rng.shuffle(order)
    return order[:budget]


def local_search(table: Table, budget: int, rng: random.Random, observed: Mapping[Genes, float] | None = None) -> list[Genes]:
    """``observed``: the fitness the search sees (a noisy replay's one draw per genome); default the table's."""
    f, trajectory, seen = observed or table.fitness, [], set()

    def visit(g: Genes) -> None:
        if g not in seen:
            seen.add(g)
            trajectory.append(g)

    def restart() -> Genes | None:
        left = [g for g in table.genomes if g not in seen]
        return rng.choice(left) if left else None

    current = restart()
    while current is not None and len(trajectory) < budget:
        visit(current)
        candidates = neighbours(table, current)
        rng.shuffle(candidates)
        moved = None
        for n in candidates:
            if len(trajectory) >= budget:
                break
            visit(n)
            if f[n] > f[current]:
                moved = n
                break
        current = moved if moved is not None else restart()
    return trajectory[:budget]


def aging_evolution(table: Table, budget: int, rng: random.Random, population: int = 8, sample: int = 3,
                    observed: Mapping[Genes, float] | None = None) -> list[Genes]:
    f, trajectory, seen = observed or table.fitness, [], set()

    def visit(g: Genes) -> None:
        if g not in seen:
            seen.add(g)
            trajectory.append(g)

    genomes = table.genomes
    rng.shuffle(genomes)
    pop: deque[Genes] = deque(genomes[:min(population, len(genomes))])
    for g in pop:
        visit(g)
    steps = 0
    while len(trajectory) < min(budget, table.size) and steps < 200 * max(budget, 1):
        steps += 1
        parent = max(rng.sample(list(pop), min(sample, len(pop))), key=lambda g: (f[g], g))
        options = neighbours(table, parent)
        if not options:
            child = parent
        else:
            child, _ = novel(lambda: rng.choice(options), lambda g: g, seen, NOVELTY_TRIES)
        visit(child)
        pop.append(child)
        pop.popleft()
    return trajectory[:budget]


@dataclass
class TableEvaluator:
    """An evaluator that looks the fitness up in a table (picklable; no training).  A genome outside the
    table is a failed evaluation (the GA scores it worst) and is not recorded in ``calls``.

    Noisy replays (:mod:`layermap.study.noisy_replay`): with ``seed_values`` (genome -> one fitness per seed set,
    in the replay's order) seed set ``r`` answers ``seed_values[genome][r]``; with ``noise_std`` > 0 it answers
    ``fitness + noise_std * z``, ``z`` a standard normal drawn from ``(noise_seed, genome, r)``, plus
    ``shift_std * z_r`` with ``z_r`` drawn from ``(noise_seed, r)`` alone (a shift every genome of seed set r shares).  Every answer is
    appended to ``log`` as ``(genome, seed set, value)``; :meth:`with_seed_set` shares ``calls`` and ``log``."""

    fitness: dict[str, float]
    teacher_layers: int
    student_layers: int
    calls: list[str] = field(default_factory=list)
    seed_values: dict[str, list[float]] = field(default_factory=dict)
    noise_std: float = 0.0
    noise_seed: int = 0
    seed_set: int = 0
    shift_std: float = 0.0          # a common shift per seed set: every genome's value moves by shift_std * z(r)
    log: list[tuple[str, int, float]] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        parts: dict = {"kind": "table", "fitness": sorted(self.fitness.items())}
        if self.seed_values or self.noise_std:
            parts.update(seed_values=sorted(self.seed_values.items()), noise_std=self.noise_std,
                         noise_seed=self.noise_seed, seed_set=self.seed_set)
        if self.shift_std:
            parts["shift_std"] = self.shift_std
        return digest(parts)

    def with_seed_set(self, seed_set: int) -> "TableEvaluator":
        import dataclasses

        return dataclasses.replace(self, seed_set=seed_set, calls=self.calls, log=self.log)

    @property
    def device_class(self) -> None:
        """None: a table computes on no device."""
        return None

    def prepare(self) -> None:
        """Nothing to load."""

    def set_device(self, device: str) -> None:
        """A table answers the same on any device."""

    def evaluate_many(self, genomes: Sequence) -> list[EvaluationRecord | Exception]:
        return evaluate_each(self, genomes)

    def describe(self) -> dict:
        return {"kind": "table", "teacher": "table", "teacher_layers": self.teacher_layers,
                "student": {"layers": self.student_layers}}

    def evaluate(self, genes: Sequence[int]) -> EvaluationRecord:
        text = format_genes(genes)
        if text not in self.fitness:
            return EvaluationRecord.failure(text, "outside the landscape table")
        if self.seed_values and self.seed_set >= len(self.seed_values[text]):
            return EvaluationRecord.failure(text, f"the table has only {len(self.seed_values[text])} seed sets")
        self.calls.append(text)
        if self.seed_values:
            value = self.seed_values[text][self.seed_set]
        elif self.noise_std:
            value = self.fitness[text] + self.noise_std * gaussian_draw(self.noise_seed, text, self.seed_set)
            value += self.shift_std * gaussian_draw(self.noise_seed, SHIFT_KEY, self.seed_set)
        else:
            value = self.fitness[text]
        self.log.append((text, self.seed_set, value))
        return EvaluationRecord(genome=text, fitness=value)


SHIFT_KEY = "common seed-set shift"    # the key of a seed set's shared draw (no genome has this text)


def gaussian_draw(seed: int, genome: str, seed_set: int) -> float:
    """A standard normal number from ``(seed, genome, seed set)``, equal in every process."""
    import hashlib

    h = hashlib.sha256(f"{seed}:{genome}:{seed_set}".encode()).digest()
    u = (int.from_bytes(h[:8], "big") + 0.5) / 2**64
    return statistics.NormalDist().inv_cdf(u)


def ga_config(table: Table, budget: int, seed: int, overrides: Sequence[str] = ()) -> Config:
    """The shipped search defaults (plus ``--set search.*`` overrides) for a replay on ``table``: the table's
    constraint, ``search.seed = seed``, enough generations to spend the budget, no shared cache."""
    from ..mapping import space_size

    config = Config()
    search = {"constraint": table.constraint, "seed": seed}
    for text in overrides:
        section, key, value = parse_override(text)
        if section != "search":
            raise ConfigError(f"bench search --set takes search.* settings only, got {section}.{key}")
        search[key] = value
    config = _with_search(config, search)
    s = config.search
    lambda_ = s.offspring or s.population
    space = space_size(table.student_layers, table.teacher_layers, s.constraint)
    generations = max(s.generations, math.ceil((min(budget, table.size) + space) / lambda_) + 5)
    config = _with_search(config, {**search, "generations": generations})
    return config.replace(run=_replace(config.run, shared_fitness=False, executor="local", workers=1))


def _with_search(config: Config, values: Mapping) -> Config:
    from ..config import config_from_dict

    data = config.to_dict()
    data["search"] = {**data["search"], **values}
    return config_from_dict(data)


def _replace(section, **values):
    import dataclasses

    return dataclasses.replace(section, **values)


def ga_search(table: Table, budget: int, seed: int, overrides: Sequence[str] = ()) -> tuple[list[Genes], int]:
    """The real GA (``run_search``) against the table; the trajectory and how many offspring fell outside it."""
    from ..searching.run import run_search

    config = ga_config(table, budget, seed, overrides)
    evaluator = TableEvaluator({format_genes(g): v for g, v in table.fitness.items()}, table.teacher_layers,
                               table.student_layers)
    with tempfile.TemporaryDirectory(prefix="layermap-replay-") as tmp:
        run_search(config, evaluator, Path(tmp) / "run", progress=False)
        with sqlite3.connect(Path(tmp) / "run" / "layermap.sqlite") as db:
            outside = db.execute("SELECT COUNT(DISTINCT genome) FROM evaluations WHERE status = 'failed'").fetchone()[0]
    trajectory = [parse_genes(t) for t in dict.fromkeys(evaluator.calls)]
    return trajectory[:budget], int(outside)


# -- measures -------------------------------------------------------------------------------------------
def evals_to(trajectory: Sequence[Genes], target: set[Genes]) -> int | None:
    """1-based position of the first genome of ``target`` in ``trajectory``; ``None`` if it never appears."""
    return next((i + 1 for i, g in enumerate(trajectory) if g in target), None)


def regret_curve(trajectory: Sequence[Genes], fitness: Mapping[Genes, float], budget: int) -> list[float]:
    """Optimum minus the best fitness found after t = 1..budget evaluations (flat after the trajectory ends;
    ``nan`` before the first evaluation)."""
    best_possible = max(fitness.values())
    out, best = [], -math.inf
    for t in range(budget):
        if t < len(trajectory):
            best = max(best, fitness[trajectory[t]])
        out.append(best_possible - best if math.isfinite(best) else math.nan)
    return out


def censored_quantile(values: Sequence[int | None], q: float) -> float | None:
    """Quantile (linear interpolation) with ``None`` = censored (beyond the budget, sorts last); ``None``
    when the quantile falls on or next to a censored value."""
    if not values:
        return None
    xs = sorted(math.inf if v is None else float(v) for v in values)
    pos = q * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    if math.isinf(xs[lo]) or math.isinf(xs[hi]):
        return None
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarise(values: Sequence[int | None]) -> dict:
    """Median, quartiles, success rate and the mean of the successes of per-seed counts."""
    ok = [v for v in values if v is not None]
    return {"median": censored_quantile(values, 0.5), "q1": censored_quantile(values, 0.25),
            "q3": censored_quantile(values, 0.75), "success_rate": len(ok) / len(values) if values else None,
            "mean_of_successes": statistics.fmean(ok) if ok else None}


def baseline_ranks(table: Table) -> dict[str, dict]:
    """Each heuristic baseline's rank (1 = best) among the table's genomes, or ``rank: None`` outside it."""
    ranked = table.ranked()
    out = {}
    if table.student_layers > table.teacher_layers:
        return out
    for name, genes in baselines(table.student_layers, table.teacher_layers).items():
        if genes in table.fitness:
            rank = 1 + sum(table.fitness[g] > table.fitness[genes] for g in ranked)
            out[name] = {"genome": format_genes(genes), "rank": rank, "of": len(ranked), "fitness": table.fitness[genes],
                         "percentile": 100.0 * (len(ranked) - rank) / max(1, len(ranked) - 1)}
        else:
            out[name] = {"genome": format_genes(genes), "rank": None, "of": len(ranked), "fitness": None, "percentile": None}
    return out


def landscape_stats(table: Table) -> dict:
    """Spread of the landscape against its seed noise: the range and std of the genome means, the pooled
    within-genome std across seed sets, and the Spearman correlation of the first two seed sets."""
    means = list(table.fitness.values())
    out = {"genomes": table.size, "seed_sets": list(table.seed_sets), "fitness_min": min(means), "fitness_max": max(means),
           "fitness_std_of_means": statistics.pstdev(means), "tasks": {}}
    per = {(r.genome, r.seed_set): r for r in table.rows}
    keys = [format_genes(g) for g in table.genomes]
    for task in table.tasks:
        scores = [statistics.fmean(per[(k, s)].tasks[task] for s in table.seed_sets if task in per[(k, s)].tasks)
                  for k in keys if all(task in per[(k, s)].tasks for s in table.seed_sets)]
        if scores:
            out["tasks"][task] = {"min": min(scores), "mean": statistics.fmean(scores), "max": max(scores)}
    pairs = [(table.fitness[g], table.fitness[n]) for g in table.genomes for n in neighbours(table, g) if g < n]
    if len(pairs) > 2:           # fitness-distance structure: how alike one-gene neighbours are (0 = no structure)
        out["neighbour_correlation"] = pearson([p[0] for p in pairs] + [p[1] for p in pairs],
                                                [p[1] for p in pairs] + [p[0] for p in pairs])
    if len(table.seed_sets) >= 2:
        a, b = table.seed_sets[:2]
        xs = [per[(k, a)].fitness for k in keys]
        ys = [per[(k, b)].fitness for k in keys]
        diffs = [x - y for x, y in zip(xs, ys)]
        out["seed_noise_std"] = math.sqrt(statistics.fmean(d * d for d in diffs) / 2)   # one fitness's std
        out["seed_set_spearman"] = spearman_rho(xs, ys) if len(keys) >= 2 else math.nan
        best_a = max(keys, key=lambda k: per[(k, a)].fitness)
        best_b = max(keys, key=lambda k: per[(k, b)].fitness)
        out["best_per_seed_set"] = {a: best_a, b: best_b}
    return out


# -- the replay -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplayResult:
    table: Table
    budget: int
    seeds: int
    trajectories: dict[str, list[list[Genes]]]       # method -> per seed
    ga_outside: list[int]                            # GA offspring outside the table, per seed
    ga_settings: dict

    def to_json(self) -> dict:
        table = self.table
        targets = {name: table.target(q) for name, q in TARGETS}
        methods = {}
        for method, trajs in self.trajectories.items():
            entry: dict = {}
            for name, target in targets.items():
                entry[f"evals_to_{name}"] = [evals_to(t, target) for t in trajs]
            entry["summary"] = {name: summarise(entry[f"evals_to_{name}"]) for name in targets}
            curves = [regret_curve(t, table.fitness, self.budget) for t in trajs]
            entry["regret"] = {"median": [quantile(col, 0.5) for col in zip(*curves)],
                               "q1": [quantile(col, 0.25) for col in zip(*curves)],
                               "q3": [quantile(col, 0.75) for col in zip(*curves)]}
            methods[method] = entry
        if "ga" in methods:
            methods["ga"]["settings"] = self.ga_settings
            methods["ga"]["offspring_outside_table"] = self.ga_outside
        n = table.size
        expectation = {}
        for name, target in targets.items():
            k = len(target)
            measured = methods.get("random", {}).get(f"evals_to_{name}", [])
            ok = [v for v in measured if v is not None]
            expectation[name] = {"k": k, "analytic": (n + 1) / (k + 1),
                                 "measured_mean": statistics.fmean(ok) if ok and len(ok) == len(measured) else None,
                                 "measured_se": (statistics.stdev(ok) / math.sqrt(len(ok))
                                                 if len(ok) > 1 and len(ok) == len(measured) else None),
                                 "measured_median": censored_quantile(measured, 0.5) if measured else None}
        ranked = table.ranked()
        speedup = {}
        for name in targets:
            ga, rnd = (methods.get(m, {}).get("summary", {}).get(name, {}).get("median") for m in ("ga", "random"))
            speedup[name] = (rnd / ga) if ga and rnd else None
            if ga and rnd is None:            # random's median censored at the budget: a lower bound
                speedup[f"{name}_at_least"] = (self.budget + 1) / ga
        return {
            "table": {"genomes": n, "seed_sets": list(table.seed_sets), "tasks": list(table.tasks),
                      "teacher_layers": table.teacher_layers, "student_layers": table.student_layers,
                      "constraint": table.constraint, "dropped_partial_genomes": list(table.dropped),
                      "optimum": format_genes(ranked[0]), "optimum_fitness": table.fitness[ranked[0]],
                      "targets": {name: sorted(format_genes(g) for g in t) for name, t in targets.items()}},
            "budget": self.budget, "seeds": self.seeds,
            "methods": methods,
            "random_expectation": expectation,
            "ga_speedup_over_random": speedup,
            "baselines": baseline_ranks(table),
            "landscape": landscape_stats(table),
        }


def quantile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (linear interpolation) of the non-NaN ``values``; ``None`` when there are none."""
    xs = sorted(v for v in values if not math.isnan(v))
    if not xs:
        return None
    pos = q * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def replay(table: Table, *, seeds: int = 20, budget: int | None = None, methods: Sequence[str] = METHODS,
           ga_overrides: Sequence[str] = ()) -> ReplayResult:
    """Replay every method ``seeds`` times against ``table`` (``budget`` defaults to the table size)."""
    budget = table.size if budget is None else int(budget)
    if budget < 1 or seeds < 1:
        raise LayermapError(f"bench search needs --budget >= 1 and --seeds >= 1, got {budget} and {seeds}")
    if "racing" in methods:
        raise LayermapError("the racing method needs noisy evaluations (with exact ones it has nothing to replicate); "
                            "add --noisy for a table with several seed sets, or --noise-std S")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise LayermapError(f"unknown search method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    settings = ga_config(table, budget, 0, ga_overrides).search
    trajectories: dict[str, list[list[Genes]]] = {m: [] for m in methods}
    outside = []
    for seed in range(seeds):
        for index, method in enumerate(methods):
            rng = random.Random(1_000_003 * seed + index)
            if method == "ga":
                trajectory, out = ga_search(table, budget, seed, ga_overrides)
                outside.append(out)
            elif method == "random":
                trajectory = random_search(table, budget, rng)
            elif method == "local":
                trajectory = local_search(table, budget, rng)
            else:
                trajectory = aging_evolution(table, budget, rng, settings.population, settings.tournament_size)
            trajectories[method].append(trajectory)
    import dataclasses

    ga_settings = {k: v for k, v in dataclasses.asdict(settings).items() if k not in ("seed", "generations")}
    lambda_ = settings.offspring or settings.population
    ga_settings["shipped_evaluations"] = Config().search.population + Config().search.generations * lambda_
    return ReplayResult(table, budget, seeds, trajectories, outside, ga_settings)


def format_report(result: dict) -> str:
    """A plain-text summary of :meth:`ReplayResult.to_json`."""
    table = result["table"]
    lines = [f"table: {table['genomes']} genomes ({table['constraint']}), seed sets {', '.join(table['seed_sets'])}; "
             f"optimum {table['optimum']} ({table['optimum_fitness']:.2f}); budget {result['budget']}, {result['seeds']} seeds"]
    if table["dropped_partial_genomes"]:
        lines.append(f"left out (missing a seed set): {len(table['dropped_partial_genomes'])} genome(s)")
    lines.append(f"{'method':8s} " + "  ".join(f"{name:>26s}" for name, _ in TARGETS))
    for method, entry in result["methods"].items():
        cells = []
        for name, _ in TARGETS:
            s = entry["summary"][name]
            med = "-" if s["median"] is None else f"{s['median']:.1f}"
            iqr = "-" if s["q1"] is None else f"{s['q1']:.0f}"
            iqr += "-" + ("-" if s["q3"] is None else f"{s['q3']:.0f}")
            cells.append(f"{med:>6s} [{iqr:>9s}] {100 * s['success_rate']:5.0f}%")
        lines.append(f"{method:8s} " + "  ".join(f"{c:>26s}" for c in cells))
    lines.append("random search, analytic (N+1)/(k+1) vs measured mean: " + "; ".join(
        f"{name} k={e['k']}: {e['analytic']:.2f} vs " + ("-" if e["measured_mean"] is None else
                                                        f"{e['measured_mean']:.2f} ± {e['measured_se'] or 0:.2f}")
        for name, e in result["random_expectation"].items()))
    lines.append("GA speed-up over random (median evaluations): " + ", ".join(
        f"{name} {'-' if v is None else f'{v:.2f}x'}".replace("_at_least ", " >= ")
        for name, v in result["ga_speedup_over_random"].items()))
    for name, b in result["baselines"].items():
        where = "outside the table" if b["rank"] is None else f"rank {b['rank']}/{b['of']} ({b['fitness']:.2f})"
        lines.append(f"baseline {name:8s} {b['genome']:>8s}: {where}")
    land = result["landscape"]
    extra = ""
    if "seed_noise_std" in land:
        extra = (f"; seed noise std {land['seed_noise_std']:.2f}, seed-set Spearman {land['seed_set_spearman']:.2f}, "
                 f"best per seed set {land['best_per_seed_set']}")
    if "neighbour_correlation" in land:
        extra += f"; one-gene neighbour correlation {land['neighbour_correlation']:.2f}"
    lines.append(f"landscape: fitness {land['fitness_min']:.2f}..{land['fitness_max']:.2f}, std of means "
                 f"{land['fitness_std_of_means']:.2f}{extra}")
    return "\n".join(lines)
