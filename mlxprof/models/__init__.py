"""Resolve `--model` (alias, repo id, directory or config file) into a built model.

Any architecture mlx-lm or mlx-vlm implements: the checkpoint's config.json
decides the library (`adapters.library_for`). Real weights load through that
library's own loader when the checkpoint is on disk; otherwise the config
(an alias's published one, or the file's) is built with synthetic weights.
Nothing here ever downloads: a missing checkpoint is a fast, clear error.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import InputError
from .checkpoint import check_weights, read_config, read_config_file, weight_files
from .registry import MODELS, ModelSpec, family_members, families, resolve_alias  # noqa: F401

WEIGHTS_CHOICES = ("auto", "real", "synthetic")


@dataclass
class Target:
    """What `--model` named, resolved before anything is built."""

    name: str
    weights: str  # "real" or "synthetic"
    spec: Optional[ModelSpec] = None  # the alias, when one was named or matched
    path: Optional[Path] = None  # checkpoint directory (or config file) on disk
    config: Optional[dict] = None  # the config.json the model is built from
    library: Optional[str] = None  # "mlx-lm" or "mlx-vlm", read from the config


@dataclass
class Loaded:
    """A model ready to decode. The decode loop, ops and floor see only
    `logits`, `make_cache`, `vocab_size` and `text` (the module one decode
    token runs), so they work the same for mlx-lm and mlx-vlm models."""

    target: Target
    model: object  # the library's top-level Model (mlx-vlm: .language_model, .vision_tower …)
    processor_: object = None  # tokenizer/processor, loaded on first use (`processor`, `tokenizer()`)
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

    def tokenizer(self):
        """The checkpoint's tokenizer, loaded now (a text prompt needs it);
        InputError when there is none (synthetic weights, no tokenizer files)."""
        if self.target.weights != "real":
            raise InputError("--prompt needs a checkpoint with a tokenizer; synthetic weights have none "
                             "(use --prompt-tokens)")
        if self.processor_ is None:
            from .adapters import load_tokenizer

            self.processor_ = load_tokenizer(self.target.path, self.library)
        return getattr(self.processor_, "tokenizer", self.processor_)

    @property
    def processor(self):
        """The checkpoint's processor (mlx-vlm) or tokenizer, or None where it
        has none: an image prompt then uses the built-in preprocessing."""
        if self.processor_ is None and self.target.weights == "real":
            try:
                self.tokenizer()
            except InputError:
                return None
        return self.processor_


def _cached_snapshot(repo_id: str) -> Optional[Path]:
    """The Hugging Face cache's snapshot of `repo_id`, without any network."""
    try:
        from huggingface_hub import snapshot_download

        p = Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        return None
    return p if (p / "config.json").exists() else None


def _spec_for_repo(repo_id: str) -> Optional[ModelSpec]:
    return next((s for s in MODELS.values() if s.repo_id == repo_id), None)


def _on_disk(name: str, path: Path, weights: str, spec=None) -> Target:
    """A checkpoint directory or a config file: real when it has weights."""
    from .adapters import check_config

    if path.is_file():
        if weights == "real":
            raise InputError(f"{path} is a config file: it has no weights (pass the checkpoint directory)")
        config = read_config_file(path)
        return Target(name=name, weights="synthetic", path=path, config=config,
                      library=check_config(config, str(path)))
    config = read_config(path)
    library = check_config(config, str(path))
    real = bool(weight_files(path))
    if weights == "real" and not real:
        raise InputError(f"{path} has no *.safetensors weights")
    if weights == "synthetic" or not real:
        return Target(name=name, weights="synthetic", spec=spec, path=path, config=config, library=library)
    check_weights(path)
    return Target(name=name, weights="real", spec=spec, path=path, config=config, library=library)


def resolve(name: str, weights: str = "auto") -> Target:
    """Decide real vs synthetic and validate, cheaply (no building). `name` is
    an alias, a checkpoint directory, a config.json file, or a repo id."""
    from .adapters import check_config

    if weights not in WEIGHTS_CHOICES:
        raise InputError(f"--weights must be one of {', '.join(WEIGHTS_CHOICES)}, not '{weights}'")
    path = Path(os.path.expanduser(name))
    if path.exists():
        return _on_disk(name, path, weights)

    if name in MODELS:
        spec = MODELS[name]
    elif "/" in name and not name.startswith((".", "/")):
        spec = _spec_for_repo(name)
    else:
        spec = resolve_alias(name)  # raises with the nearest alias

    repo = spec.repo_id if spec else name
    snap = _cached_snapshot(repo) if (repo and weights != "synthetic") else None
    if snap is not None and weight_files(snap):
        return _on_disk(name, snap, "real", spec)
    if weights == "real":
        if not repo:
            raise InputError(f"'{name}' is a test architecture with no real checkpoint")
        raise InputError(
            f"checkpoint {repo} is not on disk and mlxprof never downloads; fetch it with "
            f"`huggingface-cli download {repo}` or use --weights synthetic"
        )
    if spec is None:
        raise InputError(
            f"'{name}' is not an alias, a local directory, or a cached repo id; see `mlxprof models`"
        )
    return Target(name=name, weights="synthetic", spec=spec, config=spec.config,
                  library=check_config(spec.config, name))


