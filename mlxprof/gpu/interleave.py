"""A decode's traced runs, interleaved with its untraced ones, and what each kind gave.

`decode --gpu-timeline` runs, on one stream in one process:

  untraced  U G, G U, U G, …  untraced runs (tok/s, split, prefill) paired with
  graph               graph-level traced runs (busy fraction, verdict), so
                      the tracing cost is measured in the same run, against
                      runs made under the same conditions
  kernel    last      KERNEL_RUNS kernel-level traced runs (the kernel table),
                      kept apart: per-kernel records cost more, and run last
                      so nothing they leave behind can reach the runs above

CUPTI activity is enabled for one traced run at a time (its prefill and
warm-up included) and disabled after it (gpu/cupti.py), so untraced runs run
with no activity kind enabled. Untraced and graph-traced runs share one stream; the
kernel-traced runs get a fresh one (see run_schedule).
"""

import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .. import stats
from .timeline import GpuTimeline, TracingTier, combine

UNTRACED, GRAPH, KERNEL = "untraced", "graph", "kernel"
KERNEL_RUNS = 1  # kernel-level runs for the kernel table: one run's tokens name every kernel
FIGURES = {
    GRAPH: "busy fraction, GPU ms per token, CUDA graph launches per token, the verdict's GPU share",
    KERNEL: "kernels per token, top kernels, time by MLX primitive (and a kernel-level busy fraction "
            "as a cross-check)",
}


# Which level gives the busy figures. GRAPH_TRACE is the cheap one, but with it
# enabled `mlxprof decode --gpu-timeline` died with SIGSEGV inside the first
# traced run on MLX 0.32.4 CUDA / cupti-python 13.4 / an H200 (measured here,
# see docs/benchmark_results/measurement-cost-nvidia-h200.md), so the default is
# kernel-level runs, each on a stream of its own; MLXPROF_BUSY_LEVEL=graph
# brings the graph tier back where it is known to work.
BUSY_LEVEL = os.environ.get("MLXPROF_BUSY_LEVEL", KERNEL)


def schedule(runs: int, kernel_runs: int = KERNEL_RUNS, busy: Optional[str] = None) -> List[str]:
    """`runs` untraced and `runs` traced runs at the `busy` level in
    alternating pairs (U T, T U, …: neither kind always goes first); with
    graph-level busy runs, then the kernel-traced runs for the kernel table."""
    busy = busy or (GRAPH if BUSY_LEVEL == GRAPH else KERNEL)
    order: List[str] = []
    for i in range(runs):
        order += [UNTRACED, busy] if i % 2 == 0 else [busy, UNTRACED]
    return order + ([KERNEL] * kernel_runs if busy == GRAPH else [])


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


def run_schedule(measure: Callable, order: Sequence[str], recorder, on_run: Optional[Callable] = None
                 ) -> Tuple[Dict[str, List], Dict[str, List[str]]]:
    """Run `order` through `measure(n_runs, on_run)` (decode.measure with the
    model, prompt and counts bound: one stream per call), enabling the recorder's level for each
    traced run just before it starts and stopping it as soon as it ends.
    `on_run(label, record)` sees every finished run. Returns the RunRecords by
    label, in order, and the activity kinds each traced label got; the recorder
    is closed whatever happens."""
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


def timeline_of(recorder, by: Dict[str, List], kinds: Dict[str, List[str]], traced: List) -> GpuTimeline:
    """The decode's timeline: busy figures from the graph-level runs, the kernel
    table from the kernel-level runs, each tier's tracing cost against the
    untraced runs. `traced` is the result's gpu_runs (graph and kernel runs in
    the order they ran); tiers name their runs by index into it."""
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
    tl.method = method(tl, recorder.detach)
    return tl


def method(tl: GpuTimeline, detached: bool) -> str:
    """How this timeline was measured, in words, from what actually happened."""
    g = next((t for t in tl.tiers if t.name == GRAPH), None)
    k = next((t for t in tl.tiers if t.name == KERNEL), None)
    words = ["Untraced and traced runs interleave in one process on one stream (U G, G U, …; every run: "
             "fresh cache, prefill, warm-up, measured tokens); the untraced runs alone give tok/s, the "
             "split and prefill."]
    if g is not None:
        rec = ("one CUPTI GRAPH_TRACE record per CUDA graph launch (first node's start to last node's "
               "end), plus any kernel launched outside a graph" if g.level == GRAPH else
               "one CUPTI record per kernel (graph-level tracing was not available)")
        words.append(f"{len(g.runs)} graph-traced runs record {rec}, and give the {g.figures}; their "
                     "tracing cost is their tok/s against the untraced runs'.")
    if k is not None:
        n = len(k.runs)
        words.append(f"{n} kernel-traced run{'s' if n != 1 else ''}, last, record every kernel "
                     f"(CONCURRENT_KERNEL) and give the kernel table ({k.figures.split(' (')[0]}), at a "
                     "tracing cost of {}.".format("their own" if n != 1 else "its own"))
    words.append("CUPTI activity is enabled for a traced run only, prefill and warm-up included"
                 + (", and detached (cuptiFinalize) after it" if detached else "")
                 + "; records are placed on the perf_counter clock by a CUPTI/host clock fit and "
                   "attributed to measured tokens only.")
    return " ".join(words)
