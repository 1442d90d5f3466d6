"""The published configs build, through mlx-lm's or mlx-vlm's own classes, into
models whose parameter count is the one their publishers state.

Nothing is evaluated: MLX arrays are lazy, so building a 30B model allocates
nothing and the whole file runs in seconds on CPU.
"""

import pytest
from mlx.utils import tree_flatten
import mlx.nn as nn

from mlxprof.models.published import PUBLISHED, published_aliases

ALIASES = published_aliases()


def _build(config):
    """The model the libraries' loaders would build, before weights: mlx-lm's
    `load_model` (mlx_lm/utils.py) or mlx-vlm's (mlx_vlm/utils.py)."""
    if "vision_config" not in config:
        from mlx_lm.utils import _get_classes

        model_class, args_class = _get_classes(config)
        return model_class(args_class.from_dict(config))
    from mlx_vlm.utils import get_model_and_args, update_module_configs

    arch, _ = get_model_and_args(config)
    config.setdefault("text_config", {})
    config.setdefault("audio_config", {})
    model_config = arch.ModelConfig.from_dict(config)
    modules = ["text", "vision", "perceiver", "projector", "audio"]
    return arch.Model(update_module_configs(model_config, arch, config, modules))


def _quantize(model, q):
    """nn.quantize as the loaders call it: per-layer entries in the block win
    (a dict of settings, or False to leave the layer unquantized)."""
    def predicate(path, module):
        if path in q:
            return q[path]
        return hasattr(module, "to_quantized") and module.weight.shape[-1] % q["group_size"] == 0

    nn.quantize(model, q["group_size"], q["bits"], mode=q.get("mode", "affine"),
                class_predicate=predicate)


def _tied(config):
    # Absent means tied: transformers' PretrainedConfig defaults it to True.
    text = config.get("text_config") or {}
    return config.get("tie_word_embeddings", text.get("tie_word_embeddings", True))


def _logical_params(model, tied):
    """Weights as published: a packed uint32 word holds 32/bits weights;
    quantization scales and biases are not model parameters. A tied checkpoint
    counts its embedding once, though mlx-vlm's Gemma 3 keeps a separate
    lm_head it fills from embed_tokens (mlx_vlm/models/gemma3/language.py)."""
    bits = {path: m.bits for path, m in model.named_modules() if "scales" in m}
    total = 0
    for path, array in tree_flatten(model.parameters()):
        owner, _, name = path.rpartition(".")
        if owner in bits and name in ("scales", "biases"):
            continue
        if tied and owner.endswith("lm_head"):
            continue
        total += array.size * 32 // bits[owner] if owner in bits and name == "weight" else array.size
    return total


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_alias_builds_to_its_published_parameter_count(alias):
    family, label, repo_id, config = ALIASES[alias]
    model = _build(config)
    quantization = config.get("quantization")
    if quantization is not None:
        _quantize(model, quantization)
        assert any("scales" in m for _, m in model.named_modules()), alias
    published = PUBLISHED[family].params_published
    counted = _logical_params(model, _tied(config))
    assert abs(counted - published) / published < 0.02, (alias, counted, published)


def test_quantized_count_equals_unquantized_count():
    # The count must see through packing: 4-bit, 8-bit and bf16 agree exactly.
    counts = {label: _logical_params(_quantized(f"llama3.2-1b-{label}"), tied=True)
              for label in ("4bit", "8bit", "bf16")}
    assert len(set(counts.values())) == 1, counts


def _quantized(alias):
    config = ALIASES[alias][3]
    model = _build(config)
    if "quantization" in config:
        _quantize(model, config["quantization"])
    return model


def test_gpt_oss_mxfp4_q8_mixes_modes_as_published():
    model = _quantized("gpt-oss-20b-mxfp4-q8")
    modules = dict(model.named_modules())
    assert modules["model.layers.0.mlp.experts.gate_proj"].mode == "mxfp4"
    assert modules["model.layers.0.self_attn.q_proj"].mode == "affine"
    assert modules["model.layers.0.self_attn.q_proj"].bits == 8
    native = dict(_quantized("gpt-oss-20b-mxfp4").named_modules())
    assert "scales" not in native["model.layers.0.self_attn.q_proj"]  # bf16, per openai
    assert native["model.layers.0.mlp.experts.down_proj"].mode == "mxfp4"


def test_every_family_cites_its_sources():
    for fam in PUBLISHED.values():
        assert fam.source.startswith("https://") and fam.source.endswith("config.json"), fam.family
        assert "https://" in fam.params_source, fam.family
        assert fam.variants, fam.family
        for repo_id, quantization in fam.variants.values():
            assert repo_id.count("/") == 1, repo_id
            assert quantization is None or {"group_size", "bits"} <= set(quantization)


def test_aliases_are_unique_and_configs_independent():
    names = [f"{fam.family}-{label}" for fam in PUBLISHED.values() for label in fam.variants]
    assert len(names) == len(set(names)) == len(ALIASES)
    assert {f"{f}-4bit" for f in PUBLISHED} - {"gpt-oss-20b-4bit"} <= set(ALIASES)
    again = published_aliases()
    again["qwen3-8b-4bit"][3]["quantization"]["bits"] = 2
    assert published_aliases()["qwen3-8b-4bit"][3]["quantization"]["bits"] == 4
    assert "quantization" not in PUBLISHED["qwen3-8b"].config
