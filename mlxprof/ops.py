"""What one decode token's graph holds: DOT export → op histogram.

One decode step is built lazily at a chosen KV context (prefill N tokens into a
fresh cache, evaluate, then build step N+1 the way `decode.make_step` does),
exported with `mx.export_to_dot` before anything evaluates it, and parsed.

`mx.export_to_dot` (mlx/graph_utils.cpp) writes, in depth-first post-order:

    { rank=source; "A"; }                             an input (no primitive)
    { 9402 [label ="QuantizedMatmul", shape=rectangle]; }   one primitive
    "A" -> 9402                                       an input of it
    { "C"; }  /  { rank=sink; "C"; }                  an output array
    9402 -> "C"                                       …produced by it

A primitive with several outputs (siblings) is one node with several `->`
arrays. Labels are `Primitive::name()`: mostly one CamelCase word, a few with a
space ("Scatter Sum", "SliceUpdate Sum"), and `Compiled` followed by the names
of every fused primitive run together ("CompiledBroadcastBroadcastMultiply…").
"""

import collections
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from pydantic import BaseModel

from .errors import InputError
from .results import ModelIdentity, Result

# No kernel: these only make a new view (shape/strides/offset) of their input.
# Reshape and Flatten copy when their input is not contiguous; counted as views.
VIEW_OPS = frozenset({
    "AsStrided", "Broadcast", "BroadcastAxes", "Depends", "ExpandDims", "Flatten",
    "Reshape", "Slice", "Split", "Squeeze", "StopGradient", "Transpose", "Unflatten", "View",
})
# Primitives that multiply an activation by a matrix (a GEMV in decode).
MATVEC_OPS = ("QuantizedMatmul", "Matmul", "AddMM", "GatherQMM", "GatherMM", "QQMatmul",
              "BlockMaskedMM", "SegmentedMM")
COMPILED = "Compiled"

# Primitive names of MLX 0.32 (primitives.h, fast_primitives.h), used to split
# a Compiled label back into the primitives it fused.
PRIMITIVE_NAMES = frozenset("""
Abs Add AddMM AllGather AllReduce And Arange ArcCos ArcCosh ArcSin ArcSinh ArcTan ArcTan2 ArcTanh
ArgPartition ArgReduce ArgSort AsStrided AsType BitwiseAnd BitwiseInvert BitwiseOr BitwiseXor
BlockMaskedMM Broadcast BroadcastAxes Ceil Cholesky Concatenate Conjugate Contiguous Convolution Copy
Cos Cosh CrossEntropy CumLogAddExp CumMax CumMin CumProd CumSum CustomKernel Depends DivMod Divide
DynamicSlice DynamicSliceUpdate Eig Eigh Equal Erf ErfInv Exp ExpandDims Expm1 FFT Flatten Floor
FloorDivide FromFP8 Full Gather GatherAxis GatherMM GatherQMM GatherQQMM Greater GreaterEqual Hadamard
Imag Inverse LUF LayerNorm Less LessEqual Load Log Log10 Log1p Log2 LogAddExp LogSumExp LogicalAnd
LogicalNot LogicalOr MaskedScatter Matmul Max Maximum Min Minimum Multiply NaNEqual Negative NotEqual
NumberOfElements Or Pad Partition Power Prod QQMatmul QRF Quantize QuantizedMatmul RMSNorm RandomBits
Real Recv Remainder Reshape RightShift LeftShift RoPE Round Rsqrt SVD ScaledDotProductAttention
Scatter ScatterAxis SearchSorted SegmentedMM Select Send Sigmoid Sign Sin Sinh Slice SliceUpdate
Softmax Sort Split Sqrt Square Squeeze StopGradient Subtract Sum Tan Tanh ToFP8 Transpose Unflatten
View
""".split())

_SOURCE = re.compile(r'^\{\s*rank\s*=\s*source\s*;\s*("(?:[^"\\]|\\.)*"|[^\s;{}]+)\s*;\s*\}\s*$')
_NODE = re.compile(r'^\{\s*([^\s\[]+)\s*\[\s*label\s*=\s*"((?:[^"\\]|\\.)*)"')
_EDGE = re.compile(r'^("(?:[^"\\]|\\.)*"|[^\s"]+)\s*->\s*("(?:[^"\\]|\\.)*"|[^\s"]+)\s*;?\s*$')


