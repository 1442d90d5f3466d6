"""A decode's traced runs, interleaved with its untraced ones, and what each kind gave.

`decode --gpu-timeline` runs, in one process:

  untraced  U K U K U …   untraced runs give tok/s, the split, prefill and,
                          read from NVML's utilization samples between runs
                          (gpu/nvml.py), the busy fraction and the verdict's
                          GPU share: nothing is enabled while they run, so
                          that figure costs the decode nothing
  kernel    between them  TABLE_RUNS kernel-level traced runs (CUPTI
                          CONCURRENT_KERNEL) give the kernel table; their
                          tracing cost is measured against their untraced
                          neighbours, and NVML's busy on them is set beside
                          CUPTI's (a cross-check of the two methods)

Why not CUPTI for the busy fraction: per-kernel records slowed gemma3n-e2b to
×0.83–0.85 of its untraced tok/s on an H200 (MLX 0.32.4, ~2300 kernels per
token), and GRAPH_TRACE, one record per CUDA graph launch, crashed the process
with SIGSEGV (docs/benchmark_results/measurement-cost-nvidia-h200.md). Where
NVML cannot be read, untraced and kernel-traced runs alternate (U K, K U, …)
and CUPTI's kernel-level busy is the figure, with its cost beside it;
MLXPROF_BUSY_LEVEL=graph|kernel picks one of the CUPTI levels instead.

CUPTI activity is enabled for one traced run at a time (its prefill and
warm-up included) and disabled after it (gpu/cupti.py), so untraced runs run
with no activity kind enabled. Untraced and graph-traced runs share one stream;
kernel-traced runs get a fresh one each (see segments).
"""

import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .. import stats
from .timeline import GpuTimeline, TracingTier, combine, run_window

UNTRACED, GRAPH, KERNEL, NVML = "untraced", "graph", "kernel", "nvml"
KERNEL_RUNS = 1  # kernel-level runs after graph-level ones: one run's tokens name every kernel
TABLE_RUNS = 2  # kernel-level runs between NVML-read untraced ones: the table, and a cost from 2 runs
FIGURES = {
    GRAPH: "busy fraction, GPU ms per token, CUDA graph launches per token, the verdict's GPU share",
    KERNEL: "kernels per token, top kernels, time by MLX primitive (and a kernel-level busy fraction "
            "as a cross-check)",
}


# Which runs give the busy figures: "nvml" (untraced runs, NVML's samples;
# falls back to "kernel" where NVML cannot be read), "graph" or "kernel"
# (CUPTI-traced runs of that level, alternating with untraced ones).
BUSY_LEVEL = os.environ.get("MLXPROF_BUSY_LEVEL", NVML)


def schedule(runs: int, kernel_runs: Optional[int] = None, busy: Optional[str] = None) -> List[str]:
    """The run order for `busy` (default BUSY_LEVEL):
    nvml          `runs` untraced runs with the kernel-traced runs between
                  them (U K U K U …), any left over at the end
    graph/kernel  `runs` untraced and `runs` traced runs at that level in
                  alternating pairs (U T, T U, …: neither kind always goes
                  first); after graph-level ones, the kernel-traced runs"""
    busy = busy or busy_level()
    order: List[str] = []
    if busy == NVML:
        left = TABLE_RUNS if kernel_runs is None else kernel_runs
        for i in range(runs):
            order.append(UNTRACED)
            if left and i < runs - 1:
                order.append(KERNEL)
                left -= 1
        return order + [KERNEL] * left
    for i in range(runs):
        order += [UNTRACED, busy] if i % 2 == 0 else [busy, UNTRACED]
    kernel_runs = KERNEL_RUNS if kernel_runs is None else kernel_runs
    return order + ([KERNEL] * kernel_runs if busy == GRAPH else [])


def busy_level(nvml_readable: bool = True) -> str:
    """The level BUSY_LEVEL asks for, "kernel" in place of "nvml" where NVML cannot be read."""
    if BUSY_LEVEL == GRAPH or (BUSY_LEVEL == NVML and nvml_readable):
        return BUSY_LEVEL
    return KERNEL


def open_plan(runs: int) -> Tuple[List[str], object, Optional[str]]:
    """A --gpu-timeline decode's run order, its NVML reading (None where NVML
    cannot be read, or BUSY_LEVEL asks for CUPTI) and why NVML is missing."""
    reading, why = None, None
    if BUSY_LEVEL == NVML:
        from . import nvml

        reading, why = nvml.open_reading()
    return schedule(runs, busy=busy_level(reading is not None)), reading, why


def segments(order: Sequence[str]) -> List[List[str]]:
    """The runs of `order` grouped into measure() calls (one stream each):
    untraced and graph-traced runs share a stream; every kernel-traced run gets
    one of its own, so each graph it launches is instantiated under kernel
    tracing (MLX keeps instantiated CUDA graphs per stream:
    CommandEncoder::graph_cache_, mlx/backend/cuda/device.cpp)."""
    out: List[List[str]] = []
    for label in order:
        if out and label != KERNEL and out[-1][-1] != KERNEL:
            out[-1].append(label)
        else:
            out.append([label])
    return out


