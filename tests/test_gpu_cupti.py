"""The CUPTI recorder: record parsing, refusals, and the whole --gpu-timeline
path on the CPU backend against a fake `cupti` module."""

import ctypes
import enum
import json
import sys
import time
import types
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from cuda_kernel_names import QMV, RMS, run_like

from mlxprof import hardware
from mlxprof.cli import main
from mlxprof.errors import InputError
from mlxprof.gpu import cupti as gpu_cupti
from mlxprof.gpu import nvml
from mlxprof.gpu.clock import ClockFit
from mlxprof.gpu.timeline import Kernel, busy_fraction, to_host

# ---------------------------------------------------------------- records

KINDS = {10: "kernel", 1: "memcpy", 2: "memset"}


def act(kind, start, end, name=None, graph_id=0):
    a = SimpleNamespace(kind=kind, start=start, end=end, graph_id=graph_id)
    if name is not None:
        a.name = name
    return a


def test_parse_activities_keeps_kernels_and_copies_skips_the_rest():
    out = []
    acts = [act(10, 100, 200, QMV, 7), act(1, 300, 350), act(2, 360, 370), act(99, 1, 2, "x"),
            act(10, 0, 0, RMS), act(10, 500, 400, RMS), act(10, 600, 650, b"raw_bytes_name")]
    bad = gpu_cupti.parse_activities(acts, KINDS, out)
    assert bad == 2
    assert out == [Kernel(100, 200, QMV, "kernel", 7), Kernel(300, 350, "[memcpy]", "memcpy", 0),
                   Kernel(360, 370, "[memset]", "memset", 0), Kernel(600, 650, "raw_bytes_name", "kernel", 0)]


# ---------------------------------------------------------------- refusals


def test_check_available_refuses_metal_and_cpu():
    with pytest.raises(InputError, match="mx.metal.start_capture"):
        gpu_cupti.check_available("metal")
    with pytest.raises(InputError, match="CUDA backend"):
        gpu_cupti.check_available("cpu")


def test_cli_refuses_on_the_cpu_backend_before_loading(monkeypatch):
    import mlxprof.profile as profile

    monkeypatch.setattr(hardware, "detect", lambda: hardware.Chip("cpu", "cpu"))
    monkeypatch.setattr(profile, "open_session", lambda *a, **k: pytest.fail("model loaded before refusal"))
    r = CliRunner().invoke(main, ["decode", "-m", "gemma3n-tiny", "--gpu-timeline", "-q"])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlxprof: error: --gpu-timeline needs MLX's CUDA backend")


def test_cli_names_the_extra_when_cupti_is_missing(monkeypatch):
    import mlxprof.profile as profile

    def missing():
        raise ModuleNotFoundError("No module named 'cupti'")

    monkeypatch.setattr(hardware, "detect", lambda: hardware.Chip("cuda", "NVIDIA H200"))
    monkeypatch.setattr(gpu_cupti, "_import_cupti", missing)
    monkeypatch.setattr(profile, "open_session", lambda *a, **k: pytest.fail("model loaded before refusal"))
    r = CliRunner().invoke(main, ["decode", "-m", "gemma3n-tiny", "--gpu-timeline", "-q"])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1
    assert "pip install 'mlxprof[cuda]'" in lines[0] and "cupti-python" in lines[0]


# ---------------------------------------------------------------- end to end with a fake CUPTI


class FakeKind(enum.IntEnum):
    MEMCPY = 1
    MEMSET = 2
    KERNEL = 3
    CONCURRENT_KERNEL = 10
    GRAPH_TRACE = 49


MS = 1_000_000  # ns


