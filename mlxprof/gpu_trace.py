"""The GPU's own timeline on CUDA, recorded with CUPTI's activity API.

`Recorder` wraps cupti-python (NVIDIA's bindings, `pip install 'mlxprof[cuda]'`):
it enables CONCURRENT_KERNEL (plus MEMCPY / MEMSET when CUPTI allows), takes
the records CUPTI hands back in its buffer-completed callback, and pairs
CUPTI's clock with `time.perf_counter()` before and after so every kernel can
be placed on the host clock. MLX launches its kernels through CUDA graphs;
graph kernel nodes still come back as one CONCURRENT_KERNEL record each.

Everything else here is a pure function over plain numbers, testable without
a GPU: interval union, busy fraction, per-token attribution, kernel-name
cleanup and mapping to MLX primitives, and the clock fit.

Definitions (over the measured tokens only, as tok/s is):
  window          [first measured delivery, last measured delivery] of a run
  busy fraction   |union of kernel intervals ∩ window| / |window|
  GPU ms/token    busy time inside one token interval (delivery n-1 → n)
  kernels/token   kernels starting inside the windows / token intervals
"""

import bisect
import ctypes
import ctypes.util
import re
import statistics
import time
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from pydantic import BaseModel, PrivateAttr

from . import stats
from .errors import InputError

EXTRA_HINT = "pip install 'mlxprof[cuda]' (cupti-python, NVIDIA's CUPTI bindings)"
# Per CUPTI buffer. The buffer-completed callback runs Python on CUPTI's thread
# and holds the GIL while it copies records, so a buffer that fills during a
# run stalls the decode loop: make buffers hold a whole run (E2B: ~2200
# kernels/token) and flush between runs (Recorder.flush).
BUFFER_BYTES = 128 << 20


# --------------------------------------------------------------------------
# availability


def _import_cupti():
    """cupti-python's module, imported lazily (it loads libcupti and cuda-bindings)."""
    from cupti import cupti  # noqa: WPS433 (lazy on purpose)

    return cupti


def check_available(backend: str):
    """Raise a one-line InputError unless a CUPTI timeline can be recorded here.
    Cheap: call it before any model is loaded."""
    if backend == "metal":
        raise InputError(
            "--gpu-timeline records the CUDA kernel timeline through CUPTI and is not available on "
            "the Metal backend; for a Metal GPU trace use mx.metal.start_capture(path) around the "
            "work and open the .gputrace in Xcode"
        )
    if backend != "cuda":
        raise InputError(
            f"--gpu-timeline needs MLX's CUDA backend; this is the {backend.upper()} backend, "
            "which has no GPU kernels to trace"
        )
    try:
        cupti = _import_cupti()
        cupti.get_timestamp()
    except ImportError as e:
        raise InputError(f"--gpu-timeline needs cupti-python: {EXTRA_HINT}; import failed: {_one_line(e)}")
    except Exception as e:  # libcupti missing or too old for the driver
        raise InputError(f"--gpu-timeline: CUPTI did not load ({_one_line(e)}); {EXTRA_HINT}")


def _one_line(e) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())


# --------------------------------------------------------------------------
# clock calibration: CUPTI ns -> perf_counter seconds


class ClockFit(BaseModel):
    """host_s = offset_s + slope * (cupti_ns - ref_ns) * 1e-9"""

    ref_ns: int
    offset_s: float
    slope: float
    pairs: int
    span_s: float  # CUPTI time covered by the pairs
    residual_us: float  # worst pair's distance from the fit
    uncertainty_us: float  # worst kept pair's perf_counter bracket
    note: Optional[str] = None

    @property
    def drift_ppm(self) -> float:
        return (self.slope - 1.0) * 1e6

    def to_host(self, ns: int) -> float:
        return self.offset_s + self.slope * (ns - self.ref_ns) * 1e-9


def take_pairs(gpu_ns: Callable[[], int], host_s: Callable[[], float] = time.perf_counter,
               n: int = 32, keep: int = 8) -> List[Tuple[int, float, float]]:
    """(cupti_ns, host_s, bracket_s) readings; the host time is the midpoint of
    perf_counter() read just before and after, and only the `keep` tightest
    brackets are kept."""
    out = []
    for _ in range(n):
        h0 = host_s()
        c = gpu_ns()
        h1 = host_s()
        out.append((int(c), (h0 + h1) / 2, h1 - h0))
    out.sort(key=lambda p: p[2])
    return out[:keep]


