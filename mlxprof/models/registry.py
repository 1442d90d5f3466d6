"""Model aliases: the published Gemma 3n text architectures and their checkpoints.

Architecture values follow the `text_config` of google/gemma-3n-E2B-it and
google/gemma-3n-E4B-it; quantization follows the mlx-community conversions
(group size 64, bf16 for everything that is not quantized).
"""

import difflib
from dataclasses import dataclass, field
from typing import Optional

from ..errors import InputError


@dataclass(frozen=True)
class Architecture:
    num_hidden_layers: int
    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    vocab_size_per_layer_input: int
    hidden_size_per_layer_input: int
    laurel_rank: int
    altup_num_inputs: int
    altup_coef_clip: float
    num_kv_shared_layers: int
    sliding_window: int
    full_attention_every: int  # every Nth layer is full attention, the rest sliding
    sparse_layers: int  # the first N layers use activation sparsity
    activation_sparsity: float = 0.95
    rope_theta: float = 1_000_000.0
    rope_local_base_freq: float = 10_000.0
    final_logit_softcapping: float = 30.0
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 32768

    def layer_types(self):
        n = self.full_attention_every
        return [
            "full_attention" if (i + 1) % n == 0 else "sliding_attention"
            for i in range(self.num_hidden_layers)
        ]

    def text_config(self) -> dict:
        """The `text_config` dict mlx-vlm's Gemma 3n TextConfig takes."""
        n = self.num_hidden_layers
        return {
            "model_type": "gemma3n_text",
            "hidden_size": self.hidden_size,
            "num_hidden_layers": n,
            "intermediate_size": [self.intermediate_size] * n,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "vocab_size": self.vocab_size,
            "vocab_size_per_layer_input": self.vocab_size_per_layer_input,
            "hidden_size_per_layer_input": self.hidden_size_per_layer_input,
            "laurel_rank": self.laurel_rank,
            "altup_num_inputs": self.altup_num_inputs,
            "altup_coef_clip": self.altup_coef_clip,
            "altup_active_idx": 0,
            "altup_correct_scale": True,
            "num_kv_shared_layers": self.num_kv_shared_layers,
            "sliding_window": self.sliding_window,
            "layer_types": self.layer_types(),
            "activation_sparsity_pattern": [self.activation_sparsity] * self.sparse_layers
            + [0.0] * (n - self.sparse_layers),
            "rope_theta": self.rope_theta,
            "rope_local_base_freq": self.rope_local_base_freq,
            "final_logit_softcapping": self.final_logit_softcapping,
            "rms_norm_eps": self.rms_norm_eps,
            "max_position_embeddings": self.max_position_embeddings,
        }


@dataclass(frozen=True)
class Quantization:
    bits: Optional[int]  # None: unquantized
    group_size: int = 64
    dtype: str = "bfloat16"  # dtype of everything not quantized (and of activations)

    @property
    def label(self) -> str:
        return f"{self.bits}bit" if self.bits else self.dtype


@dataclass(frozen=True)
class ModelSpec:
    alias: str
    family: str
    arch: Architecture
    quant: Quantization
    repo_id: Optional[str]
    note: str = ""
    tags: tuple = field(default_factory=tuple)


E2B = Architecture(
    num_hidden_layers=30, hidden_size=2048, intermediate_size=8192,
    num_attention_heads=8, num_key_value_heads=2, head_dim=256,
    vocab_size=262400, vocab_size_per_layer_input=262144,
    hidden_size_per_layer_input=256, laurel_rank=64, altup_num_inputs=4,
    altup_coef_clip=120.0, num_kv_shared_layers=10, sliding_window=512,
    full_attention_every=5, sparse_layers=10,
)
E4B = Architecture(
    num_hidden_layers=35, hidden_size=2048, intermediate_size=16384,
    num_attention_heads=8, num_key_value_heads=2, head_dim=256,
    vocab_size=262400, vocab_size_per_layer_input=262144,
    hidden_size_per_layer_input=256, laurel_rank=64, altup_num_inputs=4,
    altup_coef_clip=120.0, num_kv_shared_layers=15, sliding_window=512,
    full_attention_every=5, sparse_layers=10,
)
# Gemma 3n's structure shrunk so CPU tests run in seconds: sliding and full
# layers, KV sharing, sparsity, AltUp, Laurel and per-layer inputs all present.
TINY = Architecture(
    num_hidden_layers=6, hidden_size=128, intermediate_size=256,
    num_attention_heads=4, num_key_value_heads=2, head_dim=32,
    vocab_size=1024, vocab_size_per_layer_input=1024,
    hidden_size_per_layer_input=64, laurel_rank=64, altup_num_inputs=4,
    altup_coef_clip=120.0, num_kv_shared_layers=2, sliding_window=16,
    full_attention_every=3, sparse_layers=2, max_position_embeddings=4096,
)

_QUANTS = {
    "4bit": Quantization(bits=4),
    "8bit": Quantization(bits=8),
    "bf16": Quantization(bits=None),
}


def _build_registry():
    specs = {}
    for family, arch, size in (("gemma3n-e2b", E2B, "E2B"), ("gemma3n-e4b", E4B, "E4B")):
        for label, quant in _QUANTS.items():
            alias = f"{family}-{label}"
            specs[alias] = ModelSpec(
                alias=alias, family=family, arch=arch, quant=quant,
                repo_id=f"mlx-community/gemma-3n-{size}-it-{label}",
            )
    for label, quant in _QUANTS.items():
        alias = "gemma3n-tiny" if label == "4bit" else f"gemma3n-tiny-{label}"
        specs[alias] = ModelSpec(
            alias=alias, family="gemma3n-tiny", arch=TINY, quant=quant, repo_id=None,
            note="test architecture, no real checkpoint",
        )
    return specs


MODELS = _build_registry()


def family_members(family: str) -> dict:
    """{bits label: spec} for an alias family, e.g. 'gemma3n-e2b' → 4bit, 8bit, bf16."""
    return {s.quant.label: s for s in MODELS.values() if s.family == family}


def families():
    return sorted({s.family for s in MODELS.values()})


def resolve_alias(name: str) -> ModelSpec:
    if name in MODELS:
        return MODELS[name]
    near = difflib.get_close_matches(name, list(MODELS), n=1)
    hint = f" Did you mean '{near[0]}'?" if near else ""
    raise InputError(
        f"unknown model '{name}'.{hint} Known aliases: {', '.join(MODELS)}"
        " (or pass a local checkpoint directory or a Hugging Face repo id)"
    )
