"""Resolve `--model` (alias, repo id or directory) into a built model.

Real weights load through mlx-vlm when the checkpoint is on disk; otherwise
the alias's published architecture is built with synthetic weights. Nothing
here ever downloads: a missing checkpoint is a fast, clear error.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import InputError
from .registry import MODELS, ModelSpec, family_members, families, resolve_alias  # noqa: F401

SUPPORTED_MODEL_TYPES = ("gemma3n",)
WEIGHTS_CHOICES = ("auto", "real", "synthetic")


@dataclass
class Target:
    """What `--model` named, resolved before anything is built."""

    name: str
    weights: str  # "real" or "synthetic"
    spec: Optional[ModelSpec] = None  # the architecture when synthetic / known
    path: Optional[Path] = None  # checkpoint directory when real
    config: Optional[dict] = None  # the checkpoint's config.json


@dataclass
class Loaded:
    """A model ready to decode. The decode loop, ops and floor see only
    `logits`, `make_cache`, `vocab_size` and `text` (the module one decode
    token runs), so they work the same for mlx-lm and mlx-vlm models."""

    target: Target
    model: object  # the library's top-level Model (mlx-vlm: .language_model, .vision_tower …)
    processor: object = None  # tokenizer/processor when real
    dtype: str = "bfloat16"
    library: str = "mlx-vlm"  # which library's model classes built it: "mlx-lm" or "mlx-vlm"

    @property
    def text(self):
        """The text decoder: mlx-vlm's `language_model`, or the mlx-lm model itself."""
        return getattr(self.model, "language_model", self.model)

    @property
    def vocab_size(self) -> int:
        text = self.text
        args = getattr(text, "config", None) or getattr(text, "args", None)
        return int(args.vocab_size)

    def logits(self, ids, cache):
        """Logits (B, L, V) of `ids` given and filling `cache` (mlx-vlm's
        language models return an output record, mlx-lm's the array)."""
        out = self.text(ids, cache=cache)
        return getattr(out, "logits", out)

    def make_cache(self):
        from mlx_lm.models.cache import make_prompt_cache

        return make_prompt_cache(self.text)  # the model's own make_cache when it has one


def _cached_snapshot(repo_id: str) -> Optional[Path]:
    """The Hugging Face cache's snapshot of `repo_id`, without any network."""
    try:
        from huggingface_hub import snapshot_download

        p = Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        return None
    return p if (p / "config.json").exists() else None


