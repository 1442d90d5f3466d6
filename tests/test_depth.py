"""Decode at depth: depth parsing, the memory preflight, the chunked fill, a tiny
end-to-end run on this backend, the CLI's refusals and the report section."""

import dataclasses
import json

import pytest
from click.testing import CliRunner

from mlxprof import depth as dp
from mlxprof import hardware, results
from mlxprof.cli import main
from mlxprof.errors import InputError
from recorded_chips import CHIPS
from tiny_checkpoints import CONFIGS

ITEM = {"float32": 4, "bfloat16": 2, "float16": 2}


def cli(*args):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("text,msg", [
    ("", "is empty"), (" , ", "is empty"), ("0,abc", "'abc' is not a whole number"),
    ("1.5", "'1.5' is not a whole number"), ("0,-4", "-4 is negative"), ("0,1024,0", "0 is given twice"),
    ("100000000", "too large"),
])
def test_parse_depths_refuses_bad_input(text, msg):
    with pytest.raises(InputError, match=msg):
        dp.parse_depths(text)


def test_parse_depths_sorts_and_plan_respects_positions():
    assert dp.parse_depths(" 4096,0, 1024") == [0, 1024, 4096]
    assert dp.parse_depths([64, 0]) == [0, 64]
    with pytest.raises(InputError, match="--depth 4000 does not fit.*holds 4096.*at most 3976"):
        dp.plan_depths("0,4000", "metal", 4096, 120)
    assert dp.plan_depths("0,3976", "metal", 4096, 120) == ([0, 3976], [])
    depths, notes = dp.plan_depths(None, "cuda", 4096, 120)  # defaults: those over the limit left out
    assert depths == [0, 1024] and notes == ["depth 4096,16384 left out: the model holds 4096 positions"]
    depths, notes = dp.plan_depths(None, "cpu", None, 120)
    assert depths == list(dp.CPU_DEPTHS) and "CPU backend: depths 0,1024,4096,16384→0,256,1024" in notes


@pytest.fixture(scope="module")
def llama_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("llama") / "config.json"
    path.write_text(json.dumps(CONFIGS["llama"]))
    return path


def test_memory_need_counts_weights_kv_and_one_chunk_of_scores(llama_config):
    """Tiny llama: 2 layers, 2 kv heads × head_dim 16, 4 query heads. At depth
    1000 with 2 + 6 decoded tokens the cache ends in the 1024-position block;
    a 512-token chunk's scores and softmax are 2 × 4 heads × 512 × 1000."""
    import mlx.core as mx

    from mlxprof.render import fmt_bytes
    from mlxprof.session import open_session

    s = open_session(str(llama_config))
    item = ITEM[s.model.dtype]
    need, weights, what = dp.memory_need(s, 1000, 2, 6, prefill_step=512)
    assert weights == mx.get_active_memory() > 0
    kv = 2 * 1024 * 2 * 16 * 2 * item
    scores = 2 * 4 * 512 * 1000 * item
    assert need == int((weights + kv + scores) * 1.15) + (256 << 20)
    assert f"KV cache {fmt_bytes(kv)}" in what


def _chip_with(free: int):
    name, info = CHIPS["l4"]
    return hardware.detect(device_info={**info, "free_memory": free}, backend=name)


