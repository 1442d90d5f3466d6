"""The CLI's vocabulary: every command takes `--json FILE|-`, options mean the
same everywhere, piped output keeps identifiers whole, `python -m mlxprof` is
`mlxprof`."""

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from mlxprof.cli import main


def _option(cmd, name):
    return next((p for p in cmd.params if isinstance(p, click.Option) and name in p.opts), None)


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_command_takes_json_file_or_dash(name):
    opt = _option(main.commands[name], "--json")
    assert opt is not None, f"{name} has no --json"
    assert isinstance(opt.type, click.Path) and opt.type.allow_dash, f"{name} --json does not take '-'"
    assert "`-`" in (opt.help or ""), f"{name} --json help does not say what '-' does"


def test_shared_options_have_one_wording():
    helps = {}
    for name, cmd in main.commands.items():
        for opt in ("--model", "--weights", "--warmup", "--tokens", "--prompt-tokens", "--quiet"):
            p = _option(cmd, opt)
            if p is not None and not (name in ("report", "compare") and opt == "--model"):
                helps.setdefault(opt, set()).add((p.help or "").split(" [default")[0])
    for opt, texts in helps.items():
        assert len(texts) == 1, f"{opt} is worded {len(texts)} ways: {texts}"


def test_json_dash_prints_the_result_on_stdout_and_no_table(tmp_path, monkeypatch):
    monkeypatch.setenv("MLXPROF_GATING_FILE", str(tmp_path / "absent.json"))
    for args, kind in ((["env"], "env"),
                       (["decode", "-m", "gemma3n-tiny", "--runs", "1", "--warmup", "1", "--tokens", "3",
                         "-q"], "decode")):
        r = CliRunner().invoke(main, args + ["--json", "-"])
        assert r.exit_code == 0, r.output
        data = json.loads(r.stdout)
        assert data["kind"] == kind and data["schema"] == 1


def test_models_piped_keeps_every_alias_whole():
    r = CliRunner().invoke(main, ["models"])  # CliRunner's stdout is not a terminal
    assert r.exit_code == 0, r.output
    from mlxprof.models import MODELS

    lines = r.stdout.splitlines()
    for alias in MODELS:
        assert any(f" {alias} " in line for line in lines), alias
    assert "0.00 B" not in r.stdout


def test_python_dash_m_is_the_same_program():
    out = [subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
           for cmd in ([sys.executable, "-m", "mlxprof", "--help"],
                       [sys.executable, "-c", "from mlxprof.cli import main; main(prog_name='mlxprof')",
                        "--help"])]
    assert out[0] == out[1] and out[0].startswith("Usage: mlxprof")


@pytest.mark.parametrize("args", [["models", "gemma3n"], ["env"]])
def test_listing_commands_never_replace_a_saved_result(tmp_path, monkeypatch, args):
    from fake_results import decode_result, save

    monkeypatch.setenv("MLXPROF_GATING_FILE", str(tmp_path / "absent.json"))
    kept = save(decode_result([100.0, 101.0]), tmp_path / "kept.json")
    text = kept.read_text()
    r = CliRunner().invoke(main, args + ["--json", str(kept)])
    assert r.exit_code == 2, r.output
    assert r.output.strip().splitlines() == [
        f"mlxprof: error: {kept} already holds a saved 'decode' result; pick another file name (or remove it "
        "first): mlxprof never replaces a measurement"], r.output
    assert kept.read_text() == text
    listing = tmp_path / "listing.json"
    listing.write_text("[]\n")  # an old listing, not a result: replaced
    r = CliRunner().invoke(main, args + ["--json", str(listing)])
    assert r.exit_code == 0, r.output
    assert listing.read_text() != "[]\n"
