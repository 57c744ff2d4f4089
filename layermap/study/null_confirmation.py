"""Null simulations of racing (no genome better than another): the false-positive rate of its verdict's paired test,
and the bias of its seed-set shift estimate.

Each simulated run has ``genomes`` genomes of equal true fitness (the first ``baselines`` of them baselines) and
``cap`` seed sets; the fitness of genome g under seed set r is ``shift_r + e_gr`` with a common shift ``shift_r ~
N(0, shift_std^2)`` (every genome of seed set r moves alike, as ``proxy.seed + r`` does) and ``e_gr ~ N(0,
noise^2)``.  The run then does what racing does with its seed sets (:mod:`layermap.searching.strategies.racing`): seed set 0
ranks every genome; every baseline (racing's anchors) and the ``racers`` best are replicated on the race's seed sets
``0 .. cap - confirm - 1``; the pick is the best racer by its mean there, the reference the best baseline there.  The
verdict's one-sided paired test (:func:`layermap.stats.paired_one_sided`, with the run's pooled residual std of the
additive model, its shifts measured on the anchors, and ``noise_std`` as the floor of its standard error) is applied

* with ``confirm`` >= 1 on the ``confirm`` fresh seed sets only (what the racing verdict does), or
* with ``confirm = 0`` on the seed sets that chose the two (what it did before: the winner's curse).

A run whose pick is the reference makes no test and counts as no rejection, as in the verdict.

:func:`shift_bias` measures the shift estimate itself (:func:`layermap.stats.seed_set_shifts`): seed set 0 ranks
every genome, the ``racers`` best are replicated on seed set 1 and, anchored, so is every baseline whatever its score;
the estimate over the anchors against the one over every replicated genome (what racing did before: the elites chosen
on seed set 0, whose values then fall back), and the bias of the race leader's shift-adjusted mean.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ..stats import paired_one_sided, pooled_residual_std, seed_set_shifts, shift_adjusted_mean

ALPHA = 0.05


@dataclass(frozen=True)
class NullRate:
    runs: int
    rejections: int
    tested: int                 # runs whose pick was not the reference (a test was made)

    @property
    def rate(self) -> float:
        return self.rejections / self.runs

    def upper_bound(self, z: float = 3.0) -> float:
        """``ALPHA`` plus ``z`` binomial standard errors at ``ALPHA`` over these runs."""
        return ALPHA + z * math.sqrt(ALPHA * (1 - ALPHA) / self.runs)


def null_rejection_rate(*, runs: int = 2000, genomes: int = 50, racers: int = 5, baselines: int = 4, cap: int = 4,
                        confirm: int = 1, noise: float = 0.45, shift_std: float = 0.9, noise_std: float | None = None,
                        seed: int = 0) -> NullRate:
    """Simulate ``runs`` racing runs without any true difference (see the module docstring) and count the paired
    tests with ``p < 0.05``.  ``noise_std`` is the run's ``search.noise_std`` (None: not measured)."""
    if not 0 <= confirm < cap or racers < 1 or not 1 <= baselines <= genomes:
        raise ValueError(f"need 0 <= confirm < cap, racers >= 1 and 1 <= baselines <= genomes, got confirm {confirm}, "
                         f"cap {cap}, racers {racers}, baselines {baselines}, genomes {genomes}")
    rng = random.Random(seed)
    race = cap - confirm
    rejections = tested = 0
    for _ in range(runs):
        shifts = [rng.gauss(0.0, shift_std) for _ in range(cap)]
        y = [[shifts[r] + rng.gauss(0.0, noise) for r in range(cap)] for _ in range(genomes)]
        first = sorted(range(genomes), key=lambda g: -y[g][0])
        contenders = list(dict.fromkeys([*first[:racers], *range(baselines)]))
        values = {g: {0: y[g][0]} for g in range(genomes)}
        for g in contenders:
            values[g] = {r: y[g][r] for r in range(race)}
        mean = {g: sum(v.values()) / len(v) for g, v in values.items()}
        pick = max(contenders, key=lambda g: mean[g])
        ref = max((g for g in contenders if g < baselines), key=lambda g: mean[g])
        if pick == ref:
            continue
        tested += 1
        pooled = pooled_residual_std(values, seed_set_shifts(values, range(baselines)))
        a = {r: y[pick][r] for r in range(cap)}
        b = {r: y[ref][r] for r in range(cap)}
        keys = range(race, cap) if confirm else range(race)
        p = paired_one_sided(a, b, noise_std, pooled, keys=keys)["p"]
        rejections += p is not None and p < ALPHA
    return NullRate(runs, rejections, tested)


@dataclass(frozen=True)
class ShiftBias:
    runs: int
    true_shift: float           # of seed set 1, in units of the noise
    mean_shift: float           # the mean estimate over the runs
    leader_bias: float          # mean of (the race leader's shift-adjusted mean - its true fitness)


def shift_bias(*, runs: int = 2000, genomes: int = 50, racers: int = 5, baselines: int = 4, true_shift: float = 0.0,
               noise: float = 1.0, anchored: bool = True, seed: int = 0) -> ShiftBias:
    """Simulate ``runs`` first races of ``genomes`` equal genomes (true fitness 0, seed set 1 shifted by
    ``true_shift``, noise ``noise``): the ``racers`` best on seed set 0 are replicated on seed set 1 and, ``anchored``,
    every baseline too; the shift is measured on the baselines (``anchored``) or on every genome evaluated under both
    seed sets (racing before the anchors).  Returns the mean estimated shift and the leader's bias, in the units of the
    noise (module docstring)."""
    if racers < 1 or not 1 <= baselines <= genomes:
        raise ValueError(f"need racers >= 1 and 1 <= baselines <= genomes, got racers {racers}, baselines {baselines}, "
                         f"genomes {genomes}")
    rng = random.Random(seed)
    shifts, leaders = [], []
    for _ in range(runs):
        values = {g: {0: rng.gauss(0.0, noise)} for g in range(genomes)}
        top = sorted(values, key=lambda g: -values[g][0])[:racers]
        for g in dict.fromkeys([*top, *(range(baselines) if anchored else ())]):
            values[g][1] = true_shift + rng.gauss(0.0, noise)
        estimate = seed_set_shifts(values, range(baselines) if anchored else values)
        shifts.append(estimate.get(1, 0.0))
        leaders.append(max(shift_adjusted_mean(v, estimate) for v in values.values()))
    return ShiftBias(runs, true_shift / noise, sum(shifts) / runs / noise, sum(leaders) / runs / noise)
