"""Many-comparison statistics on numbers worked out by hand: Holm–Bonferroni and the paired t-test's p."""

from __future__ import annotations

import math
import random

import pytest

from layermap.stats import holm, paired_t_pvalue


def test_holm_on_the_textbook_example():
    # Holm (1979) as usually taught: four tests at alpha = 0.05, p = 0.01, 0.04, 0.03, 0.005.
    # Sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> raised to 0.06 (step-down).
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [p < 0.05 for p in adjusted] == [True, False, False, True]      # H1 and H4 rejected, as in the textbook
    # uncorrected, all four would pass; Bonferroni (4p) would reject the same two here
    assert all(p < 0.05 for p in [0.01, 0.04, 0.03, 0.005])


def test_holm_of_one_test_is_the_raw_p_and_equal_ps_share_one_value():
    assert holm([0.2]) == [0.2]
    assert holm([0.01, 0.01, 0.01]) == pytest.approx([0.03, 0.03, 0.03])
    assert holm([]) == []


def test_holm_is_monotone_capped_at_one_and_between_raw_and_bonferroni():
    rng = random.Random(17)
    for _ in range(200):
        m = rng.randint(1, 25)
        raw = [rng.random() ** 3 for _ in range(m)]
        adjusted = holm(raw)
        assert all(a <= 1.0 for a in adjusted)
        assert all(p <= a + 1e-15 for p, a in zip(raw, adjusted))                  # never below the raw p
        assert all(a <= min(1.0, m * p) + 1e-15 for p, a in zip(raw, adjusted))   # never above Bonferroni
        order = sorted(range(m), key=lambda i: raw[i])
        ranked = [adjusted[i] for i in order]
        assert ranked == sorted(ranked)                                            # same order as the raw p
    assert holm([0.6, 0.9, 0.5]) == [1.0, 1.0, 1.0]                               # 3 x 0.5 = 1.5 -> capped


def test_holm_skips_missing_tests_and_rejects_impossible_p():
    # a None (no test: one seed) keeps its place and does not enlarge the family
    assert holm([0.01, None, 0.04]) == pytest.approx([0.02, None, 0.04])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.5, 1.2])
    with pytest.raises(ValueError):
        holm([math.nan])


def test_paired_t_pvalue_on_known_numbers():
    # differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641 on 2 df; two-sided p = 0.07418
    assert paired_t_pvalue([1.0, 2.0, 3.0]) == pytest.approx(0.074180, abs=1e-5)
    # t = 1 on 1 df: the Cauchy distribution, two-sided p = 1 - 2 atan(1) / pi = 0.5 exactly
    assert paired_t_pvalue([0.0, 2.0]) == pytest.approx(0.5, abs=1e-12)
    assert paired_t_pvalue([-1.0, -2.0, -3.0]) == pytest.approx(paired_t_pvalue([1.0, 2.0, 3.0]))
    assert paired_t_pvalue([4.0]) is None
    assert paired_t_pvalue([0.0, 0.0, 0.0]) == 1.0 and paired_t_pvalue([1.5, 1.5]) == 0.0   # no spread