def test_preflight_refuses_a_depth_that_does_not_fit():
    from mlxprof.session import open_session

    s = open_session("gemma3n-tiny")
    small, _, _ = dp.memory_need(s, 64, 2, 4)
    big, _, _ = dp.memory_need(s, 3000, 2, 4)
    assert small < big
    s = dataclasses.replace(s, chip=_chip_with((small + big) // 2))  # CUDA free memory between the two
    dp.preflight_depths(s, [0, 64], 2, 4)
    with pytest.raises(InputError, match=r"--depth 3000 needs .* \(CUDA free_memory\); depths up to 64 fit"):
        dp.preflight_depths(s, [3000, 0, 64], 2, 4)


def test_refused_before_any_fill(monkeypatch):
    """The preflight runs after the load and before any fill: nothing is measured."""
    from mlxprof import decode as dec
    from mlxprof.session import open_session

    s = open_session("gemma3n-tiny", chip=_chip_with(1 << 40))
    chip = _chip_with((dp.memory_need(s, 64, 2, 4)[0] + dp.memory_need(s, 3000, 2, 4)[0]) // 2)
    del s
    monkeypatch.setattr(hardware, "detect", lambda *a, **k: chip)
    monkeypatch.setattr(dec, "measure", lambda *a, **k: pytest.fail("filled before the preflight"))
    with pytest.raises(InputError, match="--depth 3000 needs"):
        dp.decode_at_depth("gemma3n-tiny", "0,3000", runs=1, warmup=2, tokens=4, floor=False)


def test_chunked_fill_fills_the_cache_to_depth():
    """Chunks of 16 over 40 tokens leave every cache at offset 40 and give the
    last token's logits as one prefill does."""
    import mlx.core as mx

    from mlxprof.session import open_session

    m = open_session("gemma3n-tiny").model
    ids = list(range(300, 340))
    seen = []
    cache = m.make_cache()
    logits = dp.fill_hook(m, ids, step=16, on_chunk=lambda done, total: seen.append(done))(cache)
    mx.eval(logits)
    assert seen == [16, 32, 39] and all(c.offset == 40 for c in cache)
    whole = m.logits(mx.array([ids]), m.make_cache())[:, -1]
    assert logits.shape[1] == 1 and mx.allclose(logits[:, -1], whole, atol=1e-2).item()


@pytest.fixture(scope="module")
def tiny_depth(tmp_path_factory):
    path = tmp_path_factory.mktemp("depth") / "tiny.depth.json"
    r = dp.decode_at_depth("gemma3n-tiny", "0,64", runs=2, warmup=2, tokens=4, probe_mb=1,
                           json_path=str(path), command="mlxprof decode -m gemma3n-tiny --depth 0,64")
    results.save(r, path)
    return r, path


def test_kv_grows_with_depth_and_stays_capped_in_sliding_layers(tiny_depth):
    """gemma3n-tiny: of its 4 caches, 3 slide over 16 positions and 1 holds
    everything; 2 kv heads × 32 × (K and V) × the activation dtype's bytes."""
    r, _ = tiny_depth
    item = ITEM[r.model.dtype]
    assert [p.depth for p in r.points] == [0, 64] and [p.fill_tokens for p in r.points] == [1, 64]
    for p in r.points:
        assert p.kv_context == p.fill_tokens + 2 + 4 // 2
        assert p.kv_bytes_per_token == (3 * min(p.kv_context, 16) + p.kv_context) * 2 * 32 * 2 * item
        assert p.tok_s.n == 2 and all(run.prompt_tokens == p.fill_tokens for run in p.runs)
        assert p.fill_tok_s.samples == [p.fill_tokens / run.prefill_s for run in p.runs]
        f = r.floor
        assert p.floor_ms == pytest.approx(f.weights_ms.median + p.kv_bytes_per_token / (f.probe_gb_s * 1e9) * 1e3)
        assert p.floor_share == pytest.approx(p.tok_s.median / p.floor_tok_s)
    a, b = r.points
    assert b.floor_tok_s < a.floor_tok_s  # more KV read, a lower floor
    assert "From depth 0 to 64" in r.sentence and not any(n.startswith("partial") for n in r.notes)


def test_full_attention_kv_grows_with_the_whole_context(llama_config):
    r = dp.decode_at_depth(str(llama_config), [0, 64], runs=1, warmup=2, tokens=4, floor=False)
    item = ITEM[r.model.dtype]
    assert [p.kv_bytes_per_token for p in r.points] == [2 * ctx * 2 * 16 * 2 * item for ctx in (5, 68)]
    assert r.floor is None and all(p.floor_tok_s is None for p in r.points)


def test_saved_result_loads_and_table_renders(tiny_depth, capsys):
    r, path = tiny_depth
    again = results.load(path, dp.DepthResult)
    assert again.points[1].kv_bytes_per_token == r.points[1].kv_bytes_per_token
    dp.depth_table(again)
    out = capsys.readouterr().out
    assert "mlxprof decode --depth" in out and f"{r.points[1].tok_s.median:.2f}" in out


@pytest.mark.parametrize("args,msg", [
    (["--depth", "0,x"], "'x' is not a whole number"),
    (["--depth", "64,64"], "64 is given twice"),
    (["--depth", "5000"], "--depth 5000 does not fit"),
    (["--depth", "0", "--gpu-timeline"], "does not combine with --gpu-timeline"),
    (["--depth", "0", "--prompt-tokens", "8"], "does not combine with --prompt-tokens"),
    (["--depth", "0", "--image", "x.png"], "does not combine with --image"),
])
def test_cli_refusals_exit_2(args, msg):
    r = cli("decode", "-m", "gemma3n-tiny", *args)
    assert r.exit_code == 2 and msg in r.output, r.output


def test_cli_depth_json():
    r = CliRunner().invoke(main, ["decode", "-m", "gemma3n-tiny", "--depth", "16", "--runs", "1", "--warmup", "2",
                                  "--tokens", "3", "-q", "--json", "-"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["kind"] == "depth" and [p["depth"] for p in d["points"]] == [16]
    st = d["settings"]
    assert (st["runs"], st["warmup"], st["tokens"], st["prefill_step"]) == (1, 2, 3, dp.PREFILL_STEP)


def test_report_renders_the_depth_section(tiny_depth, tiny_decode_json, tmp_path):
    from mlxprof import report

    r, path = tiny_depth
    docs = report.load_results([str(tiny_decode_json), str(path)])
    out = report.write(docs, tmp_path / "doc.md")
    md = out.read_text()
    section = md.split("## Decode at depth", 1)[1].split("\n## ", 1)[0]
    for p in r.points:
        assert f"| {p.depth} | {p.kv_context} |" in section and f"{p.tok_s.median:.2f} ± " in section
    assert r.sentence in section
    repro = md.split("## Reproduce")[1].splitlines()
    assert any(x.startswith("mlxprof decode -m gemma3n-tiny --depth 0,64 --json ") and x.endswith("tiny.depth.json")
               for x in repro), repro
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "Plots skipped" in md
    else:
        assert (tmp_path / "doc-depth.png").exists() and "![decode at depth](doc-depth.png)" in section
    r2 = cli("report", "--from", str(path), "--depth")
    assert r2.exit_code == 2 and "--depth measures" in r2.output


def test_format_csv_has_one_row_per_depth(tiny_depth):
    import csv
    import io

    from mlxprof import formats

    r, _ = tiny_depth
    rows = list(csv.DictReader(io.StringIO(formats.write(r, "csv"))))
    assert [int(x["depth"]) for x in rows] == [0, 64]
    assert [int(x["kv_bytes_per_token"]) for x in rows] == [p.kv_bytes_per_token for p in r.points]
    assert float(rows[1]["tok_s_median"]) == pytest.approx(r.points[1].tok_s.median)


def test_a_depth_is_saved_after_every_run(tmp_path, monkeypatch):
    """Ctrl-C in the middle of a depth keeps its finished runs."""
    path = tmp_path / "c.json"
    real = dp.measure_depth

    def interrupted(session, depth, settings, floor, bar=None, on_partial=None):
        def save_then_stop(point):
            on_partial(point)
            raise KeyboardInterrupt

        return real(session, depth, settings, floor, bar, on_partial=save_then_stop)

    monkeypatch.setattr(dp, "measure_depth", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dp.decode_at_depth("gemma3n-tiny", "0,64", runs=2, warmup=2, tokens=4, floor=False, json_path=str(path))
    saved = results.load(path, dp.DepthResult)
    assert [(p.depth, len(p.runs)) for p in saved.points] == [(0, 1)]
    assert "depth 0 has 1 of 2 runs" in " ".join(saved.notes)
