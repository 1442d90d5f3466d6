"""Chrome / Perfetto trace JSON of decode runs (open in ui.perfetto.dev).

Layout, one process per run ("run k"), or per rank of a sharded decode
(`build_processes`):
  build / submit / wait   one span per measured token, each phase its own
                          thread, so pipelined spans never share a track
  tokens                  an instant event per delivered token (args: id)
  tok/s                   a counter: 1 / (time since the previous delivery)
and, when given, a "GPU" process holding device spans (e.g. CUDA kernels
from CUPTI) on the same clock.

Clock: `time.perf_counter()` seconds, the clock the decode loop reads
(CLOCK_MONOTONIC on Linux), shifted so the earliest event is at 0 and
written in microseconds. GPU spans must be on that clock too.

Warm-up tokens are not in the trace: RunRecord keeps per-token timings for
measured tokens only. The first measured token's tok/s counter uses the
interval from the last warm-up delivery, as `token_ms` does.

Any track whose spans would partly overlap is split into lanes ("wait",
"wait #2", ...), the rule the Chrome format sets for complete events on one
thread; spans of one decode phase never overlap, so in practice lanes only
appear for concurrent GPU work.
"""

import json
import math
from typing import Iterable, List, Optional, Sequence, Tuple

from .decode import PHASES, RunRecord

TOKENS_TID = len(PHASES) + 1
COUNTER_TID = 0
GPU_PID = 10_000  # after any plausible run count

# (name, start in perf_counter seconds, duration in seconds[, args dict])
GpuSpan = Tuple


def _ns(x: float) -> int:
    return round(x * 1e9)


def _us(ns: int) -> float:
    """Integer ns as JSON µs. Perfetto reads a float µs value as
    int(value * 1000) ns, truncating; the half-ns offset makes that recover
    `ns` exactly, so spans that touch in ns still touch, never overlap."""
    return (ns + 0.5) / 1000


def phase_starts(run: RunRecord) -> List[Tuple[float, float, float, float]]:
    """Absolute (perf_counter) start of build, submit, wait and the delivery
    of each measured token. Records saved before `build_start_s` existed are
    reconstructed from the delivery: build + submit + wait ends there."""
    out = []
    for i, d in enumerate(run.deliveries_s):
        b, s, w = run.build_ms[i] / 1e3, run.submit_ms[i] / 1e3, run.wait_ms[i] / 1e3
        start = run.build_start_s[i] if run.build_start_s else d - (b + s + w)
        out.append((run.t0 + start, run.t0 + start + b, run.t0 + start + b + s, run.t0 + d))
    return out


def _lanes(spans):
    """Assign (start, end, ...) spans to lanes so that spans in one lane only
    follow each other. Returns [(lane, span)] in start order."""
    ends: List[float] = []
    out = []
    for sp in sorted(spans, key=lambda x: (x[0], -x[1])):
        for k, e in enumerate(ends):
            if e <= sp[0]:
                ends[k] = sp[1]
                break
        else:
            k = len(ends)
            ends.append(sp[1])
        out.append((k, sp))
    return out


def _meta(pid, name, value, tid=0, key="name"):
    return {"ph": "M", "pid": pid, "tid": tid, "name": name, "args": {key: value}}


def _track(events, pid, base_tid, label, spans, origin, cat):
    """Spans (start_s, end_s, name, args) on one logical track, split into
    lanes; lane k gets tid base_tid + 100 * k."""
    o = _ns(origin)
    named = set()
    ns_spans = [(_ns(a) - o, max(_ns(a), _ns(b)) - o, name, args) for a, b, name, args in spans]
    for lane, (start, end, name, args) in _lanes(ns_spans):
        tid = base_tid + 100 * lane
        if tid not in named:
            named.add(tid)
            events.append(_meta(pid, "thread_name", label if lane == 0 else f"{label} #{lane + 1}", tid))
            events.append(_meta(pid, "thread_sort_index", tid, tid, key="sort_index"))
        events.append({"name": name, "cat": cat, "ph": "X", "ts": _us(start), "dur": _us(end - start),
                       "pid": pid, "tid": tid, "args": args})


