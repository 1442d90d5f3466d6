"""The CUPTI → perf_counter clock fit on synthetic pairs."""

import pytest

from mlxprof.gpu.clock import fit_clock, take_pairs


def test_clock_fit_recovers_offset_and_drift_from_huge_timestamps():
    base = 1_700_000_000_123_456_789  # CUPTI ns can exceed a double's exact range
    true_off, drift = 12.345, 25e-6
    pairs = []
    for t in [0.0, 0.001, 0.002, 30.0, 30.001, 30.002]:
        c = base + int(t * 1e9)
        pairs.append((c, true_off + t * (1 + drift), 1e-6))
    fit = fit_clock(pairs)
    assert fit.drift_ppm == pytest.approx(25.0, abs=0.5)
    assert fit.to_host(base + 15 * 10**9) == pytest.approx(true_off + 15 * (1 + drift), abs=2e-6)
    assert fit.residual_us < 2


def test_clock_fit_uses_offset_only_over_a_short_span_or_absurd_drift():
    base = 5 * 10**17
    short = [(base + i * 1000, 3.0 + i * 1e-6 + (1e-6 if i % 2 else 0), 1e-6) for i in range(6)]
    fit = fit_clock(short)
    assert fit.slope == 1.0
    assert fit.to_host(base) == pytest.approx(3.0, abs=2e-6)
    crazy = [(base, 0.0, 1e-6), (base + 10**9, 2.0, 1e-6)]  # 100% drift: not a clock
    fit = fit_clock(crazy)
    assert fit.slope == 1.0 and "rejected" in fit.note


def test_take_pairs_keeps_the_tightest_brackets():
    ticks = iter(range(1000))
    host = iter([0.0, 1.0, 2.0, 2.001, 3.0, 3.5])
    pairs = take_pairs(lambda: next(ticks), lambda: next(host), n=3, keep=2)
    assert [p[0] for p in pairs] == [1, 2]
    assert pairs[0][1] == pytest.approx(2.0005)