def _unquote(tok: str) -> str:
    if len(tok) >= 2 and tok[0] == tok[-1] == '"':
        return tok[1:-1].replace('\\"', '"')
    return tok


@dataclass
class Graph:
    """A parsed DOT export: primitive nodes and the arrays between them."""

    labels: Dict[str, str] = field(default_factory=dict)  # node id → primitive label
    inputs: Dict[str, List[str]] = field(default_factory=dict)  # node id → input array names
    outputs: Dict[str, List[str]] = field(default_factory=dict)  # node id → output array names
    sources: List[str] = field(default_factory=list)  # arrays with no primitive, in file order
    producer: Dict[str, str] = field(default_factory=dict)  # array name → node id

    @property
    def nodes(self) -> int:
        return len(self.labels)


def parse_dot(text: str) -> Graph:
    """Parse `mx.export_to_dot` output into nodes and arrays.

    A node is one `{ id [label=…] }` line plus the edges that follow it. The id
    is the primitive object's address, and it is not unique: `mx.compile`
    reuses one primitive object for every call of a compiled function, so
    the same id appears once per call, with other inputs and outputs. Those are
    distinct nodes. A line repeated with the same id *and* the same inputs is
    the same application printed twice and counts once; sibling outputs of one
    primitive are several `id -> "X"` edges of one node.
    """
    g = Graph()
    current: Dict[str, str] = {}  # primitive id → key of its latest occurrence
    seen = collections.Counter()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line in ("digraph {", "}"):
            continue
        m = _SOURCE.match(line)
        if m:
            name = _unquote(m.group(1))
            if name not in g.producer and name not in g.sources:
                g.sources.append(name)
            continue
        m = _NODE.match(line)
        if m:
            pid = m.group(1)
            key = f"{pid}#{seen[pid]}" if seen[pid] else pid
            seen[pid] += 1
            current[pid] = key
            g.labels[key] = m.group(2).replace('\\"', '"').strip()
            g.inputs[key] = []
            g.outputs[key] = []
            continue
        m = _EDGE.match(line)
        if m:
            a, b = m.group(1), m.group(2)
            if b in current and not a.startswith('"') and a in current:
                continue  # node → node: not something export_to_dot writes
            if b in current:
                g.inputs[current[b]].append(_unquote(a))
            elif a in current:
                out, key = _unquote(b), current[a]
                if out not in g.outputs[key]:
                    g.outputs[key].append(out)
                g.producer[out] = key
            continue
        # `{ "C"; }` / `{ rank=sink; "C"; }` declare an output array: its edge says more
    if not g.labels:
        raise InputError("not an MLX DOT export (no primitive nodes found)")
    _merge_repeats(g)
    return g


def _merge_repeats(g: Graph):
    """Fold occurrences that repeat an earlier one's id and inputs exactly."""
    first: Dict[Tuple[str, tuple], str] = {}
    for key in list(g.labels):
        sig = (key.split("#")[0], tuple(g.inputs[key]))
        keep = first.setdefault(sig, key)
        if keep == key:
            continue
        for out in g.outputs[key]:
            if out not in g.outputs[keep]:
                g.outputs[keep].append(out)
            g.producer[out] = keep
        del g.labels[key], g.inputs[key], g.outputs[key]


def split_compiled(label: str) -> List[str]:
    """The primitives a `Compiled…` label fused, in order: greedy longest match
    against MLX's primitive names, unknown CamelCase words kept as they are."""
    body = label[len(COMPILED):] if label.startswith(COMPILED) else label
    words = re.findall(r"[A-Z][a-z0-9]*|[a-z0-9]+", body.replace(" ", ""))
    out, i = [], 0
    while i < len(words):
        for j in range(len(words), i, -1):
            cand = "".join(words[i:j])
            if cand in PRIMITIVE_NAMES:
                out.append(cand)
                i = j
                break
        else:
            # not a known name: glue words up to the next known start
            j = i + 1
            while j < len(words) and not any("".join(words[j:k]) in PRIMITIVE_NAMES
                                             for k in range(j + 1, len(words) + 1)):
                j += 1
            out.append("".join(words[i:j]))
            i = j
    return out


