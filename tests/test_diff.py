"""mlxprof diff: B against A from saved results; the slower gate, exit codes,
provenance warnings, and every kind it reads."""

import json

import pytest
from click.testing import CliRunner
from fake_results import decode_result, published, save

from mlxprof import diff, results
from mlxprof.cli import main

A_TOK = [100.0, 102.0, 98.0]


def run(*args):
    return CliRunner().invoke(main, ["diff", *map(str, args)])


def one_line(r, code=2):
    assert r.exit_code == code, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    return lines[0]


@pytest.fixture()
def a_json(tmp_path):
    return save(decode_result(A_TOK), tmp_path / "a.json")


@pytest.fixture()
def other(tmp_path):
    (tmp_path / "b").mkdir()
    return tmp_path / "b"


def metric(d, name):
    return next(m for m in d.metrics if m.metric == name)


def test_a_file_against_itself_differs_in_nothing(a_json):
    d = diff.diff(a_json, a_json)
    assert d.differences == [] and d.warnings == [] and d.same > 20
    tok = metric(d, "tok/s")
    assert tok.ratio == 1.0 and tok.delta == 0.0 and tok.ci_low < 1.0 < tok.ci_high
    assert all(m.verdict not in ("regression", "significant gain") for m in d.metrics)
    r = run(a_json, a_json, "--fail-if-slower", "0%")
    assert r.exit_code == 0, r.output
    assert "B against A" in r.stdout and "passed" in r.stdout


@pytest.mark.parametrize("scale, threshold, code", [
    (0.8, "5%", 1),     # 20% slower, every B run below every A run: more than 5%
    (0.8, "0.05", 1),   # the same threshold as a fraction
    (0.8, "30%", 0),    # 20% slower is not more than 30%
    (1.0, "5%", 0),
])
def test_fail_if_slower_exits_1_only_beyond_the_threshold(tmp_path, a_json, scale, threshold, code):
    b = save(decode_result([x * scale for x in A_TOK]), tmp_path / "b.json")
    out = tmp_path / "d.json"
    r = run(a_json, b, "--fail-if-slower", threshold, "--json", out)
    assert r.exit_code == code, r.output
    assert "B against A" in r.stdout  # the diff is printed first, also on exit 1
    d = results.load_result(out)  # and saved
    assert isinstance(d, diff.DiffResult) and d.kind == "diff" and d.of == "decode"
    assert abs(metric(d, "tok/s").ratio - scale) < 1e-9
    if code:
        assert d.slower == ["tok/s"]
        assert r.stderr.strip().splitlines()[-1].startswith("mlxprof diff: B is slower than A by 20.0% on tok/s")
    else:
        assert d.slower == [] and "slower than A" not in r.stderr


def test_a_slower_median_inside_the_noise_does_not_fail(tmp_path, a_json):
    # median 8% below A's, but one B run is faster than every A run: the CI
    # reaches above 0.95, so B is not shown to be more than 5% slower
    b = save(decode_result([92.0, 80.0, 104.0]), tmp_path / "b.json")
    d = diff.diff(a_json, b, fail_if_slower=0.05)
    tok = metric(d, "tok/s")
    assert tok.ratio < 0.95 < tok.ci_high
    assert d.slower == []
    assert run(a_json, b, "--fail-if-slower", "5%").exit_code == 0


def test_phases_compare_every_token_grouped_by_run(tmp_path, a_json):
    b = save(decode_result(A_TOK, build=2.0), tmp_path / "b.json")
    d = diff.diff(a_json, b)
    build = metric(d, "build ms")
    assert build.samples == "tokens by run (30+30 in 3+3)"
    assert abs(build.ratio - 2.0) < 0.02 and build.verdict == "regression"
    assert build.higher_is_better is False and not build.rate
    assert metric(d, "submit ms").verdict != "regression"
    assert metric(d, "tok/s").samples == "runs (3+3)"
    assert any(n.startswith("samples 'tokens by run'") for n in d.notes)


