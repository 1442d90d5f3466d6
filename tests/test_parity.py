"""mlxprof parity: paired palindromic blocks, their statistics on simulated
hosts, the MLX loops block by block, and the CLI / bench / report around them."""

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mlxprof import decode as dec
from mlxprof import paired, parity, parity_loops, results
from mlxprof.cli import main
from mlxprof.session import open_session

sys.path.insert(0, str(Path(__file__).parent))
PUBLISHED = Path(__file__).resolve().parents[1] / "docs" / "benchmark_results"


# ---- simulated hosts: a clock, a drifting speed, per-token noise ------------------------------------

class Host:
    """Seconds per token = tau × loop factor × drift(t) × noise. The drift
    swings the speed about 2× over tens of seconds (like the H100 host whose
    runs ranged 31–60 tok/s); `noise` is per-token lognormal jitter."""

    def __init__(self, seed=0, tau=0.025, noise=0.03, swing=0.35, wobble=0.1):
        self.t, self.tau, self.noise, self.swing, self.wobble = 0.0, tau, noise, swing, wobble
        self.rng = np.random.default_rng(seed)

    def drift(self):
        return math.exp(self.swing * math.sin(2 * math.pi * self.t / 23.0)
                        + self.wobble * math.sin(2 * math.pi * self.t / 7.1))

    def decode(self, n, factor):
        total = 0.0
        for _ in range(n):
            dt = self.tau * factor * self.drift() * math.exp(self.rng.normal(0, self.noise))
            self.t += dt
            total += dt
        return total


class FakeLoop:
    """A BlockLoop whose tokens take the host's time × `factor`."""

    def __init__(self, host, factor=1.0):
        self.host, self.factor, self.decoded, self.restarts = host, factor, 0, 0

    def restart(self, tokens):
        self.restarts += 1
        self.decoded = 0
        self.host.decode(20, self.factor)  # prefill + warm-up, untimed

    def block(self, settle, tokens):
        self.host.decode(settle, self.factor)
        self.decoded += settle + tokens
        return self.host.decode(tokens, self.factor)

    def finish(self):
        pass


def settings(**kw):
    base = dict(block=8, settle=2, rounds_per_segment=5, budget_s=120.0, precision=0.005, min_rounds=12)
    return paired.PairedSettings(**{**base, **kw})


def simulate(factor_b, host=None, **kw):
    host = host or Host()
    loops = {"a": FakeLoop(host), "b": FakeLoop(host, factor_b)}
    return paired.run_rounds(loops, [("b", "a", 0.99)], settings(**kw), clock=lambda: host.t), loops


def test_a_2pc_slower_loop_resolves_under_heavy_drift():
    run, _ = simulate(1.02)  # b takes 2 % longer per token: tok/s ratio 1/1.02 = 0.980
    rates = run.tok_s("a")
    assert max(rates) / min(rates) > 1.6  # the host really swings (else this tests nothing)
    c = run.comparisons[0]
    assert c.ci_low <= 1 / 1.02 <= c.ci_high and c.ci_high < 0.99
    assert c.resolved and c.meets_target is False and c.verdict.startswith("resolved: below ×0.99")
    assert c.difference == "numerator slower" and c.p_value < 0.001
    assert run.stop == "precision" and c.half_width <= 0.005 and run.elapsed_s <= 120


def test_whole_runs_on_the_same_host_do_not_resolve_it():
    """The old design, interleaved whole runs compared as two samples, on the
    same simulated host: the drift swamps 2 %."""
    from mlxprof import stats

    host = Host()
    a, b = [], []
    while host.t < 120:
        for xs, f in ((a, 1.0), (b, 1.02)):
            host.decode(20, f)
            xs.append(100 / host.decode(100, f))
    c = stats.compare(a, b)
    assert c.ci_low < 0.99 < c.ci_high  # unresolved, where the paired blocks resolved it


def test_identical_loops_cover_1_and_show_no_difference():
    run, _ = simulate(1.0, host=Host(seed=1))
    c = run.comparisons[0]
    assert c.ci_low <= 1.0 <= c.ci_high
    assert c.difference == "none detected" and c.p_value > 0.05
    none = paired.compare_pairs(paired.pair_ratios(run.rounds, "b", "a"), "b", "a")
    assert none.verdict.startswith("no difference detected") and none.target is None