def build(result, gpu_spans: Optional[Iterable[GpuSpan]] = None, label: Optional[str] = None) -> dict:
    """The trace of a DecodeResult (or any object with `.runs`, or a list of
    RunRecords) as a dict ready for json.dump.

    gpu_spans: (name, start_s, dur_s) or (name, start_s, dur_s, args) with
    start_s on the perf_counter clock; they go on a "GPU" process, split into
    lanes where they overlap."""
    runs: Sequence[RunRecord] = result if isinstance(result, (list, tuple)) else result.runs
    if label is None:
        model = getattr(result, "model", None)
        label = getattr(model, "name", None) or "decode"
    procs = [(f"{label} · run {k + 1} ({run.tok_s:.2f} tok/s)", [run]) for k, run in enumerate(runs)]
    return build_processes(procs, [("GPU", gpu_spans)] if gpu_spans else [], label)


def build_processes(processes: Sequence[Tuple[str, Sequence[RunRecord]]],
                    gpu: Sequence[Tuple[str, Iterable[GpuSpan]]] = (), label: str = "decode") -> dict:
    """One process per (name, runs): pid 1, 2, … holding the build / submit /
    wait / tokens tracks of all its runs (one after another in time, so they
    share the tracks), e.g. one per run of a decode or one per rank of a
    sharded decode (ranks on one host share the clock). `gpu`: (name, spans)
    processes from GPU_PID on, spans as in `build`."""
    gpus = [(name, [(float(g[1]), float(g[1]) + max(0.0, float(g[2])), str(g[0]), dict(g[3]) if len(g) > 3 else {})
                    for g in (spans or [])]) for name, spans in gpu]
    starts = [[phase_starts(r) for r in runs] for _, runs in processes]
    firsts = [p[0][0] for per in starts for p in per if p] + [g[0] for _, spans in gpus for g in spans]
    origin = min(firsts) if firsts else 0.0

    events: List[dict] = []
    for k, ((name, runs), per) in enumerate(zip(processes, starts)):
        pid = k + 1
        events.append(_meta(pid, "process_name", name))
        events.append(_meta(pid, "process_sort_index", pid, key="sort_index"))
        for j, phase in enumerate(PHASES):
            spans = [(p[j], p[j] + getattr(run, f"{phase}_ms")[i] / 1e3, phase,
                      {"token": i, "ms": round(getattr(run, f"{phase}_ms")[i], 4)})
                     for run, ph in zip(runs, per) for i, p in enumerate(ph)]
            _track(events, pid, j + 1, phase, spans, origin, "decode")
        events.append(_meta(pid, "thread_name", "tokens", TOKENS_TID))
        events.append(_meta(pid, "thread_sort_index", TOKENS_TID, TOKENS_TID, key="sort_index"))
        for run, ph in zip(runs, per):
            _token_events(events, pid, run, ph, origin)
    for k, (name, spans) in enumerate(gpus):
        if not spans:
            continue
        events.append(_meta(GPU_PID + k, "process_name", name))
        events.append(_meta(GPU_PID + k, "process_sort_index", GPU_PID + k, key="sort_index"))
        _track(events, GPU_PID + k, 1, "kernels", spans, origin, "gpu")
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"producer": "mlxprof", "label": label, "clock": "time.perf_counter",
                      "origin_s": origin, "runs": sum(len(runs) for _, runs in processes)},
    }


def _token_events(events, pid, run, ph, origin):
    """A run's token deliveries (instant events) and its tok/s counter."""
    for i, p in enumerate(ph):
        ids = run.token_ids
        tid_ = ids[run.warmup + i] if run.warmup + i < len(ids) else None
        events.append({"name": "token", "cat": "decode", "ph": "i", "s": "t", "ts": _us(_ns(p[3]) - _ns(origin)),
                       "pid": pid, "tid": TOKENS_TID, "args": {"token": i, "id": tid_}})
        ms = run.token_ms[i]
        rate = 1e3 / ms if ms == ms and ms > 0 else math.inf  # a subnormal ms overflows to inf too
        if math.isfinite(rate):
            events.append({"name": "tok/s", "ph": "C", "ts": _us(_ns(p[3]) - _ns(origin)), "pid": pid,
                           "tid": COUNTER_TID, "args": {"tok/s": round(rate, 3)}})