def run_schedule(measure: Callable, order: Sequence[str], recorder, on_run: Optional[Callable] = None,
                 reading=None) -> Tuple[Dict[str, List], Dict[str, List[str]]]:
    """Run `order` through `measure(n_runs, on_run)` (decode.measure with the
    model, prompt and counts bound: one stream per call), enabling the recorder's level for each
    traced run just before it starts and stopping it as soon as it ends.
    `reading` (gpu/nvml.Reading), when given, reads NVML's new samples after
    every run. `on_run(label, record)` sees every finished run. Returns the
    RunRecords by label, in order, and the activity kinds each traced label
    got; the recorder is closed whatever happens."""
    by: Dict[str, List] = {UNTRACED: [], GRAPH: [], KERNEL: []}
    enabled: Dict[str, List[str]] = {}
    done, end = [0], [0]  # runs finished; the end of the current measure() call's part

    def begin(label):
        if label != UNTRACED:
            got = recorder.start(label)
            enabled.setdefault(label, got)

    def finished(rec):
        label = order[done[0]]
        if label != UNTRACED:
            recorder.stop()
        if reading is not None:
            reading.read()
        by[label].append(rec)
        done[0] += 1
        if on_run is not None:
            on_run(label, rec)
        if done[0] < end[0]:
            begin(order[done[0]])

    try:
        for part in segments(order):
            if part:
                end[0] = done[0] + len(part)
                begin(part[0])
                measure(len(part), finished)
    finally:
        recorder.close()
    return by, enabled


def timeline_of(recorder, by: Dict[str, List], kinds: Dict[str, List[str]], traced: List, reading=None,
                nvml_missing: Optional[str] = None) -> GpuTimeline:
    """The decode's timeline: CUPTI's busy figures from the graph-level runs
    (else the kernel-level ones), the kernel table from the kernel-level runs,
    each tier's tracing cost against the untraced runs, and NVML's busy
    fraction over the untraced runs when `reading` holds its samples. `traced`
    is the result's gpu_runs (graph and kernel runs in the order they ran);
    tiers name their runs by index into it."""
    untraced = [r.tok_s for r in by[UNTRACED]]
    tiers = []
    for label in (GRAPH, KERNEL):
        runs = by[label]
        if not runs:
            continue
        got = list(kinds.get(label, []))
        ids = {id(r) for r in runs}
        tiers.append(TracingTier(
            name=label, level=GRAPH if GRAPH in got else KERNEL, kinds=got,
            runs=[i for i, r in enumerate(traced) if id(r) in ids], figures=FIGURES[label],
            tok_s=stats.summarize([r.tok_s for r in runs]),
            overhead=stats.compare(untraced, [r.tok_s for r in runs], names=(UNTRACED, f"{label}-traced"))
            if untraced else None,
        ))
    busy_runs = by[GRAPH] or by[KERNEL]
    busy = recorder.analyze(busy_runs, kinds=kinds.get(GRAPH) or kinds.get(KERNEL))
    table = recorder.analyze(by[KERNEL], kinds=kinds.get(KERNEL)) if by[GRAPH] and by[KERNEL] else None
    tl = combine(busy, table, tiers)
    tl.traced_tok_s, tl.overhead = tiers[0].tok_s, tiers[0].overhead
    if reading is not None:
        tl.nvml = reading.busy([run_window(r) for r in by[UNTRACED]])
        tl.nvml_traced = reading.busy([run_window(r) for r in busy_runs])
        tl.notes.extend(f"NVML: {n}" for n in tl.nvml.notes)
    tl.nvml_missing = nvml_missing
    tl.method = method(tl, recorder.detach)
    return tl


def method(tl: GpuTimeline, detached: bool) -> str:
    """How this timeline was measured, in words, from what actually happened."""
    g = next((t for t in tl.tiers if t.name == GRAPH), None)
    k = next((t for t in tl.tiers if t.name == KERNEL), None)
    n = tl.nvml
    if n is not None:
        period = f"~{n.period_ms:.0f} ms" if n.period_ms else "driver-chosen"
        words = [f"Untraced runs and {len(k.runs) if k else 0} kernel-traced runs interleave in one process "
                 "(U K U …; every run: fresh cache, prefill, warm-up, measured tokens); the untraced runs "
                 "give tok/s, the split and prefill, and the busy fraction behind the verdict's GPU share: "
                 "the share of each NVML sample period (" + period + ") in which a kernel ran on this GPU, "
                 "over the periods lying wholly inside their measured tokens, read between runs, so "
                 "measuring it costs those runs nothing (it counts any other process's kernels too)."]
    else:
        words = ["Untraced and traced runs interleave in one process (U T, T U, …; every run: fresh cache, "
                 "prefill, warm-up, measured tokens); the untraced runs alone give tok/s, the split and "
                 "prefill" + (f" (NVML unavailable: {tl.nvml_missing})" if tl.nvml_missing else "") + "."]
    if g is not None:
        rec = ("one CUPTI GRAPH_TRACE record per CUDA graph launch (first node's start to last node's "
               "end), plus any kernel launched outside a graph" if g.level == GRAPH else
               "one CUPTI record per kernel (graph-level tracing was not available)")
        words.append(f"{len(g.runs)} graph-traced runs record {rec}, and give the {g.figures}; their "
                     "tracing cost is their tok/s against the untraced runs'.")
    if k is not None:
        c = len(k.runs)
        gave = "the kernel table" if n is not None or g is not None else f"the {k.figures}"
        words.append(f"{c} kernel-traced run{'s' if c != 1 else ''} record every kernel (CONCURRENT_KERNEL) "
                     f"and give {gave}, at a tracing cost of {'their' if c != 1 else 'its'} own"
                     + ("; NVML's busy on them is set beside CUPTI's as a cross-check." if n is not None
                        else "."))
    words.append("CUPTI activity is enabled for a traced run only, prefill and warm-up included"
                 + (", and detached (cuptiFinalize) after it" if detached else "")
                 + "; records are placed on the perf_counter clock by a CUPTI/host clock fit and "
                   "attributed to measured tokens only.")
    return " ".join(words)