def test_stalled_rounds_do_not_decide_it():
    """Another tenant now and then stalls one loop's block 2-5×: the plain
    geometric mean follows those rounds, the trimmed one does not."""
    class Stalled(FakeLoop):
        def block(self, settle, tokens):
            t = super().block(settle, tokens)
            if self.host.rng.random() < 0.04:
                stall = t * self.host.rng.uniform(1, 4)
                self.host.t += stall
                t += stall
            return t

    host = Host(seed=5)
    loops = {"a": Stalled(host), "b": Stalled(host)}
    run = paired.run_rounds(loops, [("b", "a", 0.99)], settings(max_rounds=60, precision=0.0),
                            clock=lambda: host.t)
    c = run.comparisons[0]
    logs = np.log(paired.pair_ratios(run.rounds, "b", "a"))
    assert np.mean(np.abs(logs) > 0.5) > 0.05  # stalled rounds are there
    from scipy import stats as sps

    plain = sps.bootstrap((logs,), np.mean, n_resamples=2000, rng=np.random.default_rng(0)).confidence_interval
    assert c.ci_low <= 1.0 <= c.ci_high and c.difference == "none detected"
    assert c.half_width < (math.exp(plain.high) - math.exp(plain.low)) / 2 / 2  # half as wide, or less


def test_palindromes_cancel_linear_drift_exactly():
    class Linear(FakeLoop):  # no noise; each block is slower than the one before by the same step
        def block(self, settle, tokens):
            self.host.blocks = getattr(self.host, "blocks", 0) + 1
            dt = tokens * 0.01 * (1 + 0.05 * self.host.blocks)
            self.host.t += dt
            return dt

    host = Host()
    run = paired.run_rounds({"a": Linear(host), "b": Linear(host), "c": Linear(host)},
                            [("b", "a", None), ("c", "a", None)], settings(min_rounds=3),
                            clock=lambda: host.t)
    assert run.stop == "precision"
    for num in ("b", "c"):
        assert paired.pair_ratios(run.rounds, num, "a") == pytest.approx([1.0] * len(run.rounds), abs=1e-12)
    ab = [r.seconds[0] / r.seconds[1] for r in run.rounds]  # A then B, not mirrored: drift shows
    assert all(abs(x - 1) > 1e-4 for x in ab)
    assert [r.order for r in run.rounds[:3]] == [list("abccba"), list("bcaacb"), list("cabbac")]


def test_every_loop_decodes_the_same_positions_each_round():
    host = Host()
    loops = {"a": FakeLoop(host), "b": FakeLoop(host, 1.01)}
    seen = []
    paired.run_rounds(loops, [("b", "a", 0.99)], settings(max_rounds=12, rounds_per_segment=4),
                      clock=lambda: host.t, on_round=lambda r, c: seen.append((loops["a"].decoded,
                                                                               loops["b"].decoded)))
    assert len(seen) == 12 and all(x == y for x, y in seen)
    assert [x for x, _ in seen[:5]] == [20, 40, 60, 80, 20]  # restarted every 4 rounds
    assert loops["a"].restarts == loops["b"].restarts == 3


class FakeLane(FakeLoop):
    """A FakeLoop that is a lane of `lanes`; notes the settle of every block."""

    def __init__(self, host, lanes, factor=1.0):
        super().__init__(host, factor)
        self.lanes, self.settles = lanes, []

    def block(self, settle, tokens):
        self.settles.append(settle)
        return super().block(settle, tokens)


def test_lanes_settle_after_another_loop_not_after_their_own_block():
    def settles(**kw):
        host, shared = Host(), object()
        loops = {"a": FakeLane(host, shared), "b": FakeLane(host, shared), "c": FakeLane(host, None)}
        run = paired.run_rounds(loops, [("b", "a", 0.99)], settings(max_rounds=3, rounds_per_segment=2, **kw),
                                clock=lambda: host.t)
        return run, {name: loop.settles for name, loop in loops.items()}

    # a b c c b a | b c a a c b | (restart) c a b b a c
    run, got = settles()
    assert got["a"] == [2, 2, 2, 0, 2, 2] and got["b"] == [2, 2, 2, 2, 2, 0]
    assert got["c"] == [2] * 6  # not a lane (lanes None): settles after every block, its own too
    assert run.settings.lanes == ["a", "b"] and run.settings.lane_settle == 2
    assert "a and b are lanes of one cache" in run.method and "runs 2 settle tokens" in run.method
    _, got = settles(lane_settle=0)  # token-adjacent lanes (biased: see PairedSettings.lane_settle)
    assert got["a"] == [0] * 6 and got["b"] == [0] * 6 and got["c"] == [2] * 6


