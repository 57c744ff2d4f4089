"""layermap.final.resolution: detectable difference, variance components, split-half agreement."""

from __future__ import annotations

import math

import numpy as np
import pytest

from layermap.final.resolution import (Components, bootstrap_difference_sd, detectable_difference, split_half_tau,
                                       unit_difference_sd, variance_components)


def test_detectable_difference_is_the_t_power_formula():
    # n = 3: (t_.975,2 + t_.8,2) = 4.3027 + 1.0607 = 5.3634; / sqrt 3
    assert detectable_difference(1.0, 3) == pytest.approx(5.3634 / math.sqrt(3), rel=1e-3)
    # large n: the normal 1.96 + 0.84 = 2.80
    assert detectable_difference(1.0, 10_000) * 100 == pytest.approx(2.80, rel=1e-2)
    assert detectable_difference(1.0, 1) == math.inf


def test_detectable_difference_has_its_power_by_simulation():
    rng = np.random.default_rng(0)
    from scipy.stats import ttest_1samp

    n, sd = 5, 1.0
    delta = detectable_difference(sd, n)
    hits = sum(ttest_1samp(rng.normal(delta, sd, n), 0.0).pvalue < 0.05 for _ in range(4000))
    assert 0.77 < hits / 4000 < 0.83


def test_variance_components_recover_simulated_sources():
    rng = np.random.default_rng(1)
    scores = {}
    for m in range(6):
        mu = 70 + m
        for d in range(6):
            a = rng.normal(0, 2.0)
            for s in range(4):
                scores[(f"m{m}", d, s)] = mu + a + rng.normal(0, 1.0)
    c = variance_components(scores)
    assert c.finetune_seed == pytest.approx(1.0, abs=0.15)
    assert c.distill_seed == pytest.approx(2.0, abs=0.5)
    assert c.students == 36 and c.finetune_seeds == 4
    one = variance_components({k: v for k, v in scores.items() if k[1] == 0})
    assert one.distill_seed is None


def test_unit_difference_sd_follows_the_unit():
    c = Components(finetune_seed=1.0, distill_seed=2.0, students=4, finetune_seeds=2)
    assert unit_difference_sd(c, finetune_seeds=4, distill_seeds=3) == pytest.approx(math.sqrt(2 * (4 + 0.25)))
    assert unit_difference_sd(c, finetune_seeds=4, distill_seeds=1) == pytest.approx(math.sqrt(2))


def test_bootstrap_difference_sd_matches_the_binomial_formula():
    rng = np.random.default_rng(2)
    n = 2000
    a = (rng.random(n) < 0.8) * 100.0
    b = (rng.random(n) < 0.75) * 100.0
    expected = math.sqrt(np.var(a - b) / n)
    assert bootstrap_difference_sd(a, b, draws=2000) == pytest.approx(expected, rel=0.1)


def test_split_half_tau():
    scores = {f"s{i}": {u: 60 + 3 * i + (0.1 if u % 2 else -0.1) for u in range(4)} for i in range(6)}
    out = split_half_tau(scores, ([0, 2], [1, 3]))
    assert out["tau"] == pytest.approx(1.0)
    scores["s0"] = {0: 90, 1: 10, 2: 90, 3: 10}
    assert split_half_tau(scores, ([0, 2], [1, 3]))["tau"] < 1.0
    with pytest.raises(ValueError, match="disjoint"):
        split_half_tau(scores, ([0, 1], [1, 3]))