MAX_DRIFT = 1e-3  # 1000 ppm: beyond this the pairs are not to be trusted for a slope
MIN_SPAN_S = 0.5  # too short a span cannot separate drift from jitter


def fit_clock(pairs: Sequence[Tuple[int, float, float]]) -> ClockFit:
    """Offset, and drift when the pairs span enough time to measure it (pairs
    taken before and after a recording do). Integers are kept until ref_ns is
    subtracted: CUPTI timestamps (~1e18 ns) do not fit a double exactly."""
    if not pairs:
        raise ValueError("no clock pairs")
    ref = min(p[0] for p in pairs)
    xs = [(p[0] - ref) * 1e-9 for p in pairs]
    ys = [p[1] for p in pairs]
    span = max(xs) - min(xs)
    note = None
    slope = 1.0
    if span >= MIN_SPAN_S and len(pairs) >= 2:
        mx_, my = statistics.fmean(xs), statistics.fmean(ys)
        sxx = sum((x - mx_) ** 2 for x in xs)
        fitted = sum((x - mx_) * (y - my) for x, y in zip(xs, ys)) / sxx
        if abs(fitted - 1.0) <= MAX_DRIFT:
            slope = fitted
        else:
            note = f"drift fit {(fitted - 1) * 1e6:.0f} ppm rejected; offset only"
    offset = statistics.median([y - slope * x for x, y in zip(xs, ys)])
    resid = max(abs(y - (offset + slope * x)) for x, y in zip(xs, ys))
    return ClockFit(ref_ns=ref, offset_s=offset, slope=slope, pairs=len(pairs), span_s=span,
                    residual_us=resid * 1e6, uncertainty_us=max(p[2] for p in pairs) * 1e6, note=note)


# --------------------------------------------------------------------------
# records


class Kernel(NamedTuple):
    """One activity record as CUPTI gave it (timestamps in CUPTI ns)."""

    start: int
    end: int
    name: str  # raw (usually mangled) kernel name; "[memcpy]" / "[memset]"
    kind: str  # "kernel", "memcpy", "memset"
    graph_id: int  # 0 when not launched from a CUDA graph


def parse_activities(activities: Iterable, kinds: Dict[int, str], out: List[Kernel],
                     names: Optional[Dict[str, str]] = None) -> int:
    """Copy what we need out of CUPTI activity objects (they may point into a
    buffer CUPTI reuses once the callback returns). `kinds` maps the
    ActivityKind ints to keep onto our labels. Returns records skipped as
    invalid (no timestamps, or end before start)."""
    names = {} if names is None else names
    bad = 0
    for a in activities:
        label = kinds.get(int(a.kind))
        if label is None:
            continue
        s, e = int(a.start), int(a.end)
        if e < s or (s == 0 and e == 0):
            bad += 1
            continue
        if label == "kernel":
            name = a.name
            if isinstance(name, bytes):
                name = name.decode("utf-8", "replace")
            name = name or "?"
        else:
            name = f"[{label}]"
        name = names.setdefault(name, name)  # one string object per kernel name
        out.append(Kernel(s, e, name, label, int(getattr(a, "graph_id", 0) or 0)))
    return bad


# --------------------------------------------------------------------------
# interval arithmetic


def union_intervals(intervals: Iterable[Tuple[float, float]]) -> List[Tuple[float, float]]:
    """Merge overlapping or touching intervals; result sorted and disjoint."""
    merged: List[List[float]] = []
    for s, e in sorted(intervals):
        if e < s:
            continue
        if merged and s <= merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1][1] = e
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged]


