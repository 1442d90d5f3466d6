"""Synthetic, architecture-exact Gemma 3n weights with random values.

Quantized tensors are generated directly in packed form (uint32 words plus
scales and biases) instead of materialising float32 weights and quantizing
them: that naive way took 104 s and 9.2 GB peak for E2B on a 2-core box.
Random words come from one random block per tensor tiled to the full shape,
which is ~4x cheaper than drawing every word and makes no difference to decode
timing (timing does not depend on weight values).
"""

import math

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

from .registry import ModelSpec

_BLOCK_WORDS = 1 << 22  # 16 MB of random uint32 words per tensor at most


def _random_words(shape):
    rows, cols = shape
    block_rows = max(1, min(rows, _BLOCK_WORDS // max(cols, 1)))
    block = mx.random.randint(0, 2**31 - 1, (block_rows, cols), dtype=mx.int32)
    block = block.view(mx.uint32)
    reps = -(-rows // block_rows)
    return mx.tile(block, (reps, 1))[:rows] if reps > 1 else block


def _random_float(shape, dtype, scale):
    return (mx.random.normal(shape) * scale).astype(dtype)


def quant_predicate(group_size):
    """Which modules the mlx-community conversions quantize: every Linear or
    Embedding whose input width splits into whole groups."""

    def predicate(path, module):
        if not hasattr(module, "to_quantized"):
            return False
        return module.weight.shape[-1] % group_size == 0

    return predicate


def build_model(spec: ModelSpec, dtype=None, seed: int = 0, materialize: bool = True):
    """Return mlx-vlm's Gemma 3n `Model` for `spec` with random weights.

    Only the language model's weights are materialised; the vision and audio
    towers stay lazy (unevaluated) until a command needs them. With
    `materialize=False` nothing is evaluated: shapes and dtypes are exact, so
    byte counts can be taken for free.
    """
    from mlx_vlm.models.gemma3n import config as gcfg
    from mlx_vlm.models.gemma3n import gemma3n

    mx.random.seed(seed)
    dtype = dtype or getattr(mx, spec.quant.dtype)
    text = gcfg.TextConfig.from_dict(spec.arch.text_config())
    config = gcfg.ModelConfig(
        text_config=text,
        vision_config=gcfg.VisionConfig(),
        audio_config=gcfg.AudioConfig(),
        model_type="gemma3n",
    )
    model = gemma3n.Model(config)
    lm = model.language_model
    if spec.quant.bits:
        nn.quantize(
            lm,
            group_size=spec.quant.group_size,
            bits=spec.quant.bits,
            class_predicate=quant_predicate(spec.quant.group_size),
        )
    lm.update(tree_unflatten(_random_params(lm, spec, dtype)))
    if materialize:
        mx.eval(lm.parameters())
    return model


def _random_params(lm, spec, dtype):
    q = spec.quant
    out = []
    params = dict(tree_flatten(lm.parameters()))
    for name, p in params.items():
        leaf = name.rsplit(".", 1)[-1]
        base = name[: -len(leaf) - 1]
        if leaf == "weight" and p.dtype == mx.uint32:
            out.append((name, _random_words(p.shape)))
        elif leaf in ("scales", "biases") and f"{base}.weight" in params and params[
            f"{base}.weight"
        ].dtype == mx.uint32:
            in_dims = p.shape[-1] * q.group_size
            # weights ≈ scale * (q - 2^(bits-1)): centred, with the init's spread
            s = 1.0 / math.sqrt(in_dims) / (1 << (q.bits - 1))
            scales = (mx.random.uniform(0.5, 1.5, p.shape) * s).astype(dtype)
            if leaf == "scales":
                out.append((name, scales))
            else:
                out.append((name, (-(1 << (q.bits - 1)) * s * mx.ones(p.shape)).astype(dtype)))
        elif "norm" in base and leaf == "weight":
            out.append((name, mx.ones(p.shape, dtype=dtype)))
        else:
            scale = 1.0 / math.sqrt(p.shape[-1]) if p.ndim else 1.0
            out.append((name, _random_float(p.shape, dtype, scale)))
    return out
