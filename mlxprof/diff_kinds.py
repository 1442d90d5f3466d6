"""What `mlxprof diff` reads in depth and distributed results (diff.py holds
the other kinds, the metric builders and the diff itself).

Depth (depth.py): each depth both files measured is compared on its own,
every metric named for it (`tok/s @4096`): run-level tok/s and fill tok/s,
the phases of every token grouped by run, and the floor at that depth as a
value (the weights floor's median plus the KV read at the copy probe's
bandwidth, a derived number with no samples of its own; the weights floor's
evaluations are compared once, as `floor ms (weights)`). A depth measured on
one side only is named in a warning and left out.

Distributed (distributed/result.py): the group's tok/s (per run, its slowest
rank's), each rank's and the one-device baseline's, all from their runs;
speedup and scaling efficiency against that baseline, and collectives per
token per rank (calls, bytes), as values. Different rank counts or parallel
modes are warned about: the ranks then hold other shards.
"""

from typing import List


def _only_on_one_side(what: str, a, b) -> List[str]:
    """`what 16384 in A only; 8192 in B only` for keys one side lacks, in each side's order."""
    parts = [f"{', '.join(map(str, xs))} in {side} only"
             for side, xs in (("A", [x for x in a if x not in b]), ("B", [x for x in b if x not in a])) if xs]
    return [f"{what} measured on one side only: {'; '.join(parts)} (not compared)"] if parts else []


def depth_metrics(a, b) -> list:
    from .diff import pairs, phase_metrics, sampled_metric, value_metric

    out = []
    if a.floor and b.floor:
        out += [sampled_metric("floor ms (weights)", a.floor.weights_ms.samples, b.floor.weights_ms.samples,
                               "evaluations", False),
                value_metric("copy GB/s", a.floor.probe_gb_s, b.floor.probe_gb_s, True)]
    for pa, pb in pairs(a.points, b.points, lambda p: p.depth):
        at = f" @{pa.depth}"
        out += [sampled_metric(f"tok/s{at}", pa.tok_s.samples, pb.tok_s.samples, "runs", rate=True),
                sampled_metric(f"fill tok/s{at}", pa.fill_tok_s.samples, pb.fill_tok_s.samples, "runs")]
        out += phase_metrics(pa.runs, pb.runs, at)
        out += [value_metric(f"floor tok/s{at}", pa.floor_tok_s, pb.floor_tok_s, True),
                value_metric(f"KV bytes/token{at}", pa.kv_bytes_per_token, pb.kv_bytes_per_token, False),
                value_metric(f"peak memory bytes{at}", pa.peak_memory_bytes, pb.peak_memory_bytes, False)]
    return out


def depth_warnings(a, b) -> List[str]:
    return _only_on_one_side("depths", [p.depth for p in a.points], [p.depth for p in b.points])


def distributed_metrics(a, b) -> list:
    from .diff import pairs, sampled_metric, value_metric

    out = [sampled_metric("tok/s (group)", a.tok_s.samples, b.tok_s.samples, "runs", rate=True)]
    for ra, rb in pairs(a.ranks, b.ranks, lambda r: r.rank):
        out.append(sampled_metric(f"tok/s [rank {ra.rank}]", ra.tok_s.samples, rb.tok_s.samples, "runs",
                                  rate=True))
    if a.baseline and b.baseline:
        out.append(sampled_metric("tok/s [1 device]", a.baseline.tok_s.samples, b.baseline.tok_s.samples, "runs",
                                  rate=True))
    if a.scaling and b.scaling:
        out += [value_metric("speedup over 1 device", a.scaling.speedup, b.scaling.speedup, True),
                value_metric("scaling efficiency", a.scaling.efficiency, b.scaling.efficiency, True)]
    out.append(value_metric("collectives share of a token", a.verdict.comm_share, b.verdict.comm_share, False))
    for ra, rb in pairs(a.ranks, b.ranks, lambda r: r.rank):
        ca, cb, k = ra.collectives, rb.collectives, f" [rank {ra.rank}]"
        out += [value_metric(f"collective calls/token{k}", ca.calls_per_token, cb.calls_per_token, False),
                value_metric(f"collective bytes/token{k}", ca.bytes_per_token, cb.bytes_per_token, False)]
    return out


def distributed_warnings(a, b) -> List[str]:
    out = []
    na, nb = len(a.ranks), len(b.ranks)
    if na != nb:
        out.append(f"rank counts differ: A {na}, B {nb}: each rank holds another share of the model, so the "
                   "group and per-rank tok/s answer for different shardings")
        out += _only_on_one_side("ranks", [r.rank for r in a.ranks], [r.rank for r in b.ranks])
    if a.parallel != b.parallel:
        out.append(f"parallel modes differ: A {a.parallel}, B {b.parallel}: tensor splits every layer across "
                   "the ranks, pipeline runs the ranks' layers one after another")
    return out
