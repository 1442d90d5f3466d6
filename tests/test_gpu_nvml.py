"""NVML's busy fraction: the sample arithmetic, the reader's two-call protocol
(through a fake libnvidia-ml), and the timeline and verdict built on it."""

import io
from types import SimpleNamespace

import pytest
from rich.console import Console

from mlxprof.gpu import interleave, nvml
from mlxprof.gpu.interleave import KERNEL, UNTRACED, run_schedule, schedule, timeline_of
from mlxprof.gpu.nvml import Sample

MS = 1000  # µs


def ring(start_us, percents, period_us=200 * MS):
    """Samples as the driver stamps them: each at the end of its period."""
    return [Sample(start_us + i * period_us, float(p)) for i, p in enumerate(percents)]


def test_only_periods_wholly_inside_the_window_count():
    s = ring(0, [90, 10, 20, 30, 40, 90])  # periods end at 0, 200, …, 1000 ms
    # window 150–850 ms: periods 200–400 (20 %), 400–600 (30 %), 600–800 (40 %) lie inside it
    busy, covered = nvml.window_busy(s, 150 * MS, 850 * MS)
    assert covered == 600 * MS and busy == pytest.approx(0.2 * 200 * MS + 0.3 * 200 * MS + 0.4 * 200 * MS)
    assert nvml.window_busy(s, 250 * MS, 350 * MS) == (0.0, 0.0)  # inside one period: nothing whole


def test_busy_over_maps_perf_counter_windows_to_the_epoch_and_pools_runs():
    offset = 1_000_000 * MS  # epoch µs − perf_counter µs
    s = ring(offset, [0, 50, 50, 0, 0, 0, 10, 30, 0])
    # a sample's percent is of the period ending at its stamp: run 1 (0.1–0.7 s) holds the whole
    # periods 0.2–0.4 s (50 %) and 0.4–0.6 s (0 %), run 2 (1.1–1.7 s) 1.2–1.4 s (30 %) and 1.4–1.6 s (0 %)
    b = nvml.busy_over([(0.1, 0.7), (1.1, 1.7)], s, offset)
    assert b.busy_fraction_runs == [pytest.approx(0.25), pytest.approx(0.15)]
    assert b.busy_fraction == pytest.approx(0.20) and b.samples == 4
    assert b.coverage == pytest.approx(800 / 1200) and b.period_ms == pytest.approx(200.0)
    assert b.runs == 2 and b.notes == []


def test_runs_shorter_than_a_period_give_no_figure_and_say_why():
    s = ring(0, [40] * 10)
    b = nvml.busy_over([(0.25, 0.35)], s, 0.0)
    assert b.busy_fraction is None and b.busy_fraction_runs == [None] and b.samples == 0
    assert "no NVML sample period lay wholly inside" in b.notes[0] and "~200 ms" in b.notes[0]


class FakeNvml:
    """libnvidia-ml's two functions the reader calls, over a list of samples."""

    def __init__(self, samples, extra=0):
        self.samples, self.extra, self.calls = samples, extra, []

    def nvmlDeviceGetHandleByIndex_v2(self, index, ref):
        self.index = index.value
        return nvml.SUCCESS

    def nvmlDeviceGetSamples(self, handle, kind, last, kind_ref, count_ref, buf):
        self.calls.append((last.value, buf is None))
        newer = [s for s in self.samples if s.t_us > last.value]
        if not newer:
            return nvml.NOT_FOUND
        kind_ref._obj.value = nvml.VALUE_UINT
        if buf is None:  # the size query: the driver may offer room for more than it fills
            count_ref._obj.value = len(newer) + self.extra
            return nvml.SUCCESS
        for i, s in enumerate(newer[:len(buf)]):
            buf[i].timeStamp, buf[i].sampleValue.uiVal = s.t_us, int(s.percent)
        count_ref._obj.value = min(len(buf), len(newer))
        return nvml.SUCCESS


def test_the_reader_returns_each_sample_once_in_time_order():
    lib = FakeNvml(ring(10 * MS, [5, 15, 25]), extra=2)
    r = nvml.Sampler(index=0, lib=lib)
    assert r.read() == ring(10 * MS, [5, 15, 25])
    assert r.read() == [] and lib.calls[-1] == (410 * MS, True)  # NOT_FOUND after the last one read
    lib.samples += ring(610 * MS, [35])
    assert r.read() == [Sample(610 * MS, 35.0)] and r.last_us == 610 * MS


def test_a_reading_keeps_what_it_reads_between_runs_and_drops_what_came_before():
    lib = FakeNvml(ring(0, [99, 99]))
    reading = nvml.Reading(nvml.Sampler(index=0, lib=lib))
    lib.samples += ring(400 * MS, [20, 40])
    reading.read()
    assert reading.samples == ring(400 * MS, [20, 40])


def test_the_visible_gpu_is_the_first_entry_of_cuda_visible_devices():
    assert nvml.visible_index({}) == 0 and nvml.visible_index({"CUDA_VISIBLE_DEVICES": "3,1"}) == 3
    with pytest.raises(nvml.NvmlError, match="UUID or MIG"):
        nvml.visible_index({"CUDA_VISIBLE_DEVICES": "GPU-8c1f…"})


