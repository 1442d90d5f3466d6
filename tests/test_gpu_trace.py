"""The CUPTI timeline's pure parts on synthetic records, and the whole
--gpu-timeline path on the CPU backend against a fake `cupti` module."""

import ctypes
import enum
import json
import sys
import time
import types
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from mlxprof import gpu_trace as g
from mlxprof import hardware
from mlxprof.cli import main
from mlxprof.errors import InputError

# Names g++ mangles for the same declarations as MLX's CUDA kernels (nvcc uses the same Itanium ABI).
QMV = ("_ZN3mlx4core2cu10qmv_kernelILi8ELi16ELi64ELb1ELb0EN7cutlass10bfloat16_tENS3_8uint4b_tES4_EEvPKT4_"
       "PKT5_PKT6_S8_PKfPS6_iib")
GATHER_QMV = ("_ZN3mlx4core2cu17gather_qmv_kernelILi8ELi16ELi64ELb1ELb0EN7cutlass10bfloat16_tENS3_8uint4b_tES4_"
              "EEvPKT4_PKT5_PKT6_S8_PKfPS6_PKjSJ_ii")
RMS = "_ZN3mlx4core2cu8rms_normI13__nv_bfloat16Li256ELi4EEEvPKT_S6_PS4_fjl"
ADD = "_ZN3mlx4core2cu9binary_vvINS1_3AddE13__nv_bfloat16S4_jLi8EEEvPKT0_S7_PT1_T2_"
COPY = "_ZN3mlx4core2cu6copy_vI13__nv_bfloat16fjEEvPKT_PT0_T1_"
COMPILED = "_ZN3mlx4core2cu33Cf4MultiplyAB_VV_12345_contiguousIjLi8EEEvPKfS4_PfT_"
ROW_REDUCE = "_ZN3mlx4core2cu17row_reduce_simpleI13__nv_bfloat16fNS1_3SumELi4ELi8EEEvPKT_PT0_mi"
ARGMAX = "_ZN3mlx4core2cu18arg_reduce_generalI13__nv_bfloat16NS1_6ArgMaxIS3_EELi4ELi4EEEvPKT_Pjmll"
SDPA = "_ZN3mlx4core2cu18kernel_sdpav_1passI13__nv_bfloat16Lb0ELi256EEEvPKT_S6_S6_PS4_S6_NS1_10AttnParamsE"
ROPE = "_ZN3mlx4core2cu11rope_singleI13__nv_bfloat16Lb0ELb1EEEvPKT_PS4_PKiffPKfi"

EXPECTED = {
    QMV: ("qmv_kernel", "QuantizedMatmul"),
    GATHER_QMV: ("gather_qmv_kernel", "GatherQMM"),
    RMS: ("rms_norm", "RMSNorm"),
    ADD: ("binary_vv<Add>", "elementwise"),
    COPY: ("copy_v", "Copy"),
    COMPILED: ("Cf4MultiplyAB_VV_12345_contiguous", "Compiled"),
    ROW_REDUCE: ("row_reduce_simple", "Reduce"),
    ARGMAX: ("arg_reduce_general", "ArgReduce"),
    SDPA: ("kernel_sdpav_1pass", "ScaledDotProductAttention"),
    ROPE: ("rope_single", "RoPE"),
    "nvjet_hsh_64x8_64x16_2x1_v_bz_coopA_TNT": ("nvjet_hsh_64x8_64x16_2x1_v_bz_coopA_TNT", "Matmul"),
    "void gemv_single<float, 4>(float const*, float*)": ("gemv_single", "Matmul"),
    "[memset]": ("[memset]", "memset"),
    "some_unknown_kernel": ("some_unknown_kernel", "other"),
}


# ---------------------------------------------------------------- intervals


def test_union_merges_overlaps_nesting_and_touching_but_keeps_gaps():
    iv = [(5, 7), (0, 2), (1, 3), (10, 12), (10.5, 11), (3, 4), (20, 20)]
    assert g.union_intervals(iv) == [(0, 4), (5, 7), (10, 12), (20, 20)]
    assert g.union_intervals([]) == []
    assert g.union_intervals([(3, 1)]) == []  # end before start is not an interval


def test_busy_fraction_clips_to_the_window():
    iv = [(0, 2), (1, 3), (4, 6), (4.5, 5)]  # union: [0,3] + [4,6] = 5
    assert g.busy_fraction(iv, 0, 10) == pytest.approx(0.5)
    assert g.busy_fraction(iv, 2, 5) == pytest.approx(2 / 3)  # [2,3] + [4,5]
    assert g.busy_fraction(iv, 6.5, 9) == 0.0
    assert g.busy_in_windows(g.union_intervals(iv), [(0, 1), (2.5, 4.5), (5.5, 100)]) == pytest.approx(
        [1.0, 1.0, 0.5])


