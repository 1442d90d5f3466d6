"""Summaries with honest spread, and interleaved A/B comparisons.

Peers' conventions (anchors.md): llama-bench reports avg ± stddev, hyperfine
mean ± σ with median/MAD outlier checks. We report best and median, MAD and
stddev, N and every sample; comparisons give a ratio with a bootstrap
confidence interval and a Mann-Whitney U p-value, and call a difference
significant only when both agree.
"""

import math
import random
import statistics
from typing import List, Optional, Sequence

from pydantic import BaseModel


class Summary(BaseModel):
    n: int
    best: float  # max for rates (tok/s); see `higher_is_better`
    median: float
    mean: float
    min: float
    max: float
    mad: float  # median absolute deviation
    stdev: float
    samples: List[float]

    @property
    def rel_mad(self) -> float:
        return self.mad / self.median if self.median else float("nan")

    def fmt(self, digits=1) -> str:
        return f"{self.median:.{digits}f} ± {self.mad:.{digits}f}"


def mad(xs: Sequence[float]) -> float:
    m = statistics.median(xs)
    return statistics.median([abs(x - m) for x in xs])


def summarize(samples: Sequence[float], higher_is_better: bool = True) -> Summary:
    xs = [float(x) for x in samples]
    if not xs:
        raise ValueError("no samples to summarize")
    return Summary(
        n=len(xs),
        best=max(xs) if higher_is_better else min(xs),
        median=statistics.median(xs),
        mean=statistics.fmean(xs),
        min=min(xs),
        max=max(xs),
        mad=mad(xs),
        stdev=statistics.stdev(xs) if len(xs) > 1 else 0.0,
        samples=xs,
    )


def bootstrap_ratio_ci(a, b, reps=2000, level=0.95, seed=0):
    """CI of median(b)/median(a) by resampling each group independently."""
    return cluster_bootstrap_ratio_ci([[x] for x in a], [[x] for x in b], reps, level, seed)


def mann_whitney_p(a, b) -> float:
    """Two-sided Mann-Whitney U p-value: exact for small samples, else normal
    approximation with tie correction."""
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = sorted([(x, 0) for x in a] + [(x, 1) for x in b])
    ranks = [0.0] * len(pooled)
    i = 0
    ties = 0.0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        r = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[k] = r
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    r1 = sum(r for r, (_, g) in zip(ranks, pooled) if g == 0)
    u1 = r1 - n1 * (n1 + 1) / 2
    u = min(u1, n1 * n2 - u1)
    if n1 + n2 <= 16 and ties == 0:
        return _exact_u_p(u, n1, n2)
    mu = n1 * n2 / 2
    n = n1 + n2
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
    if sigma == 0:
        return 1.0
    z = (abs(u - mu) - 0.5) / sigma
    return min(1.0, math.erfc(max(z, 0) / math.sqrt(2)))


def min_p_value(n1: int, n2: int) -> float:
    """The smallest two-sided p the rank test can give for these group sizes
    (fully separated groups)."""
    if n1 == 0 or n2 == 0:
        return 1.0
    if n1 + n2 <= 16:
        return _exact_u_p(0, n1, n2)
    return 0.0


def _exact_u_p(u, n1, n2):
    # count rank-sum arrangements: number of ways to get U <= u
    from functools import lru_cache

    @lru_cache(None)
    def count(i, j, k):  # ways for i of group 1 and j of group 2 to give U = k
        if k < 0:
            return 0
        if i == 0 or j == 0:
            return 1 if k == 0 else 0
        return count(i - 1, j, k - j) + count(i, j - 1, k)

    total = math.comb(n1 + n2, n1)
    le = sum(count(n1, n2, k) for k in range(int(math.floor(u)) + 1))
    return min(1.0, 2 * le / total)