def busy_in_windows(merged: Sequence[Tuple[float, float]], windows: Sequence[Tuple[float, float]]) -> List[float]:
    """Time covered by the (merged, disjoint) intervals inside each window."""
    starts = [m[0] for m in merged]
    out = []
    for lo, hi in windows:
        i = max(bisect.bisect_right(starts, lo) - 1, 0)
        tot = 0.0
        while i < len(merged) and merged[i][0] < hi:
            s, e = merged[i]
            tot += max(0.0, min(e, hi) - max(s, lo))
            i += 1
        out.append(tot)
    return out


def busy_fraction(intervals: Iterable[Tuple[float, float]], lo: float, hi: float) -> float:
    if hi <= lo:
        return float("nan")
    return busy_in_windows(union_intervals(intervals), [(lo, hi)])[0] / (hi - lo)


def count_in_windows(sorted_starts: Sequence[float], windows: Sequence[Tuple[float, float]]) -> List[int]:
    """How many starts fall in each [lo, hi)."""
    return [bisect.bisect_left(sorted_starts, hi) - bisect.bisect_left(sorted_starts, lo) for lo, hi in windows]


def token_windows(run) -> List[Tuple[float, float]]:
    """(delivery n-1, delivery n) on the perf_counter clock for each measured
    token interval of a RunRecord-like object (t0, deliveries_s)."""
    d = [run.t0 + x for x in run.deliveries_s]
    return list(zip(d[:-1], d[1:]))


def run_window(run) -> Tuple[float, float]:
    return run.t0 + run.deliveries_s[0], run.t0 + run.deliveries_s[-1]


# --------------------------------------------------------------------------
# kernel names


def _libstdcxx_demangler():
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("stdc++") or "libstdc++.so.6")
        f = lib.__cxa_demangle
        f.restype = ctypes.c_void_p
        f.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
        free = ctypes.CDLL(None).free
        free.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError):
        return None

    def demangle(name: str) -> Optional[str]:
        status = ctypes.c_int(0)
        p = f(name.encode(), None, None, ctypes.byref(status))
        if not p:
            return None
        try:
            return ctypes.string_at(p).decode("utf-8", "replace") if status.value == 0 else None
        finally:
            free(p)

    return demangle


_DEMANGLER = _libstdcxx_demangler()


def _nested_name(mangled: str) -> Optional[str]:
    """Fallback for `_ZN3mlx4core2cu10qmv_kernelI...`: the length-prefixed
    identifiers of an Itanium nested name, joined with '::'."""
    m = re.match(r"_Z(N?)(.*)", mangled)
    if not m:
        return None
    rest, parts = m.group(2), []
    rest = re.sub(r"^[rVK]+", "", rest)  # cv-qualifiers of member functions
    while True:
        n = re.match(r"(\d+)", rest)
        if not n:
            break
        k = int(n.group(1))
        ident = rest[len(n.group(1)):len(n.group(1)) + k]
        if len(ident) < k:
            break
        parts.append(ident)
        rest = rest[len(n.group(1)) + k:]
        if not m.group(1):  # not nested: a single name
            break
    return "::".join(parts) if parts else None


def demangle(name: str) -> str:
    if not name.startswith("_Z"):
        return name
    if _DEMANGLER is not None:
        d = _DEMANGLER(name)
        if d:
            return d
    return _nested_name(name) or name


def _strip_balanced(s: str, open_: str, close: str) -> Tuple[str, List[str]]:
    """Remove every top-level open_…close_ group; also return those groups' contents."""
    out, groups, depth, cur = [], [], 0, []
    for ch in s:
        if ch == open_:
            if depth == 0:
                cur = []
            else:
                cur.append(ch)
            depth += 1
        elif ch == close and depth > 0:
            depth -= 1
            if depth == 0:
                groups.append("".join(cur))
            else:
                cur.append(ch)
        elif depth == 0:
            out.append(ch)
        else:
            cur.append(ch)
    return "".join(out), groups


def _split_top(s: str, sep: str = ",") -> List[str]:
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return parts


ELEMENTWISE_FAMILIES = ("binary", "unary", "ternary")