def test_stops_at_the_budget_and_says_unresolved():
    # ratio exactly at the target, noisy host: the CI cannot leave 0.99
    run, _ = simulate(1 / 0.99, host=Host(noise=0.3), budget_s=30.0)
    c = run.comparisons[0]
    assert run.stop == "budget" and run.elapsed_s <= 30.0 and len(run.rounds) >= paired.MIN_PAIRS
    assert c.half_width > 0.005 and c.resolved is False
    assert c.verdict.startswith("unresolved at budget") and "spans ×0.99" in c.verdict
    assert "budget" in paired.stop_sentence(run)


def test_stops_early_on_precision_and_at_the_round_limit():
    quiet, _ = simulate(1.0, host=Host(noise=0.001, swing=0.0, wobble=0.0))
    assert quiet.stop == "precision" and len(quiet.rounds) == 12 and quiet.elapsed_s < 20
    capped, _ = simulate(1.02, max_rounds=5)
    assert capped.stop == "rounds" and len(capped.rounds) == 5
    assert capped.comparisons[0].verdict.startswith("unresolved at the round limit: fewer than 6 pairs")


def test_compare_pairs_edge_cases():
    one = paired.compare_pairs([0.9], "x", "y", 0.99)
    assert one.ci_low is None and one.half_width is None and "no CI" in one.sentence()
    few = paired.compare_pairs([0.9, 0.91, 0.9], "x", "y", 0.99)
    assert few.pairs == 3 and few.resolved is False and few.difference == "too few pairs"
    same = paired.compare_pairs([0.95] * 10, "x", "y", 0.99)
    assert same.ci_low == pytest.approx(0.95) == same.ci_high and same.verdict.startswith("resolved: below")
    assert paired.compare_pairs([1.0] * 10, "x", "y").difference == "none detected"
    above = paired.compare_pairs([1.001, 0.999, 1.002, 1.0, 0.998, 1.001, 1.0, 0.999], "x", "y", 0.99)
    assert above.resolved and above.meets_target and "≥ ×0.99" in above.verdict


# ---- the MLX loops -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    return open_session("gemma3n-tiny").model


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    from tiny_checkpoints import write

    return open_session(str(write(tmp_path_factory.mktemp("llama") / "llama", "llama"))).model


def _segments(loaded, names, ids, warmup=2, blocks=3, tokens=3):
    loops = parity_loops.make_loops(loaded, names, ids, warmup)
    for loop in loops.values():
        loop.restart(blocks * (2 + tokens))
        spans = [loop.block(2, tokens) for _ in range(blocks)]
        assert all(s > 0 for s in spans)
        loop.finish()
    return {name: loop.segments[0] for name, loop in loops.items()}


@pytest.mark.parametrize("which", ["tiny", "tiny_llama"])
def test_every_loop_generates_the_same_greedy_ids(which, request):
    loaded = request.getfixturevalue(which)
    ids = dec.default_prompt(16, loaded.vocab_size)
    names = parity.loops_for(loaded, bench=True)
    assert names == ("mlxprof", "bare", "mlx-vlm" if which == "tiny" else "mlx-lm")
    got = _segments(loaded, names, ids)
    assert all(len(v) == 2 + 3 * 5 for v in got.values())
    assert got["mlxprof"] == got["bare"] == got[names[2]], got
    if which == "tiny_llama":
        assert len(set(got["mlxprof"])) > 1  # random weights, varied ids: a real check
    ref = dec.run_once(loaded, ids, 2, 15)  # the step loop is run_once's loop, a block at a time
    assert ref.token_ids == got["mlxprof"]


def test_lanes_take_turns_on_one_greedy_decode(tiny_llama):
    ids = dec.default_prompt(16, tiny_llama.vocab_size)
    loops = parity_loops.make_loops(tiny_llama, ("mlxprof", "bare", "mlx-lm"), ids, 2, lanes=True)
    assert loops["mlxprof"].lanes is loops["bare"].lanes and getattr(loops["mlx-lm"], "lanes", None) is None
    for loop in loops.values():
        loop.restart(12)
    for name, settle in (("mlxprof", 2), ("bare", 0), ("bare", 0), ("mlxprof", 0), ("mlx-lm", 2)):
        assert loops[name].block(settle, 3) > 0
    for loop in loops.values():
        loop.finish()
    both = loops["mlxprof"].segments[0]
    assert both is loops["bare"].segments[0] and len(both) == 2 + 2 + 4 * 3
    assert both == dec.run_once(tiny_llama, ids, 2, 14).token_ids  # one decode, whichever lane ran a token
    agree = parity.token_agreement(parity.loop_runs(loops, SimpleRun()))
    assert agree.match, agree.sentence