def write(path, result, gpu_spans: Optional[Iterable[GpuSpan]] = None, label: Optional[str] = None):
    _write_json(path, build(result, gpu_spans, label))


def write_processes(path, processes, gpu=(), label: str = "decode"):
    """`build_processes` written to `path`."""
    _write_json(path, build_processes(processes, gpu, label))


def _write_json(path, data):
    from .results import write_text_atomic

    write_text_atomic(path, json.dumps(data, separators=(",", ":")) + "\n")


def perfetto_ns(us: float) -> int:
    """How Perfetto's JSON importer turns a float µs value into ns."""
    return int(us * 1000.0)


def validate(trace: dict) -> List[str]:
    """Problems with a trace against the Chrome trace-event rules mlxprof
    relies on (empty list when none): every event has ph/pid/tid and, except
    metadata, a numeric ts; X spans have dur >= 0 and on one (pid, tid) nest
    or follow each other, in ns as Perfetto reads them; counters are numeric; every pid has a process_name
    and every span/instant thread a thread_name."""
    problems = []
    evs = trace.get("traceEvents") if isinstance(trace, dict) else None
    if not isinstance(evs, list):
        return ["no traceEvents list"]
    pnames, tnames, used, tracks = set(), set(), set(), {}
    num = (int, float)
    for n, e in enumerate(evs):
        ph = e.get("ph")
        if ph not in ("X", "M", "C", "i"):
            problems.append(f"event {n}: ph {ph!r} not one of X M C i")
            continue
        if not isinstance(e.get("pid"), int) or not isinstance(e.get("tid"), int):
            problems.append(f"event {n}: pid/tid missing or not integers")
            continue
        if ph != "M" and (not isinstance(e.get("ts"), num) or not math.isfinite(e["ts"])):
            problems.append(f"event {n}: ts missing or not a finite number")
            continue
        if not isinstance(e.get("name"), str):
            problems.append(f"event {n}: no name")
        if ph == "M":
            if e.get("name") == "process_name":
                pnames.add(e["pid"])
            elif e.get("name") == "thread_name":
                tnames.add((e["pid"], e["tid"]))
        elif ph == "X":
            d = e.get("dur")
            if not isinstance(d, num) or not math.isfinite(d) or d < 0:
                problems.append(f"event {n}: X without a finite dur >= 0")
                continue
            s0 = perfetto_ns(e["ts"])  # compare as Perfetto will: integer ns
            tracks.setdefault((e["pid"], e["tid"]), []).append((s0, s0 + perfetto_ns(d), n))
            used.add((e["pid"], e["tid"]))
        elif ph == "C":
            a = e.get("args")
            if not a or not all(isinstance(v, num) and math.isfinite(v) for v in a.values()):
                problems.append(f"event {n}: counter args not all finite numbers")
        else:
            used.add((e["pid"], e["tid"]))
    # metadata may come before or after the events it names: check at the end
    all_pids = {e["pid"] for e in evs if isinstance(e.get("pid"), int)}
    for pid in sorted(all_pids - pnames):
        problems.append(f"pid {pid}: no process_name")
    for key in sorted(used - tnames):
        problems.append(f"pid {key[0]} tid {key[1]}: no thread_name")
    for key, spans in tracks.items():
        stack: List[float] = []  # ends of the open enclosing spans
        for s, e, n in sorted(spans, key=lambda x: (x[0], -x[1])):
            while stack and stack[-1] <= s:
                stack.pop()
            if stack and e > stack[-1]:
                problems.append(f"pid {key[0]} tid {key[1]}: event {n} partly overlaps an earlier span")
            stack.append(e)
    return problems
