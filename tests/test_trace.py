"""Trace JSON against the Chrome trace-event rules Perfetto reads."""

import json
import math

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from mlxprof import trace
from mlxprof.cli import main
from mlxprof.decode import PHASES, RunRecord


def check(t):
    """Independent of trace.validate: the rules, spelled out."""
    evs = t["traceEvents"]
    assert evs
    json.loads(json.dumps(t))  # serialisable as plain JSON
    named_p = {e["pid"] for e in evs if e["ph"] == "M" and e["name"] == "process_name"}
    named_t = {(e["pid"], e["tid"]) for e in evs if e["ph"] == "M" and e["name"] == "thread_name"}
    tracks = {}
    for e in evs:
        assert e["ph"] in ("X", "M", "C", "i")
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        assert e["pid"] in named_p
        if e["ph"] != "M":
            assert isinstance(e["ts"], (int, float)) and math.isfinite(e["ts"]) and e["ts"] >= 0
        if e["ph"] in ("X", "i"):
            assert (e["pid"], e["tid"]) in named_t
        if e["ph"] == "X":
            assert e["dur"] >= 0
            s = int(e["ts"] * 1000.0)  # ns, as Perfetto's importer reads µs floats (truncating)
            tracks.setdefault((e["pid"], e["tid"]), []).append((s, s + int(e["dur"] * 1000.0)))
        if e["ph"] == "C":
            assert e["args"] and all(isinstance(v, (int, float)) and math.isfinite(v) for v in e["args"].values())
    for spans in tracks.values():  # on one track: nest or follow, never partly overlap
        spans.sort(key=lambda s: (s[0], -s[1]))
        for i, (s0, e0) in enumerate(spans):
            for s1, e1 in spans[i + 1:]:
                if s1 >= e0:
                    break
                assert e1 <= e0, f"partial overlap {(s0, e0)} {(s1, e1)}"
    assert trace.validate(t) == []


def synthetic_run(gaps, warmup=2, t0=1000.0):
    """A RunRecord whose phases follow each other within each token, the way
    run_once's loop produces them; gaps = (build, submit, wait, rest) in ms."""
    builds, subs, waits, starts, delivs, tok = [], [], [], [], [], []
    t = -sum(gaps[0][:3]) / 1e3
    prev = None
    for b, s, w, rest in gaps:
        starts.append(t)
        t += (b + s + w) / 1e3
        delivs.append(t)
        builds.append(b), subs.append(s), waits.append(w)
        tok.append((t - prev) * 1e3 if prev is not None else float("nan"))
        prev = t
        t += rest / 1e3
    base = delivs[0]
    n = len(gaps)
    return RunRecord(prompt_tokens=4, warmup=warmup, tokens=n, prefill_s=0.01, tok_s=10.0,
                     build_ms=builds, submit_ms=subs, wait_ms=waits, token_ms=tok, t0=t0 + base,
                     deliveries_s=[d - base for d in delivs], build_start_s=[s - base for s in starts],
                     peak_memory_bytes=0, token_ids=list(range(warmup + n)))


ms = st.floats(min_value=0.0, max_value=50.0, allow_nan=False)
token = st.tuples(ms, ms, ms, st.floats(min_value=0.0, max_value=5.0))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(token, min_size=1, max_size=30), min_size=1, max_size=3),
       st.lists(st.tuples(st.floats(0, 2.0), st.floats(0, 0.1)), max_size=40))
def test_synthetic_runs_make_a_valid_trace(runs, gpu):
    recs, t0 = [], 1000.0
    for gaps in runs:
        recs.append(synthetic_run(gaps, t0=t0))
        t0 += 5.0
    spans = [(f"k{i}", 1000.0 + s, d) for i, (s, d) in enumerate(gpu)]  # may overlap: lanes
    t = trace.build(recs, gpu_spans=spans)
    check(t)
    x = [e for e in t["traceEvents"] if e["ph"] == "X"]
    assert len(x) == sum(len(g) for g in runs) * len(PHASES) + len(gpu)
    assert sum(e["ph"] == "i" for e in t["traceEvents"]) == sum(len(g) for g in runs)
    gpu_x = [e for e in x if e["pid"] == trace.GPU_PID]
    assert sorted(e["dur"] for e in gpu_x) == pytest.approx(sorted(d * 1e6 for _, d in gpu), abs=0.002)