class SimpleRun:
    """A PairedRun stand-in: one segment, any rate."""

    def __init__(self):
        self.rounds = [object()]

    def segment_tok_s(self, name):
        return [1.0]


def test_step_runs_every_op_on_its_own_stream():
    """A decode step must not touch another stream: an op there (a token
    expanded outside `with mx.stream`) makes MLX fence the streams, which on
    CUDA waits on the host and serializes the lookahead loop. On the CPU
    backend each stream is its own queue, so a step that touches the default
    stream waits behind whatever work is queued there."""
    import mlx.core as mx

    class Toy:  # a model: embedding row @ head, no cache
        emb = mx.random.normal((64, 32))
        head = mx.random.normal((32, 64))

        def logits(self, ids, cache):
            return self.emb[ids] @ self.head

    step = dec.make_step(Toy(), None, mx.new_stream(mx.default_device()))
    a = mx.random.normal((384, 384))
    mx.eval(a, Toy.emb, Toy.head)

    def busy():
        x = a
        for _ in range(20):
            x = (x @ a) * (1 / 20)
        return x

    def waited(call):  # seconds a step takes while the default stream is busy
        work = busy()
        mx.async_eval(work)
        t = time.perf_counter()
        mx.eval(call())
        dt = time.perf_counter() - t
        mx.eval(work)
        return dt

    t = time.perf_counter()
    mx.eval(busy())
    t_busy = time.perf_counter() - t
    y = mx.argmax(mx.random.normal((1, 64)), axis=-1)
    mx.eval(y)
    own = waited(lambda: step(y)[0])
    outside = waited(lambda: step(y[:, None])[0])  # the token expanded on the default stream
    assert outside > t_busy / 3 > own, (own, outside, t_busy)
    assert step(y)[0].item() == step(y[:, None])[0].item()


# ---- the command, the bench, the report ------------------------------------------------------------

def _parity_cli(tmp_path, *args):
    """`mlxprof parity -m gemma3n-tiny` in 2-token blocks after a 4-token prompt, quiet, saved to
    a JSON file: (its path, click's result), the exit checked."""
    out = tmp_path / "p.json"
    res = CliRunner().invoke(main, ["parity", "-m", "gemma3n-tiny", *args, "--block", "2", "--prompt-tokens", "4",
                                    "-q", "--json", str(out)])
    assert res.exit_code == 0, res.output
    return out, res


def test_parity_command_end_to_end_and_json_round_trip(tmp_path):
    out, res = _parity_cli(tmp_path, "--budget", "4", "--warmup", "2", "--tokens", "8")
    assert "mlxprof / mlx-vlm: ×" in res.output and "token ids" in res.output and "paired blocks" in res.output
    r = results.load(out, parity.ParityResult)
    assert r.kind == "parity" and r.comparison is None and r.paired is not None
    run = r.paired
    assert r.order == run.loops == ["mlxprof", "mlx-vlm"]
    assert run.settings.block == 2 and run.settings.rounds_per_segment == 1 and run.settings.budget_s == 4
    assert run.elapsed_s <= 4.0 + 1.0 and len(run.rounds) >= 1
    c = run.comparisons[0]
    assert (c.numerator, c.denominator, c.target, c.pairs) == ("mlxprof", "mlx-vlm", 0.98, len(run.rounds))
    ratios = paired.pair_ratios(run.rounds, "mlxprof", "mlx-vlm")
    assert c.mean_ratio == pytest.approx(math.exp(np.mean(np.log(ratios))))
    assert min(ratios) <= c.ratio <= max(ratios)
    assert r.tok_s["mlxprof"].samples == pytest.approx(run.tok_s("mlxprof"))
    assert len(r.runs) == 2 * len({x.segment for x in run.rounds})  # each loop, each segment
    assert r.tokens.match and all(len(x.token_ids) == 2 + 2 * (2 + 2) for x in r.runs)
    assert any(n.startswith("method: paired blocks") for n in r.notes)
    again = parity.ParityResult.model_validate_json(r.model_dump_json(by_alias=True))
    assert again == r
    with pytest.raises(Exception):
        results.load(out, dec.DecodeResult)  # kind is checked


