"""mlxprof ops: DOT parsing on real and crafted exports, the histogram of a real
gemma3n-tiny decode step, the weight-product sanity check, diffs, bad input."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlxprof import graph, ops
from mlxprof.cli import main
from mlxprof.errors import InputError

FIXTURE = Path(__file__).parent / "fixtures" / "small_graph.dot"


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# ------------------------------------------------------------ parsing real output


def test_real_fixture_nodes_siblings_and_shared_compiled_primitive():
    text = FIXTURE.read_text()
    g = graph.parse_dot(text)
    # one node per `[label=` line: the compiled function ran twice with one
    # primitive object (same id), and both calls are nodes
    assert g.nodes == text.count("[label =")
    labels = sorted(g.labels.values())
    assert labels.count("CompiledBroadcastMultiplySigmoidMultiply") == 2
    # DivMod has two sibling outputs, one node
    (divmod_key,) = [k for k, v in g.labels.items() if v == "DivMod"]
    assert len(g.outputs[divmod_key]) == 2
    hist, classes, op_class, compiled, inner = graph.histogram(g)
    assert hist["Compiled"] == 2 and sum(hist.values()) == g.nodes
    assert sum(classes.values()) == g.nodes
    assert op_class["Reshape"] == "view" and op_class["Transpose"] == "view"
    assert op_class["DivMod"] == "compute" and op_class["Compiled"] == "compiled"
    assert compiled[0].inner == ["Broadcast", "Multiply", "Sigmoid", "Multiply"]
    assert inner["Multiply"] == 4
    # the token ("A", exported first) feeds the gather; QuantizedMatmul multiplies it by weights
    assert graph.weight_products(g, g.sources[0])["QuantizedMatmul"] == 1


CRAFTED = """digraph {
{ rank=source; "A"; }
{ rank=source; "B"; }
{ 11 [label ="Scatter Sum", shape=rectangle]; }
"A" -> 11
"B" -> 11
{ "C"; }
11 -> "C"
{ 12 [label ="SliceUpdate Sum", shape=rectangle]; }
"C" -> 12
"B" -> 12
{ "D"; }
12 -> "D"
{ 13 [label ="Split", shape=rectangle]; }
"D" -> 13
{ "E"; }
13 -> "E"
{ "F"; }
13 -> "F"
{ 13 [label ="Split", shape=rectangle]; }
"D" -> 13
{ "F"; }
13 -> "F"
{ 14 [label ="%s", shape=rectangle]; }
"E" -> 14
"F" -> 14
{ rank=sink; "G"; }
14 -> "G"
}"""


def test_crafted_spaces_repeated_siblings_and_long_compiled_label():
    fused = ["Broadcast", "Multiply", "LogSumExp", "Maximum", "Max", "Rsqrt", "Sinh", "AddMM",
             "ArcTan2", "SliceUpdate"] * 30
    g = graph.parse_dot(CRAFTED % ("Compiled" + "".join(fused)))
    assert sorted(g.labels.values())[1:] == ["Scatter Sum", "SliceUpdate Sum", "Split"]
    assert g.nodes == 4  # the Split printed twice with the same inputs is one node
    (split,) = [k for k, v in g.labels.items() if v == "Split"]
    assert g.outputs[split] == ["E", "F"]
    hist, classes, *_ , compiled, inner = graph.histogram(g)
    assert hist == {"Compiled": 1, "Scatter Sum": 1, "SliceUpdate Sum": 1, "Split": 1}
    assert classes == {"view": 1, "compute": 2, "compiled": 1}
    assert compiled[0].inner == fused
    assert inner["Max"] == 30 and inner["Maximum"] == 30


def test_unquoted_names_and_unknown_words():
    g = graph.parse_dot("digraph {\n{ rank=source; A; }\n{ 7 [label =\"Negative\", shape=rectangle]; }\n"
                      "A -> 7\n{ B; }\n7 -> B\n}")
    assert g.labels == {"7": "Negative"} and g.inputs["7"] == ["A"] and g.producer["B"] == "7"
    assert graph.split_compiled("CompiledFooBarMultiply") == ["FooBar", "Multiply"]
    with pytest.raises(InputError):
        graph.parse_dot("not a graph")


# ------------------------------------------------------------ a real decode step


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("ops")
    r = cli("ops", "-m", "gemma3n-tiny", "--weights", "synthetic", "--json", str(d / "q4.json"),
            "--dot", str(d / "q4.dot"), "--top", "0")
    assert r.exit_code == 0, r.output
    return d, json.loads((d / "q4.json").read_text())


def test_tiny_histogram_matches_its_dot(tiny):
    d, res = tiny
    text = (d / "q4.dot").read_text()
    assert res["kind"] == "ops" and res["context"] == ops.DEFAULT_CONTEXT
    assert res["nodes"] == text.count("[label =") == sum(res["histogram"].values())
    assert sum(res["classes"].values()) == res["nodes"]
    assert res["histogram"]["QuantizedMatmul"] == text.count('[label ="QuantizedMatmul"')
    assert res["classes"]["view"] > 0 and res["classes"]["compiled"] > 0
    assert not res["kv_growth"]


def test_tiny_quantized_matmul_expected_equals_found(tiny):
    _, res = tiny
    (q,) = [c for c in res["matvec"] if c["op"] == "QuantizedMatmul"]
    assert q["expected"] == q["found"] == q["nodes"]
    # expected = one product per streamed weight + the extra calls of modules
    # called more than once per token (Gemma 3n's AltUp router: predict and correct)
    extra = sum((int(k.rsplit("×", 1)[1]) - 1) * n for k, n in q["repeats"].items())
    assert q["expected"] == q["streamed_weights"] + extra


def test_tiny_bf16_matmul_expected_equals_found_and_diff(tiny, tmp_path):
    d, q4 = tiny
    r = cli("ops", "-m", "gemma3n-tiny-bf16", "--weights", "synthetic", "--diff", str(d / "q4.json"),
            "--json", str(tmp_path / "bf16.json"))
    assert r.exit_code == 0, r.output
    bf = json.loads((tmp_path / "bf16.json").read_text())
    (m,) = [c for c in bf["matvec"] if c["op"] == "Matmul"]
    assert m["expected"] == m["found"] and m["nodes"] >= m["found"]
    assert "QuantizedMatmul" not in bf["histogram"]
    diff = bf["diff"]
    for op in set(bf["histogram"]) | set(q4["histogram"]):
        assert diff["ops"].get(op, 0) == bf["histogram"].get(op, 0) - q4["histogram"].get(op, 0)
    assert diff["nodes"] == bf["nodes"] - q4["nodes"]
    assert "QuantizedMatmul" in r.output


def test_kv_growth_boundary_changes_the_graph(tiny, tmp_path):
    _, q4 = tiny
    r = cli("ops", "-m", "gemma3n-tiny", "--weights", "synthetic", "--context", "256",
            "--json", str(tmp_path / "c256.json"))
    assert r.exit_code == 0, r.output
    g = json.loads((tmp_path / "c256.json").read_text())
    assert g["kv_growth"] and g["context"] == 256
    assert g["histogram"].get("Concatenate", 0) > q4["histogram"].get("Concatenate", 0)


def test_env_round_trip_disables_compile(tiny, tmp_path):
    _, q4 = tiny
    r = cli("ops", "-m", "gemma3n-tiny", "--weights", "synthetic", "--env", "MLX_DISABLE_COMPILE=1",
            "--json", str(tmp_path / "eager.json"))
    assert r.exit_code == 0, r.output
    e = json.loads((tmp_path / "eager.json").read_text())
    assert e["provenance"]["knobs"].get("MLX_DISABLE_COMPILE") == "1"
    assert e["provenance"]["command"].startswith("MLX_DISABLE_COMPILE=1 ")
    assert q4["classes"]["compiled"] > 0 and e["classes"]["compiled"] == 0


# ------------------------------------------------------------ bad input


def test_bad_inputs_exit_2(tmp_path):
    bad = tmp_path / "not-ops.json"
    bad.write_text(json.dumps({"schema": 1, "kind": "decode", "provenance": {}}))
    junk = tmp_path / "junk.json"
    junk.write_text("{nope")
    for args, msg in (
        (["--diff", str(bad)], "expected 'ops'"),
        (["--diff", str(junk)], "--diff"),
        (["--context", "0"], "--context"),
        (["--context", "-3"], "--context"),
        (["--context", "5000"], "max_position_embeddings"),
        (["--env", "NOEQUALS"], "NAME=VALUE"),
        (["--env", "=1"], "empty"),
    ):
        r = CliRunner().invoke(main, ["ops", "-m", "gemma3n-tiny", *args])
        assert r.exit_code == 2, (args, r.output)
        assert msg in r.output and r.output.count("\n") == 1, r.output
