"""Summaries with honest spread, and interleaved A/B comparisons.

Peers' conventions: llama-bench (github.com/ggml-org/llama.cpp, tools/llama-bench)
reports avg ± stddev, hyperfine (github.com/sharkdp/hyperfine) mean ± σ with
median/MAD outlier checks. We report best and median, MAD and
stddev, N and every sample; comparisons give a ratio with a bootstrap
confidence interval and a Mann-Whitney U p-value, and call a difference
significant only when both agree. The tests are scipy.stats', imported where
used: it costs about a second to import and most commands never compare.
"""

import contextlib
import math
import statistics
import warnings
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


@contextlib.contextmanager
def _quiet():
    # scipy warns (RuntimeWarning, DegenerateDataWarning) on zero variance,
    # all-tied or NaN data; those cases get a defined answer here instead.
    import numpy as np  # with scipy, only where a comparison needs it (a sweep point never does)

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def mann_whitney_p(a, b) -> float:
    """Two-sided Mann-Whitney U p-value (scipy.stats.mannwhitneyu, method
    "auto": exact without ties when a group has at most 8 samples, else the
    normal approximation with tie and continuity corrections)."""
    import numpy as np
    from scipy import stats as sps  # ~1 s to import; most commands never compare

    if not len(a) or not len(b):
        return 1.0
    with _quiet():
        p = float(sps.mannwhitneyu(a, b, alternative="two-sided", method="auto").pvalue)
    # every value tied across both groups: no evidence either way (scipy: 0/0)
    return 1.0 if math.isnan(p) and not np.isnan(np.concatenate([a, b])).any() else p


def min_p_value(n1: int, n2: int) -> float:
    """The smallest two-sided p the rank test can give for these group sizes:
    that of fully separated groups."""
    return mann_whitney_p(range(n1), range(n1, n1 + n2))


def welch_p(a, b) -> float:
    """Two-sided Welch t-test p-value (scipy.stats.ttest_ind, equal_var=False)."""
    import numpy as np
    from scipy import stats as sps

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        return 1.0
    if np.var(a) == 0 and np.var(b) == 0:  # t = 0/0 or ±inf: say it plainly
        return 1.0 if a[0] == b[0] else 0.0
    with _quiet():
        return float(sps.ttest_ind(a, b, equal_var=False).pvalue)


def cluster_bootstrap_ratio_ci(ua, ub, reps=2000, level=0.95, seed=0):
    """Percentile CI of median(b)/median(a) resampling whole units (processes),
    then pooling their samples: runs inside one process are not independent.
    scipy.stats.bootstrap resamples unit indices; a seed gives one answer."""
    import numpy as np
    from scipy import stats as sps

    if not ua or not ub:
        raise ValueError("both groups need samples")

    def padded(units):  # ragged units → rows padded with NaN, for nanmedian
        m = np.full((len(units), max(map(len, units))), np.nan)
        for i, u in enumerate(units):
            m[i, : len(u)] = u
        return m

    pa, pb = padded(ua), padded(ub)

    def ratio(ia, ib, axis=-1):  # ia, ib: (..., n) resampled unit indices
        ma = np.nanmedian(pa[ia.astype(int)].reshape(*ia.shape[:-1], -1), axis=-1)
        mb = np.nanmedian(pb[ib.astype(int)].reshape(*ib.shape[:-1], -1), axis=-1)
        return np.where(ma != 0, mb / np.where(ma != 0, ma, 1), np.nan)

    # scipy wants two or more observations per sample; a lone unit resamples
    # to itself, and [0, 0] (it, twice) pools to the same median.
    ia, ib = (np.arange(len(u)) if len(u) > 1 else np.zeros(2, int) for u in (ua, ub))
    with _quiet():
        res = sps.bootstrap((ia, ib), ratio, n_resamples=reps, confidence_level=level,
                            method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    lo, hi = res.confidence_interval
    if np.isnan(lo) or np.isnan(hi):
        # resamples whose baseline median is 0 have no ratio: drop them
        dist = res.bootstrap_distribution[~np.isnan(res.bootstrap_distribution)]
        lo, hi = np.quantile(dist, [(1 - level) / 2, (1 + level) / 2]) if dist.size else (np.nan, np.nan)
    return float(lo), float(hi)


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

