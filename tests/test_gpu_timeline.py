"""The timeline's interval maths and attribution on synthetic records, and that
the decode loop's import of the schema stays cheap (no CUPTI, no demangler)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cuda_kernel_names import COPY, QMV, RMS, run_like

from mlxprof.gpu.clock import ClockFit
from mlxprof.gpu.timeline import (Kernel, analyze, busy_fraction, busy_in_windows, count_in_windows,
                                  run_window, spans_for_trace, union_intervals)

# ---------------------------------------------------------------- intervals


def test_union_merges_overlaps_nesting_and_touching_but_keeps_gaps():
    iv = [(5, 7), (0, 2), (1, 3), (10, 12), (10.5, 11), (3, 4), (20, 20)]
    assert union_intervals(iv) == [(0, 4), (5, 7), (10, 12), (20, 20)]
    assert union_intervals([]) == []
    assert union_intervals([(3, 1)]) == []  # end before start is not an interval


def test_busy_fraction_clips_to_the_window():
    iv = [(0, 2), (1, 3), (4, 6), (4.5, 5)]  # union: [0,3] + [4,6] = 5
    assert busy_fraction(iv, 0, 10) == pytest.approx(0.5)
    assert busy_fraction(iv, 2, 5) == pytest.approx(2 / 3)  # [2,3] + [4,5]
    assert busy_fraction(iv, 6.5, 9) == 0.0
    assert busy_in_windows(union_intervals(iv), [(0, 1), (2.5, 4.5), (5.5, 100)]) == pytest.approx(
        [1.0, 1.0, 0.5])


def test_count_in_windows_is_half_open():
    starts = [0.0, 1.0, 1.0, 2.0, 3.5]
    assert count_in_windows(starts, [(0, 1), (1, 2), (2, 4), (4, 9)]) == [1, 2, 2, 0]


# ---------------------------------------------------------------- attribution

IDENTITY = ClockFit(ref_ns=0, offset_s=0.0, slope=1.0, pairs=2, span_s=1, residual_us=0, uncertainty_us=0)


def test_analyze_attributes_kernels_to_measured_tokens():
    clock = IDENTITY  # CUPTI ns == host ns
    ms = 1_000_000
    ks = []
    for tok in range(4):  # tokens at 10 ms spacing from t=10 ms; 2 qmv of 2 ms + 1 rms of 1 ms each
        b = (10 + 10 * tok) * ms
        ks += [Kernel(b + 1 * ms, b + 3 * ms, QMV, "kernel", 1), Kernel(b + 2 * ms, b + 4 * ms, QMV, "kernel", 1),
               Kernel(b + 5 * ms, b + 6 * ms, RMS, "kernel", 1)]
    ks.append(Kernel(1 * ms, 5 * ms, COPY, "kernel", 0))  # before the window (warm-up): ignored
    run = run_like(0.010, [0.010, 0.020, 0.030, 0.040])  # 3 token intervals: [10,20], [20,30], [30,40] ms
    tl = analyze(ks, clock, [run], ["kernel"])
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
    all_spans = spans_for_trace(ks, clock)
    assert all_spans[0] == ("copy_v", pytest.approx(0.001), pytest.approx(0.004)) and len(all_spans) == 13
    assert len(spans_for_trace(ks, clock, windows=[run_window(run)])) == 9


def test_analyze_flags_runs_whose_kernel_counts_disagree():
    ks = [Kernel(int(t * 1e6), int(t * 1e6) + 10, QMV, "kernel", 1) for t in range(0, 100)]
    runs = [run_like(0.0, [0.0, 0.05, 0.1]), run_like(0.2, [0.2, 0.25, 0.3])]  # second run: no kernels
    tl = analyze(ks, IDENTITY, runs, ["kernel"])
    assert any("differ" in n for n in tl.notes)
    assert tl.busy_fraction_runs[1] == 0.0


# ---------------------------------------------------------------- cheap import

# Runs in a fresh interpreter: records which file first imports ctypes (the frame
# just outside importlib), then reports what importing the decode loop loaded.
PROBE = r"""
import json, sys, traceback

first_ctypes_importer = []

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "ctypes" and not first_ctypes_importer:
            frames = [f.filename for f in traceback.extract_stack()[:-1] if not f.filename.startswith("<frozen")]
            first_ctypes_importer.append(frames[-1] if frames else "?")
        return None

sys.meta_path.insert(0, Watch())
import mlxprof.decode

kernels = sys.modules.get("mlxprof.gpu.kernels")
print(json.dumps({
    "mlxprof": mlxprof.__file__,
    "cupti_modules": sorted(m for m in sys.modules if m == "cupti" or m.startswith(("cupti.", "mlxprof.gpu.cupti"))),
    "demangler_loaded": kernels is not None and kernels._DEMANGLER is not kernels._UNLOADED,
    "ctypes_importer": first_ctypes_importer[0] if first_ctypes_importer else None,
}))
"""


def test_importing_the_decode_loop_loads_no_cupti_and_no_demangler():
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(got["mlxprof"]).resolve().parent == root / "mlxprof"  # this checkout's package was probed
    assert got["cupti_modules"] == []
    assert got["demangler_loaded"] is False
    importer = got["ctypes_importer"]
    assert importer is None or (root / "mlxprof") not in Path(importer).resolve().parents, importer
