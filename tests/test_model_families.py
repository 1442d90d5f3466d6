"""Tiny checkpoints of six architectures, written by mlx-lm's / mlx-vlm's own
classes with no tokenizer files, load through the real path and decode, count
their ops and floor; bytes and the bad-input cases."""

import json

import pytest
from click.testing import CliRunner

from mlxprof.cli import main
from mlxprof.models import identity, load, resolve
from tiny_checkpoints import CONFIGS, write

Q4 = {"group_size": 32, "bits": 4}
MXFP4 = {"group_size": 32, "bits": 4, "mode": "mxfp4"}
CASES = [("llama", None), ("llama", Q4), ("qwen3", Q4), ("gemma3_text", None), ("gemma3_text", Q4),
         ("qwen3_moe", None), ("qwen3_moe", Q4), ("gpt_oss", MXFP4), ("gemma3", None), ("gemma3", Q4)]


def cli(*args):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    return {(a, json.dumps(q)): write(root / f"{a}-{q and q.get('mode', 'affine')}", a, q) for a, q in CASES}


@pytest.mark.parametrize("arch,q", CASES, ids=[f"{a}-{q and q.get('mode', 'affine')}" for a, q in CASES])
def test_real_checkpoint_decodes_counts_and_floors(ckpts, arch, q):
    d = str(ckpts[(arch, json.dumps(q))])
    t = resolve(d)
    assert t.weights == "real"
    assert t.library == ("mlx-vlm" if arch == "gemma3" else "mlx-lm")
    r = cli("decode", "-m", d, "--runs", "1", "--warmup", "1", "--tokens", "3", "-q", "--json", "-")
    assert r.exit_code == 0, r.output
    ident = json.loads(r.output[r.output.index("{"):])["model"]
    assert ident["weights"] == "real" and ident["model_type"] == CONFIGS[arch]["model_type"]
    assert ident["quantization"] == ({"affine": "4bit", "mxfp4": "mxfp4"}[q.get("mode", "affine")] if q
                                     else "float32")
    r = cli("ops", "-m", d, "--json", "-")
    assert r.exit_code == 0, r.output
    checks = json.loads(r.output[r.output.index("{"):])["matvec"]
    assert checks and all(c["expected"] == c["found"] > 0 or c["expected"] == c["found"] == 0 for c in checks)
    ops = {c["op"] for c in checks if c["expected"]}
    moe = arch in ("qwen3_moe", "gpt_oss")
    assert (("GatherQMM" if q else "GatherMM") in ops) == moe, ops
    r = cli("floor", "-m", d, "--no-decode", "--iterations", "2", "--probe-mb", "1")
    assert r.exit_code == 0, r.output


def test_moe_streams_only_routed_experts(ckpts):
    """k of n experts: the streamed bytes of a switch layer are k/n of its weight."""
    from mlxprof.models.weights import streamed_matvecs, total_bytes

    lo = load(resolve(str(ckpts[("qwen3_moe", json.dumps(Q4))])))
    ident = identity(lo)
    assert (ident.experts_per_token, ident.experts) == (2, 4)
    mvs = [mv for mv in streamed_matvecs(lo.text) if mv.experts]
    assert len(mvs) == 6  # gate/up/down × 2 layers
    for mv in mvs:
        full = total_bytes(mv.module)
        assert mv.nbytes == full * 2 // 4
    assert ident.bytes_per_token < total_bytes(lo.text)


def test_kv_cache_bytes_respect_sliding_window(ckpts):
    from mlxprof.models.weights import kv_cache_bytes

    lo = load(resolve(str(ckpts[("gemma3_text", "null")])))
    per_token = 2 * 16 * 2 * 4  # kv heads × head_dim × (k, v) × float32
    # layer 0 slides over 8 tokens, layer 1 is global
    assert kv_cache_bytes(lo, 4, 4) == 2 * 4 * per_token
    assert kv_cache_bytes(lo, 100, 4) == (8 + 100) * per_token
    dense = load(resolve(str(ckpts[("llama", "null")])))
    assert kv_cache_bytes(dense, 100, 4) == 2 * 100 * 2 * 16 * 2 * 4


def test_processor_loaded_only_when_text_needs_it(ckpts):
    d = str(ckpts[("llama", "null")])
    r = cli("decode", "-m", d, "--runs", "1", "--warmup", "1", "--tokens", "2", "-q", "--prompt", "hello")
    assert r.exit_code == 2 and "tokenizer" in r.output and len(r.output.strip().splitlines()) == 1, r.output
