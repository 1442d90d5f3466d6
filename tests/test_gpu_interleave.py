"""Interleaving traced and untraced runs: the order, the recorder switched on for
traced runs only, and each kind's tracing cost from the runs of one process."""

from types import SimpleNamespace

import pytest
from cuda_kernel_names import QMV, RMS

from mlxprof.gpu import interleave
from mlxprof.gpu.clock import ClockFit
from mlxprof.gpu.interleave import GRAPH, KERNEL, NVML, UNTRACED, run_schedule, schedule, timeline_of
from mlxprof.gpu.timeline import GRAPH_NAME, Kernel, analyze, combine
from mlxprof.progress import schedule_ticker

IDENTITY = ClockFit(ref_ns=0, offset_s=0.0, slope=1.0, pairs=2, span_s=1, residual_us=0, uncertainty_us=0)
MS = 1_000_000


def test_schedule_pairs_untraced_with_graph_traced_runs_and_puts_kernel_runs_last():
    assert schedule(3, busy=GRAPH) == [UNTRACED, GRAPH, GRAPH, UNTRACED, UNTRACED, GRAPH, KERNEL]
    assert schedule(2, kernel_runs=2, busy=GRAPH) == [UNTRACED, GRAPH, GRAPH, UNTRACED, KERNEL, KERNEL]
    assert schedule(1, kernel_runs=0, busy=GRAPH) == [UNTRACED, GRAPH]
    # CUPTI kernel-level busy (NVML unreadable): kernel runs paired with untraced ones, no table runs
    assert schedule(3, busy=KERNEL) == [UNTRACED, KERNEL, KERNEL, UNTRACED, UNTRACED, KERNEL]
    # the default, NVML busy over the untraced runs: the table's kernel runs between them
    assert schedule(3) == [UNTRACED, KERNEL, UNTRACED, KERNEL, UNTRACED]
    assert schedule(1) == [UNTRACED, KERNEL, KERNEL]
    assert schedule(4, kernel_runs=1, busy=NVML) == [UNTRACED, KERNEL, UNTRACED, UNTRACED, UNTRACED]


def test_segments_give_every_kernel_traced_run_its_own_stream():
    from mlxprof.gpu.interleave import segments

    assert segments([UNTRACED, KERNEL, KERNEL, UNTRACED, UNTRACED, KERNEL]) == [
        [UNTRACED], [KERNEL], [KERNEL], [UNTRACED, UNTRACED], [KERNEL]]
    assert segments([UNTRACED, GRAPH, GRAPH, UNTRACED, KERNEL]) == [[UNTRACED, GRAPH, GRAPH, UNTRACED], [KERNEL]]
    for n in range(1, 6):
        order = schedule(n, busy=GRAPH)
        assert order.count(UNTRACED) == order.count(GRAPH) == n
        firsts = [order[2 * i] for i in range(n)]  # neither kind always goes first in its pair
        assert firsts.count(UNTRACED) == (n + 1) // 2


class FakeRecorder:
    """Records start/stop/close calls; `active` while a level is enabled."""

    def __init__(self, refuse=False):
        self.calls, self.active, self.refuse, self.detach = [], None, refuse, True

    def start(self, level):
        if self.refuse:
            raise RuntimeError("refused")
        assert self.active is None, "started twice"
        self.active = level
        self.calls.append(("start", level))
        return ["graph", "kernel"] if level == GRAPH else ["kernel"]

    def stop(self):
        self.calls.append(("stop", self.active))
        self.active = None

    def close(self):
        self.calls.append(("close", self.active))


def fake_measure(recorder, seen, fail_at=None, calls=None):
    """decode.measure's shape: n runs, on_run after each; notes what was enabled
    during each run, and (in `calls`) how many runs each call (each stream) made."""

    def measure(n, on_run):
        if calls is not None:
            calls.append(n)
        for _ in range(n):
            i = len(seen)
            if i == fail_at:
                raise RuntimeError("boom")
            seen.append(recorder.active)
            on_run(SimpleNamespace(i=i, tok_s=10.0 + i))

    return measure


