"""Published configs of the model families mlxprof knows by alias.

Each family holds the config.json its checkpoint publishes, copied verbatim
minus bookkeeping keys (torch_dtype, transformers_version, initializer_range,
use_cache, attention_dropout) and minus the source checkpoint's own
quantization, which lives in the variants: {label: (repo id, the MLX
`quantization` block the converted repo's config.json carries, or None for
bf16)}. Nothing here picks mlx-lm or mlx-vlm: the builder decides from the
config (a `vision_config` means mlx-vlm).

Where a value was read: `source` names the config.json; when the page itself
was not readable here, the comment beside the family names the public
verbatim copy the values were checked against.
"""

from copy import deepcopy
from dataclasses import dataclass

# What mlx-lm's convert writes for `-q --q-bits N` with the default group
# size: {"group_size": 64, "bits": N} (mlx_lm/utils.py quantize_model,
# v0.24.1); mlx-vlm's convert writes the same block.
Q4 = {"group_size": 64, "bits": 4}
Q8 = {"group_size": 64, "bits": 8}
_QUANT = {"4bit": Q4, "8bit": Q8, "bf16": None}


def _mlx_community(name, *labels):
    """mlx-community's conversions of `name`, one repo per label: `<name>-<label>`."""
    return {label: (f"mlx-community/{name}-{label}", _QUANT[label]) for label in labels}


@dataclass(frozen=True)
class FamilyConfig:
    family: str
    config: dict
    source: str
    params_published: int
    params_source: str
    variants: dict  # label -> (repo_id, quantization dict or None)


def _gpt_oss_quantization(non_expert, layers=24):
    """gpt-oss in MLX form: the experts in mxfp4 (group 32), every other
    linear as `non_expert` says, the router in 8-bit affine unless left bf16.

    The mlx-community MXFP4-Q8 export keys its per-layer overrides this way:
    https://github.com/Blaizzy/mlx-vlm/pull/1728 and its TestGptOssMixedQuant
    ("Mirrors the real mlx-community/gpt-oss-20b-MXFP4-Q8 export")."""
    q = {"group_size": 32, "bits": 4, "mode": "mxfp4",
         "model.embed_tokens": non_expert, "lm_head": non_expert}
    router = {"group_size": 64, "bits": 8} if non_expert else False
    for i in range(layers):
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            q[f"model.layers.{i}.self_attn.{proj}"] = non_expert
        q[f"model.layers.{i}.mlp.router"] = router
    return q