def _betacf(a, b, x):
    """Continued fraction for the regularized incomplete beta (Numerical Recipes)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > 1e-300 else 1e-300
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > 1e-300 else 1e-300
        de = d * c
        h *= de
        if abs(de - 1.0) < 1e-12:
            break
    return h


def betainc(a, b, x):
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1 - x) / b


def welch_p(a, b) -> float:
    """Two-sided Welch t-test p-value (unequal variances)."""
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        return 1.0
    m1, m2 = statistics.fmean(a), statistics.fmean(b)
    v1, v2 = statistics.variance(a) / n1, statistics.variance(b) / n2
    if v1 + v2 == 0:
        return 1.0 if m1 == m2 else 0.0
    t = (m1 - m2) / math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / ((v1**2 / (n1 - 1) if n1 > 1 else 0) + (v2**2 / (n2 - 1) if n2 > 1 else 0))
    return betainc(df / 2, 0.5, df / (df + t * t))


def cluster_bootstrap_ratio_ci(ua, ub, reps=2000, level=0.95, seed=0):
    """CI of median(b)/median(a) resampling whole units (processes), then
    pooling their samples: runs inside one process are not independent."""
    rng = random.Random(seed)
    ratios = []
    for _ in range(reps):
        ra = statistics.median([x for u in rng.choices(ua, k=len(ua)) for x in u])
        rb = statistics.median([x for u in rng.choices(ub, k=len(ub)) for x in u])
        if ra:
            ratios.append(rb / ra)
    ratios.sort()
    lo = ratios[int((1 - level) / 2 * len(ratios))]
    hi = ratios[min(len(ratios) - 1, int((1 + level) / 2 * len(ratios)))]
    return lo, hi


class Comparison(BaseModel):
    baseline: str
    candidate: str
    ratio: float  # median(candidate) / median(baseline)
    ci_low: float
    ci_high: float
    p_value: float
    verdict: str  # "significant gain", "no significant difference", "regression", "too few samples …"
    test: str = "Mann-Whitney U on samples; bootstrap CI"
    baseline_summary: Summary
    candidate_summary: Summary

    def sentence(self) -> str:
        return (
            f"{self.candidate} vs {self.baseline}: ×{self.ratio:.3f} "
            f"(95% CI {self.ci_low:.3f}–{self.ci_high:.3f}, p={self.p_value:.3g}): {self.verdict}"
        )


def compare(
    baseline: Sequence[float],
    candidate: Sequence[float],
    names=("A", "B"),
    alpha: float = 0.05,
    higher_is_better: bool = True,
    seed: int = 0,
    units: Optional[tuple] = None,
) -> Comparison:
    """A ratio inside the noise is never called a gain: both the bootstrap CI
    must exclude 1 and the rank test must reject at `alpha`. Groups too small
    for the rank test ever to reject (e.g. 3 vs 3: p ≥ 0.1) are said to be
    too few samples, not 'no difference'."""
    a, b = list(map(float, baseline)), list(map(float, candidate))
    if not a or not b:
        raise ValueError("both groups need samples")
    ma = statistics.median(a)
    ratio = statistics.median(b) / ma if ma else float("nan")
    if units is not None:
        # samples come in independent units (one process each): test the units
        ua, ub = [list(map(float, u)) for u in units[0] if u], [list(map(float, u)) for u in units[1] if u]
        lo, hi = cluster_bootstrap_ratio_ci(ua, ub, seed=seed)
        p = welch_p([statistics.median(u) for u in ua], [statistics.median(u) for u in ub])
        test = (f"Welch t-test on per-process medians ({len(ua)}+{len(ub)} processes); "
                "CI from resampling whole processes")
        small = len(ua) < 2 or len(ub) < 2
    else:
        lo, hi = bootstrap_ratio_ci(a, b, seed=seed)
        p = mann_whitney_p(a, b)
        test = "Mann-Whitney U on samples; bootstrap CI"
        small = min_p_value(len(a), len(b)) >= alpha
    better = (lo > 1.0) if higher_is_better else (hi < 1.0)
    worse = (hi < 1.0) if higher_is_better else (lo > 1.0)
    if small:
        # e.g. 2 vs 2 samples: even fully separated groups give p = 0.33
        verdict = f"too few samples to test (n={len(a)}+{len(b)})"
    elif p < alpha and better:
        verdict = "significant gain"
    elif p < alpha and worse:
        verdict = "regression"
    else:
        verdict = "no significant difference"
    return Comparison(
        baseline=names[0], candidate=names[1], ratio=ratio, ci_low=lo, ci_high=hi,
        p_value=p, verdict=verdict, test=test,
        baseline_summary=summarize(a, higher_is_better),
        candidate_summary=summarize(b, higher_is_better),
    )


def interleave(names: Sequence[str], rounds: int, rotate: bool = True) -> List[str]:
    """A B C A B C … order; with `rotate`, each round starts one later so no
    variant always runs first after a pause."""
    order = []
    k = len(names)
    for r in range(rounds):
        shift = r % k if rotate else 0
        order.extend(names[(i + shift) % k] for i in range(k))
    return order


def percentile(xs: Sequence[float], q: float) -> Optional[float]:
    if not xs:
        return None
    s = sorted(xs)
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)
