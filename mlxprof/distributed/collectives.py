"""The collectives one decode token runs, and their GPU time on CUDA.

Counting: one decode step (one token, batch 1, a fresh cache) is built lazily
and never evaluated, so nothing is sent and no rank waits for another. While
it is built, `mx.distributed`'s functions are wrapped: mlx.nn's sharded layers
and mlx-lm's pipeline call them through the module at call time
(`mx.distributed.all_sum(x, group=self.group)` in mlx/nn/layers/distributed.py,
`mx.distributed.send` / `recv_like` / `all_gather` in mlx_lm/models/qwen2.py),
so each call is seen with its tensor's shape and dtype. The same graph is then
exported with `mx.export_to_dot` and its distributed primitives counted
(`Sum AllReduce`, `AllGather`, `Send`, `Recv`, `ReduceScatter`: the names of
mlx/distributed/primitives.h): a call made where no wrapper can see it (inside
an `mx.compile`d function, from C++) shows up as a mismatch, reported.

Bytes are each call's tensor (what one rank contributes, sends or receives),
not the wire traffic: a ring all-reduce moves 2(N-1)/N of it per rank.

GPU time (CUDA, --gpu-timeline): NCCL launches its own kernels
(`ncclDevKernel_AllReduce_Sum_bf16_RING_LL`, `ncclDevKernel_SendRecv`, …); the
union of those kernels' intervals inside each measured token interval is the
token's collective GPU time. An NCCL kernel runs until every rank has joined,
so that time includes waiting for the slowest rank, not only moving bytes.
"""

import collections
import io
import math
from typing import Dict, List, Optional, Sequence

from .. import stats
from ..results import Record

# mx.distributed functions that communicate → the op name a reader sees
WRAPPED = {"all_sum": "all_sum", "all_max": "all_max", "all_min": "all_min", "all_gather": "all_gather",
           "sum_scatter": "sum_scatter", "send": "send", "recv": "recv", "recv_like": "recv"}
# graph primitive (label) → the op name a wrapper records for it
GRAPH_OPS = {"Sum AllReduce": "all_sum", "Max AllReduce": "all_max", "Min AllReduce": "all_min",
             "AllGather": "all_gather", "Sum ReduceScatter": "sum_scatter", "Send": "send", "Recv": "recv"}
NCCL_MARK = "nccl"  # NCCL's kernels carry it in their names (ncclDevKernel_*, ncclKernel_* before 2.19)


class CollectiveOp(Record):
    op: str  # all_sum, all_gather, send, recv, …
    shape: List[int]
    dtype: str
    bytes: int  # one call's tensor
    calls: int  # per token


class Collectives(Record):
    ops: List[CollectiveOp]  # grouped by (op, shape, dtype)
    calls_per_token: int
    bytes_per_token: int
    by_op: Dict[str, int]  # op → calls per token (from the wrappers)
    graph: Dict[str, int]  # op → distributed primitives in the exported graph
    matches_graph: bool
    graph_nodes: int = 0  # primitives in that one-token graph, collectives included
    method: str = ("one decode step built lazily (1 token, batch 1, fresh cache), never evaluated; "
                   "mx.distributed calls recorded while it was built, checked against the primitives "
                   "of its mx.export_to_dot graph")


class CommTime(Record):
    """Collective GPU time per measured token, from NCCL's kernels in a CUPTI timeline."""

    ms_per_token: stats.Summary  # union of NCCL kernel intervals inside each token interval
    kernels_per_token: float
    token_ms: float  # median token interval of the traced runs
    share: float  # median NCCL ms / median token ms
    kernels: Dict[str, float]  # readable NCCL kernel name → summed ms per token
    source: str = "CUPTI kernels whose name contains 'nccl'"


def _dtype_name(dtype) -> str:
    return str(dtype).replace("mlx.core.", "")


def _call_record(fn_name: str, args, kwargs):
    """(op, shape, dtype, bytes) of one wrapped call; recv(shape, dtype, src) has no array."""
    import mlx.core as mx

    op = WRAPPED[fn_name]
    if fn_name == "recv":
        shape = list(args[0] if args else kwargs["shape"])
        dtype = args[1] if len(args) > 1 else kwargs["dtype"]
        return op, shape, _dtype_name(dtype), math.prod(shape) * dtype.size
    x = args[0] if args else next(iter(kwargs.values()))
    if not isinstance(x, mx.array):
        x = mx.array(x)
    return op, list(x.shape), _dtype_name(x.dtype), x.nbytes