def test_a_one_round_result_saves_loads_and_renders(tmp_path):
    from mlxprof import report

    out, res = _parity_cli(tmp_path, "--rounds", "1", "--warmup", "1", "--tokens", "8")
    assert "no CI" in res.output and "fewer than 6 pairs" in res.output
    r = results.load(out, parity.ParityResult)
    assert r.paired.comparisons[0].ci_low is None and len(r.paired.rounds) == 1
    docs = report.load_results([str(out)])  # strict schema check, as `mlxprof report --from` does
    assert "| – | – |" in report.markdown.parity_section(docs["parity"], {})


def test_published_interleaved_results_still_load_and_render(capsys):
    from mlxprof import render
    from mlxprof.report import markdown

    path = PUBLISHED / "llama3.2-1b-4bit-nvidia-h200.parity.json"
    r = results.load(path, parity.ParityResult)
    assert r.paired is None and r.comparison is not None
    render.parity_table(r)
    assert "interleaved" in capsys.readouterr().out
    md = markdown.parity_section(json.loads(path.read_text()), {})
    assert "interleaved rounds" in md and f"×{r.comparison.ratio:.3f}" in md


def test_paired_results_render_in_the_report(tmp_path):
    from mlxprof.report import markdown

    out, res = _parity_cli(tmp_path, "--rounds", "2", "--warmup", "1", "--tokens", "12")
    d = json.loads(out.read_text())
    assert d["paired"]["stop"] == "rounds"
    md = markdown.parity_section(d, {})
    c = d["paired"]["comparisons"][0]
    assert "## Parity with mlx-vlm's own loop" in md and f"×{c['ratio']:.4f}" in md and "2 rounds in" in md


def test_bookkeeping_cost_is_measured():
    c = parity_loops.bookkeeping_s(20_000)
    assert 0 < c < 1e-4  # four clock reads and five stores: well under 100 µs


@pytest.mark.parametrize("args, msg", [
    (["--budget", "0"], "--budget"),
    (["--block", "0"], "--block"),
    (["--block", "50", "--tokens", "20"], "--block 50 needs --tokens ≥ 104"),
    (["--rounds", "0"], "--rounds"),
    (["--tokens", "1"], "--tokens"),
    (["--warmup", "-3"], "--warmup"),
    (["--model", "gemma9-nope"], "gemma9-nope"),
    (["--prompt", "hi"], "tokenizer"),
])
def test_bad_input_exits_2(args, msg):
    base = ["parity", "-q"] + ([] if "--model" in args else ["-m", "gemma3n-tiny"])
    res = CliRunner().invoke(main, base + args)
    assert res.exit_code == 2, res.output
    assert res.output.startswith("mlxprof: error:") and msg in res.output


