"""Synthetic weights from a bare config (directory with only config.json, or
--config FILE), every quantization mode, and bad input failing in one line."""

import json

import mlx.core as mx
import pytest
from click.testing import CliRunner

from mlxprof.cli import main
from mlxprof.errors import InputError
from mlxprof.models import MODELS, catalog, family_members, identity, load, resolve
from mlxprof.models.synthetic import build_model
from tiny_checkpoints import CONFIGS, write

RUN = ("--runs", "1", "--warmup", "1", "--tokens", "3", "-q")


def cli(*args):
    return CliRunner().invoke(main, list(args))


def one_line_error(r, *words):
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1, r.output
    for w in words:
        assert w in lines[0], lines[0]


def config_file(tmp_path, arch, quantization=None, name="config.json"):
    cfg = dict(CONFIGS[arch])
    if quantization:
        cfg["quantization"] = quantization
    p = tmp_path / name
    p.write_text(json.dumps(cfg))
    return p


def test_config_only_directory_is_synthetic(tmp_path):
    config_file(tmp_path, "qwen3", {"group_size": 32, "bits": 8})
    t = resolve(str(tmp_path))
    assert (t.weights, t.library) == ("synthetic", "mlx-lm")
    r = cli("decode", "-m", str(tmp_path), *RUN, "--json", "-")
    assert r.exit_code == 0, r.output
    ident = json.loads(r.output[r.output.index("{"):])["model"]
    assert (ident["weights"], ident["quantization"], ident["group_size"]) == ("synthetic", "8bit", 32)


@pytest.mark.parametrize("arch", ["gpt_oss", "gemma3"])
def test_config_option(tmp_path, arch):
    p = config_file(tmp_path, arch, {"group_size": 32, "bits": 4, "mode": "mxfp4"}, name="c.json")
    r = cli("decode", "--config", str(p), *RUN)
    assert r.exit_code == 0, r.output
    r = cli("ops", "--config", str(p))
    assert r.exit_code == 0 and "✓" in r.output and "✗" not in r.output, r.output
    r = cli("decode", "--config", str(p), "-m", "gemma3n-tiny")  # a usage error, click's way
    assert r.exit_code == 2 and "not both" in r.output


@pytest.mark.parametrize("q", [{"group_size": 32, "bits": 4}, {"group_size": 64, "bits": 8},
                               {"group_size": 128, "bits": 4},
                               {"group_size": 32, "bits": 4, "mode": "mxfp4"}])
def test_synthetic_quantization_is_packed_like_the_loader(q):
    cfg = dict(CONFIGS["qwen3_moe"], hidden_size=128, intermediate_size=128, moe_intermediate_size=128,
               quantization=q)
    model = build_model(cfg, dtype=mx.float32)
    attn = model.model.layers[0].self_attn.q_proj
    experts = model.model.layers[0].mlp.switch_mlp.up_proj
    for m in (attn, experts):
        assert (m.bits, m.group_size, m.mode) == (q["bits"], q["group_size"], q.get("mode", "affine"))
        assert m.weight.dtype == mx.uint32
    if q.get("mode") == "mxfp4":
        assert attn.scales.dtype == mx.uint8 and "biases" not in attn
    out = model(mx.array([[1, 2, 3]]))
    assert not mx.isnan(out).any().item()


def test_gemma3n_alias_unchanged():
    t = resolve("gemma3n-tiny")
    assert (t.library, t.spec.family) == ("mlx-vlm", "gemma3n-tiny")
    lo = load(t)
    ident = identity(lo)
    assert ident.model_type == "gemma3n" and ident.experts is None
    assert hasattr(lo.model, "vision_tower")  # the vlm path: vision stays lazy until an image needs it


def test_published_aliases_resolve_and_list():
    assert resolve("qwen3-30b-a3b-4bit").library == "mlx-lm"
    assert resolve("qwen2.5-vl-3b-4bit").library == "mlx-vlm"
    assert set(family_members("llama3.2-1b")) == {"4bit", "8bit", "bfloat16"}
    rows = catalog("qwen3-30b")
    assert [r["experts"] for r in rows] == ["8/128", "8/128"]
    assert all(r["bytes_per_token"] < r["weight_bytes"] / 5 for r in rows)  # 8 of 128 experts
    r = cli("models", "gemma3n-tiny")
    assert r.exit_code == 0 and "gemma3n-tiny-bf16" in r.output and "0.00 B" not in r.output
    one_line_error(cli("models", "no-such-family"), "families")
    assert len(MODELS) > 30


def bad(tmp_path, what):
    if what == "list":
        (tmp_path / "config.json").write_text("[1, 2]")
    elif what == "fields":
        (tmp_path / "config.json").write_text('{"model_type": "llama", "hidden_size": 64}')
    elif what == "type":
        (tmp_path / "config.json").write_text('{"model_type": "no_such_arch"}')
    elif what == "rejected":
        (tmp_path / "config.json").write_text(json.dumps(dict(CONFIGS["llama"], rope_scaling={"rope_type": "no-such-rope", "factor": 2.0})))
    elif what == "no-config":
        write(tmp_path, "llama")
        (tmp_path / "config.json").unlink()
    elif what in ("garbage", "truncated"):
        write(tmp_path, "llama")
        f = tmp_path / "model.safetensors"
        data = f.read_bytes()
        f.write_bytes(b"not a safetensors file" if what == "garbage" else data[: len(data) // 2])
    elif what in ("missing", "shape"):
        write(tmp_path, "llama")
        cfg = dict(CONFIGS["llama"], num_hidden_layers=3) if what == "missing" else \
            dict(CONFIGS["llama"], intermediate_size=96)
        (tmp_path / "config.json").write_text(json.dumps(cfg))
    return str(tmp_path)


@pytest.mark.parametrize("what,words", [
    ("list", ["JSON object"]), ("fields", ["lacks fields", "num_hidden_layers"]),
    ("type", ["no_such_arch", "mlxprof models"]), ("rejected", ["rejects this config"]),
    ("no-config", ["weights but no config.json"]), ("garbage", ["not a readable .safetensors"]),
    ("truncated", ["truncated"]), ("missing", ["model.layers.2"]), ("shape", ["mlp"]),
])
def test_bad_input_is_one_line(tmp_path, what, words):
    one_line_error(cli("decode", "-m", bad(tmp_path, what), *RUN), *words)


def test_config_file_cannot_be_real(tmp_path):
    p = config_file(tmp_path, "llama")
    with pytest.raises(InputError, match="no weights"):
        resolve(str(p), "real")
