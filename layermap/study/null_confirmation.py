"""How often a racing run's verdict says "beyond seed noise" when no genome is better than another: the false-positive
rate of its paired test, measured by simulation.

Each simulated run has ``genomes`` genomes of equal true fitness (the first ``baselines`` of them baselines) and
``cap`` seed sets; the fitness of genome g under seed set r is ``shift_r + e_gr`` with a common shift ``shift_r ~
N(0, shift_std^2)`` (every genome of seed set r moves alike, as ``proxy.seed + r`` does) and ``e_gr ~ N(0,
noise^2)``.  The run then does what racing does with its seed sets (:mod:`layermap.evolution.racing`): seed set 0
ranks every genome; the ``racers`` best and the best baseline are replicated on the race's seed sets ``0 .. cap -
confirm - 1``; the pick is the best racer by its mean there, the reference the best baseline there.  The verdict's
one-sided paired test (:func:`layermap.stats.paired_one_sided`, with the run's pooled residual std of the additive
model and ``noise_std`` as the floor of its standard error) is applied

* with ``confirm`` >= 1 on the ``confirm`` fresh seed sets only (what the racing verdict does), or
* with ``confirm = 0`` on the seed sets that chose the two (what it did before: the winner's curse).

A run whose pick is the reference makes no test and counts as no rejection, as in the verdict.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ..stats import paired_one_sided, pooled_residual_std, seed_set_shifts

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
        base0 = max(range(baselines), key=lambda g: y[g][0])
        contenders = list(dict.fromkeys([*first[:racers], base0]))
        values = {g: {0: y[g][0]} for g in range(genomes)}
        for g in contenders:
            values[g] = {r: y[g][r] for r in range(race)}
        mean = {g: sum(v.values()) / len(v) for g, v in values.items()}
        pick = max(contenders, key=lambda g: mean[g])
        ref = max((g for g in contenders if g < baselines), key=lambda g: mean[g])
        if pick == ref:
            continue
        tested += 1
        pooled = pooled_residual_std(values, seed_set_shifts(values))
        a = {r: y[pick][r] for r in range(cap)}
        b = {r: y[ref][r] for r in range(cap)}
        keys = range(race, cap) if confirm else range(race)
        p = paired_one_sided(a, b, noise_std, pooled, keys=keys)["p"]
        rejections += p is not None and p < ALPHA
    return NullRate(runs, rejections, tested)