def _gemma3n_arch(tc: dict):
    """Gemma 3n's Architecture read back from a text config (for its tools)."""
    from .registry import Architecture

    n = tc["num_hidden_layers"]
    inter = tc["intermediate_size"]
    inter = inter[0] if isinstance(inter, list) else inter
    types = tc.get("layer_types") or []
    every = next((i + 1 for i, t in enumerate(types) if t == "full_attention"), tc.get("sliding_window_pattern", 5))
    sparsity = tc.get("activation_sparsity_pattern") or [0.0] * n
    return Architecture(
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


def spec_from_config(config: dict, name: str) -> ModelSpec:
    """An ad-hoc ModelSpec for a config read from disk (Gemma 3n's also
    carries its Architecture)."""
    arch = None
    if config.get("model_type") == "gemma3n":
        try:
            arch = _gemma3n_arch(config.get("text_config", config))
        except (KeyError, TypeError, IndexError):
            arch = None
    return ModelSpec(alias=name, family=name, config=config, repo_id=None, arch=arch)


def target_spec(target: Target) -> ModelSpec:
    if target.spec is not None:
        return target.spec
    return spec_from_config(target.config, target.name)


def _has_experts(config: dict) -> bool:
    from .weights import TOP_K_KEYS

    text = config.get("text_config") or {}
    return any(c.get(k) for c in (config, text) for k in TOP_K_KEYS)


def default_dtype(spec: ModelSpec, backend: str) -> str:
    """MLX's CPU quantized kernels are ~10× slower with bf16 activations than
    with float32, and its CPU GatherMM (unquantized MoE experts) runs float32
    only (MLX 0.32 raises "[GatherMM::eval] Currently only supports float32"),
    so quantized and MoE models run float32 on the CPU."""
    if backend == "cpu" and (spec.quant.bits or _has_experts(spec.config)):
        return "float32"
    return spec.quant.dtype


def _float_dtype(module) -> str:
    """The dtype most of a loaded model's float parameters have (quantization
    scales included): what its activations run in."""
    import collections

    import mlx.core as mx
    from mlx.utils import tree_flatten

    count = collections.Counter()
    for _, v in tree_flatten(module.parameters()):
        if mx.issubdtype(v.dtype, mx.floating):
            count[str(v.dtype).replace("mlx.core.", "")] += v.size
    return count.most_common(1)[0][0] if count else "float32"


def load(target: Target, dtype: Optional[str] = None) -> Loaded:
    import mlx.core as mx

    from .synthetic import build_model, text_module

    library = target.library
    if target.weights == "real":
        from .adapters import load_real

        model = load_real(target.path, library, target.config)
        return Loaded(target=target, model=model, library=library,
                      dtype=_float_dtype(text_module(model, library)))
    spec = target_spec(target)
    dtype = dtype or spec.quant.dtype
    model = build_model(target.config, dtype=getattr(mx, dtype), library=library)
    return Loaded(target=target, model=model, dtype=dtype, library=library)


def identity(loaded: Loaded) -> "ModelIdentity":
    from ..results import ModelIdentity
    from .weights import bytes_per_token, moe_shape, parameter_count

    t = loaded.target
    spec = target_spec(t)
    q = spec.quant
    lm = loaded.text
    k, n = moe_shape(lm)
    return ModelIdentity(
        name=t.name,
        alias=t.spec.alias if t.spec else None,
        repo_id=t.spec.repo_id if t.spec else None,
        path=str(t.path) if t.path else None,
        weights=t.weights,
        quantization=q.label if q.bits else loaded.dtype,
        group_size=q.group_size if q.bits else None,
        dtype=loaded.dtype,
        num_layers=len(lm.layers),
        parameters=parameter_count(lm),
        bytes_per_token=bytes_per_token(lm),
        model_type=t.config.get("model_type") if t.config else None,
        library=loaded.library,
        experts_per_token=k,
        experts=n,
    )


def estimate_bytes(target: Target, dtype: Optional[str] = None) -> int:
    """Bytes the model's weights will take once loaded, computed without
    loading: file sizes for real checkpoints, lazy shapes for synthetic ones."""
    if target.weights == "real":
        return sum(f.stat().st_size for f in weight_files(target.path))
    import mlx.core as mx

    from .synthetic import build_model, text_module
    from .weights import total_bytes

    spec = target_spec(target)
    model = build_model(target.config, dtype=getattr(mx, dtype or spec.quant.dtype), materialize=False,
                        library=target.library)
    return total_bytes(text_module(model, target.library))


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


def catalog(match: Optional[str] = None) -> list:
    """One row per alias (those whose alias or family contains `match`):
    architecture size and bytes streamed per token, computed from lazily
    built (never evaluated) models."""
    import mlx.core as mx

    from .adapters import library_for
    from .synthetic import build_model, text_module
    from .weights import moe_shape, parameter_count, streamed_matvecs, total_bytes

    rows = []
    for alias, spec in MODELS.items():
        if match and match.lower() not in alias.lower() and match.lower() not in spec.family.lower():
            continue
        library = library_for(spec.config, alias)
        model = build_model(spec, dtype=getattr(mx, spec.quant.dtype), materialize=False, library=library)
        lm = text_module(model, library)
        mvs = streamed_matvecs(lm)
        k, n = moe_shape(lm, mvs)
        rows.append(dict(
            alias=alias, family=spec.family, model_type=spec.model_type, library=library,
            repo_id=spec.repo_id, layers=len(lm.layers), quantization=spec.quant.label,
            experts=f"{k}/{n}" if n else None,
            parameters=parameter_count(lm), weight_bytes=total_bytes(lm),
            bytes_per_token=sum(mv.nbytes for mv in mvs), note=spec.note,
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
            why = ("MLX's CPU quantized kernels run ~10× slower with bf16 activations" if spec.quant.bits
                   else "MLX's CPU GatherMM (MoE experts) runs float32 only")
            reason = f"dtype {spec.quant.dtype}→{dtype}: {why} (pass --dtype bfloat16 to keep it)"
    preflight(target, dtype, chip)
    return load(target, dtype), reason