class FakeCupti:
    """Mimics cupti-python's activity API. While graph or kernel activity is
    enabled the fake GPU runs one 1 ms CUDA graph every 2 ms, holding two
    kernels (0-0.4 ms and 0.5-0.9 ms): with GRAPH_TRACE on, a forced flush
    hands the callback one graph record per graph (per-node records are
    suppressed, as CUPTI does); with CONCURRENT_KERNEL alone, the two kernel
    records. Graph-level busy is 0.5, kernel-level 0.4. Its clock is 1.7e18 ns
    off perf_counter and 20 ppm fast. `log` keeps (perf_counter, event, kind)."""

    ActivityKind = FakeKind
    OFFSET = 1_700_000_000_000_000_000

    def __init__(self):
        self.enabled = set()
        self.registered = 0
        self.requested = self.completed = None
        self.since = None
        self.flushes = 0
        self.finalizes = 0
        self.log = []

    def get_timestamp(self):
        return self.OFFSET + int(time.perf_counter_ns() * (1 + 20e-6))

    def activity_register_callbacks(self, requested, completed):
        self.registered += 1
        self.requested, self.completed = requested, completed

    def activity_enable(self, kind):
        if kind == FakeKind.MEMCPY:
            raise RuntimeError("CUPTI_ERROR_NOT_SUPPORTED")  # optional kinds may fail
        assert self.completed is not None, "activity enabled with no buffer callbacks registered"
        if self.since is None:
            self.since = self.get_timestamp()
        self.enabled.add(kind)
        self.log.append((time.perf_counter(), "enable", kind))

    def activity_disable(self, kind):
        self.enabled.discard(kind)
        self.log.append((time.perf_counter(), "disable", kind))

    def _records(self, now):
        graph = FakeKind.GRAPH_TRACE in self.enabled
        acts, t = [], self.since
        while t + MS <= now:
            if graph:
                acts.append(SimpleNamespace(kind=int(FakeKind.GRAPH_TRACE), start=t, end=t + MS, graph_id=3))
            else:
                for a, b in ((0, 0.4), (0.5, 0.9)):
                    acts.append(SimpleNamespace(kind=int(FakeKind.CONCURRENT_KERNEL), start=t + int(a * MS),
                                                end=t + int(b * MS), name=QMV, graph_id=3))
            t += 2 * MS
        return acts, t

    def activity_flush_all(self, flag):
        self.flushes += 1
        self.log.append((time.perf_counter(), "flush", None))
        if not {FakeKind.CONCURRENT_KERNEL, FakeKind.GRAPH_TRACE} & self.enabled:
            self.since = None
            return
        size, _ = self.requested()
        assert size > 0
        acts, self.since = self._records(self.get_timestamp())
        self.completed(acts)

    def activity_get_num_dropped_records(self, context, stream_id, ptr):
        ctypes.c_uint64.from_address(ptr).value = 0

    def finalize(self):
        assert not self.enabled, "finalize with activity still enabled"
        self.finalizes += 1
        self.requested = self.completed = None  # CUPTI forgets its callbacks when it detaches
        self.log.append((time.perf_counter(), "finalize", None))

    def enabled_during(self, lo, hi):
        """Whether any activity kind was enabled at some time in [lo, hi] (perf_counter)."""
        on, t_on = set(), None
        for t, ev, kind in self.log:
            if t > hi:
                break
            if ev == "enable":
                on.add(kind)
            elif ev == "disable":
                on.discard(kind)
                if not on and t >= lo:
                    return True
        return bool(on)


def _no_nvml():
    raise nvml.NvmlError("libnvidia-ml.so.1 did not load (tests)")


class LiveNvml:
    """libnvidia-ml as the driver behaves: a sample every `period_us`, stamped
    on the epoch clock as time passes, each saying `percent`."""

    def __init__(self, percent=35.0, period_us=1000):
        self.percent, self.period, self.t0 = percent, period_us, int(time.time() * 1e6)

    def nvmlDeviceGetHandleByIndex_v2(self, index, ref):
        return nvml.SUCCESS

    def nvmlDeviceGetSamples(self, handle, kind, last, kind_ref, count_ref, buf):
        now = int(time.time() * 1e6)
        first = max(self.t0, last.value + 1, now - 500 * self.period)  # the ring holds 500
        stamps = list(range(first - first % self.period + self.period, now + 1, self.period))
        if not stamps:
            return nvml.NOT_FOUND
        kind_ref._obj.value = nvml.VALUE_UINT
        if buf is not None:
            stamps = stamps[:len(buf)]
            for i, t in enumerate(stamps):
                buf[i].timeStamp, buf[i].sampleValue.uiVal = t, int(self.percent)
        count_ref._obj.value = len(stamps)
        return nvml.SUCCESS


@pytest.fixture
def fake_nvml(monkeypatch):
    lib = LiveNvml()
    monkeypatch.setattr(nvml, "_load", lambda: lib)
    return lib


@pytest.fixture
def fake_cupti(monkeypatch):
    fake = FakeCupti()
    mod = types.ModuleType("cupti")
    mod.cupti = fake
    monkeypatch.setitem(sys.modules, "cupti", mod)
    monkeypatch.setattr(gpu_cupti, "_callbacks_registered", False)
    monkeypatch.setattr(nvml, "_load", _no_nvml)  # fake_nvml puts one back
    monkeypatch.setattr(hardware, "detect", lambda: hardware.Chip(
        "cuda", "Fake GPU", {"device_name": "Fake GPU", "free_memory": 64 << 30}))
    return fake