def test_provenance_differences_and_warnings(tmp_path, a_json):
    b = save(decode_result(A_TOK, tokens=20, weights="real", chip="Other chip", mlx="0.33.0",
                           knobs={"MLX_MAX_OPS_PER_BUFFER": "50"}), tmp_path / "b.json")
    d = diff.diff(a_json, b)
    fields = {f.field: (f.a, f.b) for f in d.differences}
    assert fields["versions.mlx"] == ("0.32.4", "0.33.0")
    assert fields["knobs.MLX_MAX_OPS_PER_BUFFER"] == (None, "50")
    assert fields["model.weights"] == ("synthetic", "real")
    assert fields["settings.tokens"] == ("10", "20")
    said = " ".join(d.warnings)
    assert "weights differ: A synthetic, B real" in said
    assert "chips differ" in said and "Other chip" in said
    assert "settings.tokens 10 → 20" in said
    out = run(a_json, b).stdout
    assert out.index("warning: weights differ") < out.index("B against A")
    md = run(a_json, b, "--format", "md").stdout
    assert "> **warning:** chips differ" in md and "| versions.mlx | 0.32.4 | 0.33.0 |" in md


def test_a_single_run_is_warned_about(tmp_path):
    a = save(decode_result([100.0]), tmp_path / "a.json")
    d = diff.diff(a, a)
    assert any("single sample" in w for w in d.warnings)
    assert metric(d, "tok/s").n_a == 1 and metric(d, "build ms").n_a == 1  # tokens count by run


@pytest.mark.parametrize("bad", ["abc", "150%", "100%", "-5%", "5", "1", "nan", ""])
def test_bad_thresholds_exit_2(a_json, bad):
    assert "--fail-if-slower" in one_line(run(a_json, a_json, "--fail-if-slower", bad))


