"""What one decode token's graph holds: DOT export → op histogram.

One decode step is built lazily at a chosen KV context (prefill N tokens into a
fresh cache, evaluate, then build step N+1 the way `decode.make_step` does),
exported with `mx.export_to_dot` before anything evaluates it, and parsed
(graph.py) into a histogram with a sanity check of its weight products.
"""

import collections
import re
from typing import Dict, List, Optional

from pydantic import BaseModel

from .errors import InputError
from .graph import MATVEC_OPS, CompiledVariant, Graph, histogram, parse_dot, weight_products
from .results import ModelIdentity, Result


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
        next_y, next_lp = step(y)  # the (1,) token, reshaped inside the step as in the decode loop
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
        notes.append("this step grows a KV cache buffer (mlx-lm caches grow in 256-token blocks): "
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
    from .session import open_session

    other = load_histogram(diff_path) if diff_path else None
    s = open_session(model, weights, dtype, outputs=(json_path, dot_path),
                     check=lambda target: validate_context(context, max_context(target)))
    r = step_histogram(s, context or DEFAULT_CONTEXT, dot_path, command)
    if other is not None:
        r.diff = diff(r, other, diff_path)
    return r  # json_path is checked before any work; the caller saves it after printing