def test_recorder_against_fake_cupti(fake_cupti):
    t_a = time.perf_counter()
    with gpu_cupti.Recorder() as rec:
        time.sleep(0.6)  # long enough for the before/after pairs to measure drift
    t_b = time.perf_counter()
    assert fake_cupti.registered == 1 and not fake_cupti.enabled and fake_cupti.finalizes == 0
    assert rec.kinds == ["kernel", "memset"] and any("MEMCPY" in e for e in rec.errors)
    assert rec.dropped == 0
    assert rec.clock.drift_ppm == pytest.approx(-20, abs=5)  # host per CUPTI second: 1/(1+20e-6)
    host = to_host(rec.kernels, rec.clock)
    assert t_a - 1e-4 <= host[0][0] and host[-1][1] <= t_b + 1e-4  # placed on the host clock
    assert busy_fraction([(s, e) for s, e, _ in host], host[0][0], host[-1][1]) == pytest.approx(0.4, abs=0.02)
    with gpu_cupti.Recorder() as rec2:  # still attached: the callbacks stay registered
        time.sleep(0.01)
    assert fake_cupti.registered == 1 and rec2.kernels and fake_cupti.finalizes == 0


def test_recorder_by_default_disables_and_flushes_but_never_finalizes(fake_cupti):
    """cuptiFinalize is not cleared as a cause of a SIGSEGV on an H200: off unless asked for."""
    rec = gpu_cupti.Recorder()
    rec.start("graph")
    time.sleep(0.02)
    rec.stop()
    events = [ev for _, ev, _ in fake_cupti.log]
    assert "finalize" not in events and events[-1] == "flush" and not fake_cupti.enabled
    rec.start("kernel")
    rec.close()
    assert fake_cupti.registered == 1 and fake_cupti.finalizes == 0 and not fake_cupti.enabled


def test_recorder_per_run_disables_flushes_and_detaches_after_each_run(fake_cupti):
    rec = gpu_cupti.Recorder(detach=True)
    assert rec.start("graph") == ["graph", "kernel", "memset"]
    assert fake_cupti.enabled == {FakeKind.GRAPH_TRACE, FakeKind.CONCURRENT_KERNEL, FakeKind.MEMSET}
    time.sleep(0.02)
    rec.stop()
    # every kind disabled, then a flush, then CUPTI detached; nothing left enabled
    events = [(ev, kind) for _, ev, kind in fake_cupti.log]
    last_disable = max(i for i, (ev, _) in enumerate(events) if ev == "disable")
    assert {k for ev, k in events if ev == "disable"} == {FakeKind.GRAPH_TRACE, FakeKind.CONCURRENT_KERNEL,
                                                          FakeKind.MEMSET}
    assert events[last_disable + 1][0] == "flush" and events[-1][0] == "finalize"
    assert not fake_cupti.enabled and not rec.active and fake_cupti.finalizes == 1
    n_graph = len(rec.kernels)
    assert n_graph and all(k.kind == "graph" and k.name == "[graph]" and k.graph_id == 3 for k in rec.kernels)
    time.sleep(0.02)  # untraced: nothing recorded
    assert rec.start("kernel") == ["kernel", "memset"] and fake_cupti.registered == 2
    time.sleep(0.02)
    rec.stop()
    rec.close()
    assert fake_cupti.finalizes == 2  # close() after a stop does not detach again
    kinds = [k.kind for k in rec.kernels[n_graph:]]
    assert kinds and set(kinds) == {"kernel"}
    assert rec.kinds == ["graph", "kernel", "memset"] and rec.starts == 2 and rec.clock.pairs >= 4


def test_recorder_falls_back_when_graph_trace_is_refused(fake_cupti, monkeypatch):
    real = fake_cupti.activity_enable

    def no_graph(kind):
        if kind == FakeKind.GRAPH_TRACE:
            raise RuntimeError("CUPTI_ERROR_NOT_COMPATIBLE")
        real(kind)

    monkeypatch.setattr(fake_cupti, "activity_enable", no_graph)
    rec = gpu_cupti.Recorder()
    assert rec.start("graph") == ["kernel", "memset"]  # kernel records still come
    rec.close()
    assert any("GRAPH_TRACE not enabled" in e for e in rec.errors)


