"""The GPU timeline result and the arithmetic that builds it, from plain numbers.

Pure: no CUPTI and no ctypes (kernel names are demangled only when `analyze`
runs), so `mlxprof.decode` can import the schema cheaply. The records come
from `mlxprof.gpu.cupti.Recorder`; the clock fit from `mlxprof.gpu.clock`.

Definitions (over the measured tokens only, as tok/s is):
  window          [first measured delivery, last measured delivery] of a run
  busy fraction   |union of record intervals ∩ window| / |window|
  GPU ms/token    busy time inside one token interval (delivery n-1 → n)
  kernels/token   kernels starting inside the windows / token intervals

Records are graph-level (one per CUDA graph launch: its first node's start to
its last node's end, so gaps between a graph's nodes count as busy: the device
is working through the graph, not waiting on the host) or kernel-level (one
per kernel). A decode's busy fraction comes from graph-level runs, which cost
little to trace; its kernel table from kernel-level runs, traced separately
(`combine`); `TracingTier` says which runs gave what, at what tracing cost.
"""

import bisect
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from pydantic import BaseModel, PrivateAttr

from .. import stats
from .clock import ClockFit
from .kernels import kernel_family

GRAPH_NAME = "[graph]"  # a graph-level record's name (gpu/cupti.py gives them this one)


class Kernel(NamedTuple):
    """One activity record as CUPTI gave it (timestamps in CUPTI ns)."""

    start: int
    end: int
    name: str  # raw (usually mangled) kernel name; "[memcpy]" / "[memset]" / "[graph]"
    kind: str  # "kernel", "memcpy", "memset", "graph" (one CUDA graph launch)
    graph_id: int  # 0 when not launched from a CUDA graph


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


class TracingTier(BaseModel):
    """One kind of traced run: what CUPTI recorded, in which runs, what it gave, what it cost."""

    name: str  # which traced runs: "graph" (for the busy fraction) or "kernel" (for the kernel table)
    level: str  # what their records were: "graph" (one per CUDA graph launch) or "kernel" (one per kernel)
    kinds: List[str]  # activity kinds enabled
    runs: List[int]  # indexes into the decode result's gpu_runs
    figures: str  # what was computed from these runs, in words
    tok_s: stats.Summary
    overhead: Optional[stats.Comparison] = None  # baseline "untraced", interleaved in the same process


class NvmlBusy(BaseModel):
    """The busy fraction NVML's samples give over a set of runs' measured windows."""

    source: str = "NVML utilization samples (nvmlDeviceGetSamples, GPU_UTILIZATION_SAMPLES)"
    runs: int  # runs whose windows were read
    busy_fraction: Optional[float]  # busy over covered time, all runs together (None: no whole sample)
    busy_fraction_runs: List[Optional[float]]
    samples: int  # whole sample periods inside the windows
    coverage: float  # covered time / the windows' wall time
    period_ms: Optional[float]  # median sample period
    notes: List[str] = []


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
    # what tracing costs: the busy-fraction runs against the untraced (normal) ones
    traced_tok_s: Optional[stats.Summary] = None
    overhead: Optional[stats.Comparison] = None  # baseline "untraced", candidate "traced"
    method: str = ""
    notes: List[str] = []
    # where each figure came from; results saved before these existed had one
    # kernel-level set of traced runs behind every figure (the defaults)
    busy_level: str = "kernel"  # records behind busy fraction, GPU ms/token and the verdict's share
    table_level: str = "kernel"  # records behind kernels/token, top kernels, by primitive
    table_runs: Optional[int] = None  # traced runs behind the kernel table (None: the same `runs`)
    graphs_per_token: Optional[float] = None  # CUDA graph launches per token (graph level)
    kernel_busy_fraction: Optional[float] = None  # busy fraction the kernel-level runs saw (cross-check)
    tiers: List[TracingTier] = []
    # NVML's busy fraction over the untraced runs (what the verdict uses when
    # present), and over the kernel-traced runs (beside CUPTI's busy there)
    nvml: Optional[NvmlBusy] = None
    nvml_traced: Optional[NvmlBusy] = None
    nvml_missing: Optional[str] = None  # why NVML could not be read, when it could not

    _spans: list = PrivateAttr(default_factory=list)

    def costs(self) -> List[Tuple[str, int, stats.Comparison]]:
        """(which traced runs, how many, tok/s against the untraced runs) for each
        kind of traced run; one "traced runs" entry for results saved before kinds."""
        if self.tiers:
            return [(f"{x.name}-traced ({x.level}-level records)", len(x.runs), x.overhead)
                    for x in self.tiers if x.overhead is not None]
        return [("traced runs", self.runs, self.overhead)] if self.overhead is not None else []

    def verdict_busy(self) -> Tuple[Optional[float], str]:
        """The busy fraction the verdict uses, and which runs and method gave it:
        NVML over the untraced runs when it read a whole sample period, else
        CUPTI's records over the traced runs, else none."""
        if self.nvml is not None and self.nvml.busy_fraction is not None:
            return self.nvml.busy_fraction, f"NVML utilization samples over {self.nvml.runs} untraced runs"
        if self.records_in_windows:
            return self.busy_fraction, f"CUPTI {self.busy_level}-level records over {self.runs} traced runs"
        return None, "no busy fraction (no NVML sample and no CUPTI record inside the measured tokens)"

    def spans(self) -> List[Tuple[str, float, float]]:
        """(name, start_s on the perf_counter clock, dur_s) of the recorded
        kernels inside the traced runs' windows — in memory only (not saved)."""
        return self._spans


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
# records on the host clock


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
            n = names[k.name] = kernel_family(k.name)[0]
        out.append((n, s, e - s))
        if limit is not None and len(out) >= limit:
            break
    return out