def test_unreadable_or_mixed_inputs_exit_2(tmp_path, a_json, monkeypatch):
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{not json")
    ops = published("gemma3n-e2b-4bit-nvidia-h200.ops.json", tmp_path)
    monkeypatch.setenv("MLXPROF_GATING_FILE", str(tmp_path / "absent.json"))
    env = tmp_path / "env.json"
    assert CliRunner().invoke(main, ["env", "--json", str(env)]).exit_code == 0
    assert "'decode' result and" in one_line(run(a_json, ops))
    assert "not a JSON result" in one_line(run(a_json, corrupt))
    assert "no such file" in one_line(run(a_json, tmp_path / "absent.json"))
    assert "not a JSON result" in one_line(run(tmp_path, a_json))  # a directory
    assert "not 'env'" in one_line(run(env, env))
    assert "ops results hold no tok/s" in one_line(run(ops, ops, "--fail-if-slower", "5%"))


def test_ops_diff_lists_histogram_deltas(tmp_path, other):
    name = "gemma3n-e2b-4bit-nvidia-h200.ops.json"

    def more_adds(d):
        d["histogram"]["Add"] += 3
        d["nodes"] += 3
        d["classes"]["compute"] += 3

    a, b = published(name, tmp_path), published(name, other, more_adds)
    d = diff.diff(a, b)
    ops = [m for m in d.metrics if m.metric.startswith("op ")]
    assert [(m.metric, m.delta) for m in ops] == [("op Add", 3.0)]
    assert metric(d, "graph nodes").delta == 3.0 and metric(d, "compute nodes").delta == 3.0
    assert metric(d, "view nodes").delta == 0.0


def test_floor_diff_gates_floor_tok_s(tmp_path, other):
    name = "gemma3n-e2b-4bit-nvidia-h200.floor.json"

    def slower_floor(d):
        d["floor_ms"]["samples"] = [x * 1.25 for x in d["floor_ms"]["samples"]]

    a, b = published(name, tmp_path), published(name, other, slower_floor)
    d = diff.diff(a, b, fail_if_slower=0.05)
    rate = metric(d, "floor tok/s")
    assert rate.rate and 0.78 < rate.ratio < 0.82 and rate.samples == "evaluations (30+30)"
    assert d.slower == ["floor tok/s"] and metric(d, "floor ms").verdict == "regression"
    assert diff.diff(a, b, fail_if_slower=0.3).slower == []


def test_sweep_diff_compares_each_value_by_points(tmp_path, other):
    name = "gemma3n-e2b-4bit-nvidia-h200.sweep.json"

    def slower_1000(d):
        for p in d["points"]:
            if p["label"] == "1000":
                p["tok_s"] = [x * 0.7 for x in p["tok_s"]]

    a, b = published(name, tmp_path), published(name, other, slower_1000)
    d = diff.diff(a, b, fail_if_slower=0.05)
    assert metric(d, "tok/s [default]").ratio == 1.0
    slow = metric(d, "tok/s [1000]")
    assert abs(slow.ratio - 0.7) < 1e-9 and slow.samples.startswith("points (")
    assert d.slower == ["tok/s [1000]"]


def test_compare_and_parity_diffs(tmp_path, other):
    def slower_4bit(d):
        v = next(v for v in d["variants"] if v["bits"] == "4bit")
        v["tok_s"]["samples"] = [x * 0.8 for x in v["tok_s"]["samples"]]

    name = "gemma3n-e2b-4bit-nvidia-h200.compare.json"
    d = diff.diff(published(name, tmp_path), published(name, other, slower_4bit), fail_if_slower=0.05)
    assert abs(metric(d, "tok/s [4bit]").ratio - 0.8) < 1e-9 and metric(d, "tok/s [4bit]").verdict == "regression"
    assert metric(d, "tok/s [bfloat16]").ratio == 1.0
    assert d.slower == ["tok/s [4bit]"]
    name = "gemma3n-e2b-4bit-nvidia-h200.parity.json"
    p = diff.diff(published(name, tmp_path), published(name, other))
    assert {m.metric for m in p.metrics if m.rate} == {"tok/s [mlxprof]", "tok/s [mlx-vlm]"}


def test_json_dash_prints_the_diff(a_json):
    r = run(a_json, a_json, "--json", "-")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["kind"] == "diff" and data["of"] == "decode" and data["metrics"][0]["metric"] == "tok/s"


DEPTH = "llama3.1-8b-4bit-nvidia-h200.depth.json"
DIST = "llama3.1-8b-4bit-tp2-nvidia-h200x2.distributed.json"


def slower_at_4096_and_8192_for_16384(d):
    for p in d["points"]:
        if p["depth"] == 4096:
            p["tok_s"]["samples"] = [x * 0.8 for x in p["tok_s"]["samples"]]
        if p["depth"] == 16384:
            p["depth"] = 8192
    d["settings"]["depths"] = [p["depth"] for p in d["points"]]


def test_depth_diff_compares_each_depth_both_measured(tmp_path, other):
    a, b = published(DEPTH, tmp_path), published(DEPTH, other, slower_at_4096_and_8192_for_16384)
    d = diff.diff(a, b, fail_if_slower=0.05)
    assert d.of == "depth"
    slow = metric(d, "tok/s @4096")
    assert abs(slow.ratio - 0.8) < 1e-9 and slow.rate and slow.samples == "runs (3+3)" and slow.ci_high < 0.95
    assert metric(d, "tok/s @0").ratio == 1.0 and metric(d, "tok/s @1024").ratio == 1.0
    assert d.slower == ["tok/s @4096"]
    assert not [m for m in d.metrics if m.metric.endswith(("@16384", "@8192"))]
    assert "depths measured on one side only: 16384 in A only; 8192 in B only (not compared)" in d.warnings
    assert metric(d, "build ms @1024").samples == "tokens by run (300+300 in 3+3)"
    floor = metric(d, "floor tok/s @4096")
    assert floor.samples == "value" and floor.ratio == 1.0 and not floor.rate
    assert metric(d, "floor ms (weights)").samples == "evaluations (30+30)"
    assert any(f.field == "settings.depths" for f in d.differences)
    assert diff.diff(a, b, fail_if_slower=0.3).slower == []


def test_depth_diff_cli_exits_1_when_b_is_slower(tmp_path, other):
    a, b = published(DEPTH, tmp_path), published(DEPTH, other, slower_at_4096_and_8192_for_16384)
    out = tmp_path / "d.json"
    r = run(a, b, "--fail-if-slower", "5%", "--json", out)
    assert r.exit_code == 1, r.output
    assert "warning: depths measured on one side only" in r.stdout and "tok/s @4096" in r.stdout
    assert r.stderr.strip().splitlines()[-1].startswith(
        "mlxprof diff: B is slower than A by 20.0% on tok/s @4096")
    saved = results.load_result(out)
    assert saved.of == "depth" and saved.slower == ["tok/s @4096"]
    assert run(a, a, "--fail-if-slower", "5%").exit_code == 0


def slower_group(d):
    for s in [d["tok_s"]] + [r["tok_s"] for r in d["ranks"]]:
        s["samples"] = [x * 0.8 for x in s["samples"]]


def one_pipeline_rank_no_baseline(d):
    d["ranks"] = d["ranks"][:1]
    d["launch"]["ranks"] = 1
    d["parallel"] = "pipeline"
    d["baseline"] = d["scaling"] = None


def test_distributed_diff_gates_group_and_ranks(tmp_path, other):
    a, b = published(DIST, tmp_path), published(DIST, other, slower_group)
    d = diff.diff(a, b, fail_if_slower=0.05)
    assert d.of == "distributed" and d.warnings == []
    for name in ("tok/s (group)", "tok/s [rank 0]", "tok/s [rank 1]"):
        m = metric(d, name)
        assert abs(m.ratio - 0.8) < 1e-9 and m.rate and m.samples == "runs (3+3)", name
    assert d.slower == ["tok/s (group)", "tok/s [rank 0]", "tok/s [rank 1]"]
    base = metric(d, "tok/s [1 device]")
    assert base.ratio == 1.0 and base.rate
    assert metric(d, "scaling efficiency").samples == "value"
    calls = metric(d, "collective calls/token [rank 1]")
    assert calls.a == calls.b > 0 and calls.samples == "value"
    assert metric(d, "collective bytes/token [rank 0]").a > 0
    r = run(a, b, "--fail-if-slower", "5%")
    assert r.exit_code == 1 and "B is slower than A by 20.0% on tok/s (group)" in r.stderr, r.output


def test_distributed_diff_warns_about_ranks_and_parallel_mode(tmp_path, other):
    a, b = published(DIST, tmp_path), published(DIST, other, one_pipeline_rank_no_baseline)
    d = diff.diff(a, b)
    said = " | ".join(d.warnings)
    assert "rank counts differ: A 2, B 1" in said
    assert "ranks measured on one side only: 1 in A only" in said
    assert "parallel modes differ: A tensor, B pipeline" in said
    names = {m.metric for m in d.metrics}
    assert "tok/s [rank 0]" in names and "tok/s [rank 1]" not in names
    assert "tok/s [1 device]" not in names and "scaling efficiency" not in names
    assert {f.field for f in d.differences} >= {"parallel", "launch.ranks"}


def test_diff_json_never_replaces_an_input_or_a_saved_result(tmp_path, a_json):
    b = save(decode_result(A_TOK), tmp_path / "b.json")
    before = {p: p.read_bytes() for p in (a_json, b)}
    assert "is A itself" in one_line(run(a_json, b, "--json", a_json))
    assert "is B itself" in one_line(run(a_json, b, "--json", tmp_path / "." / "b.json"))
    kept = save(decode_result([5.0, 6.0]), tmp_path / "kept.json")
    kept_text = kept.read_text()
    assert "already holds a saved 'decode' result" in one_line(run(a_json, b, "--json", kept))
    assert kept.read_text() == kept_text and all(p.read_bytes() == t for p, t in before.items())
    plain = tmp_path / "notes.json"
    plain.write_text("[1, 2]\n")  # not a result: replaced
    assert run(a_json, b, "--json", plain).exit_code == 0
    assert results.load_result(plain).kind == "diff"