def test_run_schedule_enables_the_recorder_for_traced_runs_only():
    rec, seen, labels, calls = FakeRecorder(), [], [], []
    order = schedule(2, busy=GRAPH)
    by, kinds = run_schedule(fake_measure(rec, seen, calls=calls), order, rec,
                             on_run=lambda label, r: labels.append(label))
    assert seen == [None, GRAPH, GRAPH, None, KERNEL]  # what was enabled while each run ran
    assert calls == [4, 1]  # the kernel-traced run on a stream of its own
    assert labels == order
    assert [r.i for r in by[UNTRACED]] == [0, 3] and [r.i for r in by[GRAPH]] == [1, 2] and \
        [r.i for r in by[KERNEL]] == [4]
    assert rec.calls == [("start", GRAPH), ("stop", GRAPH), ("start", GRAPH), ("stop", GRAPH),
                         ("start", KERNEL), ("stop", KERNEL), ("close", None)]
    assert kinds == {GRAPH: ["graph", "kernel"], KERNEL: ["kernel"]}


def test_run_schedule_closes_the_recorder_when_a_run_fails():
    rec = FakeRecorder()
    with pytest.raises(RuntimeError, match="boom"):
        run_schedule(fake_measure(rec, [], fail_at=2), schedule(2, busy=GRAPH), rec)
    assert rec.calls[-1] == ("close", GRAPH)  # closed while the failed run's level was still on


class TimelineRecorder:
    """A recorder after the runs: records already taken, `analyze` as the real one."""

    detach = True

    def __init__(self, kernels):
        self.kernels = kernels

    def analyze(self, runs, kinds=None):
        return analyze(self.kernels, IDENTITY, runs, list(kinds or []))


def run_at(t0, n, dt, tok_s):
    return SimpleNamespace(t0=t0, deliveries_s=[i * dt for i in range(n)], tok_s=tok_s)


def test_timeline_of_takes_busy_from_graph_runs_the_table_from_kernel_runs_and_costs_from_pairs():
    # untraced runs 100, 104, 96 tok/s; graph-traced 97, 99, 95; kernel-traced 80
    u = [run_at(0.0, 5, 0.01, 100.0), run_at(1.0, 5, 0.01, 104.0), run_at(2.0, 5, 0.01, 96.0)]
    g = [run_at(0.5, 5, 0.01, 97.0), run_at(1.5, 5, 0.01, 99.0), run_at(2.5, 5, 0.01, 95.0)]
    k = [run_at(3.0, 5, 0.01, 80.0)]
    recs = []
    for r in g:  # one 6 ms graph per 10 ms token interval
        recs += [Kernel(int((r.t0 + 0.01 * i) * 1e9), int((r.t0 + 0.01 * i + 0.006) * 1e9), GRAPH_NAME, "graph", 2)
                 for i in range(4)]
    for i in range(4):  # kernel level: two kernels of 2 ms per interval
        b = int((3.0 + 0.01 * i) * 1e9)
        recs += [Kernel(b, b + 2 * MS, QMV, "kernel", 2), Kernel(b + 3 * MS, b + 5 * MS, RMS, "kernel", 2)]
    by = {UNTRACED: u, GRAPH: g, KERNEL: k}
    traced = [g[0], g[1], g[2], k[0]]
    tl = timeline_of(TimelineRecorder(recs), by, {GRAPH: ["graph", "kernel"], KERNEL: ["kernel"]}, traced)
    assert tl.busy_level == "graph" and tl.busy_fraction == pytest.approx(0.6)
    assert tl.graphs_per_token == pytest.approx(1.0) and tl.runs == 3
    assert tl.table_level == "kernel" and tl.table_runs == 1
    assert tl.kernels_per_token == pytest.approx(2.0) and tl.kernel_busy_fraction == pytest.approx(0.4)
    assert [x.name for x in tl.top_kernels] == ["qmv_kernel", "rms_norm"]
    gt, kt = tl.tiers
    assert (gt.name, gt.level, gt.runs, kt.name, kt.level, kt.runs) == (GRAPH, "graph", [0, 1, 2], KERNEL, "kernel", [3])
    assert gt.overhead.ratio == pytest.approx(97.0 / 100.0)  # median traced / median untraced
    assert gt.overhead.baseline_summary.samples == [100.0, 104.0, 96.0]
    assert kt.overhead.ratio == pytest.approx(0.80)
    assert tl.overhead == gt.overhead and tl.traced_tok_s.median == 97.0
    # the spans of both kinds of run, in time order, for the trace
    spans = tl.spans()
    assert spans[0][0] == GRAPH_NAME and spans[-1][0] == "rms_norm" and len(spans) == 12 + 8


