"""Model aliases: a config.json dict, its family and its checkpoint's repo id.

Gemma 3n's configs are generated from its text architecture (below); the
other families' published configs live in `published.py`.

Architecture values follow the `text_config` of google/gemma-3n-E2B-it and
google/gemma-3n-E4B-it; quantization follows the mlx-community conversions
(group size 64, bf16 for everything that is not quantized).
"""

import difflib
from dataclasses import dataclass, field, replace
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
    """The top-level `quantization` block of a config.json, as MLX's loaders read it."""

    bits: Optional[int]  # None: unquantized
    group_size: int = 64
    dtype: str = "bfloat16"  # dtype of everything not quantized (and of activations)
    mode: str = "affine"  # or "mxfp4", "nvfp4", "mxfp8" (nn.QuantizedLinear modes)

    @property
    def label(self) -> str:
        if not self.bits:
            return self.dtype
        return f"{self.bits}bit" if self.mode == "affine" else self.mode


def config_dtype(config: dict) -> str:
    """The checkpoint's float dtype (`torch_dtype`/`dtype`, top level or text_config);
    bfloat16 when the config does not say, as the published LLM checkpoints are."""
    text = config.get("text_config") or {}
    for c in (config, text):
        for key in ("torch_dtype", "dtype"):
            if c.get(key) in ("bfloat16", "float16", "float32"):
                return c[key]
    return "bfloat16"


def quantization_of(config: dict) -> Quantization:
    """The `quantization` block, or the legacy `quantization_config` forms that
    mlx-lm's `load_model` maps to one (mxfp4 → group 32, 4 bits, mode mxfp4)."""
    dtype = config_dtype(config)
    q = config.get("quantization")
    if not q:
        legacy = config.get("quantization_config") or (config.get("text_config") or {}).get(
            "quantization_config") or {}
        if legacy.get("quant_method") in ("mxfp4", "mxfp8"):
            bits = 4 if legacy["quant_method"] == "mxfp4" else 8
            return Quantization(bits=bits, group_size=32, dtype=dtype, mode=legacy["quant_method"])
        return Quantization(bits=None, dtype=dtype)
    return Quantization(bits=q.get("bits"), group_size=q.get("group_size", 64), dtype=dtype,
                        mode=q.get("mode", "affine"))


@dataclass(frozen=True)
class ModelSpec:
    """An alias: a config.json dict (with its `quantization` block) + family + repo id."""

    alias: str
    family: str
    config: dict
    repo_id: Optional[str]
    note: str = ""
    arch: Optional[Architecture] = None  # Gemma 3n aliases: the dataclass their config came from
    tags: tuple = field(default_factory=tuple)

    @property
    def quant(self) -> Quantization:
        return quantization_of(self.config)

    @property
    def model_type(self) -> str:
        return self.config.get("model_type", "?")


E2B = Architecture(
    num_hidden_layers=30, hidden_size=2048, intermediate_size=8192,
    num_attention_heads=8, num_key_value_heads=2, head_dim=256,
    vocab_size=262400, vocab_size_per_layer_input=262144,
    hidden_size_per_layer_input=256, laurel_rank=64, altup_num_inputs=4,
    altup_coef_clip=120.0, num_kv_shared_layers=10, sliding_window=512,
    full_attention_every=5, sparse_layers=10,
)
# E4B differs from E2B only in depth, MLP width and KV sharing
E4B = replace(E2B, num_hidden_layers=35, intermediate_size=16384, num_kv_shared_layers=15)
# Gemma 3n's structure shrunk so CPU tests run in seconds: sliding and full
# layers, KV sharing, sparsity, AltUp, Laurel and per-layer inputs all present.
TINY = replace(
    E2B, num_hidden_layers=6, hidden_size=128, intermediate_size=256, num_attention_heads=4, head_dim=32,
    vocab_size=1024, vocab_size_per_layer_input=1024, hidden_size_per_layer_input=64, num_kv_shared_layers=2,
    sliding_window=16, full_attention_every=3, sparse_layers=2, max_position_embeddings=4096,
)

_QUANTS = {"4bit": 4, "8bit": 8, "bf16": None}


def gemma3n_config(arch: Architecture, bits: Optional[int], group_size: int = 64) -> dict:
    """The config.json of a Gemma 3n checkpoint of `arch`: the text config, the
    default vision/audio towers with the vocabulary's multimodal offsets (see
    synthetic.multimodal_layout), and the mlx-community quantization block."""
    from .synthetic import multimodal_layout

    ids = multimodal_layout(arch.vocab_size)
    config = {
        "model_type": "gemma3n", "torch_dtype": "bfloat16",
        "text_config": arch.text_config(),
        "vision_config": {"vocab_offset": ids["vision_offset"]},
        "audio_config": {"vocab_offset": ids["audio_offset"]},
        "image_token_id": ids["image"], "image_token_index": ids["image"],
        "audio_token_id": ids["audio"],
    }
    if bits:
        config["quantization"] = {"group_size": group_size, "bits": bits}
    return config


def _build_registry():
    from .published import published_aliases

    specs = {}
    for family, arch, size in (("gemma3n-e2b", E2B, "E2B"), ("gemma3n-e4b", E4B, "E4B")):
        for label, bits in _QUANTS.items():
            alias = f"{family}-{label}"
            specs[alias] = ModelSpec(
                alias=alias, family=family, config=gemma3n_config(arch, bits), arch=arch,
                repo_id=f"mlx-community/gemma-3n-{size}-it-{label}",
            )
    for label, bits in _QUANTS.items():
        alias = "gemma3n-tiny" if label == "4bit" else f"gemma3n-tiny-{label}"
        specs[alias] = ModelSpec(
            alias=alias, family="gemma3n-tiny", config=gemma3n_config(TINY, bits), arch=TINY,
            repo_id=None, note="test architecture, no real checkpoint",
        )
    for alias, (family, _label, repo_id, config) in published_aliases().items():
        specs[alias] = ModelSpec(alias=alias, family=family, config=config, repo_id=repo_id)
    return specs


MODELS = _build_registry()


def family_members(family: str) -> dict:
    """{bits label: spec} for an alias family, e.g. 'gemma3n-e2b' → 4bit, 8bit, bfloat16
    (the first alias of a label wins: gpt-oss's two mxfp4 variants are one label)."""
    out = {}
    for s in MODELS.values():
        if s.family == family:
            out.setdefault(s.quant.label, s)
    return out


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
