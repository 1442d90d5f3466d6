"""Which weights one decode token streams, derived from the model object.

A decode token multiplies its activation vector by every Linear (quantized or
not) it reaches, and by the embedding table used as the tied LM head. It only
gathers one row of a lookup embedding (the input embedding, Gemma 3n's
per-layer embeddings), and KV-shared attention layers never run k/v. Works on
any mlx-lm-style model: nothing here names Gemma 3n's modules one by one.
"""

from dataclasses import dataclass
from typing import List

import mlx.nn as nn
from mlx.utils import tree_flatten


@dataclass
class Matvec:
    name: str  # module path
    module: nn.Module
    out_dims: int
    in_dims: int
    nbytes: int  # weight (+ scales, biases) bytes
    quantized: bool


def _module_bytes(m) -> int:
    return sum(v.nbytes for _, v in tree_flatten(m.parameters()))


def _in_out(m):
    w = m.weight
    if hasattr(m, "bits"):
        return w.shape[0], w.shape[1] * 32 // m.bits
    return w.shape[0], w.shape[1]


def _skipped_kv(lm) -> set:
    skip = set()
    for path, m in lm.named_modules():
        if getattr(m, "is_kv_shared_layer", False):
            skip.update({f"{path}.k_proj", f"{path}.v_proj"})
    return skip


def _tied_head(lm):
    """The embedding used as the LM head when there is no separate lm_head."""
    for path, m in lm.named_modules():
        if path.endswith("lm_head") and isinstance(m, (nn.Linear, nn.QuantizedLinear)):
            return None
    for path, m in lm.named_modules():
        if path.endswith("embed_tokens") and isinstance(m, (nn.Embedding, nn.QuantizedEmbedding)):
            return path, m
    return None


def streamed_matvecs(lm) -> List[Matvec]:
    """Every matrix-vector product of one decode token, in module order."""
    skip = _skipped_kv(lm)
    out = []
    for path, m in lm.named_modules():
        if not isinstance(m, (nn.Linear, nn.QuantizedLinear)) or path in skip:
            continue
        o, i = _in_out(m)
        out.append(Matvec(path, m, o, i, _module_bytes(m), isinstance(m, nn.QuantizedLinear)))
    head = _tied_head(lm)
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