def test_without_nvml_the_plan_falls_back_to_cupti_kernel_busy(monkeypatch):
    def missing():
        raise nvml.NvmlError("libnvidia-ml.so.1 did not load")

    monkeypatch.setattr(nvml, "_load", missing)
    order, reading, why = interleave.open_plan(3)
    assert reading is None and "did not load" in why
    assert order == schedule(3, busy=KERNEL)


# --------------------------------------------------------------------------
# the timeline and the verdict


class FakeReading:
    """A Reading whose samples are given; counts its reads."""

    def __init__(self, samples):
        self.samples, self.offset_us, self.reads = samples, 0.0, 0

    def read(self):
        self.reads += 1

    def busy(self, windows):
        return nvml.busy_over(windows, self.samples, self.offset_us)


class Recorder:
    detach = False

    def __init__(self):
        self.active, self.kernels = None, []

    def start(self, level):
        self.active = level
        return ["kernel"]

    def stop(self):
        self.active = None

    def close(self):
        pass

    def analyze(self, runs, kinds=None):
        from mlxprof.gpu.clock import ClockFit
        from mlxprof.gpu.timeline import Kernel, analyze

        clock = ClockFit(ref_ns=0, offset_s=0.0, slope=1.0, pairs=2, span_s=1, residual_us=0, uncertainty_us=0)
        recs = [Kernel(int((r.t0 + 0.01 * i) * 1e9), int((r.t0 + 0.01 * i + 0.002) * 1e9), "k", "kernel", 1)
                for r in runs for i in range(100)]
        return analyze(recs, clock, runs, ["kernel"])


def test_the_verdict_takes_nvml_busy_over_the_untraced_runs():
    order = schedule(3)  # U K U K U, one second per run
    runs = [SimpleNamespace(t0=float(i), deliveries_s=[0.01 * j for j in range(101)], tok_s=100.0 - 10 * (o == KERNEL))
            for i, o in enumerate(order)]
    # NVML, 100 ms periods: 30 % in the untraced runs' seconds, 25 % in the kernel-traced ones'
    # (a sample stamped t covers the period ending at t)
    samples = [Sample(k * 100 * MS, 30.0 if order[max(k * 100 * MS - 1, 0) // (1000 * MS)] == UNTRACED else 25.0)
               for k in range(51)]
    rec, reading = Recorder(), FakeReading(samples)
    it = iter(runs)

    def measure(n, on_run):
        for _ in range(n):
            on_run(next(it))

    by, kinds = run_schedule(measure, order, rec, reading=reading)
    assert reading.reads == len(order)  # after every run, never inside one
    tl = timeline_of(rec, by, kinds, by[KERNEL], reading)
    assert tl.nvml.runs == 3 and tl.nvml.busy_fraction == pytest.approx(0.30)
    assert tl.nvml_traced.busy_fraction == pytest.approx(0.25)
    assert tl.busy_fraction == pytest.approx(0.2)  # CUPTI's kernel union in the traced runs, apart
    busy, basis = tl.verdict_busy()
    assert busy == pytest.approx(0.30) and basis == "NVML utilization samples over 3 untraced runs"
    assert "costs those runs nothing" in tl.method and "2 kernel-traced runs" in tl.method

    from mlxprof import render
    from mlxprof.decode import summarize_runs
    from mlxprof.report.markdown import gpu_section

    split = SimpleNamespace(token_ms=10.0)
    from rich.table import Table

    table = Table()
    render._gpu_rows(table, tl, split)
    out = io.StringIO()
    Console(file=out, width=400).print(table)
    text = out.getvalue()
    assert "30% of wall over 3 untraced runs" in text and "≈ 3.00 ms busy" in text
    assert "NVML on the same runs 25%" in text
    md = gpu_section(tl.model_dump(), {})
    assert "GPU busy **30%**" in md and "| untraced | NVML samples, read between runs | 3 |" in md
    assert "CUPTI's busy: 20%" in md
    v = summarize_runs(_runs(), "cuda", busy, basis)[3]
    assert v.label == "host-bound" and v.basis == basis


def _runs():
    from mlxprof.decode import RunRecord

    return [RunRecord(prompt_tokens=4, prefill_s=0.1, warmup=1, tokens=2, tok_s=100.0, t0=0.0,
                      deliveries_s=[0.0, 0.01, 0.02], build_ms=[1.0, 1.0], submit_ms=[1.0, 1.0],
                      wait_ms=[8.0, 8.0], token_ms=[10.0, 10.0], peak_memory_bytes=0, token_ids=[1, 2])]


def test_a_timeline_without_nvml_keeps_cupti_busy_for_the_verdict():
    order = schedule(2, busy=KERNEL)
    runs = [SimpleNamespace(t0=float(i), deliveries_s=[0.01 * j for j in range(101)], tok_s=100.0)
            for i in range(len(order))]
    it = iter(runs)
    by, kinds = run_schedule(lambda n, on_run: [on_run(next(it)) for _ in range(n)], order, Recorder())
    tl = timeline_of(Recorder(), by, kinds, by[KERNEL], None, "libnvidia-ml.so.1 did not load")
    busy, basis = tl.verdict_busy()
    assert busy == pytest.approx(0.2) and basis.startswith("CUPTI kernel-level records over 2 traced runs")
    assert "NVML unavailable: libnvidia-ml.so.1 did not load" in tl.method
