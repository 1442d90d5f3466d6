"""--format md|csv|jsonl: flat records that parse back, for decode, sweep,
compare and diff, and never together with `--json -`."""

import csv
import io
import json
import math
import statistics

import pytest
from click.testing import CliRunner
from fake_results import PUBLISHED, decode_result, save

from mlxprof import formats, results
from mlxprof.cli import main

DECODE_COLUMNS = ["model", "weights", "quantization", "dtype", "chip", "backend", "mlx", "mlx_lm", "mlx_vlm",
                  "mlxprof", "knobs", "date", "run", "prompt_tokens", "warmup", "tokens", "tok_s",
                  "prefill_tok_s", "token_ms", "build_ms", "submit_ms", "wait_ms", "peak_memory_bytes"]


def parse(text, fmt):
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]
    rows = [json.loads(line) for line in text.splitlines()]
    return list(rows[0]), rows


def test_decode_records_one_row_per_run_numbers_unformatted():
    r = decode_result([100.123456789, 99.5, 98.0], knobs={"MLX_A": "1"})
    r.runs[2].tok_s = float("nan")  # a run whose deliveries all came at once
    cols, rows = parse(formats.write(r, "csv"), "csv")
    assert cols == DECODE_COLUMNS and len(rows) == 3
    assert [row["run"] for row in rows] == ["1", "2", "3"]
    assert float(rows[0]["tok_s"]) == 100.123456789  # every digit kept
    assert rows[2]["tok_s"] == ""  # NaN: an empty cell
    assert rows[0]["knobs"] == "MLX_A=1" and rows[0]["chip"] == "Test CPU [x86_64]"
    assert float(rows[0]["build_ms"]) == pytest.approx(1.0)  # the run's median token
    cols, rows = parse(formats.write(r, "jsonl"), "jsonl")
    assert cols == DECODE_COLUMNS and rows[0]["tok_s"] == 100.123456789 and rows[2]["tok_s"] is None
    assert rows[1]["run"] == 2 and rows[0]["peak_memory_bytes"] == 1000


def test_markdown_is_a_pipe_table_with_one_line_per_row():
    lines = formats.write(decode_result([100.0, 90.0]), "md").splitlines()
    assert lines[0] == "| " + " | ".join(DECODE_COLUMNS) + " |"
    assert lines[1] == "|" + "---|" * len(DECODE_COLUMNS) and len(lines) == 4
    assert lines[2].count("|") == len(DECODE_COLUMNS) + 1 and "| 100 |" in lines[2]


def test_identifiers_with_separators_survive_csv():
    r = decode_result([100.0], chip='Chip "X", rev|2')
    cols, rows = parse(formats.write(r, "csv"), "csv")
    assert rows[0]["chip"] == 'Chip "X", rev|2'
    assert 'Chip "X", rev\\|2' in formats.write(r, "md")


def _published(name, cls):
    return results.load(PUBLISHED / name, cls)


@pytest.fixture()
def canned(monkeypatch, tmp_path):
    """sweep and compare return saved results instead of measuring."""
    import mlxprof.compare
    import mlxprof.sweep
    from mlxprof.compare import CompareResult
    from mlxprof.sweep.result import SweepResult

    monkeypatch.chdir(tmp_path)
    sweep = _published("gemma3n-e2b-4bit-nvidia-h200.sweep.json", SweepResult)
    cmp = _published("gemma3n-e2b-4bit-nvidia-h200.compare.json", CompareResult)
    monkeypatch.setattr(mlxprof.sweep, "run", lambda *a, **k: sweep)
    monkeypatch.setattr(mlxprof.compare, "run", lambda *a, **k: cmp)
    return sweep, cmp


SWEEP = ["sweep", "-m", "gemma3n-tiny", "--knob", "MLX_MAX_OPS_PER_BUFFER=default,100", "-q"]
COMPARE = ["compare", "-m", "gemma3n-tiny", "--bits", "4,16", "-q"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_sweep_and_compare_honour_format(canned, fmt):
    sweep, cmp = canned
    r = CliRunner().invoke(main, SWEEP + ["--format", fmt])
    assert r.exit_code == 0, r.output
    cols, rows = parse(r.stdout, fmt)
    assert len(rows) == len(sweep.points) and "MLX_MAX_OPS_PER_BUFFER" in cols
    p = sweep.points[0]
    assert rows[0]["label"] == p.label and float(rows[0]["tok_s"]) == statistics.median(p.tok_s)
    by_label = {row.label: row for row in sweep.rows}
    assert all(str(row["verdict"]) == by_label[row["label"]].verdict for row in rows)
    r = CliRunner().invoke(main, COMPARE + ["--format", fmt])
    assert r.exit_code == 0, r.output
    cols, rows = parse(r.stdout, fmt)
    assert [row["bits"] for row in rows] == [v.bits for v in cmp.variants]
    assert float(rows[0]["tok_s_median"]) == cmp.variants[0].tok_s.median
    (c,) = cmp.comparisons
    row = next(row for row in rows if row["bits"] == c.candidate)
    assert float(row["ratio"]) == c.ratio and row["significance"] == c.verdict


def test_diff_honours_format(tmp_path):
    a = save(decode_result([100.0, 102.0, 98.0]), tmp_path / "a.json")
    b = save(decode_result([80.0, 81.6, 78.4]), tmp_path / "b.json")
    r = CliRunner().invoke(main, ["diff", str(a), str(b), "--format", "csv", "--fail-if-slower", "5%"])
    assert r.exit_code == 1, r.output
    cols, rows = parse(r.stdout, "csv")
    assert cols[:6] == ["kind", "a_file", "b_file", "metric", "a", "b"]
    tok = next(row for row in rows if row["metric"] == "tok/s")
    assert float(tok["a"]) == 100.0 and math.isclose(float(tok["ratio"]), 0.8) and tok["slower"] == "True"
    r = CliRunner().invoke(main, ["diff", str(a), str(b), "--format", "jsonl"])
    cols, rows = parse(r.stdout, "jsonl")
    assert rows[0]["metric"] == "tok/s" and rows[0]["slower"] is None and rows[0]["a_file"] == str(a)


def test_decode_honours_format_and_still_saves(tmp_path):
    out = tmp_path / "d.json"
    r = CliRunner().invoke(main, ["decode", "-m", "gemma3n-tiny", "--runs", "2", "--warmup", "1", "--tokens", "3",
                                  "-q", "--format", "csv", "--json", str(out)])
    assert r.exit_code == 0, r.output
    cols, rows = parse(r.stdout, "csv")
    saved = json.loads(out.read_text())
    assert cols == DECODE_COLUMNS and len(rows) == 2
    assert [float(row["tok_s"]) for row in rows] == [run["tok_s"] for run in saved["runs"]]
    assert rows[0]["model"] == saved["model"]["name"]


@pytest.mark.parametrize("args", [
    ["decode", "-m", "gemma3n-tiny", "--json", "-", "--format", "csv"],
    ["decode", "-m", "gemma3n-tiny", "--format", "md", "--json", "-"],
    SWEEP + ["--format", "jsonl", "--json", "-"],
    COMPARE + ["--json", "-", "--format", "csv"],
    ["diff", "a.json", "b.json", "--json", "-", "--format", "md"],
])
def test_json_dash_and_a_format_exit_2(canned, args):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "both print on stdout" in lines[0], r.output
