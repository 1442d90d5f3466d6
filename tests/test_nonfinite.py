"""A decode whose arithmetic broke down (NaN or inf log-probabilities) is
named in every result that measured it: decode's notes, parity's and the
per-token bench's token check. Poisoned here by a NaN in one weight."""

import sys
from pathlib import Path

import mlx.core as mx
import pytest
from click.testing import CliRunner

from mlxprof import decode as dec
from mlxprof import parity, parity_loops, results
from mlxprof.cli import main
from mlxprof.session import open_session

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    from tiny_checkpoints import write

    return open_session(str(write(tmp_path_factory.mktemp("llama") / "llama", "llama"))).model


def poison(loaded):
    """A NaN in the final norm's weight: every later step's logits are NaN."""
    norm = loaded.model.model.norm
    old = norm.weight
    norm.weight = mx.full(old.shape, float("nan"), dtype=old.dtype)
    return lambda: setattr(norm, "weight", old)


def test_the_check_after_a_run_sees_nan_logits(llama):
    ids = dec.default_prompt(8, llama.vocab_size)
    healthy = dec.run_once(llama, ids, 1, 4)
    assert healthy.finite is True and dec.nonfinite_note([healthy]) is None
    undo = poison(llama)
    try:
        broken = dec.run_once(llama, ids, 1, 4)
    finally:
        undo()
    assert broken.finite is False
    note = dec.nonfinite_note([healthy, broken])
    assert note.startswith("WARNING: run 2 of 2 computed NaN or inf log-probabilities")


def test_a_nan_that_reached_the_kv_cache_is_seen_after_the_run(llama):
    """One step with a NaN in layer 0's value projection writes NaN values
    into the cache; the weight is restored at once, yet every later token
    attends to that position, so the check after the run sees it."""
    ids = dec.default_prompt(8, llama.vocab_size)
    attn = llama.model.model.layers[0].self_attn
    old = attn.v_proj.weight

    def on_token(n):
        if n == 2:
            attn.v_proj.weight = mx.full(old.shape, float("nan"), dtype=old.dtype)
        elif n == 3:
            attn.v_proj.weight = old

    try:
        rec = dec.run_once(llama, ids, 1, 6, on_token=on_token)
    finally:
        attn.v_proj.weight = old
    assert rec.finite is False
    assert dec.run_once(llama, ids, 1, 6).finite is True  # restored: a fresh cache is healthy


def test_parity_loops_name_the_broken_segments(llama):
    ids = dec.default_prompt(8, llama.vocab_size)
    st = parity.alternating_settings(6, 1, 60.0, segments=1)
    _, ok = parity.run_alternating_loops(llama, ids, st)
    assert ok.match and "WARNING" not in ok.sentence
    undo = poison(llama)
    try:
        _, bad = parity.run_alternating_loops(llama, ids, st)
        loops = parity_loops.make_loops(llama, ("mlxprof", "bare"), ids, 1, lanes=True)
        for loop in loops.values():
            loop.restart(4)
        loops["mlxprof"].block(0, 2)
        loops["bare"].block(0, 2)
        for loop in loops.values():
            loop.finish()
    finally:
        undo()
    assert not bad.match and "WARNING: NaN or inf log-probabilities after segment 1" in bad.sentence
    assert bad.nonfinite == ["segment 1"] and bad.mismatches == []

    class OneSegment:
        rounds = [object()]

        def segment_tok_s(self, name):
            return [1.0]

    agree = parity.token_agreement(parity.loop_runs(loops, OneSegment()))
    assert not agree.match and "after mlxprof round 1, bare round 1" in agree.sentence


def test_decode_result_warns_when_a_run_broke_down(tmp_path, monkeypatch):
    verdicts = iter([True, True, False])  # the priming run, run 1, run 2

    monkeypatch.setattr(dec, "logits_finite", lambda step, y: next(verdicts))
    path = tmp_path / "d.json"
    r = CliRunner().invoke(main, ["decode", "-m", "gemma3n-tiny", "--runs", "2", "--warmup", "1", "--tokens", "3",
                                  "--prompt-tokens", "4", "--json", str(path), "--quiet"])
    assert r.exit_code == 0, r.output
    res = results.load(path, dec.DecodeResult)
    assert [run.finite for run in res.runs] == [True, False]
    assert any(n.startswith("WARNING: run 2 of 2 computed NaN") for n in res.notes)
    assert "WARNING: run 2 of 2" in r.output


def test_the_note_says_which_runs():
    class Run:
        def __init__(self, finite):
            self.finite = finite

    assert dec.nonfinite_note([Run(True), Run(None)], "depth 512") is None  # None: results before the check
    note = dec.nonfinite_note([Run(False), Run(True), Run(False)], "depth 512")
    assert note.startswith("WARNING: depth 512, runs 1, 3 of 3 computed NaN or inf log-probabilities")