def test_phases_land_where_the_loop_put_them():
    r = synthetic_run([(1.0, 2.0, 3.0, 0.5), (1.5, 2.5, 0.0, 0.5)])
    t = trace.build([r])
    x = {(e["name"], e["args"]["token"]): e for e in t["traceEvents"] if e["ph"] == "X"}
    b, s, w = x["build", 0], x["submit", 0], x["wait", 0]
    assert b["ts"] == pytest.approx(0, abs=0.001) and b["dur"] == pytest.approx(1000, abs=0.01)
    assert s["ts"] == pytest.approx(1000, abs=0.01) and w["ts"] == pytest.approx(3000, abs=0.01)
    assert x["build", 1]["ts"] == pytest.approx(6500, abs=0.01)  # 6 ms token + 0.5 ms rest
    inst = [e for e in t["traceEvents"] if e["ph"] == "i"]
    assert inst[0]["ts"] == pytest.approx(6000, abs=0.01) and inst[0]["args"]["id"] == 2  # after 2 warm-up ids
    c = [e for e in t["traceEvents"] if e["ph"] == "C"]
    assert len(c) == 1 and c[0]["args"]["tok/s"] == pytest.approx(1e3 / 4.5, rel=1e-6)
    # without build_start_s (older results) the same starts are reconstructed
    old = r.model_copy(update={"build_start_s": []})
    flat = lambda rec: [x for p in trace.phase_starts(rec) for x in p]  # noqa: E731
    assert flat(old) == pytest.approx(flat(r), abs=1e-9)


def test_overlapping_gpu_spans_get_lanes_and_nested_ones_stay():
    r = synthetic_run([(1.0, 1.0, 1.0, 0.0)])
    start = r.t0 + r.build_start_s[0]
    spans = [("a", start, 0.002), ("b", start + 0.001, 0.002), ("inner", start, 0.001)]
    t = trace.build([r], gpu_spans=spans)
    check(t)
    tids = {e["name"]: e["tid"] for e in t["traceEvents"] if e["ph"] == "X" and e["pid"] == trace.GPU_PID}
    assert tids["a"] != tids["b"]
    names = {e["args"]["name"] for e in t["traceEvents"]
             if e["name"] in ("process_name", "thread_name") and e["pid"] == trace.GPU_PID}
    assert {"GPU", "kernels", "kernels #2"} <= names


def test_validate_catches_broken_traces():
    good = trace.build([synthetic_run([(1.0, 1.0, 1.0, 1.0)] * 3)])
    assert trace.validate(good) == []
    evs = good["traceEvents"]
    x = next(i for i, e in enumerate(evs) if e["ph"] == "X")
    overlap = dict(evs[x], ts=evs[x]["ts"] + evs[x]["dur"] / 2, dur=evs[x]["dur"] * 2)
    assert any("overlap" in p for p in trace.validate({"traceEvents": evs + [overlap]}))
    assert any("dur" in p for p in trace.validate({"traceEvents": evs + [dict(evs[x], dur=-1)]}))
    no_names = [e for e in evs if e["ph"] != "M"]
    probs = trace.validate({"traceEvents": no_names})
    assert any("process_name" in p for p in probs) and any("thread_name" in p for p in probs)
    c = next(e for e in evs if e["ph"] == "C")
    assert trace.validate({"traceEvents": evs + [dict(c, args={"tok/s": "fast"})]})
    assert trace.validate({"traceEvents": evs + [{"ph": "X", "pid": 1, "tid": 1, "name": "n", "dur": 1}]})


def test_decode_trace_end_to_end(tmp_path):
    out = tmp_path / "t.json"
    js = tmp_path / "r.json"
    res = CliRunner().invoke(main, ["decode", "-m", "gemma3n-tiny", "--runs", "2", "--warmup", "2",
                                    "--tokens", "6", "--prompt-tokens", "4", "-q",
                                    "--trace", str(out), "--json", str(js)])
    assert res.exit_code == 0, res.output
    t = json.loads(out.read_text())
    check(t)
    r = json.loads(js.read_text())
    x = [e for e in t["traceEvents"] if e["ph"] == "X"]
    assert {e["pid"] for e in x} == {1, 2}
    for k, run in enumerate(r["runs"]):
        assert len(run["build_start_s"]) == 6
        waits = sorted((e for e in x if e["pid"] == k + 1 and e["name"] == "wait"), key=lambda e: e["ts"])
        assert [round(e["dur"] / 1e3, 3) for e in waits] == [round(w, 3) for w in run["wait_ms"]]
        inst = sorted(e["ts"] for e in t["traceEvents"] if e["ph"] == "i" and e["pid"] == k + 1)
        # deliveries keep their spacing: span first→last equals the run's measured window
        assert (inst[-1] - inst[0]) / 1e6 == pytest.approx(run["deliveries_s"][-1], abs=1e-6)
        # the wait of each token ends at its delivery
        for w, ts in zip(waits, inst):
            assert w["ts"] + w["dur"] == pytest.approx(ts, abs=0.01)
    # runs are on one clock, in order
    first = lambda pid: min(e["ts"] for e in x if e["pid"] == pid)  # noqa: E731
    assert first(2) > max(e["ts"] for e in x if e["pid"] == 1)


def test_decode_trace_unwritable_fails_before_measuring(tmp_path):
    d = tmp_path / "adir"
    d.mkdir()
    res = CliRunner().invoke(main, ["decode", "-m", "gemma3n-tiny", "--trace", str(d)])
    assert res.exit_code == 2 and "directory" in res.output
