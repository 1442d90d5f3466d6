"""Each alias's architecture and byte counts against the published checkpoints."""

import mlx.core as mx
import pytest

from mlxprof.errors import InputError
from mlxprof.models import MODELS, resolve, target_spec
from mlxprof.models.synthetic import build_model
from mlxprof.models.weights import bytes_per_token, parameter_count, streamed_matvecs, total_bytes


def lazy_lm(alias):
    spec = MODELS[alias]
    return build_model(spec, dtype=getattr(mx, spec.quant.dtype), materialize=False).language_model


@pytest.mark.parametrize("alias,layers,mlp,shared", [
    ("gemma3n-e2b-4bit", 30, 8192, 10), ("gemma3n-e4b-4bit", 35, 16384, 15),
])
def test_published_architecture(alias, layers, mlp, shared):
    lm = lazy_lm(alias)
    cfg = lm.config
    assert len(lm.layers) == layers
    assert cfg.hidden_size == 2048 and cfg.intermediate_size[0] == mlp
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim) == (8, 2, 256)
    assert (cfg.vocab_size, cfg.vocab_size_per_layer_input, cfg.hidden_size_per_layer_input) == (262400, 262144, 256)
    assert cfg.laurel_rank == 64 and cfg.altup_num_inputs == 4 and cfg.altup_coef_clip == 120.0
    assert cfg.sliding_window == 512
    assert [t == "full_attention" for t in cfg.layer_types] == [(i + 1) % 5 == 0 for i in range(layers)]
    assert sum(1 for lay in lm.layers if lay.self_attn.is_kv_shared_layer) == shared
    assert cfg.activation_sparsity_pattern[:10] == [0.95] * 10 and not any(cfg.activation_sparsity_pattern[10:])
    q = lm.layers[0].self_attn.q_proj
    assert q.bits == 4 and q.group_size == 64 and q.scales.dtype == mx.bfloat16


def test_streamed_bytes_match_published_checkpoints():
    # 4-bit E2B text weights streamed per token ≈ 1.3 GB, E4B ≈ 2.5 GB (issue 2;
    # anchors.md: E4B floor set 2472 MB without Laurel/AltUp/per-layer projections)
    e2b = bytes_per_token(lazy_lm("gemma3n-e2b-4bit")) / 1e9
    e4b = bytes_per_token(lazy_lm("gemma3n-e4b-4bit")) / 1e9
    assert 1.25 < e2b < 1.45, e2b
    assert 2.4 < e4b < 2.65, e4b
    # bf16 streams ~3.6x the 4-bit bytes (16 bits vs 4 + 0.5 for scales/biases)
    bf16 = bytes_per_token(lazy_lm("gemma3n-e2b-bf16")) / 1e9
    assert 3.4 < bf16 / e2b < 3.7


def test_lookup_embeddings_and_shared_kv_are_not_streamed():
    lm = lazy_lm("gemma3n-e2b-4bit")
    names = {mv.name for mv in streamed_matvecs(lm)}
    assert "model.embed_tokens" in names  # tied LM head
    assert not any("embed_tokens_per_layer" in n for n in names)
    assert "model.layers.29.self_attn.k_proj" not in names  # KV-shared layer
    assert "model.layers.0.self_attn.k_proj" in names
    # the per-layer lookup table is most of the file but not of the stream
    assert total_bytes(lm) - bytes_per_token(lm) > 1.0e9


def test_parameter_count_counts_unpacked_weights():
    lm4, lm16 = lazy_lm("gemma3n-tiny"), lazy_lm("gemma3n-tiny-bf16")
    assert parameter_count(lm4) == parameter_count(lm16)


def test_synthetic_build_is_architecture_exact_and_finite():
    spec = MODELS["gemma3n-tiny"]
    model = build_model(spec, dtype=mx.float32)
    lm = model.language_model
    cache = lm.make_cache()
    out = lm(mx.array([[5, 6, 7, 8]]), cache=cache).logits
    mx.eval(out)
    assert out.shape == (1, 4, spec.arch.vocab_size)
    assert not mx.isnan(out).any().item()


def test_resolve_unknown_alias_suggests_nearest():
    with pytest.raises(InputError, match="gemma3n-e2b-4bit"):
        resolve("gemma3n-e2b-4bt")


def test_resolve_real_without_checkpoint_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(InputError, match="huggingface-cli download mlx-community/gemma-3n-E2B-it-4bit"):
        resolve("gemma3n-e2b-4bit", "real")
    assert resolve("gemma3n-e2b-4bit").weights == "synthetic"


def test_resolve_directory(tmp_path):
    with pytest.raises(InputError, match="no config.json"):
        resolve(str(tmp_path))
    (tmp_path / "config.json").write_text('{"model_type": "no_such_arch"}')
    with pytest.raises(InputError, match="not supported"):
        resolve(str(tmp_path))
    import json

    from mlxprof.models.registry import TINY

    cfg = {"model_type": "gemma3n", "text_config": TINY.text_config(),
           "quantization": {"bits": 4, "group_size": 64}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    t = resolve(str(tmp_path))
    assert t.weights == "synthetic"  # config but no safetensors
    spec = target_spec(t)
    assert spec.arch.num_hidden_layers == TINY.num_hidden_layers
    assert spec.arch.full_attention_every == TINY.full_attention_every
    assert spec.quant.bits == 4
    with pytest.raises(InputError, match="no \\*.safetensors"):
        resolve(str(tmp_path), "real")
