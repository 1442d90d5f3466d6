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


class FakeCupti:
    """Mimics cupti-python's activity API: on a forced flush it hands the
    buffer-completed callback one 1 ms kernel every 2 ms of the time the kernel
    kind was enabled, on a clock 1.7e18 ns off perf_counter and 20 ppm fast."""

    ActivityKind = FakeKind
    OFFSET = 1_700_000_000_000_000_000

    def __init__(self):
        self.enabled = set()
        self.registered = 0
        self.since = None
        self.flushes = 0

    def get_timestamp(self):
        return self.OFFSET + int(time.perf_counter_ns() * (1 + 20e-6))

    def activity_register_callbacks(self, requested, completed):
        self.registered += 1
        self.requested, self.completed = requested, completed

    def activity_enable(self, kind):
        if kind == FakeKind.MEMCPY:
            raise RuntimeError("CUPTI_ERROR_NOT_SUPPORTED")  # optional kinds may fail
        self.enabled.add(kind)
        if kind == FakeKind.CONCURRENT_KERNEL:
            self.since = self.get_timestamp()

    def activity_disable(self, kind):
        self.enabled.discard(kind)

    def activity_flush_all(self, flag):
        self.flushes += 1
        if FakeKind.CONCURRENT_KERNEL not in self.enabled:
            return
        size, _ = self.requested()
        assert size > 0
        now = self.get_timestamp()
        acts, t = [], self.since
        while t + 1_000_000 <= now:
            acts.append(SimpleNamespace(kind=int(FakeKind.CONCURRENT_KERNEL), start=t, end=t + 1_000_000,
                                        name=QMV, graph_id=3))
            t += 2_000_000
        self.since = t
        self.completed(acts)

    def activity_get_num_dropped_records(self, context, stream_id, ptr):
        ctypes.c_uint64.from_address(ptr).value = 0


@pytest.fixture
def fake_cupti(monkeypatch):
    fake = FakeCupti()
    mod = types.ModuleType("cupti")
    mod.cupti = fake
    monkeypatch.setitem(sys.modules, "cupti", mod)
    monkeypatch.setattr(gpu_cupti, "_callbacks_registered", False)
    monkeypatch.setattr(hardware, "detect", lambda: hardware.Chip(
        "cuda", "Fake GPU", {"device_name": "Fake GPU", "free_memory": 64 << 30}))
    return fake


def test_recorder_against_fake_cupti(fake_cupti):
    t_a = time.perf_counter()
    with gpu_cupti.Recorder() as rec:
        time.sleep(0.6)  # long enough for the before/after pairs to measure drift
    t_b = time.perf_counter()
    assert fake_cupti.registered == 1 and not fake_cupti.enabled
    assert rec.kinds == ["kernel", "memset"] and any("MEMCPY" in e for e in rec.errors)
    assert rec.dropped == 0
    assert rec.clock.drift_ppm == pytest.approx(-20, abs=5)  # host per CUPTI second: 1/(1+20e-6)
    host = to_host(rec.kernels, rec.clock)
    assert t_a - 1e-4 <= host[0][0] and host[-1][1] <= t_b + 1e-4  # placed on the host clock
    assert busy_fraction([(s, e) for s, e, _ in host], host[0][0], host[-1][1]) == pytest.approx(0.5, abs=0.02)
    with gpu_cupti.Recorder() as rec2:  # a second recorder reuses the one registration
        time.sleep(0.01)
    assert fake_cupti.registered == 1 and rec2.kernels


def test_recorder_notes_deliveries_inside_measured_tokens():
    rec = gpu_cupti.Recorder()
    rec.clock = ClockFit(ref_ns=0, offset_s=0.0, slope=1.0, pairs=2, span_s=1, residual_us=0, uncertainty_us=0)
    rec.kernels = [Kernel(10_000_000, 11_000_000, QMV, "kernel", 1)]
    rec.kinds = ["kernel"]
    run = run_like(0.0, [0.0, 0.01, 0.02])
    assert not any("deliveries" in n for n in rec.analyze([run]).notes)
    rec.deliveries = [(0.015, 0.025, 1000), (0.5, 0.6, 10)]
    assert any(n.startswith("1 CUPTI buffer deliveries (10 ms") for n in rec.analyze([run]).notes)


def test_decode_gpu_timeline_end_to_end_with_fake_cupti(fake_cupti, tmp_path):
    out = tmp_path / "r.json"
    r = CliRunner().invoke(main, ["decode", "-m", "gemma3n-tiny", "--dtype", "float32", "--runs", "2",
                                  "--warmup", "2", "--tokens", "8", "--prompt-tokens", "4", "--gpu-timeline",
                                  "-q", "--json", str(out)])
    assert r.exit_code == 0, r.output
    for row in ("GPU busy", "GPU per token", "GPU by primitive", "tracing cost", "GPU clock"):
        assert row in r.output
    from mlxprof.decode import DecodeResult
    from mlxprof.results import load

    res = load(str(out), DecodeResult)
    tl = res.gpu
    assert tl is not None and len(res.gpu_runs) == 2 and len(res.runs) == 2
    assert tl.intervals == 2 * 7
    # the fake keeps the GPU busy half of the time, whatever the host does
    assert tl.busy_fraction == pytest.approx(0.5, abs=0.1)
    token_ms = statistics_median([x for run in res.gpu_runs for x in run.token_ms])
    assert tl.kernels_per_token == pytest.approx(token_ms / 2.0, rel=0.25)
    assert tl.top_kernels[0].name == "qmv_kernel" and tl.by_primitive[0].primitive == "QuantizedMatmul"
    assert res.verdict.gpu_share == pytest.approx(tl.busy_fraction)
    assert res.verdict.basis.startswith("GPU busy fraction")
    assert tl.overhead.baseline == "untraced" and tl.traced_tok_s.n == 2
    assert "traced runs comes first" in tl.method
    assert fake_cupti.flushes >= 2 + 2  # one per traced run, then at the end (before and after disable)
    assert not any("deliveries" in n for n in tl.notes)  # all deliveries fell between runs
    json.loads(out.read_text())  # plain JSON (spans are not saved)
    assert "_spans" not in out.read_text()


def statistics_median(xs):
    import statistics

    return statistics.median(xs)