# --------------------------------------------------------------------------
# attribution to measured tokens


def analyze(kernels: Sequence[Kernel], clock: ClockFit, runs: Sequence, kinds: Sequence[str],
            invalid: int = 0, dropped: Optional[int] = None, top: int = 15) -> GpuTimeline:
    """Attribute recorded kernels (and graph launches) to the measured tokens
    of `runs` (RunRecord-like: t0, deliveries_s)."""
    if not runs:
        raise ValueError("no traced runs to attribute kernels to")
    host = to_host(kernels, clock)
    merged = union_intervals((s, e) for s, e, _ in host)
    wins = [run_window(r) for r in runs]
    tok_wins = [w for r in runs for w in token_windows(r)]
    intervals = len(tok_wins)
    wall = sum(hi - lo for lo, hi in wins)
    busy_runs = busy_in_windows(merged, wins)
    per_token_ms = [b * 1e3 for b in busy_in_windows(merged, tok_wins)]

    # records starting inside a run window: graph launches apart, kernels by name
    starts = [h[0] for h in host]
    in_win = []
    for lo, hi in wins:
        i, j = bisect.bisect_left(starts, lo), bisect.bisect_left(starts, hi)
        in_win.extend(host[i:j])
    graphs = [h for h in in_win if h[2].kind == "graph"]
    ks = [h for h in in_win if h[2].kind != "graph"]
    per = max(intervals, 1)
    kstats, pstats, names, total_s = _kernel_stats(ks, per)
    n_k = len(ks)
    counts_runs = count_in_windows([h[0] for h in ks], wins)
    per_run_k = [c / max(len(r.deliveries_s) - 1, 1) for c, r in zip(counts_runs, runs)]
    level = "graph" if graphs else "kernel"
    tl = GpuTimeline(
        kinds=list(kinds), runs=len(runs), intervals=intervals, wall_s=wall, busy_s=sum(busy_runs),
        busy_fraction=sum(busy_runs) / wall if wall > 0 else float("nan"),
        busy_fraction_runs=[b / (hi - lo) if hi > lo else float("nan") for b, (lo, hi) in zip(busy_runs, wins)],
        gpu_ms_per_token=stats.summarize(per_token_ms or [0.0], higher_is_better=False),
        kernel_ms_per_token=total_s * 1e3 / per,
        kernels_per_token=n_k / per,
        kernels_per_token_runs=per_run_k,
        graph_kernel_share=sum(1 for _, _, k in ks if k.graph_id) / n_k if n_k else 0.0,
        top_kernels=kstats[:top], by_primitive=pstats,
        records=len(kernels), records_in_windows=len(in_win), invalid_records=invalid, dropped_records=dropped,
        clock=clock, notes=_record_notes(len(in_win), per_run_k if level == "kernel" else [], dropped),
        busy_level=level, table_level=level, graphs_per_token=len(graphs) / per if graphs else None,
    )
    names[GRAPH_NAME] = (GRAPH_NAME, "CUDA graph")
    tl._spans = sorted(((names[k.name][0], s, e - s) for s, e, k in in_win), key=lambda x: x[1])
    return tl


TABLE_FIELDS = ("kernel_ms_per_token", "kernels_per_token", "kernels_per_token_runs", "graph_kernel_share",
                "top_kernels", "by_primitive")


def combine(busy: GpuTimeline, table: Optional[GpuTimeline], tiers: Sequence[TracingTier] = ()) -> GpuTimeline:
    """One timeline from the busy-fraction runs (`busy`, usually graph level)
    and the kernel-table runs (`table`, kernel level; None when there were
    none): busy figures from the first, kernel figures from the second, each
    one's notes and spans kept."""
    out = busy.model_copy(deep=True)
    out.tiers = list(tiers)
    if table is not None:
        out = out.model_copy(update={f: getattr(table, f) for f in TABLE_FIELDS})
        out.table_level, out.table_runs = table.table_level, table.runs
        out.kernel_busy_fraction = table.busy_fraction
        out.records_in_windows += table.records_in_windows
        out.notes = busy.notes + [n for n in table.notes if n not in busy.notes]
        out.kinds = busy.kinds + [k for k in table.kinds if k not in busy.kinds]
    out._spans = sorted(busy.spans() + (table.spans() if table is not None else []), key=lambda x: x[1])
    return out


def _kernel_stats(in_win, per: int):
    """Per readable kernel name and per primitive: counts and summed ms per
    token. Also returns each raw name's (readable, primitive) and the total
    kernel seconds."""
    by_name: Dict[str, List[float]] = {}
    for s, e, k in in_win:
        acc = by_name.setdefault(k.name, [0, 0.0])
        acc[0] += 1
        acc[1] += e - s
    total_s = sum(v[1] for v in by_name.values())
    names: Dict[str, Tuple[str, str]] = {}
    by_readable: Dict[Tuple[str, str], List] = {}
    for raw, (cnt, dur) in by_name.items():
        short, prim = names[raw] = kernel_family(raw)
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
    return kstats, pstats, names, total_s


def _record_notes(n_in: int, per_run_k: List[float], dropped: Optional[int]) -> List[str]:
    """What the record counts say about lost records or a bad clock pairing."""
    notes = []
    if n_in == 0:
        notes.append("no kernel records fell inside the measured windows: CUPTI saw no kernels, "
                     "or the clock pairing is off")
    elif len(per_run_k) > 1 and min(per_run_k) < 0.8 * max(per_run_k):
        notes.append("kernels per token differ by more than 20% between traced runs "
                     f"({', '.join(f'{x:.0f}' for x in per_run_k)}): records may have been lost")
    if dropped:
        notes.append(f"CUPTI reports {dropped} dropped records")
    return notes
