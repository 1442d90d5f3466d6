"""Report documents from the published JSON: relative Reproduce commands that the CLI
accepts, and one-line errors for broken results."""

import json
import os
import shlex
import shutil
from pathlib import Path
from types import SimpleNamespace

import click
import pytest
from click.testing import CliRunner

from mlxprof import report
from mlxprof.cli import main
from mlxprof.errors import InputError
from mlxprof.report import reproduce

PUBLISHED = Path(__file__).resolve().parents[1] / "docs" / "benchmark_results"
STEMS = ["gemma3n-e2b-4bit-nvidia-h200", "gemma3n-e4b-4bit-nvidia-h200", "gemma3n-e2b-4bit-linux-cpu"]


def jsons(stem):
    return sorted(PUBLISHED.glob(f"{stem}.*.json"))


def reproduce_commands(md):
    block = md.split("## Reproduce", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def parse(command):
    """The command through the CLI's own click parser: its subcommand and parameters."""
    argv = shlex.split(command)
    assert argv[0] == "mlxprof"
    ctx = main.make_context("mlxprof", argv[1:])
    sub = main.get_command(ctx, argv[1])
    assert sub is not None, f"no command {argv[1]!r}"
    return argv[1], sub.make_context(argv[1], argv[2:], parent=ctx).params


def test_published_json_are_the_fixtures():
    for stem in STEMS:
        assert len(jsons(stem)) >= 4, stem  # decode, floor, ops, parity at least


@pytest.mark.parametrize("stem", STEMS)
def test_reproduce_block_is_relative_to_the_document(stem):
    files = jsons(stem)
    docs = report.load_results([str(f) for f in files])
    recorded = [docs[k]["provenance"]["command"] for k in docs if not k.startswith("_")]
    md = report.render(docs, out_dir=PUBLISHED, plots=False, stem=stem)
    cmds = reproduce_commands(md)
    assert len(cmds) == len(files)
    for cmd in cmds:
        tokens = shlex.split(cmd)
        assert not any(os.path.isabs(t) or os.path.isabs(t.partition("=")[2]) for t in tokens), cmd
        assert "/" not in reproduce.option_value(tokens, "--json")  # the JSON sits beside the document
        for other in reproduce.option_value(tokens, "--decode"), reproduce.option_value(tokens, "--image"):
            if other is not None:
                assert (PUBLISHED / other).exists(), cmd  # names the file published with the document
    assert sorted(reproduce.option_value(shlex.split(c), "--json") for c in cmds) == sorted(f.name for f in files)
    # only paths changed: each command keeps its recorded options and values
    for cmd, rec in zip(sorted(cmds), sorted(recorded)):
        assert [t for t in shlex.split(cmd) if "json" not in t and "." not in t] == \
               [t for t in shlex.split(rec) if "json" not in t and "." not in t]


def test_reproduce_paths_resolve_from_another_folder(tmp_path):
    stem = STEMS[0]
    docs = report.load_results([str(f) for f in jsons(stem)])
    out = tmp_path / "elsewhere"
    md = report.render(docs, out_dir=out, plots=False, stem=stem)
    for cmd in reproduce_commands(md):
        for opt in ("--json", "--decode", "--image"):
            value = reproduce.option_value(shlex.split(cmd), opt)
            if value is not None:
                assert not os.path.isabs(value)
                assert Path(os.path.normpath(out / value)) == PUBLISHED / Path(value).name


@pytest.mark.parametrize("stem", STEMS)
def test_reproduce_commands_parse_with_the_cli(stem):
    docs = report.load_results([str(f) for f in jsons(stem)])
    for cmd in reproduce_commands(report.render(docs, out_dir=PUBLISHED, plots=False, stem=stem)):
        name, params = parse(cmd)
        assert params["json_path"] == reproduce.option_value(shlex.split(cmd), "--json")
        assert name in docs


def test_rewrite_rules(tmp_path):
    paths = reproduce.PathMap(tmp_path)
    paths.add("/m/d/x.decode.json", str(tmp_path / "doc.decode.json"), ".decode.json")
    got = reproduce.rebuild("mlxprof floor --model m --decode /m/d/x.decode.json --json=/m/d/x.floor.json",
                            str(tmp_path / "doc.floor.json"), paths)
    assert got == "mlxprof floor --model m --decode doc.decode.json --json doc.floor.json"
    assert paths.rewrite("/m/d/x.image.png") == "doc.image.png"  # same stem as a recorded result
    assert paths.rewrite("/home/me/cat.jpg") == "cat.jpg"  # the measuring machine's folders dropped
    assert paths.rewrite("gemma3n-e2b-4bit") == "gemma3n-e2b-4bit"
    # a result printed with `--json -` (or without --json) gets the file it is now in
    assert reproduce.rebuild("mlxprof ops --model m --json -", str(tmp_path / "o.json"), paths) == \
        "mlxprof ops --model m --json o.json"
    assert reproduce.rebuild("mlxprof ops --model m", str(tmp_path / "o.json"), paths) == \
        "mlxprof ops --model m --json o.json"


def _broken(tmp_path, edit):
    for f in jsons(STEMS[2]):
        shutil.copy(f, tmp_path / f.name)
    path = tmp_path / f"{STEMS[2]}.decode.json"
    d = json.loads(path.read_text())
    edit(d)
    path.write_text(json.dumps(d))
    return CliRunner().invoke(main, ["report", "--no-plots", "--out", str(tmp_path / "x.md")]
                              + sum([["--from", str(p)] for p in sorted(tmp_path.glob("*.json"))], []))


@pytest.mark.parametrize("edit, where", [
    (lambda d: d.pop("tok_s"), "tok_s"),
    (lambda d: d["tok_s"].update(median="fast"), "tok_s.median"),
    (lambda d: d["split"].update(token_ms="12.3"), "split.token_ms"),  # a number as a string is still wrong
    (lambda d: d["provenance"].pop("chip"), "provenance.chip"),
])
def test_report_from_a_broken_result_is_one_line(tmp_path, edit, where):
    r = _broken(tmp_path, edit)
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "invalid decode result" in lines[0] and where in lines[0], r.output
    assert not (tmp_path / "x.md").exists()


def test_report_from_intact_copies_renders(tmp_path):
    r = _broken(tmp_path, lambda d: None)
    assert r.exit_code == 0, r.output
    md = (tmp_path / "x.md").read_text()
    assert f"mlxprof decode --model gemma3n-e2b-4bit --json {STEMS[2]}.decode.json" in md


def test_measure_spells_commands_the_cli_accepts(tmp_path, monkeypatch):
    """Every step's command, as measure() hands it to the library, parses with the
    CLI and carries the same option values as the call itself."""
    from mlxprof import compare, floor, hardware, ops, parity, profile, sweep

    calls = {}

    def fake(kind):
        def run(*args, **kw):
            calls[kind] = (args, kw)
            raise RuntimeError("not measured in this test")
        return run

    monkeypatch.setattr(hardware, "detect", lambda: SimpleNamespace(backend="cuda"))
    for mod, name, kind in [(profile, "decode", "decode"), (ops, "run", "ops"), (floor, "run", "floor"),
                            (sweep, "run", "sweep"), (profile, "vlm", "vlm"), (compare, "run", "compare"),
                            (parity, "parity", "parity")]:
        monkeypatch.setattr(mod, name, fake(kind))
    with pytest.raises(InputError, match="decode measurement failed"):
        report.measure("gemma3n-tiny", tmp_path / "t.md", quick=True, dtype="float32", bits="4,16", log=lambda m: None)
    assert sorted(calls) == sorted(["decode", "ops", "floor", "sweep", "vlm", "compare", "parity"])
    for kind, (args, kw) in calls.items():
        name, params = parse(kw["command"])
        assert name == kind
        assert params["dtype"] == kw["dtype"] == "float32"
        assert params["json_path"] == str(tmp_path / f"t.{kind}.json")
        for opt in ("runs", "warmup", "tokens", "prompt_tokens", "rounds", "reps", "image_size", "ttft_runs"):
            if opt in kw:
                assert params[opt] == kw[opt], (kind, opt)
    assert parse(calls["sweep"][1]["command"])[1]["knob_specs"] == ("MLX_MAX_OPS_PER_BUFFER=default,1000",)
    assert parse(calls["floor"][1]["command"])[1]["no_decode"] is True  # the decode failed: nothing to compare
    assert parse(calls["compare"][1]["command"])[1]["bits"] == "4,16"


def test_mlxprof_command_spelling():
    assert reproduce.mlxprof_command("decode", model="m", runs=None, prompt_tokens=8, gpu_timeline=True,
                                     quick=False, json="a b.json") == \
        "mlxprof decode --model m --prompt-tokens 8 --gpu-timeline --json 'a b.json'"
    with pytest.raises(click.UsageError):
        parse("mlxprof decode --model m --no-such-option 1")
