import itertools
import math
import statistics
import warnings

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from mlxprof import stats


def test_summary_on_known_samples():
    s = stats.summarize([10, 12, 11, 13, 30])
    assert (s.n, s.best, s.median, s.min, s.max) == (5, 30, 12, 10, 30)
    assert s.mad == 1  # |x - 12| = 2 0 1 1 18 → median 1
    assert math.isclose(s.mean, 15.2)
    assert math.isclose(s.stdev, math.sqrt(278.8 / 4))
    assert s.samples == [10, 12, 11, 13, 30]
    assert stats.summarize([3, 1, 2], higher_is_better=False).best == 1


def test_mann_whitney_known_values():
    # fully separated groups of 5: exact two-sided p = 2/252
    assert math.isclose(stats.mann_whitney_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]), 2 / 252)
    assert stats.mann_whitney_p([1, 2, 3], [1, 2, 3]) == 1.0
    # n=3 vs 3 cannot reach p < 0.1 exactly
    assert stats.mann_whitney_p([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)


def test_compare_calls_clear_gain_and_refuses_noise():
    base = [100, 101, 99, 100.5, 99.5, 100.2, 99.8, 100.1]
    fast = [x * 1.12 for x in base]
    c = stats.compare(base, fast, names=("default", "1000"))
    assert c.verdict == "significant gain" and c.ci_low > 1.0 and math.isclose(c.ratio, 1.12, rel_tol=1e-3)
    assert stats.compare(fast, base).verdict == "regression"
    noisy = [100, 92, 108, 97, 103, 95, 105, 99]
    assert stats.compare(base, noisy).verdict == "no significant difference"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(1, 1000), min_size=4, max_size=12))
def test_identical_groups_are_never_significant(xs):
    assert stats.compare(xs, list(xs)).verdict == "no significant difference"


def test_interleave_rotates():
    assert stats.interleave(["A", "B", "C"], 2) == ["A", "B", "C", "B", "C", "A"]
    assert stats.interleave(["A", "B"], 2, rotate=False) == ["A", "B", "A", "B"]


def test_too_few_samples_is_said_not_hidden():
    c = stats.compare([100, 101], [80, 81])
    assert c.verdict.startswith("too few samples") and c.ci_high < 1.0
    assert stats.min_p_value(3, 3) == pytest.approx(0.1)
    assert stats.min_p_value(4, 4) == pytest.approx(2 / 70)