def test_recorder_keeps_cupti_attached_when_finalize_fails(fake_cupti, monkeypatch):
    def refuse():
        raise RuntimeError("CUPTI_ERROR_NOT_SUPPORTED")

    monkeypatch.setattr(fake_cupti, "finalize", refuse)
    rec = gpu_cupti.Recorder(detach=True)
    rec.start("graph")
    rec.stop()
    rec.start("kernel")  # still attached: the one registration serves
    rec.close()
    assert fake_cupti.registered == 1 and not fake_cupti.enabled
    assert any("cuptiFinalize failed" in e for e in rec.errors)


def test_recorder_notes_deliveries_inside_measured_tokens():
    rec = gpu_cupti.Recorder()
    rec.clock = ClockFit(ref_ns=0, offset_s=0.0, slope=1.0, pairs=2, span_s=1, residual_us=0, uncertainty_us=0)
    rec.kernels = [Kernel(10_000_000, 11_000_000, QMV, "kernel", 1)]
    rec.kinds = ["kernel"]
    run = run_like(0.0, [0.0, 0.01, 0.02])
    assert not any("deliveries" in n for n in rec.analyze([run]).notes)
    rec.deliveries = [(0.015, 0.025, 1000), (0.5, 0.6, 10)]
    assert any(n.startswith("1 CUPTI buffer deliveries (10 ms") for n in rec.analyze([run]).notes)


def _timeline_decode(tmp_path, runs, tokens):
    """`decode -m gemma3n-tiny --gpu-timeline` through the CLI: (its output, the saved result)."""
    from mlxprof.decode import DecodeResult
    from mlxprof.results import load

    out = tmp_path / "r.json"
    r = CliRunner().invoke(main, ["decode", "-m", "gemma3n-tiny", "--dtype", "float32", "--runs", str(runs),
                                  "--warmup", "2", "--tokens", str(tokens), "--prompt-tokens", "4",
                                  "--gpu-timeline", "-q", "--json", str(out)])
    assert r.exit_code == 0, r.output
    return r, load(str(out), DecodeResult)


def test_decode_gpu_timeline_busy_from_nvml_over_untraced_runs(fake_cupti, fake_nvml, tmp_path):
    """The default: NVML's busy over the untraced runs (nothing enabled while
    they run) for the verdict; kernel-traced runs between them for the table."""
    r, res = _timeline_decode(tmp_path, 3, 40)
    tl = res.gpu
    assert len(res.runs) == 3 and len(res.gpu_runs) == 2  # U K U K U
    assert [(t.name, t.level) for t in tl.tiers] == [("kernel", "kernel")]
    assert tl.nvml.runs == 3 and tl.nvml.busy_fraction == pytest.approx(0.35) and tl.nvml.samples > 0
    assert tl.nvml_traced.runs == 2 and tl.busy_fraction == pytest.approx(0.4, abs=0.1)  # CUPTI's, apart
    assert res.verdict.gpu_share == pytest.approx(0.35) and res.verdict.basis.startswith("NVML")
    assert "35% of wall over 3 untraced runs" in r.output
    for run in res.runs:
        assert not fake_cupti.enabled_during(run.t0, run.t0 + run.deliveries_s[-1])
    for run in res.gpu_runs:
        assert fake_cupti.enabled_during(run.t0, run.t0 + run.deliveries_s[-1])


def test_decode_gpu_timeline_without_nvml_interleaves_kernel_traced_runs(fake_cupti, tmp_path):
    """Where NVML cannot be read (and GRAPH_TRACE crashed on a real H200): untraced and
    kernel-traced runs in alternating pairs; busy and table from the kernel runs."""
    _, res = _timeline_decode(tmp_path, 2, 8)
    tl = res.gpu
    assert len(res.runs) == 2 and len(res.gpu_runs) == 2
    assert [(t.name, t.level) for t in tl.tiers] == [("kernel", "kernel")]
    assert tl.busy_fraction == pytest.approx(0.4, abs=0.1) and tl.top_kernels[0].name == "qmv_kernel"
    assert tl.overhead.candidate_summary.samples == [run.tok_s for run in res.gpu_runs]
    for run in res.runs:
        assert not fake_cupti.enabled_during(run.t0 + run.deliveries_s[0], run.t0 + run.deliveries_s[-1])
    assert fake_cupti.finalizes == 0 and not fake_cupti.enabled


