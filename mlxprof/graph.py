"""One token's graph as MLX exports it: DOT parsing, op classes, histograms.

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
from typing import Dict, List, Tuple

from pydantic import BaseModel

from .errors import InputError

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


class CompiledVariant(BaseModel):
    label: str
    count: int
    inner: List[str]  # fused primitives, in order


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
