"""Test–retest statistics of a fitness: rank agreement between seed sets, seed noise, signal-to-noise.

The input is a table ``scores[g][s]``: the score of genome ``g`` under seed set ``s`` (a seed set
changes every seed of an evaluation: ``distill.seed`` and ``proxy.seed``).  Across genomes:

* **Kendall τ** (τ-b, ties handled) and **Spearman ρ** (Pearson of average ranks) between two seed
  sets — the test–retest reliability of the ranking a search relies on (mean over pairs of seed
  sets when there are more than two);
* **seed std** — the pooled within-genome standard deviation, ``sqrt(mean_g var_s(scores[g]))``
  (sample variance over seed sets): how far one evaluation moves when only the seeds change;
* **spread** — the standard deviation across genomes of their seed-set means;
* **interaction std** — the seed noise left after removing each seed set's common shift (the
  residual std of a two-way genomes × seed sets table).  A shift shared by every genome (all
  fine-tuning runs of one seed set worse) moves every fitness of a search alike and cannot reorder
  it, so this is the noise that matters when genomes of one search are compared;
  ``seed_set_means`` shows the shifts;
* **SNR** — spread / seed std.  The spread of means still holds ``seed_std² / S`` of noise, so
  ``signal_std = sqrt(max(0, spread² − seed_std² / S))`` estimates the spread of the true
  (noise-free) fitnesses as well.

Many comparisons at once (the final stage's table):

* **paired t-test** — the two-sided Student-t p-value of the mean of paired differences (by seed);
* **Holm–Bonferroni** — step-down adjusted p-values for a family of tests: sort the m raw p-values,
  p(1) ≤ … ≤ p(m); adjusted p(i) = max over j ≤ i of min(1, (m − j + 1) · p(j)).  Rejecting where the
  adjusted p is below α controls the family-wise error rate at α under any dependence between tests,
  and rejects at least what Bonferroni (m · p) rejects.

Pure Python on lists of floats, so it is tested on numbers worked out by hand.
"""

from __future__ import annotations

import itertools
import math
from typing import Collection, Sequence

HOLM = "holm"
CORRECTION_TEXT = {HOLM: "Holm–Bonferroni"}


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation; NaN when either side is constant."""
    _check_pair(x, y)
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float("nan")


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman ρ: Pearson correlation of the average ranks."""
    return pearson(average_ranks(x), average_ranks(y))


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall τ-b: (concordant − discordant) / sqrt((n0 − ties_x)(n0 − ties_y)); NaN if a side is constant."""
    _check_pair(x, y)
    concordant = discordant = ties_x = ties_y = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = x[i] - x[j], y[i] - y[j]
        if dx == 0 and dy == 0:
            ties_x += 1
            ties_y += 1
        elif dx == 0:
            ties_x += 1
        elif dy == 0:
            ties_y += 1
        elif (dx > 0) == (dy > 0):
            concordant += 1
        else:
            discordant += 1
    n0 = len(x) * (len(x) - 1) // 2
    denominator = math.sqrt((n0 - ties_x) * (n0 - ties_y))
    return (concordant - discordant) / denominator if denominator > 0 else float("nan")


def reliability(scores: Sequence[Sequence[float]]) -> dict:
    """Test–retest statistics of ``scores[g][s]`` (genomes × seed sets, at least 3 × 2, no gaps)."""
    k = len(scores)
    s = len(scores[0]) if k else 0
    if k < 3 or s < 2 or any(len(row) != s for row in scores):
        raise ValueError(f"reliability needs a full table of at least 3 genomes x 2 seed sets, got {k} x {s}")
    columns = [[row[j] for row in scores] for j in range(s)]
    pairs = list(itertools.combinations(range(s), 2))
    taus = [kendall_tau(columns[a], columns[b]) for a, b in pairs]
    rhos = [spearman_rho(columns[a], columns[b]) for a, b in pairs]
    means = [sum(row) / s for row in scores]
    within = [sum((v - m) ** 2 for v in row) / (s - 1) for row, m in zip(scores, means)]
    seed_std = math.sqrt(sum(within) / k)
    grand = sum(means) / k
    spread = math.sqrt(sum((m - grand) ** 2 for m in means) / (k - 1))
    signal = math.sqrt(max(0.0, spread ** 2 - seed_std ** 2 / s))
    set_means = [sum(col) / k for col in columns]
    residual = sum((scores[i][j] - means[i] - set_means[j] + grand) ** 2 for i in range(k) for j in range(s))
    interaction = math.sqrt(residual / ((k - 1) * (s - 1)))
    return {
        "genomes": k, "seed_sets": s,
        "kendall_tau": _mean(taus), "spearman_rho": _mean(rhos),
        "kendall_tau_pairs": taus, "spearman_rho_pairs": rhos,
        "seed_std": seed_std, "spread": spread,
        "snr": spread / seed_std if seed_std > 0 else float("inf"),
        "signal_std": signal,
        "interaction_std": interaction, "seed_set_means": set_means,
        "range_of_means": max(means) - min(means),
    }


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float | None]:
    """The mean of ``values`` and its standard error (sample std / sqrt(n)); ``None`` for n < 2."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_and_stderr needs at least one value")
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(sample_var(values) / n)