def readable(raw: str) -> Tuple[str, str]:
    """(short name, qualified base) of a kernel name: demangled, return type,
    template arguments and parameters dropped. Elementwise kernels keep their
    op (`binary_vv<Add>`), since the op is what tells them apart."""
    full = demangle(raw)
    # drop parameter lists and "(anonymous namespace)" groups, then template arguments
    stripped, _ = _strip_balanced(full, "(", ")")
    base, targs = _strip_balanced(stripped, "<", ">")
    base = base.strip()
    if " " in base:  # "void mlx::core::cu::rms_norm" -> qualified name
        base = base.split(" ")[-1]
    short = base.split("::")[-1] or base
    if short.startswith(ELEMENTWISE_FAMILIES) and targs:
        op = _split_top(targs[0])[0].split("::")[-1]
        if re.fullmatch(r"[A-Za-z_]\w*", op):
            short = f"{short}<{op}>"
    if len(short) > 80:
        short = short[:77] + "..."
    return short, base


# (primitive, test on the lower-cased short name) in priority order
_RULES: List[Tuple[str, Callable[[str], bool]]] = [
    ("Compiled", lambda n: n.endswith(("_contiguous", "_strided")) or "compiled" in n),
    ("elementwise", lambda n: n.startswith(ELEMENTWISE_FAMILIES)),
    ("GatherQMM", lambda n: n.startswith("gather_q")),
    ("QuantizedMatmul", lambda n: any(k in n for k in ("qmv", "qmm", "qvm", "quantized_matmul"))),
    ("RMSNorm", lambda n: "rms_norm" in n or "rmsnorm" in n),
    ("LayerNorm", lambda n: "layer_norm" in n or "layernorm" in n),
    ("RoPE", lambda n: "rope" in n),
    ("ScaledDotProductAttention", lambda n: "sdpa" in n or "attention" in n or "flash" in n),
    ("Matmul", lambda n: any(k in n for k in ("gemv", "gemm", "nvjet", "xmma", "cublas", "cutlass",
                                               "matmul", "splitkreduce", "wgmma"))),
    ("LogSumExp", lambda n: "logsumexp" in n),
    ("Softmax", lambda n: "softmax" in n),
    ("ArgReduce", lambda n: "arg_reduce" in n or "argreduce" in n),
    ("Reduce", lambda n: "reduce" in n),
    ("Gather", lambda n: "gather" in n),
    ("Scatter", lambda n: "scatter" in n),
    ("SliceUpdate", lambda n: "slice_update" in n),
    ("Copy", lambda n: "copy" in n),
    ("Arange", lambda n: "arange" in n),
    ("Sort", lambda n: "sort" in n or "radix" in n or "partition" in n),
    ("Random", lambda n: "rbits" in n or "random" in n),
    ("memcpy", lambda n: n == "[memcpy]"),
    ("memset", lambda n: n == "[memset]" or "memset" in n),
]


def primitive_of(short: str, qualified: str = "") -> str:
    """The MLX primitive a kernel most likely implements, or "other"."""
    n = short.lower()
    q = qualified.lower()
    for prim, test in _RULES:
        if test(n):
            return prim
    if "cutlass" in q or "cublas" in q:
        return "Matmul"
    return "other"


def classify(raw: str) -> Tuple[str, str]:
    """(readable name, MLX primitive) of a raw CUPTI kernel name."""
    short, qual = readable(raw)
    return short, primitive_of(short, qual)


# --------------------------------------------------------------------------
# the result


class KernelStat(BaseModel):
    name: str  # readable
    primitive: str
    count_per_token: float
    ms_per_token: float  # summed durations (not a union)
    share: float  # of all kernel time in the windows
    mean_us: float
    raw: str  # one raw CUPTI name, truncated


class PrimitiveStat(BaseModel):
    primitive: str
    count_per_token: float
    ms_per_token: float
    share: float


