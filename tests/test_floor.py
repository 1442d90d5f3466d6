"""mlxprof floor: the streamed byte count against a hand computation from the
architecture, internal consistency of the numbers, --decode, bad input."""

import json

from click.testing import CliRunner

from mlxprof.cli import main
from mlxprof.models.registry import MODELS


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def hand_bytes(arch, bits=4, group=64, act_bytes=4):
    """Gemma 3n text decode, one token, from the published structure:
    q/o, gate/up/down, Laurel, per-layer gate/projection and the AltUp router in
    every layer; k/v only in layers that own their KV cache; the AltUp
    coefficient Linears (4→4, 4→16, too narrow to quantize, float32); the
    per-layer-input projection, AltUp projections in/out and the tied LM head."""
    H, I, P = arch.hidden_size, arch.intermediate_size, arch.hidden_size_per_layer_input
    q = arch.num_attention_heads * arch.head_dim
    kv = arch.num_key_value_heads * arch.head_dim
    n = arch.altup_num_inputs
    L = arch.num_hidden_layers

    def qb(out, inp):
        return out * inp * bits // 8 + 2 * out * (inp // group) * act_bytes

    layer = (qb(q, H) + qb(H, q) + 2 * qb(I, H) + qb(H, I) + qb(arch.laurel_rank, H)
             + qb(H, arch.laurel_rank) + qb(P, H) + qb(H, P) + qb(n, H)
             + (n * n + n * n * n) * 4)
    own_kv = L - arch.num_kv_shared_layers
    model = qb(L * P, H) + 2 * (n - 1) * qb(H, H) + qb(arch.vocab_size, H)
    return L * layer + own_kv * 2 * qb(kv, H) + model


def test_floor_bytes_equal_hand_computation(tmp_path):
    out = tmp_path / "floor.json"
    r = cli("floor", "-m", "gemma3n-tiny", "--weights", "synthetic", "--no-decode",
            "--iterations", "5", "--probe-mb", "16", "--json", str(out))
    assert r.exit_code == 0, r.output
    f = json.loads(out.read_text())
    assert f["kind"] == "floor" and f["model"]["dtype"] == "float32"
    hand = hand_bytes(MODELS["gemma3n-tiny"].arch)
    assert abs(f["bytes_per_token"] - hand) / hand < 0.01, (f["bytes_per_token"], hand)
    assert f["bytes_per_token"] == sum(g["bytes"] for g in f["groups"])
    fm = f["floor_ms"]
    assert fm["n"] == 5 and fm["best"] <= fm["median"]
    assert abs(f["gb_s"] - f["bytes_per_token"] / (fm["median"] / 1e3) / 1e9) < 1e-6 * f["gb_s"]
    assert abs(f["floor_tok_s"] - 1e3 / fm["median"]) < 1e-6 * f["floor_tok_s"]
    assert f["decode"] is None and f["decode_share"] is None
    assert abs(f["probe_share"] - f["gb_s"] / f["probe"]["gb_s"]) < 1e-9
    assert "copy bandwidth" in f["sentence"]


def test_floor_with_decode_result_and_mismatch(tmp_path):
    dec = tmp_path / "dec.json"
    r = cli("decode", "-m", "gemma3n-tiny", "--weights", "synthetic", "--runs", "1",
            "--warmup", "2", "--tokens", "5", "--json", str(dec), "-q")
    assert r.exit_code == 0, r.output
    out = tmp_path / "floor.json"
    r = cli("floor", "-m", "gemma3n-tiny", "--weights", "synthetic", "--decode", str(dec),
            "--iterations", "3", "--probe-mb", "8", "--json", str(out))
    assert r.exit_code == 0, r.output
    f = json.loads(out.read_text())
    d = json.loads(dec.read_text())
    assert f["decode"]["source"] == str(dec)
    assert f["decode"]["tok_s_median"] == d["tok_s"]["median"]
    assert abs(f["decode_share"] - d["tok_s"]["median"] / f["floor_tok_s"]) < 1e-9
    assert "of the streaming floor" in f["sentence"]
    # a decode of another model is refused
    r = CliRunner().invoke(main, ["floor", "-m", "gemma3n-tiny-bf16", "--decode", str(dec)])
    assert r.exit_code == 2 and "measured on" in r.output


def test_floor_measures_a_short_decode_by_default():
    r = cli("floor", "-m", "gemma3n-tiny", "--weights", "synthetic", "--iterations", "3",
            "--probe-mb", "8", "--tokens", "5", "--warmup", "1")
    assert r.exit_code == 0, r.output
    assert "measured now" in r.output and "of the streaming floor" in r.output


def test_floor_bad_inputs(tmp_path):
    ops_json = tmp_path / "x.json"
    ops_json.write_text(json.dumps({"schema": 1, "kind": "ops"}))
    for args in (["--decode", str(ops_json)], ["--decode", str(ops_json), "--no-decode"],
                 ["--iterations", "0"], ["--env", "X"], ["--env", "=v"]):
        r = CliRunner().invoke(main, ["floor", "-m", "gemma3n-tiny", *args])
        assert r.exit_code == 2, (args, r.output)
        assert r.output.startswith("mlxprof: error:") and r.output.count("\n") == 1