class _Recording:
    """Wrap mx.distributed's communicating functions while a step is built."""

    def __init__(self):
        self.calls: List[tuple] = []
        self.saved = {}

    def __enter__(self):
        import mlx.core as mx

        for name in WRAPPED:
            orig = getattr(mx.distributed, name, None)
            if orig is None:
                continue
            self.saved[name] = orig

            def wrapper(*args, _name=name, _orig=orig, **kwargs):
                self.calls.append(_call_record(_name, args, kwargs))
                return _orig(*args, **kwargs)

            setattr(mx.distributed, name, wrapper)
        return self

    def __exit__(self, *exc):
        import mlx.core as mx

        for name, orig in self.saved.items():
            setattr(mx.distributed, name, orig)
        return False


def graph_collectives(graph) -> Dict[str, int]:
    """Distributed primitives in a parsed `mx.export_to_dot` graph (graph.Graph), by op name."""
    out = collections.Counter()
    for label in graph.labels.values():
        op = GRAPH_OPS.get(label)
        if op is not None:
            out[op] += 1
    return dict(out)


def summarize_calls(calls: Sequence[tuple], graph: Dict[str, int], nodes: int = 0) -> Collectives:
    """Group recorded (op, shape, dtype, bytes) calls; compare with the graph's counts."""
    groups = collections.Counter((op, tuple(shape), dtype, nbytes) for op, shape, dtype, nbytes in calls)
    ops = [CollectiveOp(op=op, shape=list(shape), dtype=dtype, bytes=nbytes, calls=n)
           for (op, shape, dtype, nbytes), n in sorted(groups.items())]
    by_op = collections.Counter()
    for o in ops:
        by_op[o.op] += o.calls
    return Collectives(ops=ops, calls_per_token=sum(o.calls for o in ops),
                       bytes_per_token=sum(o.calls * o.bytes for o in ops), by_op=dict(by_op),
                       graph=dict(graph), matches_graph=dict(by_op) == dict(graph), graph_nodes=nodes)


def count(model, token_id: int) -> Collectives:
    """The collectives of one decode token of `model` (a models.Loaded, sharded
    or not), from a lazily built step that is never evaluated."""
    import mlx.core as mx

    from ..graph import parse_dot

    cache = model.make_cache()
    with _Recording() as rec:
        logits = model.logits(mx.array([[token_id]]), cache)
    buf = io.StringIO()
    mx.export_to_dot(buf, logits)
    g = parse_dot(buf.getvalue())
    return summarize_calls(rec.calls, graph_collectives(g), g.nodes)


def comm_time(kernels, clock, runs) -> Optional[CommTime]:
    """NCCL GPU time per measured token of `runs` (RunRecords of traced runs)
    from CUPTI kernel records (gpu.timeline.Kernel) and their clock fit; None
    when no NCCL kernel was recorded."""
    import bisect
    import statistics

    from ..gpu.kernels import readable
    from ..gpu.timeline import busy_in_windows, to_host, token_windows, union_intervals

    nccl = [(s, e, k) for s, e, k in to_host(kernels, clock) if NCCL_MARK in k.name.lower()]
    if not nccl:
        return None
    wins = [w for r in runs for w in token_windows(r)]
    per = max(len(wins), 1)
    per_token = [b * 1e3 for b in busy_in_windows(union_intervals((s, e) for s, e, _ in nccl), wins)]
    starts = [s for s, _, _ in nccl]  # sorted: to_host sorts by start
    inside = [x for lo, hi in wins for x in nccl[bisect.bisect_left(starts, lo):bisect.bisect_left(starts, hi)]]
    names = collections.Counter()
    for s, e, k in inside:
        names[readable(k.name)[0]] += (e - s) * 1e3 / per
    token_ms = statistics.median([(hi - lo) * 1e3 for lo, hi in wins]) if wins else 0.0
    ms = stats.summarize(per_token or [0.0], higher_is_better=False)
    return CommTime(ms_per_token=ms, kernels_per_token=len(inside) / per, token_ms=token_ms,
                    share=ms.median / token_ms if token_ms else 0.0,
                    kernels=dict(sorted(names.items(), key=lambda kv: -kv[1])))
