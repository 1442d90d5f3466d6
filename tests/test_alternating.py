"""Per-token alternation (mlxprof/alternating.py): its statistics on a
simulated host whose speed wanders over a few tokens, its stop rules, and
the MLX decode it runs in bench/parity.py."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from mlxprof import alternating, parity, parity_loops
from mlxprof import decode as dec
from mlxprof.session import open_session

sys.path.insert(0, str(Path(__file__).parent))


class WanderingHost:
    """Seconds per token = tau × arm factor × exp(noise). The log noise is
    heavy-tailed (Student t, 3 degrees of freedom) and shared by neighbours
    (each shock lands on two tokens: lag-1 autocorrelation 0.6, lag 2 about
    0.2), over a slow wander (AR(1), 0.98 per token): log sd 0.2, as the
    per-token times recorded on the H100 host of issue 12 (0.2; 0.6 and 0.2
    at lags 1 and 2)."""

    def __init__(self, seed=0, tau=0.03, scale=0.08, df=3, ma=0.9, slow=0.1, rho=0.98):
        self.t, self.tau, self.scale, self.df, self.ma, self.slow, self.rho = 0.0, tau, scale, df, ma, slow, rho
        self.rng = np.random.default_rng(seed)
        self.shock = self.wander = 0.0

    def token(self, factor):
        shock = self.scale * self.rng.standard_t(self.df) if self.scale else 0.0
        self.wander = self.rho * self.wander + math.sqrt(1 - self.rho ** 2) * self.rng.normal(0, self.slow)
        self.t += self.tau * factor * math.exp(shock + self.ma * self.shock + self.wander)
        self.shock = shock


class FakeDecode:
    """alternating.SharedDecode on the host: the arms advance its clock."""

    def __init__(self, host, restart_s=1.0):
        self.host, self.restart_s = host, restart_s
        self.step, self.y, self.times, self.n = object(), 0, None, 0
        self.restarts, self.finished, self.started, self.decoded = 0, 0, [], []

    def restart(self, tokens):
        self.restarts += 1
        self.started.append(self.host.t)
        self.n = 20  # after the warm-up
        self.host.t += self.restart_s

    def finish(self):
        self.finished += 1
        self.decoded.append(self.n - 20)


def arm(host, factor, log=None):
    def tokens(step, y, times, lo, hi):
        assert hi == lo + 1  # one token per call
        if log is not None:
            log.append(lo)
        host.token(factor)
        return y + 1
    return tokens


def settings(**kw):
    base = dict(tokens=400, warmup=20, budget_s=120.0, precision=0.005, min_pairs=100)
    return alternating.AlternatingSettings(**{**base, **kw})


def simulate(factor_b, host=None, **kw):
    host = host or WanderingHost()
    decode = FakeDecode(host)
    arms = {"a": arm(host, 1.0), "b": arm(host, factor_b)}
    return alternating.run_alternating(decode, arms, 0.99, settings(**kw), clock=lambda: host.t), decode


def test_identical_arms_resolve_above_target_on_the_wandering_host():
    run, decode = simulate(1.0)
    c = run.comparison
    assert c.ci_low <= 1.0 <= c.ci_high and c.difference == "none detected"
    assert c.resolved and c.meets_target and c.half_width <= 0.008
    assert run.elapsed_s <= 120.0 + 0.5 and decode.finished == decode.restarts == len(run.t_s)


def test_slower_arms_are_found_and_resolved_below_the_target():
    run, _ = simulate(1.02)  # b's tokens take 2 % longer: a / b tok/s = 1.02, b / a = 0.980
    c = run.comparison
    assert c.ci_low <= 1.02 <= c.ci_high and c.difference == "numerator faster"
    host = WanderingHost(seed=3)
    decode = FakeDecode(host)
    slow_first = alternating.run_alternating(decode, {"b": arm(host, 1.03), "a": arm(host, 1.0)}, 0.99,
                                             settings(), clock=lambda: host.t)
    c = slow_first.comparison
    assert c.ci_low <= 1 / 1.03 <= c.ci_high and c.difference == "numerator slower"
    assert c.resolved and not c.meets_target and c.ci_high < 0.99 and c.verdict.startswith("resolved: below")


def test_fixed_order_blocks_of_the_same_host_stay_wide():
    """What the method is for: on this host, 4-token blocks a few hundred
    ms apart spread far wider per second than neighbouring tokens."""
    host = WanderingHost(seed=1)
    ratios = []
    for _ in range(400):
        t = []
        for _ in range(2):
            t0 = host.t
            for _ in range(4):
                host.token(1.0)
            t.append(host.t - t0)
        ratios.append(t[0] / t[1])
    logs = np.log(ratios)
    run, _ = simulate(1.0, host=WanderingHost(seed=1), max_segments=1)
    pair_logs = np.log(np.asarray(run.seconds["b"]) / np.asarray(run.seconds["a"]))
    # per token decoded: the variance of a block pair's log ratio over 8 tokens against a token pair's over 2
    assert np.var(logs) * 8 > 2 * np.var(pair_logs) * 2


def test_orders_are_random_balanced_and_seeded():
    host = WanderingHost()
    log = []
    decode = FakeDecode(host)
    arms = {"a": arm(host, 1.0, log), "b": arm(host, 1.0, log)}
    run = alternating.run_alternating(decode, arms, None, settings(max_segments=3, tokens=200),
                                      clock=lambda: host.t)
    assert len(run.first) == 300 and 0.4 < run.first.count("a") / 300 < 0.6
    assert "a first in" in alternating.balance(run)
    assert log == [20 + i for _ in range(3) for i in range(200)]  # every token of a segment, in order
    again, _ = simulate(1.0, max_segments=3, tokens=200)
    assert again.first == run.first  # seeded
    other, _ = simulate(1.0, max_segments=3, tokens=200, seed=1)
    assert other.first != run.first
    assert run.stop == "segments" and "3 segments were run" in alternating.summary_line(run)


def test_no_pair_starts_after_the_budget():
    host = WanderingHost(scale=0.15)
    decode = FakeDecode(host)
    starts = []

    def tokens(step, y, times, lo, hi):
        starts.append(host.t)
        host.token(1 / 0.99)
        return y

    arms = {"a": tokens, "b": arm(host, 1.0)}
    run = alternating.run_alternating(decode, arms, 0.99, settings(budget_s=30.0, precision=0.0001),
                                      clock=lambda: host.t)
    assert run.stop == "budget" and run.comparison.verdict.startswith("unresolved at budget")
    assert len(run.seconds["a"]) == len(run.seconds["b"]) == len(run.segment)
    assert max(starts) <= 30.0 + 2 * 0.03 * 10  # at most the pair in flight at the deadline
    assert "budget was spent" in alternating.summary_line(run)
    assert all(n % 2 == 0 for n in decode.decoded)  # the deadline never splits a pair


def test_no_segment_starts_that_its_restart_would_push_past_the_budget():
    host = WanderingHost()
    decode = FakeDecode(host, restart_s=10.0)
    run = alternating.run_alternating(decode, {"a": arm(host, 1.0), "b": arm(host, 1.0)}, 0.99,
                                      settings(tokens=100, budget_s=30.0, precision=0.0), clock=lambda: host.t)
    # the first restart's time is unknown until it ran; every later one is predicted from it
    assert len(decode.started) >= 2 and all(t + 10.0 <= 30.0 for t in decode.started[1:])
    assert len(run.t_s) == len(decode.started) and run.stop == "budget"


def test_a_segment_the_deadline_cut_before_its_first_pair_is_not_counted():
    host = WanderingHost()
    decode = FakeDecode(host, restart_s=10.0)
    run = alternating.run_alternating(decode, {"a": arm(host, 1.0), "b": arm(host, 1.0)}, 0.99,
                                      settings(budget_s=5.0), clock=lambda: host.t)
    assert decode.restarts == 1 and run.t_s == [] and run.segment == [] and run.stop == "budget"
    assert alternating.summary_line(run).startswith("0 pairs of tokens in 0 segments")
    assert run.comparison.verdict.startswith("unresolved at budget: fewer than")


def test_stops_on_precision_after_min_pairs_and_reports_partials():
    host = WanderingHost(scale=0.0, slow=0.0)
    seen = []
    decode = FakeDecode(host)
    run = alternating.run_alternating(decode, {"a": arm(host, 1.0), "b": arm(host, 1.0)}, 0.99,
                                      settings(tokens=100, min_pairs=100), clock=lambda: host.t,
                                      on_segment=seen.append)
    assert run.stop == "precision" and len(run.t_s) == 2 and len(run.segment) == 100
    assert [r.stop for r in seen] == ["partial"] and len(seen[0].segment) == 50
    assert "partial:" in alternating.summary_line(seen[0])
    assert "host noise:" in alternating.noise_line(run)


def test_segment_agreement_names_the_first_difference():
    assert parity.segment_agreement([[1, 2, 3], [1, 2, 3, 4], [1, 2]]).match
    bad = parity.segment_agreement([[1, 2, 3], [1, 5, 3]])
    assert not bad.match and "segment 2: first differs at token 1 (segment 1 2, segment 2 5)" in bad.sentence


def test_settings_refuse_what_cannot_pair():
    from mlxprof.errors import InputError

    with pytest.raises(InputError, match="at least 2"):
        parity.alternating_settings(1, 20, None)
    with pytest.raises(InputError, match="--segments"):
        parity.alternating_settings(400, 20, None, 0)


def test_probe_costs_less_than_the_bookkeeping():
    probe, full = parity_loops.bookkeeping_s(20_000, probe=True), parity_loops.bookkeeping_s(20_000)
    assert 0 < probe < full < 1e-4


# ---- on MLX ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    from tiny_checkpoints import write

    return open_session(str(write(tmp_path_factory.mktemp("llama") / "llama", "llama"))).model


def test_arms_take_turns_on_one_greedy_decode(tiny_llama):
    ids = dec.default_prompt(16, tiny_llama.vocab_size)
    st = parity.alternating_settings(12, 2, 60.0, segments=2)
    run, agreement = parity.run_alternating_loops(tiny_llama, ids, st)
    assert run.arms == ["mlxprof", "bare"] and run.stop == "segments" and len(run.segment) == 12
    assert all(s > 0 for arm_ in run.arms for s in run.seconds[arm_])
    assert agreement.match and agreement.compared == 2 + 12 and agreement.distinct_ids > 1, agreement.sentence
    # one decode, whichever arm ran a token: run_once's ids
    ref = dec.run_once(tiny_llama, ids, 2, 12).token_ids
    decode, arms = parity_loops.alternating_decode(tiny_llama, ids, 2)
    decode.restart(12)
    stamps = [0.0] * 13
    decode.y, ran = alternating.alternate([arms["bare"], arms["mlxprof"]] * 6, decode.step, decode.y, decode.times,
                                          decode.n, stamps, float("inf"))
    decode.n += ran
    decode.finish()
    assert ran == 12 and decode.segments[0] == ref and stamps == sorted(stamps)
    assert run.finite == [True, True] and decode.finite == [True]


def _bench(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name.replace(".", "_"), Path(__file__).parents[1] / "bench" / name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_json_is_saved_after_every_segment_and_a_failed_write_exits_1(tmp_path, monkeypatch, capsys):
    import json

    from mlxprof import results
    from mlxprof.errors import OutputError

    mod = _bench("parity.py")
    path = tmp_path / "alt.json"
    saved = []
    real = results.write_text_atomic
    monkeypatch.setattr(results, "write_text_atomic", lambda p, text: (saved.append(json.loads(text)), real(p, text)))
    args = ["--segments", "2", "--tokens", "6", "--warmup", "1", "--prompt-tokens", "4", "--quiet"]
    assert mod.main(args + ["--json", str(path)]) == 0
    assert [d["run"]["stop"] for d in saved] == ["partial", "segments"] and saved[0]["tokens"] is None
    doc = json.loads(path.read_text())
    assert doc["bench"] == "parity.py" and doc["setup"][0].startswith("machine: ")
    assert len(doc["run"]["seconds"]["bare"]) == 6 and doc["run"]["finite"] == [True, True]
    assert doc["tokens"]["match"] and doc["tokens"]["nonfinite"] == []

    def full(p, text):
        raise OutputError(f"cannot write {p}: No space left on device")

    monkeypatch.setattr(results, "write_text_atomic", full)
    mod.FAILED.clear()
    assert mod.main(args + ["--json", str(tmp_path / "b.json")]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("No space left on device; not saving again") == 1
    assert "mlxprof / bare: ×" in captured.out  # the figures are still printed
    assert mod.main(["--blocks", "--json", str(path)]) == 2
    assert mod.main(args + ["--json", str(path)]) == 2  # a second run never replaces the first's pairs
    assert "already holds a saved 'parity-bench' result" in capsys.readouterr().err
    assert json.loads(path.read_text()) == doc
