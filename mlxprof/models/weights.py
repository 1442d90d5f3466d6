"""Which weights one decode token streams, derived from the model object.

A decode token multiplies its activation vector by every Linear (quantized or
not) it reaches, and by the embedding table used as the tied LM head. It only
gathers one row of a lookup embedding (the input embedding, Gemma 3n's
per-layer embeddings), and KV-shared attention layers never run k/v. A
mixture-of-experts layer (mlx-lm's / mlx-vlm's SwitchLinear and
QuantizedSwitchLinear: one stacked weight of n experts, `gather_mm` /
`gather_qmm` over the k routed ones) streams k of its n expert slices. Works on
any mlx-lm-style model: nothing here names one architecture's modules.
"""

from dataclasses import dataclass
from typing import List, Optional

import mlx.nn as nn
from mlx.nn.layers import distributed as _sharded
from mlx.utils import tree_flatten

# Linear-like modules a token multiplies by; mlx.nn's sharded linears (what
# model.shard(group) puts in place, mlx/nn/layers/distributed.py) hold one shard
LINEARS = (nn.Linear, nn.QuantizedLinear, _sharded.AllToShardedLinear, _sharded.ShardedToAllLinear,
           _sharded.QuantizedAllToShardedLinear, _sharded.QuantizedShardedToAllLinear)


@dataclass
class Matvec:
    name: str  # module path
    module: nn.Module
    out_dims: int
    in_dims: int
    nbytes: int  # weight (+ scales, biases) bytes one token streams (k of n experts' share)
    quantized: bool
    experts: int = 0  # a switch layer's n experts (0: an ordinary Linear / head)
    routed: int = 0  # the k experts a token is routed to


# Config keys that hold a MoE's top-k, as mlx-lm's and mlx-vlm's ModelArgs name them
# (qwen3_moe/mixtral: num_experts_per_tok; gpt_oss: experts_per_token too).
TOP_K_KEYS = ("num_experts_per_tok", "experts_per_token", "num_experts_per_token", "moe_topk",
              "top_k", "n_routed_experts_per_tok")


def is_switch(m) -> bool:
    """A stacked-experts linear (SwitchLinear / QuantizedSwitchLinear of either library)."""
    return type(m).__name__.endswith("SwitchLinear") and getattr(m, "weight", None) is not None \
        and m.weight.ndim == 3


def experts_per_token(lm, modules=None) -> Optional[int]:
    """The k of a MoE's top-k routing, read from the model's args (or text config),
    else from the MoE block's own attribute."""
    for holder in (lm, getattr(lm, "model", None)):
        for attr in ("args", "config"):
            args = getattr(holder, attr, None)
            for key in TOP_K_KEYS:
                k = getattr(args, key, None) if args is not None else None
                if isinstance(k, int) and k > 0:
                    return k
    for _, m in modules if modules is not None else lm.named_modules():
        for key in ("num_experts_per_tok", "top_k"):
            k = getattr(m, key, None)
            if isinstance(k, int) and k > 0:
                return k
    return None


def _module_bytes(m) -> int:
    return sum(v.nbytes for _, v in tree_flatten(m.parameters()))


def _in_out(m):
    w = m.weight
    if hasattr(m, "bits"):
        return w.shape[-2], w.shape[-1] * 32 // m.bits
    return w.shape[-2], w.shape[-1]


def _skipped_kv(modules) -> set:
    skip = set()
    for path, m in modules:
        if getattr(m, "is_kv_shared_layer", False):
            skip.update({f"{path}.k_proj", f"{path}.v_proj"})
    return skip


def _tied_head(modules):
    """The embedding used as the LM head when there is no separate lm_head."""
    if any(path.endswith("lm_head") and isinstance(m, (nn.Linear, nn.QuantizedLinear)) for path, m in modules):
        return None
    return next(((path, m) for path, m in modules
                 if path.endswith("embed_tokens") and isinstance(m, (nn.Embedding, nn.QuantizedEmbedding))),
                None)


def streamed_matvecs(lm) -> List[Matvec]:
    """Every matrix-vector product of one decode token, in module order."""
    modules = lm.named_modules()  # one walk: it is most of the cost on a lazily built model
    skip = _skipped_kv(modules)
    k = None
    out = []
    for path, m in modules:
        if path in skip:
            continue
        quantized = "scales" in m
        if is_switch(m):
            k = k or experts_per_token(lm, modules) or 1
            n = m.weight.shape[0]
            o, i = _in_out(m)
            out.append(Matvec(path, m, o, i, _module_bytes(m) * min(k, n) // n, quantized, n, min(k, n)))
        elif isinstance(m, LINEARS):
            o, i = _in_out(m)
            out.append(Matvec(path, m, o, i, _module_bytes(m), quantized))
    head = _tied_head(modules)
    if head is not None:
        path, m = head
        o, i = _in_out(m)
        out.append(Matvec(path, m, o, i, _module_bytes(m), isinstance(m, nn.QuantizedEmbedding)))
    return out


def bytes_per_token(lm) -> int:
    return sum(mv.nbytes for mv in streamed_matvecs(lm))


def parameter_count(lm) -> int:
    """Logical parameters: packed quantized words count as the weights they hold;
    quantization scales and biases are not parameters."""
    bits = {path: m.bits for path, m in lm.named_modules() if hasattr(m, "bits")}
    total = 0
    for name, v in tree_flatten(lm.parameters()):
        path, leaf = name.rsplit(".", 1)
        if path in bits and leaf in ("scales", "biases"):
            continue
        total += v.size * (32 // bits[path]) if (path in bits and leaf == "weight") else v.size
    return total


def total_bytes(lm) -> int:
    return _module_bytes(lm)


def moe_shape(lm, matvecs=None):
    """(k routed experts, n experts) of the first MoE layer, or (None, None)."""
    for mv in matvecs if matvecs is not None else streamed_matvecs(lm):
        if mv.experts:
            return mv.routed, mv.experts
    return None, None


def kv_cache_bytes(model, context: int, dtype_bytes: int) -> int:
    """Bytes of K and V a decode token reads at `context` tokens of history:
    per cache layer, kv heads × head_dim × 2 × dtype bytes × min(context,
    window). Layers come from the model's own `make_cache()`: a RotatingKVCache
    holds its sliding window, a KVCache everything, KV-shared layers have no
    cache of their own (Gemma 3n) and state-space layers no KV."""
    text = model.text
    args = getattr(text, "args", None) or getattr(text, "config", None)
    heads = getattr(args, "num_key_value_heads", None) or getattr(args, "num_attention_heads")
    head_dim = getattr(args, "head_dim", None) or args.hidden_size // args.num_attention_heads
    total = 0
    for c in model.make_cache():
        name = type(c).__name__
        if name == "RotatingKVCache":
            total += min(context, c.max_size)
        elif name in ("KVCache", "QuantizedKVCache", "ConcatenateKVCache"):
            total += context
    return total * heads * head_dim * 2 * dtype_bytes