def op_name(label: str) -> str:
    """Histogram key: every Compiled… label collapses to one `Compiled` family."""
    return COMPILED if label.startswith(COMPILED) else label


def classify(label: str) -> str:
    if label.startswith(COMPILED):
        return "compiled"
    if label in VIEW_OPS:
        return "view"
    return "compute"


# ---------------------------------------------------------------- results


class CompiledVariant(BaseModel):
    label: str
    count: int
    inner: List[str]  # fused primitives, in order


class MatvecCheck(BaseModel):
    """Weight products expected from the model object vs found in the graph."""

    op: str  # "QuantizedMatmul", "GatherQMM" (MoE experts), "Matmul" (Matmul + AddMM) or "GatherMM"
    expected: int  # calls of streamed modules of that kind while the step was built
    found: int  # nodes of that kind with one weight-only operand
    nodes: int  # all nodes of that kind (attention products included)
    streamed_weights: int  # distinct weights of that kind (models.weights.streamed_matvecs)
    repeats: Dict[str, int] = {}  # module → calls per token, where more than one

    @property
    def ok(self) -> bool:
        return self.expected == self.found


class OpsDiff(BaseModel):
    against: str  # the other result's file
    against_model: str
    nodes: int  # this − other
    classes: Dict[str, int]
    ops: Dict[str, int]  # op → this − other, non-zero only


class OpsResult(Result):
    kind: str = "ops"
    model: ModelIdentity
    context: int  # KV length before the step (tokens already in the cache)
    kv_growth: bool  # this step enlarges a KV cache buffer (256-token steps)
    nodes: int
    histogram: Dict[str, int]  # op → count, Compiled… collapsed, sorted by count
    classes: Dict[str, int]  # view / compute / compiled → node count
    op_class: Dict[str, str]
    compiled: List[CompiledVariant]
    compiled_inner: Dict[str, int]  # primitives fused inside Compiled nodes, summed
    matvec: List[MatvecCheck]
    dot_path: Optional[str] = None
    diff: Optional[OpsDiff] = None
    notes: List[str] = []


# ---------------------------------------------------------------- histogram


def histogram(g: Graph):
    hist = collections.Counter(op_name(lab) for lab in g.labels.values())
    classes = collections.Counter(classify(lab) for lab in g.labels.values())
    variants = collections.Counter(lab for lab in g.labels.values() if lab.startswith(COMPILED))
    compiled = [CompiledVariant(label=lab, count=n, inner=split_compiled(lab))
                for lab, n in variants.most_common()]
    inner = collections.Counter()
    for v in compiled:
        for p in v.inner:
            inner[p] += v.count
    op_class = {op: classify(op) for op in hist}
    ordered = dict(sorted(hist.items(), key=lambda kv: (-kv[1], kv[0])))
    return ordered, {c: classes.get(c, 0) for c in ("view", "compute", "compiled")}, op_class, \
        compiled, dict(inner.most_common())


def token_dependent(g: Graph, token: str) -> Dict[str, bool]:
    """Array name → whether it descends from the step's input token."""
    memo: Dict[str, bool] = {token: True}

    def dep(name):
        stack = [name]
        while stack:
            a = stack[-1]
            if a in memo:
                stack.pop()
                continue
            nid = g.producer.get(a)
            if nid is None:  # a source other than the token: weights, cache buffers
                memo[a] = False
                stack.pop()
                continue
            todo = [i for i in g.inputs[nid] if i not in memo]
            if todo:
                stack.extend(todo)
                continue
            val = any(memo[i] for i in g.inputs[nid])
            for o in g.outputs[nid]:
                memo[o] = val
            memo.setdefault(a, val)
            stack.pop()
        return memo[name]

    for nid in g.labels:
        for a in g.inputs[nid]:
            dep(a)
    return memo


def weight_products(g: Graph, token: str) -> collections.Counter:
    """Matvec-family nodes that multiply the token's activation by an operand
    that does not depend on the token (a weight, possibly cast or clipped) —
    attention's q·k and p·v have both operands token-dependent."""
    dep = token_dependent(g, token)
    found = collections.Counter()
    for nid, lab in g.labels.items():
        if lab in MATVEC_OPS:
            flags = [dep.get(a, False) for a in g.inputs[nid]]
            if any(flags) and not all(flags):
                found[lab] += 1
    return found


