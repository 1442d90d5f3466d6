"""mlxprof report: measuring a quick document, and re-rendering saved JSON."""

import json

from click.testing import CliRunner

from mlxprof.cli import main


def test_quick_report_then_render_from_json(tmp_path):
    out = tmp_path / "docs" / "tiny.md"
    r = CliRunner().invoke(main, ["report", "--model", "gemma3n-tiny", "--quick", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    md = out.read_text()
    for heading in ("## Provenance", "## Decode speed", "## Where each token's time goes",
                    "## Weight-streaming floor", "## What one decode token's graph holds",
                    "## Image prompt: time to first token", "## Text vs image prompt",
                    "## Parity with mlx-vlm's own loop", "## Reproduce"):
        assert heading in md
    assert "**synthetic**" in md and "mlxprof decode --model gemma3n-tiny" in md
    repro = md.split("## Reproduce", 1)[1]
    assert str(tmp_path) not in repro  # paths relative to the document
    assert "--out tiny.md" in repro and "--json tiny.decode.json" in repro and "--decode tiny.decode.json" in repro
    decode_json = out.with_suffix("").as_posix() + ".decode.json"
    d = json.loads(open(decode_json).read())
    assert f"{d['tok_s']['median']:.2f} tok/s median" in md  # the number in the doc is the measured one
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "Plots skipped: matplotlib is not installed" in md
    else:
        assert (out.parent / "tiny-latency.png").exists()  # plots are named after the document
        assert "![per-token latency](tiny-latency.png)" in md

    again = tmp_path / "again.md"
    jsons = sorted(str(p) for p in out.parent.glob("*.json"))
    r = CliRunner().invoke(main, ["report", "--out", str(again), "--no-plots"] + sum([["--from", j] for j in jsons], []))
    assert r.exit_code == 0, r.output
    assert f"{d['tok_s']['median']:.2f} tok/s median" in again.read_text()


def test_report_bad_input(tmp_path):
    r = CliRunner().invoke(main, ["report"])
    assert r.exit_code == 2 and "either --model" in r.output
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"schema": 999, "kind": "decode"}))
    r = CliRunner().invoke(main, ["report", "--from", str(bad)])
    assert r.exit_code == 2 and "schema" in r.output
    f = tmp_path / "file"
    f.write_text("")
    r = CliRunner().invoke(main, ["report", "--model", "gemma3n-tiny", "--out", str(f / "sub" / "x.md")])
    assert r.exit_code == 2 and "cannot create output directory" in r.output
    r = CliRunner().invoke(main, ["report", "--model", "nope"])
    assert r.exit_code == 2 and "unknown model" in r.output