class GpuTimeline(BaseModel):
    source: str = "CUPTI activity API (cupti-python)"
    kinds: List[str]  # activity kinds recorded
    runs: int  # traced runs
    intervals: int  # token intervals measured over all traced runs
    wall_s: float  # sum of measured windows
    busy_s: float  # union of kernel time inside them
    busy_fraction: float
    busy_fraction_runs: List[float]
    gpu_ms_per_token: stats.Summary  # union busy ms inside each token interval
    kernel_ms_per_token: float  # summed kernel durations per token (≥ busy when kernels overlap)
    kernels_per_token: float
    kernels_per_token_runs: List[float]
    graph_kernel_share: float  # of kernels, those launched from a CUDA graph
    top_kernels: List[KernelStat]
    by_primitive: List[PrimitiveStat]
    records: int
    records_in_windows: int
    invalid_records: int
    dropped_records: Optional[int] = None
    clock: ClockFit
    # what tracing costs: the traced runs against the untraced (normal) ones
    traced_tok_s: Optional[stats.Summary] = None
    overhead: Optional[stats.Comparison] = None  # baseline "untraced", candidate "traced"
    method: str = ""
    notes: List[str] = []

    _spans: list = PrivateAttr(default_factory=list)

    def spans(self) -> List[Tuple[str, float, float]]:
        """(name, start_s on the perf_counter clock, dur_s) of the recorded
        kernels inside the traced runs' windows — in memory only (not saved)."""
        return self._spans

    @property
    def tracing_cost(self) -> Optional[float]:
        """Fraction of tok/s lost under tracing (median vs median)."""
        return None if self.overhead is None else 1.0 - self.overhead.ratio


def to_host(kernels: Sequence[Kernel], clock: ClockFit) -> List[Tuple[float, float, Kernel]]:
    """(start_s, end_s, record) on the perf_counter clock, sorted by start."""
    out = [(clock.to_host(k.start), clock.to_host(k.end), k) for k in kernels]
    out.sort(key=lambda t: t[0])
    return out


def spans_for_trace(kernels: Sequence[Kernel], clock: ClockFit,
                    windows: Optional[Sequence[Tuple[float, float]]] = None,
                    limit: Optional[int] = None) -> List[Tuple[str, float, float]]:
    """(readable name, start_s, dur_s) on the perf_counter clock, the shape
    `trace.build(result, gpu_spans=...)` takes; only kernels starting inside
    `windows` when given, at most `limit` (earliest first)."""
    names: Dict[str, str] = {}
    out = []
    for s, e, k in to_host(kernels, clock):
        if windows is not None and not any(lo <= s < hi for lo, hi in windows):
            continue
        n = names.get(k.name)
        if n is None:
            n = names[k.name] = classify(k.name)[0]
        out.append((n, s, e - s))
        if limit is not None and len(out) >= limit:
            break
    return out