def test_unwritable_json_fails_before_measuring(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    res = CliRunner().invoke(main, ["parity", "-m", "gemma3n-tiny", "--json", str(d)])
    assert res.exit_code == 2 and "directory" in res.output


def _bench(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name.replace(".", "_"), Path(__file__).parents[1] / "bench" / name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_runs_and_prints_every_comparison(capsys):
    mod = _bench("parity.py")
    assert mod.main(["--rounds", "2", "--tokens", "8", "--block", "2", "--warmup", "1", "--prompt-tokens", "4",
                     "--with-library"]) == 0
    out = capsys.readouterr().out
    for line in ("machine: ", "versions: mlx ", "round   1 @", "mlxprof / bare: ×", "resolved vs ×0.99: ",
                 "mlxprof / mlx-vlm: ×", "resolved vs ×0.98: ", "bare / mlx-vlm: ×", "2 rounds in", "µs/token",
                 "token ids"):
        assert line in out, line
    assert mod.main(["--budget", "0"]) == 2
    assert mod.main(["--blocks", "--rounds", "2", "--warmup", "1", "--prompt-tokens", "4"]) == 0  # lanes, 4-token blocks
    out = capsys.readouterr().out
    assert "loops: mlxprof, bare; blocks of 2 + 4 tokens" in out and "mlxprof / mlx-vlm" not in out
    # the default: per-token alternation
    assert mod.main(["--segments", "2", "--tokens", "8", "--warmup", "1", "--prompt-tokens", "4"]) == 0
    out = capsys.readouterr().out
    for line in ("loops: mlxprof, bare, taking turns token by token", "segment   1 @", "mlxprof / bare: ×",
                 "resolved vs ×0.99: ", "8 pairs of tokens in 2 segments", "2 segments were run", "first in",
                 "host noise:", "one clock read (the probe both arms carry)", "same greedy token ids in all 2 segments"):
        assert line in out, line
    for bad in (["--block", "4"], ["--rounds", "3"], ["--separate-caches"], ["--blocks", "--segments", "2"],
                ["--tokens", "1"]):
        assert mod.main(bad) == 2, bad
    err = capsys.readouterr().err
    assert "--block: only with --blocks" in err and "--segments applies to per-token alternation" in err


def test_step_variants_bench_runs(capsys):
    mod = _bench("step_variants.py")
    assert mod.main(["--rounds", "2", "--tokens", "8", "--block", "2", "--warmup", "1", "--prompt-tokens", "4"]) == 0
    out = capsys.readouterr().out
    for name in mod.VARIANTS:
        assert f"{name} / mlxprof: ×" in out, name
    assert "mlx-vlm / mlxprof: ×" in out and "token ids" in out


def test_partial_results_are_saved_between_segments(tmp_path, monkeypatch):
    saved = []
    monkeypatch.setattr(results, "save", lambda r, path: saved.append(r.model_copy(deep=True)))
    r = parity.parity("gemma3n-tiny", rounds=3, warmup=1, tokens=8, block=2, prompt_tokens=4,
                      json_path=str(tmp_path / "p.json"))
    assert [len(x.paired.rounds) for x in saved] == [1, 2]  # after segments 1 and 2; the caller saves the last
    assert all(x.paired.stop == "partial" and "partial" in " ".join(x.notes) for x in saved)
    assert [len(x.runs) for x in saved] == [2, 4] and all(x.tokens.match for x in saved)
    assert r.paired.stop == "rounds" and len(r.paired.rounds) == 3 and len(r.runs) == 6


def test_parity_primes_before_its_time_budget_starts(monkeypatch):
    """A cold machine compiles its kernels in a discarded priming run, not inside the budget."""
    from mlxprof import coldstart, parity

    primed = []
    real = coldstart.Priming.run

    def slow_priming(self, model, ids, *a, **kw):
        primed.append(len(ids))
        time.sleep(1.5)  # as if compiling kernels
        return real(self, model, ids, *a, **kw)

    monkeypatch.setattr(coldstart.Priming, "run", slow_priming)
    res = parity.parity("gemma3n-tiny", rounds=2, warmup=1, tokens=12, block=2, prompt_tokens=4, budget=60)
    assert primed == [4]
    assert res.paired.rounds and res.paired.rounds[0].t_s < 1.5  # the clock started after the priming run


def test_the_library_loop_starts_in_a_process_that_deferred_its_package():
    """A fresh process that opened a Gemma 3n model (mlx_vlm's __init__ deferred,
    models/lean.py) starts mlx-vlm's own generator without a circular import."""
    code = ("from mlxprof.models import lean; lean.enable()  # as the CLI does for token-id prompts\n"
            "from mlxprof.session import open_session; from mlxprof import parity_loops\n"
            "s = open_session('gemma3n-tiny')\n"
            "loop = parity_loops.make_loops(s.model, ('mlx-vlm',), s.prompt(4), 1)['mlx-vlm']\n"
            "loop.restart(4); print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_lane_method_names_the_settle_lanes_run_when_none_was_set():
    st = paired.PairedSettings(block=4, settle=2, rounds_per_segment=3, budget_s=1.0, precision=0.005, min_rounds=12,
                               lanes=["mlxprof", "bare"])
    assert "a lane's block runs 2 settle tokens after the other lane's" in st.method()
    assert "None" not in st.method()


def test_token_agreement_names_the_first_difference_and_ignores_longer_lanes():
    run = lambda loop, ids, k=0: parity.LoopRun(loop=loop, round=k, tok_s=1.0, token_ids=ids)  # noqa: E731
    same = parity.token_agreement([run("mlxprof", [1, 2, 3]), run("bare", [1, 2, 3, 4, 5])])
    assert same.match and same.mismatches == [] and "up to 5 tokens each" in same.sentence
    bad = parity.token_agreement([run("mlxprof", [1, 2, 3]), run("bare", [1, 2, 9]), run("mlx-lm", [7, 2, 3], 1)])
    assert bad.mismatches == ["bare round 1: first differs at token 2 (mlxprof 3, bare 9)",
                              "mlx-lm round 2: first differs at token 0 (mlxprof 1, mlx-lm 7)"]
    assert bad.sentence.startswith("token ids DIFFER between loops: bare round 1") and "(+1 more)" in bad.sentence
    weak = parity.token_agreement([run("mlxprof", [4, 4]), run("bare", [4, 4])])
    assert weak.sentence.endswith(parity.WEAK_CHECK)