# ---------------------------------------------------------------- building


class _CallCounter:
    """Counts, while a step is built, how often each streamed module multiplies:
    `__call__` for Linear-like modules, `as_linear` for the tied LM head."""

    def __init__(self, matvecs, head_names):
        self.by_id = {id(mv.module): mv.name for mv in matvecs}
        self.calls = collections.Counter()
        self.patches = set()
        for mv in matvecs:
            meth = "as_linear" if mv.name in head_names else "__call__"
            self.patches.add((type(mv.module), meth))
        self.saved = []

    def __enter__(self):
        for cls, meth in self.patches:
            orig = getattr(cls, meth)
            own = cls.__dict__.get(meth)
            counter = self

            def wrapper(mod, *a, _orig=orig, **k):
                name = counter.by_id.get(id(mod))
                if name is not None:
                    counter.calls[name] += 1
                return _orig(mod, *a, **k)

            setattr(cls, meth, wrapper)
            self.saved.append((cls, meth, own))
        return self

    def __exit__(self, *exc):
        for cls, meth, own in reversed(self.saved):
            if own is None:
                delattr(cls, meth)
            else:
                setattr(cls, meth, own)
        return False


def max_context(target) -> Optional[int]:
    """max_position_embeddings of a resolved `--model`'s config, without building it."""
    config = target.config or {}
    for c in (config.get("text_config") or {}, config):
        if isinstance(c.get("max_position_embeddings"), int):
            return int(c["max_position_embeddings"])
    return None


def validate_context(context: int, limit: Optional[int]):
    if context is None:
        return
    if context <= 0:
        raise InputError(f"--context must be a positive number of tokens, not {context}")
    if limit is not None and context >= limit:
        raise InputError(
            f"--context {context} does not fit: the model holds {limit} positions "
            f"(max_position_embeddings) and the step needs one more; use at most {limit - 1}"
        )


def _capacities(cache):
    return [getattr(c, "keys", None).shape[2] if getattr(c, "keys", None) is not None else 0
            for c in cache]


def step_graph(model, context: int, dot_file, prefill_chunk: int = 2048):
    """Prefill `context` tokens, build step context+1 lazily, export it to
    `dot_file` (path or file-like) before evaluation. Returns (kv_growth,
    matvec call counts, streamed matvecs)."""
    import mlx.core as mx

    from . import decode as dec
    from .models.weights import streamed_matvecs

    stream = mx.default_stream(mx.default_device())
    cache = model.make_cache()
    step = dec.make_step(model, cache, stream)
    ids = dec.default_prompt(context, model.vocab_size)
    for s in range(0, len(ids) - 1, prefill_chunk):  # mlx-lm prefills in 2048-token chunks
        chunk = ids[s: min(s + prefill_chunk, len(ids) - 1)]
        with mx.stream(stream):
            model.logits(mx.array([chunk]), cache)
        mx.eval([c.state for c in cache])
    y, _ = step(mx.array([ids[-1:]]))
    mx.eval(y)
    before = _capacities(cache)

    mvs = streamed_matvecs(model.text)
    heads = {mv.name for mv in mvs if hasattr(mv.module, "as_linear")}
    with _CallCounter(mvs, heads) as cc:
        next_y, next_lp = step(y[:, None])
    grew = _capacities(cache) != before
    # The evaluated input token goes first so it is the DOT's first source ("A"):
    # that is how the parser tells the token's path from weights.
    mx.export_to_dot(dot_file, y, next_y, next_lp)
    mx.eval(next_y, next_lp)
    return grew, cc.calls, mvs


# (check name, quantized, stacked experts, the primitives that do it). A MoE's
# SwitchLinear multiplies by its k routed experts in one gather_mm / gather_qmm
# (mlx_lm/models/switch_layers.py), one node per call.
_MATVEC_KINDS = (("QuantizedMatmul", True, False, ("QuantizedMatmul",)),
                 ("GatherQMM", True, True, ("GatherQMM",)),
                 ("Matmul", False, False, ("Matmul", "AddMM")),
                 ("GatherMM", False, True, ("GatherMM",)))