_LLAMA3_ROPE = {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                "original_max_position_embeddings": 8192, "rope_type": "llama3"}
_LLAMA3 = {"architectures": ["LlamaForCausalLM"], "attention_bias": False,
           "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
           "hidden_act": "silu", "max_position_embeddings": 131072, "mlp_bias": False,
           "model_type": "llama", "num_key_value_heads": 8, "pretraining_tp": 1,
           "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "vocab_size": 128256}
_QWEN3 = {"architectures": ["Qwen3ForCausalLM"], "attention_bias": False,
          "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128,
          "hidden_act": "silu", "max_position_embeddings": 40960, "model_type": "qwen3",
          "num_key_value_heads": 8, "rms_norm_eps": 1e-06, "rope_scaling": None,
          "rope_theta": 1000000, "sliding_window": None, "use_sliding_window": False,
          "vocab_size": 151936}
_HF = "https://huggingface.co/"
_MC = "mlx-community/"

# The dense text families: a base config plus these fields, one row each.
_SIZE_FIELDS = ("hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads", "head_dim", "tie_word_embeddings")
_DENSE_SIZES = {
    "llama3.2-1b": (_LLAMA3, 2048, 8192, 16, 32, 64, True, {"rope_scaling": _LLAMA3_ROPE}),
    "llama3.2-3b": (_LLAMA3, 3072, 8192, 28, 24, 128, True, {"rope_scaling": _LLAMA3_ROPE}),
    "llama3.1-8b": (_LLAMA3, 4096, 14336, 32, 32, 128, False, {"rope_scaling": {**_LLAMA3_ROPE, "factor": 8.0}}),
    "qwen3-0.6b": (_QWEN3, 1024, 3072, 28, 16, 128, True, {"max_window_layers": 28}),
    "qwen3-4b": (_QWEN3, 2560, 9728, 36, 32, 128, True, {"max_window_layers": 36}),
    "qwen3-8b": (_QWEN3, 4096, 12288, 36, 32, 128, False, {"max_window_layers": 36}),
}
# family: (the repo whose config.json it is, mlx-community's name for it, the labels it publishes).
# Values checked against verbatim copies on huggingface.co: julien-c/Llama-3.2-1B-Instruct;
# datasets/lhpku20010120/Llama-3.2-3B-Instruct; stan-hua/Llama-3.1-8B-Instruct-LC-SmoothQuant-
# RTN-W4A16 (a copy of meta-llama snapshot 0e9e39f2); TensorStack/TextEncoder Qwen-3-06B;
# decompute/slm1 ("Duplicate from mlx-community/Qwen3-4B-4bit", which also shows its Q4
# block); thejaminator/qwen-hook-layer-9 commit 478fb72 ("Copy config.json from Qwen/Qwen3-8B").
_DENSE_REPOS = {
    "llama3.2-1b": ("meta-llama/Llama-3.2-1B-Instruct", "Llama-3.2-1B-Instruct", ("4bit", "8bit", "bf16")),
    "llama3.2-3b": ("meta-llama/Llama-3.2-3B-Instruct", "Llama-3.2-3B-Instruct", ("4bit", "8bit", "bf16")),
    "llama3.1-8b": ("meta-llama/Llama-3.1-8B-Instruct", "Meta-Llama-3.1-8B-Instruct", ("4bit", "8bit", "bf16")),
    "qwen3-0.6b": ("Qwen/Qwen3-0.6B", "Qwen3-0.6B", ("4bit", "8bit", "bf16")),
    "qwen3-4b": ("Qwen/Qwen3-4B", "Qwen3-4B", ("4bit", "8bit")),
    "qwen3-8b": ("Qwen/Qwen3-8B", "Qwen3-8B", ("4bit", "8bit")),
}
# family: (published parameter count, where it is published on huggingface.co).
_DENSE_PARAMS = {
    "llama3.2-1b": (1_240_000_000, _MC + "Llama-3.2-1B-Instruct-bf16 (Hub count: 1.24B params)"),
    "llama3.2-3b": (3_210_000_000, _MC + "Llama-3.2-3B-Instruct-bf16 (Hub count: 3.21B params)"),
    "llama3.1-8b": (8_030_000_000, _MC + "Meta-Llama-3.1-8B-Instruct-bf16 (Hub count: 8.03B params)"),
    "qwen3-0.6b": (600_000_000, "Qwen/Qwen3-0.6B model card: 'Number of Parameters: 0.6B'"),
    # The 4B card's figure as remembered, not re-read here; the test holds it to 2 %.
    "qwen3-4b": (4_000_000_000, "Qwen/Qwen3-4B model card: 'Number of Parameters: 4.0B'"),
    "qwen3-8b": (8_200_000_000, "Qwen/Qwen3-8B model card: 'Number of Parameters: 8.2B'"),
}


def _dense(family):
    base, *sizes, extra = _DENSE_SIZES[family]
    repo, mlx_name, labels = _DENSE_REPOS[family]
    params, where = _DENSE_PARAMS[family]
    return FamilyConfig(family, {**base, **dict(zip(_SIZE_FIELDS, sizes)), **extra},
                        _HF + repo + "/blob/main/config.json", params, _HF + where,
                        _mlx_community(mlx_name, *labels))


_FAMILIES = (
    *map(_dense, _DENSE_SIZES),
    # Checked against lmstudio-community/Qwen3-30B-A3B-MLX-4bit's config.json, quoted
    # byte for byte in a public test fixture; mlx-lm 0.24 (which converted the
    # mlx-community repo) had no per-layer router override yet (it came in v0.26.3).
    FamilyConfig(
        "qwen3-30b-a3b",
        {"architectures": ["Qwen3MoeForCausalLM"], "attention_bias": False,
         "bos_token_id": 151643, "decoder_sparse_step": 1, "eos_token_id": 151645,
         "head_dim": 128, "hidden_act": "silu", "hidden_size": 2048,
         "intermediate_size": 6144, "max_position_embeddings": 40960,
         "max_window_layers": 48, "mlp_only_layers": [], "model_type": "qwen3_moe",
         "moe_intermediate_size": 768, "norm_topk_prob": True, "num_attention_heads": 32,
         "num_experts": 128, "num_experts_per_tok": 8, "num_hidden_layers": 48,
         "num_key_value_heads": 4, "output_router_logits": False, "rms_norm_eps": 1e-06,
         "rope_scaling": None, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001,
         "sliding_window": None, "tie_word_embeddings": False, "use_sliding_window": False,
         "vocab_size": 151936},
        _HF + "Qwen/Qwen3-30B-A3B/blob/main/config.json",
        30_500_000_000, _HF + "Qwen/Qwen3-30B-A3B model card: '30.5B in total and 3.3B activated'",
        _mlx_community("Qwen3-30B-A3B", "4bit", "8bit")),
    # Checked against fine-tunes that keep the config (huggingface.co/descript/mouse-20b,
    # leeloolee/oss-math). openai publishes quantization_config {quant_method: mxfp4,
    # modules_to_not_convert: [self_attn, router, embed_tokens, lm_head]}; the "mxfp4"
    # variant is that in MLX form (mlx-lm's loader maps quant_method mxfp4 to
    # group 32 / bits 4 / mode mxfp4 for the tensors that carry scales).
    FamilyConfig(
        "gpt-oss-20b",
        {"architectures": ["GptOssForCausalLM"], "attention_bias": True,
         "eos_token_id": 200002, "experts_per_token": 4, "head_dim": 64,
         "hidden_act": "silu", "hidden_size": 2880, "initial_context_length": 4096,
         "intermediate_size": 2880,
         "layer_types": ["sliding_attention", "full_attention"] * 12,
         "max_position_embeddings": 131072, "model_type": "gpt_oss",
         "num_attention_heads": 64, "num_experts_per_tok": 4, "num_hidden_layers": 24,
         "num_key_value_heads": 8, "num_local_experts": 32, "output_router_logits": False,
         "pad_token_id": 199999, "rms_norm_eps": 1e-05,
         "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0,
                          "original_max_position_embeddings": 4096, "rope_type": "yarn",
                          "truncate": False},
         "rope_theta": 150000, "router_aux_loss_coef": 0.9, "sliding_window": 128,
         "swiglu_limit": 7.0, "tie_word_embeddings": False, "vocab_size": 201088},
        _HF + "openai/gpt-oss-20b/blob/main/config.json",
        21_000_000_000, _HF + "openai/gpt-oss-20b model card: '21B parameters with 3.6B active'",
        {"mxfp4": ("openai/gpt-oss-20b", _gpt_oss_quantization(False)),
         "mxfp4-q8": (_MC + "gpt-oss-20b-MXFP4-Q8",
                      _gpt_oss_quantization({"group_size": 64, "bits": 8, "mode": "affine"}))}),
    # Checked against huggingface.co/fuliucansheng/Mistral-7B-Instruct-v0.3 config.json.
    FamilyConfig(
        "mistral-7b-v0.3",
        {"architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
         "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 14336,
         "max_position_embeddings": 32768, "model_type": "mistral",
         "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
         "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "sliding_window": None,
         "tie_word_embeddings": False, "vocab_size": 32768},
        _HF + "mistralai/Mistral-7B-Instruct-v0.3/blob/main/config.json",
        7_250_000_000, "https://ollama.com/library/mistral:7b-instruct-v0.3-q8_0 "
        "('parameters 7.25B'; Mistral's announcement rounds to 7.3B)",
        _mlx_community("Mistral-7B-Instruct-v0.3", "4bit", "8bit")),
    # google/gemma-3-4b-it publishes a sparse config: the rest (8 heads, 4 kv heads,
    # head_dim 256, vocab 262208) are the Gemma 3 defaults both libraries fill in.
    # Quantized mlx-community Gemma 3 configs of the same mlx-vlm release also mark
    # vision_config "skip_vision": true (vision tower left bf16; seen on
    # gemma-3-4b-pt-6bit, not confirmed for the -it repos, so not copied here).
    FamilyConfig(
        "gemma3-4b",
        {"architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999,
         "eoi_token_index": 256000, "eos_token_id": [1, 106], "image_token_index": 262144,
         "mm_tokens_per_image": 256, "model_type": "gemma3",
         "text_config": {"hidden_size": 2560, "intermediate_size": 10240,
                         "model_type": "gemma3_text", "num_hidden_layers": 34,
                         "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                         "sliding_window": 1024},
         "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304,
                           "model_type": "siglip_vision_model", "num_attention_heads": 16,
                           "num_hidden_layers": 27, "patch_size": 14,
                           "vision_use_head": False}},
        _HF + _MC + "gemma-3-4b-it-bf16/blob/main/config.json",
        4_300_000_000, _HF + "google/gemma-3-4b-it (Hub count: 4.3B params, vision tower "
        "included)",
        _mlx_community("gemma-3-4b-it", "4bit", "8bit", "bf16")),
    # Checked against a verbatim copy of Qwen/Qwen2.5-VL-3B-Instruct's first config.json
    # (transformers_version 4.41.2) in a public GitHub repository. Copies re-saved by
    # transformers >= 4.49 write rope_scaling {"mrope_section": [16, 24, 24],
    # "rope_type": "default", "type": "default"} and drop the vision keys equal to
    # the defaults; the architecture is the same and mlx-vlm accepts both.
    FamilyConfig(
        "qwen2.5-vl-3b",
        {"architectures": ["Qwen2_5_VLForConditionalGeneration"], "bos_token_id": 151643,
         "eos_token_id": 151645, "vision_start_token_id": 151652,
         "vision_end_token_id": 151653, "vision_token_id": 151654, "image_token_id": 151655,
         "video_token_id": 151656, "hidden_act": "silu", "hidden_size": 2048,
         "intermediate_size": 11008, "max_position_embeddings": 128000,
         "max_window_layers": 70, "model_type": "qwen2_5_vl", "num_attention_heads": 16,
         "num_hidden_layers": 36, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
         "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": True,
         "use_sliding_window": False,
         "vision_config": {"depth": 32, "hidden_act": "silu", "hidden_size": 1280,
                           "intermediate_size": 3420, "num_heads": 16, "in_chans": 3,
                           "out_hidden_size": 2048, "patch_size": 14, "spatial_merge_size": 2,
                           "spatial_patch_size": 14, "window_size": 112,
                           "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2,
                           "temporal_patch_size": 2},
         "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
         "vocab_size": 151936},
        _HF + "Qwen/Qwen2.5-VL-3B-Instruct/blob/main/config.json",
        3_750_000_000, _HF + "Qwen/Qwen2.5-VL-3B-Instruct (Hub count: 3.75B params, as "
        "whatmodel.sh's page for the model also quotes it)",
        _mlx_community("Qwen2.5-VL-3B-Instruct", "4bit", "8bit", "bf16")),
)

PUBLISHED = {f.family: f for f in _FAMILIES}


def published_aliases() -> dict:
    """{alias: (family, label, repo_id, config)}, alias `<family>-<label>`;
    `config` is a fresh copy of the published config with the variant's
    `quantization` block added (absent for bf16)."""
    aliases = {}
    for fam in PUBLISHED.values():
        for label, (repo_id, quantization) in fam.variants.items():
            config = deepcopy(fam.config)
            if quantization is not None:
                config["quantization"] = deepcopy(quantization)
            aliases[f"{fam.family}-{label}"] = (fam.family, label, repo_id, config)
    return aliases