def test_graph_level_busy_counts_gaps_inside_a_graph_kernel_level_does_not():
    # one graph of 10 ms holding two 3 ms kernels: graph level 100% busy, kernel level 60%
    run = run_at(0.0, 2, 0.010, 100.0)
    graph = analyze([Kernel(0, 10 * MS, GRAPH_NAME, "graph", 1)], IDENTITY, [run], ["graph"])
    kern = analyze([Kernel(0, 3 * MS, QMV, "kernel", 1), Kernel(7 * MS, 10 * MS, QMV, "kernel", 1)],
                   IDENTITY, [run], ["kernel"])
    assert graph.busy_fraction == pytest.approx(1.0) and kern.busy_fraction == pytest.approx(0.6)
    assert graph.kernels_per_token == 0 and graph.top_kernels == [] and graph.graphs_per_token == 1.0
    both = combine(graph, kern)
    assert both.busy_fraction == pytest.approx(1.0) and both.kernel_busy_fraction == pytest.approx(0.6)
    assert both.kernels_per_token == 2.0 and both.busy_level == "graph" and both.table_level == "kernel"
    assert combine(graph, None).kernel_busy_fraction is None


def test_schedule_ticker_counts_each_kind_of_run_apart():
    seen = []
    bar = SimpleNamespace(advance=lambda d: seen.append(d))
    tick = schedule_ticker(bar, schedule(2, busy=GRAPH), warmup=1)
    tick(0, 0)
    tick(1, 1)
    tick(3, 1)
    tick(4, 0)
    assert seen == ["run 1/2 warm-up", "graph-traced run 1/2 measuring", "run 2/2 measuring",
                    "kernel-traced run 1/1 warm-up"]


def test_method_says_what_happened():
    tl = SimpleNamespace(tiers=[SimpleNamespace(name=GRAPH, level="kernel", runs=[0, 1], figures=interleave.FIGURES[GRAPH])],
                         nvml=None, nvml_missing=None)
    text = interleave.method(tl, detached=False)
    assert "graph-level tracing was not available" in text and "cuptiFinalize" not in text
    assert "kernel-traced" not in text


def _timeline_for_rendering():
    u = [run_at(0.0, 5, 0.01, 100.0), run_at(1.0, 5, 0.01, 104.0)]
    g = [run_at(0.5, 5, 0.01, 97.0), run_at(1.5, 5, 0.01, 99.0)]
    k = [run_at(3.0, 5, 0.01, 80.0)]
    recs = [Kernel(int((r.t0 + 0.01 * i) * 1e9), int((r.t0 + 0.01 * i + 0.006) * 1e9), GRAPH_NAME, "graph", 2)
            for r in g for i in range(4)]
    recs += [Kernel(int((3.0 + 0.01 * i) * 1e9), int((3.0 + 0.01 * i) * 1e9) + 2 * MS, QMV, "kernel", 2)
             for i in range(4)]
    return timeline_of(TimelineRecorder(recs), {UNTRACED: u, GRAPH: g, KERNEL: k},
                       {GRAPH: ["graph", "kernel"], KERNEL: ["kernel"]}, g + k)


def test_the_document_says_which_runs_gave_each_figure_and_what_each_cost():
    from mlxprof.report.markdown import gpu_section

    md = gpu_section(_timeline_for_rendering().model_dump(), {})
    assert "GPU busy **60%**" in md and "2 graph-traced runs interleaved with the untraced ones" in md
    assert "Kernel table from 1 kernel-traced run (every kernel recorded): 1 kernels per token" in md
    assert "| graph-traced | graph-level (graph, kernel) | 2 | 98.00 | ×0.961" in md
    assert "| kernel-traced | kernel-level (kernel) | 1 | 80.00 | ×0.784" in md


def test_results_saved_before_tiers_render_their_one_traced_set():
    import io
    from pathlib import Path

    from rich.console import Console

    from mlxprof import render, results
    from mlxprof.decode import DecodeResult
    from mlxprof.report.markdown import gpu_section

    path = Path(__file__).resolve().parents[1] / "docs" / "benchmark_results" / "gemma3n-e2b-4bit-nvidia-h200.decode.json"
    r = results.load(path, DecodeResult)
    assert r.gpu.tiers == [] and r.gpu.busy_level == "kernel" and r.cold_start is None
    out = io.StringIO()
    render.decode_table(r, console=Console(file=out, width=400))
    text = out.getvalue()
    assert f"traced runs, {r.gpu.runs} runs: " in text and "cold start" not in text
    assert "Tracing cost: traced vs untraced tok/s" in gpu_section(r.gpu.model_dump(), {})