def _read_config(path: Path) -> dict:
    cfg = path / "config.json"
    if not cfg.exists():
        raise InputError(f"{path} has no config.json: not a model checkpoint directory")
    try:
        config = json.loads(cfg.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{cfg}: unreadable config ({e})")
    mt = config.get("model_type")
    if mt not in SUPPORTED_MODEL_TYPES:
        raise InputError(
            f"{path}: model_type '{mt}' is not supported (supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
        )
    return config


def _has_weights(path: Path) -> bool:
    return any(path.glob("*.safetensors"))


def _spec_for_repo(repo_id: str) -> Optional[ModelSpec]:
    return next((s for s in MODELS.values() if s.repo_id == repo_id), None)


def resolve(name: str, weights: str = "auto") -> Target:
    """Decide real vs synthetic and validate, cheaply (no building)."""
    if weights not in WEIGHTS_CHOICES:
        raise InputError(f"--weights must be one of {', '.join(WEIGHTS_CHOICES)}, not '{weights}'")
    path = Path(os.path.expanduser(name))
    if path.exists():
        if not path.is_dir():
            raise InputError(f"{path} is a file; pass a checkpoint directory")
        config = _read_config(path)
        real = _has_weights(path)
        if weights == "real" and not real:
            raise InputError(f"{path} has no *.safetensors weights")
        if weights == "synthetic" or not real:
            return Target(name=name, weights="synthetic", path=path, config=config)
        return Target(name=name, weights="real", path=path, config=config)

    if name in MODELS:
        spec = MODELS[name]
    elif "/" in name and not name.startswith((".", "/")):
        spec = _spec_for_repo(name)
    else:
        spec = resolve_alias(name)  # raises with the nearest alias

    repo = spec.repo_id if spec else name
    snap = _cached_snapshot(repo) if (repo and weights != "synthetic") else None
    if snap is not None:
        config = _read_config(snap)
        if _has_weights(snap):
            return Target(name=name, weights="real", spec=spec, path=snap, config=config)
    if weights == "real":
        if not repo:
            raise InputError(f"'{name}' is a test architecture with no real checkpoint")
        raise InputError(
            f"checkpoint {repo} is not on disk and mlxprof never downloads; fetch it with "
            f"`huggingface-cli download {repo}` or use --weights synthetic"
        )
    if spec is None:
        raise InputError(
            f"'{name}' is not an alias, a local directory, or a cached repo id; known aliases: "
            + ", ".join(MODELS)
        )
    return Target(name=name, weights="synthetic", spec=spec)


def spec_from_config(config: dict, name: str) -> ModelSpec:
    """An ad-hoc ModelSpec from a checkpoint's config.json (for synthetic weights
    of an on-disk architecture)."""
    from .registry import Architecture, Quantization

    tc = config.get("text_config", config)
    n = tc["num_hidden_layers"]
    inter = tc["intermediate_size"]
    inter = inter[0] if isinstance(inter, list) else inter
    types = tc.get("layer_types") or []
    every = next((i + 1 for i, t in enumerate(types) if t == "full_attention"), tc.get("sliding_window_pattern", 5))
    sparsity = tc.get("activation_sparsity_pattern") or [0.0] * n
    arch = Architecture(
        num_hidden_layers=n, hidden_size=tc["hidden_size"], intermediate_size=inter,
        num_attention_heads=tc["num_attention_heads"], num_key_value_heads=tc["num_key_value_heads"],
        head_dim=tc.get("head_dim", 256), vocab_size=tc.get("vocab_size", 262400),
        vocab_size_per_layer_input=tc.get("vocab_size_per_layer_input", 262144),
        hidden_size_per_layer_input=tc.get("hidden_size_per_layer_input", 256),
        laurel_rank=tc.get("laurel_rank", 64), altup_num_inputs=tc.get("altup_num_inputs", 4),
        altup_coef_clip=tc.get("altup_coef_clip") or 120.0,
        num_kv_shared_layers=tc.get("num_kv_shared_layers", 0),
        sliding_window=tc.get("sliding_window", 512), full_attention_every=every,
        sparse_layers=sum(1 for s in sparsity if s > 0),
        activation_sparsity=max(sparsity) if any(sparsity) else 0.95,
    )
    q = config.get("quantization") or {}
    quant = Quantization(bits=q.get("bits"), group_size=q.get("group_size", 64))
    return ModelSpec(alias=name, family=name, arch=arch, quant=quant, repo_id=None)


def target_spec(target: Target) -> ModelSpec:
    if target.spec is not None:
        return target.spec
    return spec_from_config(target.config, target.name)


def default_dtype(spec: ModelSpec, backend: str) -> str:
    """MLX's CPU quantized kernels are ~10× slower with bf16 activations than
    with float32 (anchors.md), so quantized models run float32 on the CPU."""
    if backend == "cpu" and spec.quant.bits:
        return "float32"
    return spec.quant.dtype


def load(target: Target, dtype: Optional[str] = None) -> Loaded:
    import mlx.core as mx

    if target.weights == "real":
        from mlx_vlm.utils import load as vlm_load

        model, processor = vlm_load(str(target.path))
        return Loaded(target=target, model=model, processor=processor,
                      dtype=str(model.language_model.model.embed_tokens.scales.dtype
                                if hasattr(model.language_model.model.embed_tokens, "scales")
                                else model.language_model.model.embed_tokens.weight.dtype).replace("mlx.core.", ""),
                      library="mlx-vlm")
    from .synthetic import build_model

    spec = target_spec(target)
    dtype = dtype or spec.quant.dtype
    model = build_model(spec, dtype=getattr(mx, dtype))
    return Loaded(target=target, model=model, dtype=dtype)


def identity(loaded: Loaded) -> "ModelIdentity":
    from ..results import ModelIdentity
    from .weights import bytes_per_token, parameter_count

    t = loaded.target
    spec = t.spec if t.spec is not None else (target_spec(t) if t.config else None)
    lm = loaded.text
    return ModelIdentity(
        name=t.name,
        alias=t.spec.alias if t.spec else None,
        repo_id=t.spec.repo_id if t.spec else None,
        path=str(t.path) if t.path else None,
        weights=t.weights,
        quantization=spec.quant.label if spec else "unknown",
        group_size=spec.quant.group_size if spec and spec.quant.bits else None,
        dtype=loaded.dtype,
        num_layers=len(lm.layers),
        parameters=parameter_count(lm),
        bytes_per_token=bytes_per_token(lm),
    )


def estimate_bytes(target: Target, dtype: Optional[str] = None) -> int:
    """Bytes the model's weights will take once loaded, computed without
    loading: file sizes for real checkpoints, lazy shapes for synthetic ones."""
    if target.weights == "real":
        return sum(f.stat().st_size for f in target.path.glob("*.safetensors"))
    import mlx.core as mx

    from .synthetic import build_model
    from .weights import total_bytes

    spec = target_spec(target)
    model = build_model(spec, dtype=getattr(mx, dtype or spec.quant.dtype), materialize=False)
    return total_bytes(model.language_model)


def preflight(target: Target, dtype: Optional[str], chip) -> int:
    """Refuse a model that will not fit, before building it."""
    from ..hardware import available_memory

    need = estimate_bytes(target, dtype)
    # synthetic building and decode need headroom: KV cache, activations, allocator slack
    need_total = int(need * 1.15) + (256 << 20)
    have, what = available_memory(chip)
    if have is not None and need_total > have:
        raise InputError(
            f"{target.name} needs ~{need_total / 1e9:.1f} GB but the device offers "
            f"{have / 1e9:.1f} GB ({what}); pick a smaller model or quantization"
        )
    return need


def catalog() -> list:
    """One row per alias: architecture size and bytes streamed per token,
    computed from lazily built (never evaluated) models."""
    import mlx.core as mx

    from .synthetic import build_model
    from .weights import bytes_per_token, parameter_count, total_bytes

    rows = []
    for alias, spec in MODELS.items():
        lm = build_model(spec, dtype=getattr(mx, spec.quant.dtype), materialize=False).language_model
        rows.append(dict(
            alias=alias, repo_id=spec.repo_id, layers=spec.arch.num_hidden_layers,
            kv_shared=spec.arch.num_kv_shared_layers, quantization=spec.quant.label,
            parameters=parameter_count(lm), weight_bytes=total_bytes(lm),
            bytes_per_token=bytes_per_token(lm), note=spec.note,
        ))
    return rows


def prepare_target(target: Target, dtype: Optional[str], chip):
    """Memory preflight, then load. Returns (Loaded, dtype_reason): the reason
    says why the activation dtype differs from the checkpoint's, if it does."""
    reason = None
    if target.weights == "synthetic" and dtype is None:
        spec = target_spec(target)
        dtype = default_dtype(spec, chip.backend)
        if dtype != spec.quant.dtype:
            reason = (f"dtype {spec.quant.dtype}→{dtype}: MLX's CPU quantized kernels run ~10× "
                      "slower with bf16 activations (pass --dtype bfloat16 to keep it)")
    preflight(target, dtype, chip)
    return load(target, dtype), reason