def test_count_in_windows_is_half_open():
    starts = [0.0, 1.0, 1.0, 2.0, 3.5]
    assert g.count_in_windows(starts, [(0, 1), (1, 2), (2, 4), (4, 9)]) == [1, 2, 2, 0]


# ---------------------------------------------------------------- clock


def test_clock_fit_recovers_offset_and_drift_from_huge_timestamps():
    base = 1_700_000_000_123_456_789  # CUPTI ns can exceed a double's exact range
    true_off, drift = 12.345, 25e-6
    pairs = []
    for t in [0.0, 0.001, 0.002, 30.0, 30.001, 30.002]:
        c = base + int(t * 1e9)
        pairs.append((c, true_off + t * (1 + drift), 1e-6))
    fit = g.fit_clock(pairs)
    assert fit.drift_ppm == pytest.approx(25.0, abs=0.5)
    assert fit.to_host(base + 15 * 10**9) == pytest.approx(true_off + 15 * (1 + drift), abs=2e-6)
    assert fit.residual_us < 2


def test_clock_fit_uses_offset_only_over_a_short_span_or_absurd_drift():
    base = 5 * 10**17
    short = [(base + i * 1000, 3.0 + i * 1e-6 + (1e-6 if i % 2 else 0), 1e-6) for i in range(6)]
    fit = g.fit_clock(short)
    assert fit.slope == 1.0
    assert fit.to_host(base) == pytest.approx(3.0, abs=2e-6)
    crazy = [(base, 0.0, 1e-6), (base + 10**9, 2.0, 1e-6)]  # 100% drift: not a clock
    fit = g.fit_clock(crazy)
    assert fit.slope == 1.0 and "rejected" in fit.note


def test_take_pairs_keeps_the_tightest_brackets():
    ticks = iter(range(1000))
    host = iter([0.0, 1.0, 2.0, 2.001, 3.0, 3.5])
    pairs = g.take_pairs(lambda: next(ticks), lambda: next(host), n=3, keep=2)
    assert [p[0] for p in pairs] == [1, 2]
    assert pairs[0][1] == pytest.approx(2.0005)


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("raw", sorted(EXPECTED))
def test_kernel_names_are_readable_and_mapped_to_primitives(raw):
    assert g.classify(raw) == EXPECTED[raw]


def test_names_without_the_libstdcxx_demangler(monkeypatch):
    monkeypatch.setattr(g, "_DEMANGLER", None)
    assert g.classify(QMV) == ("qmv_kernel", "QuantizedMatmul")
    assert g.classify(RMS) == ("rms_norm", "RMSNorm")
    assert g.demangle("not_mangled") == "not_mangled"


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
    bad = g.parse_activities(acts, KINDS, out)
    assert bad == 2
    assert out == [g.Kernel(100, 200, QMV, "kernel", 7), g.Kernel(300, 350, "[memcpy]", "memcpy", 0),
                   g.Kernel(360, 370, "[memset]", "memset", 0), g.Kernel(600, 650, "raw_bytes_name", "kernel", 0)]


def run_like(t0, deliveries):
    return SimpleNamespace(t0=t0, deliveries_s=[d - t0 for d in deliveries])


