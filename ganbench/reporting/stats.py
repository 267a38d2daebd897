"""Statistics over seeds: bootstrap confidence intervals, the two-model test and the regression bound.

Seeds are independent replicates of one experimental condition (same protocol hash), usually few
(3-5). The choices below follow from that:

- **Confidence interval of a mean**: below ``BOOTSTRAP_MIN_N`` seeds, Student's t-interval
  (mean ± t_{0.975, n-1} s / sqrt(n)); from ``BOOTSTRAP_MIN_N`` on, the percentile bootstrap (Efron &
  Tibshirani 1993, ch. 13). The percentile bootstrap of a mean is about mean ± z s sqrt((n-1)/n) / sqrt(n):
  too narrow at small n (with 3 seeds its 95% interval is [min, max] of the means it can form and covers
  the true mean about 75% of the time for normal data; tests/test_report_stats.py measures it), while the
  t-interval has its nominal coverage under normality at every n. At n = 20 the bootstrap's normal-data
  coverage is within 2 points of 95% and it no longer needs normality. The bootstrap distribution is
  enumerated exactly for n <= ``EXACT_BOOTSTRAP_MAX_N`` and drawn (seeded) above, so reports are reproducible.
- **Two models**: Welch's unequal-variance t-test (Welch 1947) on the per-seed values, with Holm's
  step-down correction (Holm 1979) over the metrics of one comparison (the family-wise error stays at
  the stated level however many metrics are tested) and Hedges' g as the effect size. Seed spreads
  differ between models (a WGAN-GP and a DCGAN are not equally stable), which rules out Student's
  pooled test; rank and permutation tests cannot reach p < 0.05 with 3 vs 3 seeds (their smallest
  two-sided p is 0.1), so they would never call a difference.
- **Regression gate**: a one-sided t bound from the baseline's own spread. The mean of m new seeds
  regresses when it lies beyond ``mean_b + t_{c, n_b - 1} * s_b * sqrt(1/n_b + 1/m)`` (lower-is-better
  metrics; mirrored for higher-is-better): the prediction bound for a new mean drawn from the
  baseline's distribution, so a rerun within the normal spread passes with probability ``c``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as st

EXACT_BOOTSTRAP_MAX_N = 8  # C(15, 8) = 6435 multisets: exact in milliseconds
BOOTSTRAP_MIN_N = 20  # below: Student's t-interval (the percentile bootstrap under-covers at small n)
MONTE_CARLO_RESAMPLES = 20000


def _multisets(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every multiset of n draws from n items as a count matrix (rows) and its multinomial probability."""
    counts, probs = [], []
    log_total = n * math.log(n)
    for combo in itertools.combinations_with_replacement(range(n), n):
        c = np.bincount(combo, minlength=n)
        log_p = math.lgamma(n + 1) - sum(math.lgamma(k + 1) for k in c) - log_total
        counts.append(c)
        probs.append(math.exp(log_p))
    return np.array(counts, dtype=np.float64), np.array(probs)


def bootstrap_means(values, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The bootstrap distribution of the mean: (means, probabilities)."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n <= EXACT_BOOTSTRAP_MAX_N:
        counts, probs = _multisets(n)
        return counts @ x / n, probs
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, size=(MONTE_CARLO_RESAMPLES, n))].mean(axis=1)
    return means, np.full(MONTE_CARLO_RESAMPLES, 1.0 / MONTE_CARLO_RESAMPLES)


def _weighted_quantile(values: np.ndarray, probs: np.ndarray, q: float) -> float:
    """Inverse CDF of a discrete distribution: the smallest value whose cumulative probability reaches q
    (numpy's ``method="inverted_cdf"`` for equal weights)."""
    order = np.argsort(values, kind="stable")
    v, cdf = values[order], np.cumsum(probs[order])
    return float(v[min(int(np.searchsorted(cdf, q * cdf[-1] - 1e-12)), len(v) - 1)])


