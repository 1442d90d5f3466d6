"""mlxprof compare and the generic --env re-run: bits side by side on
gemma3n-tiny, bad --bits, decode --env round trip."""

import json

import click
from click.testing import CliRunner

from mlxprof import subproc
from mlxprof.cli import main
from mlxprof.models.registry import family_members


def test_compare_tiny_bits(tmp_path):
    out = tmp_path / "cmp.json"
    r = CliRunner().invoke(main, ["compare", "-m", "gemma3n-tiny", "--bits", "4,16", "--runs", "4",
                                  "--warmup", "2", "--tokens", "10", "--weights", "synthetic",
                                  "--json", str(out), "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    c = json.loads(out.read_text())
    assert c["kind"] == "compare" and c["order"] in ("interleaved", "sequential")
    assert [v["bits"] for v in c["variants"]] == ["4bit", "bfloat16"]
    members = family_members("gemma3n-tiny")
    assert [v["alias"] for v in c["variants"]] == [members["4bit"].alias, members["bfloat16"].alias]
    q4, bf = c["variants"]
    assert q4["tok_s"]["n"] == bf["tok_s"]["n"] == 4
    assert bf["bytes_per_token"] > 2 * q4["bytes_per_token"]
    for v in c["variants"]:
        assert abs(v["floor_gb_s"] - v["bytes_per_token"] / (v["floor_ms"]["median"] / 1e3) / 1e9) \
            < 1e-6 * v["floor_gb_s"]
        assert v["nodes"] > 0 and v["split"]["token_ms"] > 0
    (cmp,) = c["comparisons"]
    assert cmp["baseline"] == "bfloat16" and cmp["candidate"] == "4bit"
    assert abs(cmp["ratio"] - q4["tok_s"]["median"] / bf["tok_s"]["median"]) < 1e-9
    assert c["sentence"].startswith("4bit") and "bfloat16" in c["sentence"]
    assert "why" in r.output and c["order"] in r.output


def test_compare_bad_inputs():
    for args, msg in (
        (["-m", "gemma3n-tiny", "--bits", "4,3"], "comes in"),
        (["-m", "gemma3n-tiny", "--bits", "4"], "at least two"),
        (["-m", "gemma3n-tiny", "--bits", "4,2bit"], "comes in"),
        (["-m", "./some/dir", "--bits", "4,8"], "alias family"),
        (["-m", "gemma3n-tiny", "--env", "NOVALUE"], "NAME=VALUE"),
        (["-m", "gemma3n-tiny", "--runs", "0"], "--runs"),
    ):
        r = CliRunner().invoke(main, ["compare", *args])
        assert r.exit_code == 2, (args, r.output)
        assert msg in r.output and r.output.count("\n") == 1, r.output


def test_parse_env_and_argv_rebuild():
    assert subproc.parse_env(["A=1", "B=", "C=x=y"]) == {"A": "1", "B": "", "C": "x=y"}

    @click.command()
    @click.option("--model")
    @click.option("--n", type=int)
    @click.option("--flag", is_flag=True)
    @click.option("--yes/--no", default=True)
    @click.option("--json", "json_path")
    @subproc.env_option
    @click.pass_context
    def cmd(ctx, **kw):
        click.echo(" ".join(subproc.argv_of(ctx, replace={"json_path": "T"})))

    r = CliRunner().invoke(cmd, ["--model", "m", "--flag", "--no", "--env", "A=1", "--json", "x"])
    assert r.output.strip() == "--model m --flag --no --json T"


def test_decode_env_round_trip(tmp_path):
    out = tmp_path / "eager.json"
    r = CliRunner().invoke(main, ["decode", "-m", "gemma3n-tiny", "--weights", "synthetic", "--runs", "1",
                                  "--warmup", "1", "--tokens", "3", "-q", "--env", "MLX_DISABLE_COMPILE=1",
                                  "--env", "MLXPROF_TEST_MARK=yes", "--json", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert d["kind"] == "decode" and d["provenance"]["knobs"]["MLX_DISABLE_COMPILE"] == "1"
    assert d["provenance"]["command"].startswith("MLX_DISABLE_COMPILE=1 MLXPROF_TEST_MARK=yes mlxprof decode")
    assert str(out) in d["provenance"]["command"]
    assert "tok/s" in r.output
    # a failing child's exit code comes back (bad model name → the child's own exit 2)
    r = CliRunner().invoke(main, ["decode", "-m", "gemma3n-nope", "--env", "A=1"])
    assert r.exit_code == 2