def matvec_checks(g: Graph, calls, mvs) -> List[MatvecCheck]:
    found = weight_products(g, g.sources[0]) if g.sources else collections.Counter()
    nodes = collections.Counter(lab for lab in g.labels.values() if lab in MATVEC_OPS)
    out = []
    for op, quant, switch, kinds in _MATVEC_KINDS:
        group = [mv for mv in mvs if mv.quantized == quant and bool(mv.experts) == switch]
        if not group and not any(nodes[k] for k in kinds):
            continue
        out.append(MatvecCheck(
            op=op,
            expected=sum(calls.get(mv.name, 0) for mv in group),
            found=sum(found[k] for k in kinds),
            nodes=sum(nodes[k] for k in kinds),
            streamed_weights=len(group),
            repeats=_repeats(group, calls),
        ))
    return out


def _repeats(group, calls) -> Dict[str, int]:
    """Modules called more than once per token, layer index folded: {'altup.modality_router ×2': 6}."""
    out = collections.Counter()
    for mv in group:
        n = calls.get(mv.name, 0)
        if n != 1:
            key = re.sub(r"(^|\.)layers\.\d+\.", r"\1layers.*.", mv.name)
            out[f"{key} ×{n}"] += 1
    return dict(out)


def diff(this: OpsResult, other: OpsResult, path: str) -> OpsDiff:
    ops = {}
    for op in sorted(set(this.histogram) | set(other.histogram)):
        d = this.histogram.get(op, 0) - other.histogram.get(op, 0)
        if d:
            ops[op] = d
    ops = dict(sorted(ops.items(), key=lambda kv: (-abs(kv[1]), kv[0])))
    return OpsDiff(
        against=str(path), against_model=f"{other.model.name} @ context {other.context}",
        nodes=this.nodes - other.nodes,
        classes={c: this.classes.get(c, 0) - other.classes.get(c, 0) for c in ("view", "compute", "compiled")},
        ops=ops,
    )


def load_histogram(path) -> OpsResult:
    from . import results

    try:
        return results.load(path, OpsResult)
    except InputError as e:
        raise InputError(f"--diff: {e} (pass a JSON written by `mlxprof ops --json`)")


def step_histogram(session, context: int, dot_path=None, command=None) -> OpsResult:
    """Build, export and histogram one decode step of an open session's model."""
    import io

    from . import results

    buf = io.StringIO()
    grew, calls, mvs = step_graph(session.model, context, buf)
    text = buf.getvalue()
    if dot_path:
        results.write_text_atomic(dot_path, text)
    g = parse_dot(text)
    hist, classes, op_class, compiled, inner = histogram(g)
    checks = matvec_checks(g, calls, mvs)
    notes = []
    if grew:
        notes.append(f"this step grows a KV cache buffer (mlx-lm caches grow in 256-token blocks): "
                     "its graph carries extra Concatenate/Full/Broadcast nodes")
    for c in checks:
        if not c.ok:
            notes.append(f"{c.op}: expected {c.expected} weight products, found {c.found} in the graph")
    return OpsResult(
        provenance=session.provenance(command), model=session.identity, context=context,
        kv_growth=grew, nodes=g.nodes, histogram=hist, classes=classes, op_class=op_class,
        compiled=compiled, compiled_inner=inner, matvec=checks,
        dot_path=str(dot_path) if dot_path else None, notes=notes + session.notes,
    )


DEFAULT_CONTEXT = 16  # "just after a short prompt": decode's default prompt length


def run(model, weights="auto", dtype=None, context=None, json_path=None, dot_path=None,
        diff_path=None, command=None) -> OpsResult:
    """Validate everything, then build and histogram the step (the CLI's glue)."""
    from . import results
    from .session import open_session

    other = load_histogram(diff_path) if diff_path else None
    s = open_session(model, weights, dtype, outputs=(json_path, dot_path),
                     check=lambda target: validate_context(context, max_context(target)))
    r = step_histogram(s, context or DEFAULT_CONTEXT, dot_path, command)
    if other is not None:
        r.diff = diff(r, other, diff_path)
    if json_path:
        results.save(r, json_path)
    return r