def bootstrap_ci(values, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean; (nan, nan) with fewer than 2 values."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return (math.nan, math.nan)
    means, probs = bootstrap_means(x, seed)
    alpha = (1.0 - level) / 2
    return (_weighted_quantile(means, probs, alpha), _weighted_quantile(means, probs, 1.0 - alpha))


def t_interval(values, level: float = 0.95) -> tuple[float, float]:
    """Student's t confidence interval of the mean; (nan, nan) with fewer than 2 values. With no spread at all
    it is the point itself (every value equal)."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return (math.nan, math.nan)
    half = st.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return (float(x.mean() - half), float(x.mean() + half))


def interval_kind(n: int) -> str:
    """Which interval a summary of ``n`` values carries: "t" or "bootstrap" (see the module docstring)."""
    return "t" if n < BOOTSTRAP_MIN_N else "bootstrap"


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float  # sample standard deviation (ddof = 1); nan for one value
    ci_low: float
    ci_high: float
    interval: str = "t"  # "t" (Student's t-interval of the mean) or "bootstrap" (percentile), by n


def summarise(values, level: float = 0.95) -> Summary:
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if len(x) == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    kind = interval_kind(len(x))
    lo, hi = t_interval(x, level) if kind == "t" else bootstrap_ci(x, level)
    return Summary(len(x), float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan, lo, hi, kind)


@dataclass(frozen=True)
class WelchResult:
    delta: float  # mean(b) - mean(a)
    t: float
    df: float
    p_value: float  # two-sided; nan when either side has fewer than 2 seeds or no spread at all


def welch_test(a, b) -> WelchResult:
    """Welch's t-test of mean(b) - mean(a) on per-seed values."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    delta = float(y.mean() - x.mean()) if len(x) and len(y) else math.nan
    if len(x) < 2 or len(y) < 2:
        return WelchResult(delta, math.nan, math.nan, math.nan)
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    if vx + vy == 0:
        return WelchResult(delta, math.nan, math.nan, math.nan)
    res = st.ttest_ind(y, x, equal_var=False)
    df = (vx + vy) ** 2 / (vx ** 2 / (len(x) - 1) + vy ** 2 / (len(y) - 1))
    return WelchResult(delta, float(res.statistic), float(df), float(res.pvalue))


def holm(p_values) -> list[float]:
    """Holm's (1979) step-down adjusted p-values of one family of tests (nan stays nan and is not counted):
    rejecting where the adjusted p < alpha keeps the family-wise error rate at alpha."""
    p = [float(v) for v in p_values]
    tested = sorted((v, i) for i, v in enumerate(p) if not math.isnan(v))
    m, out, running = len(tested), [math.nan] * len(p), 0.0
    for k, (v, i) in enumerate(tested):
        running = max(running, min(1.0, (m - k) * v))
        out[i] = running
    return out


def hedges_g(a, b) -> float:
    """Hedges' g of mean(b) - mean(a): the difference in pooled standard deviations with the small-sample
    correction J = 1 - 3 / (4 (n_a + n_b) - 9) (Hedges 1981); nan with fewer than 2 values a side or no spread."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) < 2 or len(y) < 2:
        return math.nan
    pooled = math.sqrt(((len(x) - 1) * x.var(ddof=1) + (len(y) - 1) * y.var(ddof=1)) / (len(x) + len(y) - 2))
    if pooled == 0:
        return math.nan
    return float((y.mean() - x.mean()) / pooled * (1 - 3 / (4 * (len(x) + len(y)) - 9)))


@dataclass(frozen=True)
class SpreadTest:
    ratio: float  # std(b) / std(a)
    f: float  # var(b) / var(a)
    df: tuple[int, int]  # (n_b - 1, n_a - 1)
    p_value: float  # two-sided; nan with fewer than 2 values a side or no spread on a side


def spread_test(a, b) -> SpreadTest:
    """The two-sided F test of equal variances of two sets of seeds (normal theory; with 3 seeds a side it has
    2 and 2 degrees of freedom, and only a spread ratio above about 6.2 in std is significant at 0.05)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) < 2 or len(y) < 2 or x.var(ddof=1) == 0 or y.var(ddof=1) == 0:
        return SpreadTest(math.nan, math.nan, (len(y) - 1, len(x) - 1), math.nan)
    f = float(y.var(ddof=1) / x.var(ddof=1))
    dist = st.f(len(y) - 1, len(x) - 1)
    return SpreadTest(math.sqrt(f), f, (len(y) - 1, len(x) - 1), float(min(1.0, 2 * min(dist.cdf(f), dist.sf(f)))))


def excess_over_floor(share: float, n: int, floor: float) -> float:
    """One-sided binomial p-value that ``share`` of ``n`` samples (e.g. suspected copies) is no more than the
    real-vs-real ``floor`` share would give: P(X >= round(share * n)) for X ~ Binomial(n, floor)."""
    k = int(round(share * n))
    if k == 0:
        return 1.0
    if floor <= 0:
        return 0.0
    return float(st.binom.sf(k - 1, n, min(floor, 1.0)))


def regression_bound(baseline, higher_is_better: bool, n_new: int, confidence: float) -> float:
    """The worst mean of ``n_new`` new seeds still consistent with the baseline (one-sided t bound)."""
    x = np.asarray(baseline, dtype=np.float64)
    n = len(x)
    assert n >= 2 and n_new >= 1
    margin = st.t.ppf(confidence, n - 1) * x.std(ddof=1) * math.sqrt(1.0 / n + 1.0 / n_new)
    return float(x.mean() - margin if higher_is_better else x.mean() + margin)
