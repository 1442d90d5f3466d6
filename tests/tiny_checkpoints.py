"""Tiny checkpoints of several architectures, written through mlx-lm's and
mlx-vlm's own model classes: config.json + model.safetensors, no tokenizer
files. Weights are the classes' own random initialization."""

import copy
import json
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten

_BASE = {"hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128, "num_attention_heads": 4,
         "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "vocab_size": 256, "max_position_embeddings": 512}

CONFIGS = {
    # dense GQA
    "llama": {**_BASE, "model_type": "llama", "tie_word_embeddings": False},
    # q/k norms, tied head
    "qwen3": {**_BASE, "model_type": "qwen3", "head_dim": 16, "tie_word_embeddings": True,
              "rope_theta": 1e6},
    # sliding-window layers (every 2nd layer global)
    "gemma3_text": {**_BASE, "model_type": "gemma3_text", "head_dim": 16, "sliding_window": 8,
                    "sliding_window_pattern": 2, "query_pre_attn_scalar": 16},
    # mixture of experts: 2 of 4 experts per token
    "qwen3_moe": {**_BASE, "model_type": "qwen3_moe", "head_dim": 16, "num_experts": 4,
                  "num_experts_per_tok": 2, "moe_intermediate_size": 32, "decoder_sparse_step": 1,
                  "mlp_only_layers": [], "norm_topk_prob": True, "tie_word_embeddings": False,
                  "rope_theta": 1e6},
    # gpt-oss: MoE with attention sinks, alternating sliding/full layers
    "gpt_oss": {**_BASE, "model_type": "gpt_oss", "intermediate_size": 64, "head_dim": 16,
                "num_local_experts": 4, "num_experts_per_tok": 2, "experts_per_token": 2,
                "sliding_window": 8, "layer_types": ["sliding_attention", "full_attention"],
                "rope_theta": 150000, "tie_word_embeddings": False},
    # a VLM through mlx-vlm: Gemma 3 with a one-layer SigLIP tower
    "gemma3": {"model_type": "gemma3", "mm_tokens_per_image": 4, "image_token_index": 250,
               "boi_token_index": 251, "eoi_token_index": 252,
               "text_config": {**_BASE, "model_type": "gemma3_text", "head_dim": 16, "sliding_window": 8,
                               "mm_tokens_per_image": 4,
                               "sliding_window_pattern": 2, "query_pre_attn_scalar": 16},
               "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 32,
                                 "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 1,
                                 "image_size": 28, "patch_size": 14, "vision_use_head": False}},
}


def build(config):
    """The library's model for `config`, as its loader builds it."""
    config = copy.deepcopy(config)
    if "vision_config" not in config:
        from mlx_lm.utils import _get_classes

        model_class, args_class = _get_classes(config)
        return model_class(args_class.from_dict(config))
    from mlx_vlm.utils import get_model_and_args, update_module_configs

    arch, _ = get_model_and_args(config)
    config.setdefault("audio_config", {})
    model_config = arch.ModelConfig.from_dict(config)
    return arch.Model(update_module_configs(model_config, arch, config, ["text", "vision", "audio"]))


def write(path, arch, quantization=None):
    """Write `arch`'s tiny checkpoint to `path`; `quantization` is a block such
    as {"group_size": 32, "bits": 4} or {"group_size": 32, "bits": 4, "mode": "mxfp4"}."""
    import mlx.nn as nn

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = copy.deepcopy(CONFIGS[arch])
    model = build(config)
    if quantization:
        q = dict(quantization)

        def predicate(p, m):
            return hasattr(m, "to_quantized") and m.weight.shape[-1] % q["group_size"] == 0 \
                and "vision" not in p

        nn.quantize(model, q["group_size"], q["bits"], mode=q.get("mode", "affine"), class_predicate=predicate)
        config["quantization"] = q
    weights = dict(tree_flatten(model.parameters()))
    mx.eval(weights)
    mx.save_safetensors(str(path / "model.safetensors"), weights)
    (path / "config.json").write_text(json.dumps(config))
    return path