def test_decode_gpu_timeline_end_to_end_with_fake_cupti(fake_cupti, tmp_path, monkeypatch):
    from mlxprof.gpu import interleave

    monkeypatch.setattr(interleave, "BUSY_LEVEL", "graph")
    out = tmp_path / "r.json"
    r = CliRunner().invoke(main, ["decode", "-m", "gemma3n-tiny", "--dtype", "float32", "--runs", "2",
                                  "--warmup", "2", "--tokens", "8", "--prompt-tokens", "4", "--gpu-timeline",
                                  "-q", "--json", str(out)])
    assert r.exit_code == 0, r.output
    for row in ("GPU busy", "GPU per token", "GPU by primitive", "tracing cost", "GPU clock", "cold start"):
        assert row in r.output
    from mlxprof.decode import DecodeResult
    from mlxprof.results import load

    res = load(str(out), DecodeResult)
    tl = res.gpu
    # 2 untraced + 2 graph-traced runs interleaved, then 1 kernel-traced run
    assert tl is not None and len(res.runs) == 2 and len(res.gpu_runs) == 3
    assert [(t.name, t.level, t.runs) for t in tl.tiers] == [("graph", "graph", [0, 1]), ("kernel", "kernel", [2])]
    assert tl.intervals == 2 * 7 and tl.runs == 2 and tl.table_runs == 1
    # busy figures from the graph-level runs (0.5), the kernel table from the kernel-level run (0.4)
    assert tl.busy_level == "graph" and tl.busy_fraction == pytest.approx(0.5, abs=0.1)
    assert tl.table_level == "kernel" and tl.kernel_busy_fraction == pytest.approx(0.4, abs=0.1)
    # one graph every 2 ms of the graph runs' windows, two kernels every 2 ms of the kernel run's:
    # counts of records starting inside the windows, within one period at each window's ends
    assert abs(tl.graphs_per_token * tl.intervals - tl.wall_s * 1e3 / 2) <= 2 * tl.runs
    kernel_wall_ms = res.gpu_runs[2].deliveries_s[-1] * 1e3
    assert abs(tl.kernels_per_token * 7 - kernel_wall_ms) <= 4
    assert tl.top_kernels[0].name == "qmv_kernel" and tl.by_primitive[0].primitive == "QuantizedMatmul"
    assert res.verdict.gpu_share == pytest.approx(tl.busy_fraction)
    assert res.verdict.basis == "CUPTI graph-level records over 2 traced runs"
    # each tier's tracing cost: its runs against the untraced runs of the same process
    g, k = tl.tiers
    assert g.overhead.baseline == "untraced" and g.overhead.candidate == "graph-traced"
    assert g.overhead.baseline_summary.samples == [run.tok_s for run in res.runs]
    assert g.overhead.candidate_summary.samples == [run.tok_s for run in res.gpu_runs[:2]]
    assert k.overhead.candidate_summary.samples == [res.gpu_runs[2].tok_s]
    assert tl.overhead == g.overhead and tl.traced_tok_s.n == 2
    assert "interleave" in tl.method
    # CUPTI activity was enabled for the traced runs only
    for run in res.runs:
        lo, hi = run.t0 + run.deliveries_s[0], run.t0 + run.deliveries_s[-1]
        assert not fake_cupti.enabled_during(lo, hi)
    for run in res.gpu_runs:
        assert fake_cupti.enabled_during(run.t0, run.t0 + run.deliveries_s[-1])
    assert fake_cupti.finalizes == 0  # never detached (see gpu/cupti.py)
    assert not fake_cupti.enabled
    assert not any("deliveries" in n for n in tl.notes)  # all deliveries fell between runs
    assert res.cold_start is not None and res.cold_start.cache_dir is not None
    json.loads(out.read_text())  # plain JSON (spans are not saved)
    assert "_spans" not in out.read_text()


def test_decode_keeps_the_untraced_figures_when_cupti_refuses(fake_cupti):
    fake_cupti.activity_enable = lambda kind: (_ for _ in ()).throw(RuntimeError("CUPTI_ERROR_INSUFFICIENT_PRIVILEGES"))
    r = CliRunner().invoke(main, ["decode", "-m", "gemma3n-tiny", "--dtype", "float32", "--runs", "1",
                                  "--warmup", "1", "--tokens", "3", "--prompt-tokens", "4", "--gpu-timeline", "-q"])
    assert r.exit_code == 2
    assert r.output.strip().splitlines()[-1].startswith("mlxprof: error: --gpu-timeline: CUPTI could not enable")