def test_welch_p_known_values():
    # scipy.stats.ttest_ind([1,2,3,4],[2,4,6,8], equal_var=False).pvalue = 0.151580…
    assert stats.welch_p([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(0.1515805, abs=1e-6)
    assert stats.welch_p([10, 11, 12], [10, 11, 12]) == pytest.approx(1.0)


def test_units_make_correlated_runs_count_once():
    """Three processes whose runs agree closely inside each process but whose
    process means scatter: run-level tests would call it; unit-level does not."""
    a = [[100, 100.1, 99.9], [96, 96.1, 95.9], [103, 103.1, 102.9]]
    b = [[101, 101.1, 100.9], [104, 104.1, 103.9], [99, 99.1, 98.9]]
    flat_a, flat_b = sum(a, []), sum(b, [])
    c = stats.compare(flat_a, flat_b, units=(a, b))
    assert c.verdict == "no significant difference" and "per-process" in c.test
    clear = [[x * 1.1 for x in u] for u in a]
    assert stats.compare(flat_a, sum(clear, []), units=(a, clear)).verdict == "significant gain"


def test_welch_p_matches_a_hand_computed_t_and_df():
    a = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    b = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch–Satterthwaite
    assert stats.welch_p(a, b) == pytest.approx(2 * scipy.stats.t.sf(abs(t), df), rel=1e-9)
    assert 0.01 < stats.welch_p(a, b) < 0.05  # t ≈ -2.46 on df ≈ 24.9


def _enumerated_u_p(a, b):
    """Exact two-sided p by listing every way to split the pooled ranks."""
    ranks = {x: r for r, x in enumerate(sorted(a + b), 1)}
    n1, n2 = len(a), len(b)
    u_obs = sum(ranks[x] for x in a) - n1 * (n1 + 1) / 2
    u_obs = min(u_obs, n1 * n2 - u_obs)
    us = [sum(c) - n1 * (n1 + 1) / 2 for c in itertools.combinations(range(1, n1 + n2 + 1), n1)]
    return min(1.0, 2 * sum(u <= u_obs for u in us) / len(us))


@pytest.mark.parametrize("a,b", [
    ([1.1, 3.2, 4.5], [2.0, 5.1, 6.3, 7.7]),
    ([10.0, 12.0, 9.5, 11.0], [12.5, 13.0, 11.5, 14.0, 15.0]),
    ([5.0, 1.0, 7.0], [2.0, 6.0, 3.0]),
    ([1.0, 2.0], [3.0, 4.0, 5.0, 6.0, 7.0, 8.0]),
])
def test_mann_whitney_p_matches_enumeration(a, b):
    assert stats.mann_whitney_p(a, b) == pytest.approx(_enumerated_u_p(a, b), rel=1e-12)
    assert stats.mann_whitney_p(b, a) == pytest.approx(_enumerated_u_p(a, b), rel=1e-12)


def test_min_p_value_is_that_of_fully_separated_groups():
    for n1, n2 in [(1, 1), (2, 2), (3, 5), (2, 20), (8, 8)]:
        assert stats.min_p_value(n1, n2) == pytest.approx(min(1.0, 2 / math.comb(n1 + n2, n1)))
    assert stats.min_p_value(0, 5) == 1.0


def test_bootstrap_ci_covers_the_true_ratio_and_is_seeded():
    a = list(100 + np.linspace(-3, 3, 15))  # symmetric about 100
    b = [1.2 * x for x in a]  # the true ratio of medians is 1.2
    lo, hi = stats.bootstrap_ratio_ci(a, b, seed=3)
    assert 1.0 < lo < 1.2 < hi < 1.25
    assert stats.bootstrap_ratio_ci(a, b, seed=3) == (lo, hi)
    assert stats.bootstrap_ratio_ci(a, b, seed=4) != (lo, hi)
    # whole processes resampled: process offsets -2…2, runs ±0.5 inside each
    ua = [[100 + d + e for e in (-0.5, 0, 0.5)] for d in (-2, -1, 0, 1, 2)]
    ub = [[0.8 * x for x in u] for u in ua]
    lo, hi = stats.cluster_bootstrap_ratio_ci(ua, ub, seed=0)
    assert 0.75 < lo < 0.8 < hi < 1.0
    assert stats.cluster_bootstrap_ratio_ci(ua, ub, seed=0) == (lo, hi)


def test_compare_verdicts_on_constructed_data():
    base = [50.0 + 0.1 * i for i in range(10)]
    assert stats.compare(base, [x * 0.9 for x in base]).verdict == "regression"
    assert stats.compare(base, [x * 1.05 for x in base]).verdict == "significant gain"
    # lower is better (ms/token): a 10% shorter time is a gain
    assert stats.compare(base, [x * 0.9 for x in base], higher_is_better=False).verdict == "significant gain"
    # candidate shifted by much less than the spread: overlapping ranks
    assert stats.compare(base, [x + 0.05 for x in base]).verdict == "no significant difference"
    c = stats.compare(base[:3], [x * 2 for x in base[:3]])
    assert c.verdict.startswith("too few samples") and c.ci_low > 1.9


def test_degenerate_inputs_answer_without_warnings():
    nan = float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert stats.welch_p([1.0], [2.0, 3.0]) == 1.0
        assert stats.welch_p([5, 5, 5], [5, 5, 5]) == 1.0
        assert stats.welch_p([5, 5, 5], [6, 6, 6]) == 0.0
        assert math.isnan(stats.welch_p([1, 2, nan], [3, 4, 5]))
        assert stats.mann_whitney_p([], [1.0]) == 1.0
        assert stats.mann_whitney_p([5, 5, 5, 5], [5, 5, 5, 5]) == 1.0
        assert stats.bootstrap_ratio_ci([2.0], [3.0]) == (1.5, 1.5)
        assert stats.bootstrap_ratio_ci([5, 5, 5], [5, 5, 5]) == (1.0, 1.0)
        # every resampled baseline has median 0: no ratio, and no crash
        c = stats.compare([0, 0, 0, 0, 0], [1, 2, 3, 4, 5])
        assert math.isnan(c.ci_low) and c.verdict == "no significant difference"