def test_analyze_attributes_kernels_to_measured_tokens():
    # identity clock: CUPTI ns == host ns
    clock = g.ClockFit(ref_ns=0, offset_s=0.0, slope=1.0, pairs=2, span_s=1, residual_us=0, uncertainty_us=0)
    ms = 1_000_000
    ks = []
    for tok in range(4):  # tokens at 10 ms spacing from t=10 ms; 2 qmv of 2 ms + 1 rms of 1 ms each
        b = (10 + 10 * tok) * ms
        ks += [g.Kernel(b + 1 * ms, b + 3 * ms, QMV, "kernel", 1), g.Kernel(b + 2 * ms, b + 4 * ms, QMV, "kernel", 1),
               g.Kernel(b + 5 * ms, b + 6 * ms, RMS, "kernel", 1)]
    ks.append(g.Kernel(1 * ms, 5 * ms, COPY, "kernel", 0))  # before the window (warm-up): ignored
    run = run_like(0.010, [0.010, 0.020, 0.030, 0.040])  # 3 token intervals: [10,20], [20,30], [30,40] ms
    tl = g.analyze(ks, clock, [run], ["kernel"])
    assert tl.intervals == 3
    assert tl.wall_s == pytest.approx(0.030)
    # per interval: union of [1,3]+[2,4] = 3 ms, + 1 ms rms = 4 ms busy
    assert tl.gpu_ms_per_token.median == pytest.approx(4.0)
    assert tl.busy_fraction == pytest.approx(0.4)
    assert tl.kernels_per_token == pytest.approx(3.0)  # 9 kernels start inside [10, 40) ms
    assert tl.kernel_ms_per_token == pytest.approx(5.0)  # summed, overlap counted twice
    assert tl.graph_kernel_share == 1.0
    assert [(k.name, k.primitive) for k in tl.top_kernels] == [("qmv_kernel", "QuantizedMatmul"),
                                                                ("rms_norm", "RMSNorm")]
    assert tl.top_kernels[0].ms_per_token == pytest.approx(4.0)
    assert tl.top_kernels[0].count_per_token == pytest.approx(2.0)
    assert tl.top_kernels[0].share == pytest.approx(0.8)
    assert [p.primitive for p in tl.by_primitive] == ["QuantizedMatmul", "RMSNorm"]
    assert tl.records == 13 and tl.records_in_windows == 9
    spans = tl.spans()
    assert len(spans) == 9 and spans[0] == ("qmv_kernel", pytest.approx(0.011), pytest.approx(0.002))
    # spans_for_trace gives the same shape from raw records
    all_spans = g.spans_for_trace(ks, clock)
    assert all_spans[0] == ("copy_v", pytest.approx(0.001), pytest.approx(0.004)) and len(all_spans) == 13
    assert len(g.spans_for_trace(ks, clock, windows=[g.run_window(run)])) == 9


def test_analyze_flags_runs_whose_kernel_counts_disagree():
    clock = g.ClockFit(ref_ns=0, offset_s=0.0, slope=1.0, pairs=2, span_s=1, residual_us=0, uncertainty_us=0)
    ks = [g.Kernel(int(t * 1e6), int(t * 1e6) + 10, QMV, "kernel", 1) for t in range(0, 100)]
    runs = [run_like(0.0, [0.0, 0.05, 0.1]), run_like(0.2, [0.2, 0.25, 0.3])]  # second run: no kernels
    tl = g.analyze(ks, clock, runs, ["kernel"])
    assert any("differ" in n for n in tl.notes)
    assert tl.busy_fraction_runs[1] == 0.0


# ---------------------------------------------------------------- refusals


def test_check_available_refuses_metal_and_cpu():
    with pytest.raises(InputError, match="mx.metal.start_capture"):
        g.check_available("metal")
    with pytest.raises(InputError, match="CUDA backend"):
        g.check_available("cpu")


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
    monkeypatch.setattr(g, "_import_cupti", missing)
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
    monkeypatch.setattr(g, "_callbacks_registered", False)
    monkeypatch.setattr(hardware, "detect", lambda: hardware.Chip(
        "cuda", "Fake GPU", {"device_name": "Fake GPU", "free_memory": 64 << 30}))
    return fake


def test_recorder_against_fake_cupti(fake_cupti):
    t_a = time.perf_counter()
    with g.Recorder() as rec:
        time.sleep(0.6)  # long enough for the before/after pairs to measure drift
    t_b = time.perf_counter()
    assert fake_cupti.registered == 1 and not fake_cupti.enabled
    assert rec.kinds == ["kernel", "memset"] and any("MEMCPY" in e for e in rec.errors)
    assert rec.dropped == 0
    assert rec.clock.drift_ppm == pytest.approx(-20, abs=5)  # host per CUPTI second: 1/(1+20e-6)
    host = g.to_host(rec.kernels, rec.clock)
    assert t_a - 1e-4 <= host[0][0] and host[-1][1] <= t_b + 1e-4  # placed on the host clock
    assert g.busy_fraction([(s, e) for s, e, _ in host], host[0][0], host[-1][1]) == pytest.approx(0.5, abs=0.02)
    with g.Recorder() as rec2:  # a second recorder reuses the one registration
        time.sleep(0.01)
    assert fake_cupti.registered == 1 and rec2.kernels


def test_recorder_notes_deliveries_inside_measured_tokens():
    rec = g.Recorder()
    rec.clock = g.ClockFit(ref_ns=0, offset_s=0.0, slope=1.0, pairs=2, span_s=1, residual_us=0, uncertainty_us=0)
    rec.kernels = [g.Kernel(10_000_000, 11_000_000, QMV, "kernel", 1)]
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