def analyze(kernels: Sequence[Kernel], clock: ClockFit, runs: Sequence, kinds: Sequence[str],
            invalid: int = 0, dropped: Optional[int] = None, top: int = 15) -> GpuTimeline:
    """Attribute recorded kernels to the measured tokens of `runs`
    (RunRecord-like: t0, deliveries_s)."""
    if not runs:
        raise ValueError("no traced runs to attribute kernels to")
    host = to_host(kernels, clock)
    starts = [h[0] for h in host]
    merged = union_intervals((s, e) for s, e, _ in host)
    wins = [run_window(r) for r in runs]
    tok_wins = [w for r in runs for w in token_windows(r)]
    intervals = len(tok_wins)
    wall = sum(hi - lo for lo, hi in wins)
    busy_runs = busy_in_windows(merged, wins)
    per_token_ms = [b * 1e3 for b in busy_in_windows(merged, tok_wins)]
    counts_runs = count_in_windows(starts, wins)

    # kernels starting inside a run window: names, durations, graph launches
    in_win = []
    for lo, hi in wins:
        i, j = bisect.bisect_left(starts, lo), bisect.bisect_left(starts, hi)
        in_win.extend(host[i:j])
    names: Dict[str, Tuple[str, str]] = {}
    by_name: Dict[str, List[float]] = {}
    for s, e, k in in_win:
        acc = by_name.setdefault(k.name, [0, 0.0])
        acc[0] += 1
        acc[1] += e - s
    total_s = sum(v[1] for v in by_name.values())
    per = max(intervals, 1)
    by_readable: Dict[Tuple[str, str], List] = {}
    for raw, (cnt, dur) in by_name.items():
        short, prim = names[raw] = classify(raw)
        acc = by_readable.setdefault((short, prim), [0, 0.0, raw])
        acc[0] += cnt
        acc[1] += dur
    kstats = sorted(
        (KernelStat(name=s, primitive=p, count_per_token=c / per, ms_per_token=d * 1e3 / per,
                    share=d / total_s if total_s else 0.0, mean_us=d * 1e6 / c if c else 0.0,
                    raw=raw[:200])
         for (s, p), (c, d, raw) in by_readable.items()),
        key=lambda k: -k.ms_per_token,
    )
    prims: Dict[str, List[float]] = {}
    for k in kstats:
        acc = prims.setdefault(k.primitive, [0.0, 0.0])
        acc[0] += k.count_per_token
        acc[1] += k.ms_per_token
    pstats = sorted(
        (PrimitiveStat(primitive=p, count_per_token=c, ms_per_token=m,
                       share=(m / (total_s * 1e3 / per)) if total_s else 0.0)
         for p, (c, m) in prims.items()),
        key=lambda p: -p.ms_per_token,
    )
    n_in = len(in_win)
    graphs = sum(1 for _, _, k in in_win if k.graph_id)
    notes = []
    per_run_k = [c / max(len(r.deliveries_s) - 1, 1) for c, r in zip(counts_runs, runs)]
    if n_in == 0:
        notes.append("no kernel records fell inside the measured windows: CUPTI saw no kernels, "
                     "or the clock pairing is off")
    elif len(per_run_k) > 1 and min(per_run_k) < 0.8 * max(per_run_k):
        notes.append("kernels per token differ by more than 20% between traced runs "
                     f"({', '.join(f'{x:.0f}' for x in per_run_k)}): records may have been lost")
    if dropped:
        notes.append(f"CUPTI reports {dropped} dropped records")
    tl = GpuTimeline(
        kinds=list(kinds), runs=len(runs), intervals=intervals, wall_s=wall, busy_s=sum(busy_runs),
        busy_fraction=sum(busy_runs) / wall if wall > 0 else float("nan"),
        busy_fraction_runs=[b / (hi - lo) if hi > lo else float("nan") for b, (lo, hi) in zip(busy_runs, wins)],
        gpu_ms_per_token=stats.summarize(per_token_ms or [0.0], higher_is_better=False),
        kernel_ms_per_token=total_s * 1e3 / per,
        kernels_per_token=n_in / per,
        kernels_per_token_runs=per_run_k,
        graph_kernel_share=graphs / n_in if n_in else 0.0,
        top_kernels=kstats[:top], by_primitive=pstats,
        records=len(kernels), records_in_windows=n_in, invalid_records=invalid, dropped_records=dropped,
        clock=clock, notes=notes,
    )
    tl._spans = [(names[k.name][0], s, e - s) for s, e, k in in_win]  # every name classified above
    return tl


# --------------------------------------------------------------------------
# the CUPTI recorder

class RecorderError(RuntimeError):
    """CUPTI would not start recording (kernel activity refused, or a Recorder already active)."""


_callbacks_registered = False
_sink = None  # the Recorder that buffer-completed callbacks feed


def _buffer_requested():
    return BUFFER_BYTES, 0  # (bytes, max records: 0 = as many as fit)


def _buffer_completed(activities):
    t0 = time.perf_counter()
    sink = _sink
    if sink is None:
        return
    try:
        n = len(sink.kernels)
        sink.invalid += parse_activities(activities, sink._kind_labels, sink.kernels, sink._names)
        sink.deliveries.append((t0, time.perf_counter(), len(sink.kernels) - n))
    except Exception as e:  # never raise into CUPTI's thread
        sink.errors.append(_one_line(e))


