import math

import pytest
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
    assert stats.betainc(2, 3, 0.4) == pytest.approx(0.5248, abs=1e-4)


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