def sample_var(values: Sequence[float]) -> float:
    """Sample variance (n - 1 in the denominator)."""
    n = len(values)
    mean = sum(values) / n
    return sum((v - mean) ** 2 for v in values) / (n - 1)


def paired_t_pvalue(differences: Sequence[float]) -> float | None:
    """Two-sided p-value of a one-sample Student-t test of mean(differences) = 0 (None below 2 pairs).

    Differences without spread give 1.0 when they are all 0 and 0.0 otherwise (the t statistic is
    infinite), matching an interval of zero width."""
    n = len(differences)
    if n < 2:
        return None
    mean = sum(differences) / n
    var = sample_var(differences)
    if var <= 0.0:
        return 1.0 if mean == 0.0 else 0.0
    from scipy.stats import t

    statistic = mean / math.sqrt(var / n)
    return float(min(1.0, 2.0 * t.sf(abs(statistic), n - 1)))


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values in the input order; ``None`` (no test) stays ``None`` and does
    not count towards the family size."""
    present = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    for p, _ in present:
        if math.isnan(p) or p < 0.0 or p > 1.0:
            raise ValueError(f"p-values must lie in [0, 1], got {p}")
    m = len(present)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))      # step-down: never below a smaller p's value
        adjusted[i] = running
    return adjusted


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def _check_pair(x: Sequence[float], y: Sequence[float]) -> None:
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need two equally long sequences of at least 2 values, got {len(x)} and {len(y)}")


# -- replicates of one genome and paired comparisons (noise-aware search) ------------------------------
OWN_SPREAD_MIN = 3      # replicates needed before a genome's standard error comes from its own spread


def replicate_mean(values: Sequence[float], noise_std: float | None = None) -> tuple[float, float | None, str]:
    """A genome's estimate from its replicates (one fitness per seed set): the mean, its standard error and
    where the error came from.

    With at least :data:`OWN_SPREAD_MIN` replicates the error is their sample std / sqrt(n) (``"replicates"``);
    with fewer it is ``noise_std / sqrt(n)`` (``"noise_std"``, the measured seed std of one fitness) when that is
    known, else the sample std of two replicates (``"replicates"``), else ``None`` (``""``: one value, no
    measured noise)."""
    n = len(values)
    if n == 0:
        raise ValueError("replicate_mean needs at least one value")
    mean = sum(values) / n
    if n >= OWN_SPREAD_MIN or (n == 2 and not noise_std):
        return mean_and_stderr(values) + ("replicates",)
    if noise_std:
        return mean, noise_std / math.sqrt(n), "noise_std"
    return mean, None, ""


def paired_one_sided(a: dict, b: dict, noise_std: float | None = None, pooled: tuple[float, int] | None = None,
                     keys: Sequence | None = None) -> dict:
    """One-sided paired test of H1: mean(a) > mean(b), paired by key (the seed set).

    ``a`` and ``b`` map a seed set to a fitness; the seed sets both have are used (only those in ``keys`` when given).
    Returns the pairs ``n``, the mean difference, its standard error, ``t``, the one-sided ``p`` and where the error
    came from.  The std of one difference comes from a noise estimate where the pairs are few, and has it as a floor
    otherwise, so that differences that happen not to vary are not certainty: the estimate is ``sqrt(2)`` times the
    pooled std ``pooled = (std, df)`` of one fitness about its genome and seed-set effects (Student t with ``df``)
    where there is one, else ``sqrt(2) * noise_std`` (the measured std of one fitness, two independent draws, normal;
    it holds the common seed-set shift that pairing removes, so it is the cautious choice).  From
    :data:`OWN_SPREAD_MIN` pairs on, the pairs' own sample std (Student t, n - 1 degrees of freedom) is used where it
    is larger; without an estimate, from 2 pairs on.  With neither, ``p`` is ``None``."""
    from scipy import stats as st

    keys = sorted((set(a) & set(b)) if keys is None else (set(a) & set(b) & set(keys)))
    diffs = [float(a[k]) - float(b[k]) for k in keys]
    n = len(diffs)
    out = {"n": n, "seed_sets": keys, "difference": None, "stderr": None, "t": None, "p": None, "stderr_from": ""}
    if n == 0:
        return out
    mean = sum(diffs) / n
    out["difference"] = mean
    candidates = []                                       # (std of one difference, degrees of freedom or None: normal)
    if pooled is not None and pooled[0] > 0 and pooled[1] >= 1:
        candidates.append((math.sqrt(2.0) * pooled[0], int(pooled[1]), "pooled"))
    elif noise_std:
        candidates.append((math.sqrt(2.0) * noise_std, None, "noise_std"))
    if n >= (OWN_SPREAD_MIN if candidates else 2) and sample_var(diffs) > 0:
        candidates.append((math.sqrt(sample_var(diffs)), n - 1, "pairs"))
    if not candidates:
        return out
    sd, df, source = max(candidates, key=lambda c: c[0])
    se = sd / math.sqrt(n)
    t = mean / se
    out.update(stderr=se, t=t, p=float(st.norm.sf(t) if df is None else st.t.sf(t, df)), stderr_from=source)
    return out


# -- seed-set shifts: a genome + seed-set additive model -----------------------------------------------
POOLED_MIN_DF = 4       # residual degrees of freedom before the pooled std is trusted


def seed_set_shifts(values: dict[str, dict[int, float]], anchors: Collection[str]) -> dict[int, float]:
    """The common shift of every seed set in a genome + seed-set additive model, ``y[g][r] = mu_g + beta_r + e``,
    relative to seed set 0 (``beta_0 = 0``), measured on the ``anchors`` alone: ``beta_r`` is the mean of
    ``y[a][r] - y[a][0]`` over the anchors ``a`` that have both; a seed set no anchor has gets 0.

    Unbiased only because of what the anchors are: genomes evaluated under every seed set *whatever their scores*
    (racing's baselines, :mod:`layermap.searching.strategies.racing`).  Over genomes chosen for replication by their seed-set-0
    value the same mean is biased: their ``e[g][0]`` is selected high, so ``y[g][r] - y[g][0]`` underestimates
    ``beta_r`` by the winner's curse (50 equal genomes, the 5 best on seed set 0 replicated: -1.70 sigma for a true
    shift of 0; :func:`layermap.study.null_confirmation.shift_bias`)."""
    chosen = set(anchors)
    sums: dict[int, list[float]] = {}
    for genome, by_set in values.items():
        if genome not in chosen or 0 not in by_set:
            continue
        for r, v in by_set.items():
            if r != 0:
                sums.setdefault(r, []).append(float(v) - float(by_set[0]))
    shifts = {0: 0.0}
    shifts.update({r: sum(d) / len(d) for r, d in sums.items()})
    return shifts


def shift_adjusted_mean(by_set: dict[int, float], shifts: dict[int, float]) -> float:
    """A genome's mean over its seed sets with each seed set's common shift removed (comparable between genomes
    evaluated under different seed sets)."""
    return sum(float(v) - shifts.get(r, 0.0) for r, v in by_set.items()) / len(by_set)


def pooled_residual_std(values: dict[str, dict[int, float]], shifts: dict[int, float],
                        first: int = 1) -> tuple[float, int] | None:
    """The pooled std of one fitness about its genome mean once the seed-set shifts are removed, and its degrees of
    freedom (observations - genomes - estimated shifts), over seed sets ``first`` and later; ``None`` below
    :data:`POOLED_MIN_DF`.  Seed set 0 is left out by default: it ranked every genome, so the values of the genomes
    chosen for replication are selected there (their spread is compressed, and the pooled std would be too small:
    measured by :mod:`layermap.study.null_confirmation`, a one-pair confirmation then rejected 7 % of null runs)."""
    ss, n_obs, n_genomes, used = 0.0, 0, 0, set()
    for by_set in values.values():
        kept = {r: v for r, v in by_set.items() if r >= first}
        if len(kept) < 2:
            continue
        adjusted = [float(v) - shifts.get(r, 0.0) for r, v in kept.items()]
        m = sum(adjusted) / len(adjusted)
        ss += sum((v - m) ** 2 for v in adjusted)
        n_obs += len(adjusted)
        n_genomes += 1
        used.update(kept)
    df = n_obs - n_genomes - max(0, len(used) - 1)
    if df < POOLED_MIN_DF:
        return None
    return math.sqrt(ss / df), df


# -- paired tests with a variance floor (the final stage's table) ----------------------------------------
MIN_DIFF_SD = 0.5       # points: the smallest std of a paired difference a test assumes (one dev example of RTE: 0.36)


def floored_paired_t(differences: Sequence[float], minimum_sd: float = MIN_DIFF_SD) -> dict | None:
    """A paired t-test of mean(differences) = 0 whose std has a stated floor, so that differences that happen not to
    vary (two seeds each one dev example better) are not read as certainty.

    The std of one difference is the larger of the differences' own sample std (``"pairs"``) and ``minimum_sd``
    (``"minimum"``), with n - 1 degrees of freedom.  (A std pooled over the table's column was tried and left out:
    one noisy mapping then hides another's precise gain, since seed variances differ between mappings.)  Returns ``mean``, ``sd``, ``df``, ``stderr``, ``t``, the two-sided ``p`` and the
    one-sided ``p_greater`` / ``p_less``, and ``sd_from``; ``None`` below 2 differences."""
    from scipy.stats import t as student

    n = len(differences)
    if n < 2:
        return None
    mean = sum(differences) / n
    candidates = [(math.sqrt(sample_var(differences)), n - 1, "pairs"), (float(minimum_sd), n - 1, "minimum")]
    sd, df, source = max(candidates, key=lambda c: c[0])
    if sd <= 0.0:                                    # no floor and no spread: the old behaviour (exactly 0 or certain)
        p = 1.0 if mean == 0.0 else 0.0
        return {"mean": mean, "sd": 0.0, "df": df, "stderr": 0.0, "t": None, "p": p,
                "p_greater": 0.0 if mean > 0 else 1.0, "p_less": 0.0 if mean < 0 else 1.0, "sd_from": source}
    se = sd / math.sqrt(n)
    t = mean / se
    return {"mean": mean, "sd": sd, "df": df, "stderr": se, "t": t, "p": float(min(1.0, 2.0 * student.sf(abs(t), df))),
            "p_greater": float(student.sf(t, df)), "p_less": float(student.cdf(t, df)), "sd_from": source}