class Recorder:
    """Record kernel activity between __enter__ and __exit__.

        with Recorder(sync=mx.synchronize) as rec:
            ...GPU work...
        rec.kernels, rec.clock  # raw records (CUPTI ns) and the clock fit

    CUPTI's callbacks are registered once per process (CUPTI keeps one pair);
    each Recorder enables the activity kinds on entry and disables them on
    exit, after a forced flush. `sync` (e.g. mx.synchronize) runs before the
    flush so the last kernels have finished."""

    KINDS = (("CONCURRENT_KERNEL", "kernel"), ("MEMCPY", "memcpy"), ("MEMSET", "memset"))

    def __init__(self, sync: Optional[Callable[[], None]] = None, kinds=("kernel", "memcpy", "memset")):
        self.sync = sync
        self.want = set(kinds)
        self.kernels: List[Kernel] = []
        self.invalid = 0
        self.errors: List[str] = []
        self.deliveries: List[Tuple[float, float, int]] = []  # (start, end, records) of each callback
        self.kinds: List[str] = []
        self.dropped: Optional[int] = None
        self.clock: Optional[ClockFit] = None
        self._kind_labels: Dict[int, str] = {}
        self._names: Dict[str, str] = {}
        self._enabled = []
        self._pairs = []

    def __enter__(self):
        global _callbacks_registered, _sink
        cupti = self._cupti = _import_cupti()
        if _sink is not None:
            raise RecorderError("a GPU timeline Recorder is already active")
        if not _callbacks_registered:
            cupti.activity_register_callbacks(_buffer_requested, _buffer_completed)
            _callbacks_registered = True
        _dropped_records(cupti)  # the count is "since the last call": start from zero
        self._pairs = take_pairs(cupti.get_timestamp)
        _sink = self
        try:
            for enum_name, label in self.KINDS:
                if label not in self.want:
                    continue
                kind = getattr(cupti.ActivityKind, enum_name)
                try:
                    cupti.activity_enable(kind)
                except Exception as e:
                    if label == "kernel":
                        raise RecorderError(f"CUPTI could not enable kernel activity: {_one_line(e)}") from e
                    self.errors.append(f"{enum_name} not enabled: {_one_line(e)}")
                    continue
                self._enabled.append(kind)
                self._kind_labels[int(kind)] = label
                self.kinds.append(label)
            # KERNEL records are the serialized variant; treat them as kernels if they come
            self._kind_labels.setdefault(int(cupti.ActivityKind.KERNEL), "kernel")
        except BaseException:
            self._stop()
            raise
        return self

    def flush(self, *_):
        """Have CUPTI hand over what it holds now (call between runs, with the
        GPU idle, so the callback's Python work falls outside measured tokens)."""
        if self.sync is not None:
            self.sync()
        self._cupti.activity_flush_all(1)

    def _stop(self):
        global _sink
        cupti = self._cupti
        try:
            if self.sync is not None:
                self.sync()
            cupti.activity_flush_all(1)  # CUPTI_ACTIVITY_FLAG_FLUSH_FORCED: partly filled buffers too
        finally:
            for kind in self._enabled:
                try:
                    cupti.activity_disable(kind)
                except Exception as e:
                    self.errors.append(f"disable {kind}: {_one_line(e)}")
            self._enabled = []
            try:
                cupti.activity_flush_all(1)
            except Exception as e:
                self.errors.append(f"final flush: {_one_line(e)}")
            _sink = None
            self.dropped = _dropped_records(cupti)
            self._pairs += take_pairs(cupti.get_timestamp)
            self.clock = fit_clock(self._pairs)

    def __exit__(self, *exc):
        self._stop()
        return False

    def analyze(self, runs: Sequence, top: int = 15) -> GpuTimeline:
        tl = analyze(self.kernels, self.clock, runs, self.kinds, invalid=self.invalid,
                     dropped=self.dropped, top=top)
        tl.notes.extend(f"CUPTI: {e}" for e in self.errors)
        wins = [run_window(r) for r in runs]
        inside = [(a, b) for a, b, _ in self.deliveries if any(a < hi and b > lo for lo, hi in wins)]
        if inside:
            tl.notes.append(f"{len(inside)} CUPTI buffer deliveries ({sum(b - a for a, b in inside) * 1e3:.0f} ms "
                            "of Python on CUPTI's thread) overlapped measured tokens: the traced runs' host "
                            "times include them")
        return tl


def _dropped_records(cupti) -> Optional[int]:
    """CUPTI's count of records lost for want of buffer space (global queue), if it says."""
    try:
        import numpy as np

        n = np.zeros(1, dtype=np.uint64)
        cupti.activity_get_num_dropped_records(0, 0, n.ctypes.data)
        return int(n[0])
    except Exception:
        return None
