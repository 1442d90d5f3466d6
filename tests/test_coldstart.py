"""Cold starts: MLX's kernel cache location, the priming run and its record,
the progress message, and children pointed at the parent's kernel cache."""

import statistics
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlxprof import coldstart
from mlxprof.child import child_env
from mlxprof.coldstart import COMPILE_MESSAGE, PTX_ENV, Priming, cached_modules, describe, ptx_cache_dir


def test_ptx_cache_dir_follows_mlx():
    v = coldstart.mlx_version()
    assert v  # mlx is installed here
    assert ptx_cache_dir({PTX_ENV: "/x/ptx", "TMPDIR": "/t"}) == Path("/x/ptx")
    assert ptx_cache_dir({"TMPDIR": "/t"}) == Path("/t") / "mlx" / v / "ptx"
    assert ptx_cache_dir({"TEMP": "/e"}) == Path("/e") / "mlx" / v / "ptx"
    assert ptx_cache_dir({}) == Path("/tmp") / "mlx" / v / "ptx"


def test_cached_modules_counts_ptx_files_in_the_whole_tree(tmp_path):
    assert cached_modules(None) is None
    assert cached_modules(tmp_path / "missing") == 0
    (tmp_path / "a.ptx").write_text("x")
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "a.cu").write_text("x")
    (tmp_path / "long_name_part").mkdir()
    (tmp_path / "long_name_part" / "rest.ptx").write_text("x")
    assert cached_modules(tmp_path) == 2


class FakeProgress:
    def __init__(self):
        self.events = []

    def describe(self, d):
        self.events.append(("describe", d))

    def note(self, m):
        self.events.append(("note", m))


def fake_run_once(cache: Path, modules: int, seconds: float):
    """A run_once that 'compiles' `modules` kernel modules into `cache` on its first call."""
    calls = []

    def run_once(model, ids, warmup, tokens, prefill=None):
        calls.append((warmup, tokens))
        if len(calls) == 1:
            cache.mkdir(parents=True, exist_ok=True)
            for i in range(modules):
                (cache / f"m{i}.ptx").write_text("ptx")
        import time

        time.sleep(seconds)

    return run_once, calls


def measured(prefill_s, token_ms, n=3):
    return [SimpleNamespace(prefill_s=prefill_s, token_ms=[float("nan")] + [token_ms] * 4) for _ in range(n)]


def test_first_run_on_cuda_says_it_compiles_and_records_it(tmp_path):
    cache = tmp_path / "ptx"
    bar = FakeProgress()
    p = Priming("cuda", bar, env={PTX_ENV: str(cache)})
    assert p.before == 0 and p.expect_compile
    run_once, calls = fake_run_once(cache, modules=5, seconds=0.3)
    p.run("model", [1, 2, 3], run_once=run_once)
    assert calls == [(0, coldstart.PRIME_TOKENS)]  # prefill + 2 tokens, no warm-up
    assert ("describe", COMPILE_MESSAGE) in bar.events
    assert any(ev == "note" and COMPILE_MESSAGE in m for ev, m in bar.events)
    assert any(ev == "note" and m.startswith("mlxprof: compiled 5 GPU kernel modules") for ev, m in bar.events)
    (cache / "late.ptx").write_text("ptx")  # a module compiled during the measured runs
    c = p.record(measured(prefill_s=0.02, token_ms=10.0), open_s=12.5)
    assert c.open_s == 12.5 and c.priming_s >= 0.3
    assert c.warm_s == pytest.approx(0.02 + 2 * 0.010)
    assert c.compile_s == pytest.approx(c.priming_s - c.warm_s)
    assert (c.cache_dir, c.cache_modules_before, c.cache_modules_added, c.cache_modules_added_later) == \
        (str(cache), 0, 5, 1)
    assert c.first_run
    line = describe(c)
    assert "model opened in 12.5 s" in line and "compiling GPU kernels (first run on this machine)" in line
    assert "5 kernel modules compiled into" in line and "kept out of every figure" in line
    assert "1 more modules were compiled during the measured runs" in line


def test_warm_cache_shows_no_compile_message(tmp_path):
    cache = tmp_path / "ptx"
    cache.mkdir()
    (cache / "old.ptx").write_text("ptx")
    bar = FakeProgress()
    p = Priming("cuda", bar, env={PTX_ENV: str(cache)})
    assert not p.expect_compile
    run_once, _ = fake_run_once(cache, modules=0, seconds=0.0)
    p.run("model", [1], run_once=run_once)
    assert not any(COMPILE_MESSAGE in str(m) for _, m in bar.events)
    assert not any(ev == "note" for ev, _ in bar.events)
    c = p.record(measured(prefill_s=0.5, token_ms=100.0))
    assert c.compile_s == 0.0 and c.cache_modules_before == 1 and c.cache_modules_added == 0 and not c.first_run
    assert "compil" not in describe(c).split(";")[0] and "(1 were cached)" in describe(c)


def test_metal_and_cpu_record_the_priming_run_without_a_cache(tmp_path):
    bar = FakeProgress()
    p = Priming("metal", bar, env={PTX_ENV: str(tmp_path)})
    assert p.cache is None and not p.expect_compile
    run_once, _ = fake_run_once(tmp_path / "unused", modules=0, seconds=0.0)
    p.run("model", [1], run_once=run_once)
    c = p.record(measured(prefill_s=0.01, token_ms=5.0))
    assert c.cache_dir is None and c.cache_modules_added is None and c.backend == "metal"
    assert "kernel modules" not in describe(c)


def test_decode_keeps_the_priming_run_out_of_every_figure(tiny_decode_json):
    from mlxprof import decode, results

    r = results.load(tiny_decode_json, decode.DecodeResult)
    c = r.cold_start
    assert c is not None and c.open_s > 0 and c.priming_s > 0
    assert len(r.runs) == r.settings.runs == r.tok_s.n  # the priming run is not among the runs
    token_s = statistics.median(t for x in r.runs for t in x.token_ms if t == t) / 1e3
    assert c.warm_s == pytest.approx(statistics.median(x.prefill_s for x in r.runs)
                                     + coldstart.PRIME_TOKENS * token_s)


def test_child_env_points_children_at_the_parents_kernel_cache(monkeypatch):
    monkeypatch.setattr(coldstart, "cuda_installed", lambda: True)
    v = coldstart.mlx_version()
    env = child_env({"MLX_MAX_OPS_PER_BUFFER": "100", "TMPDIR": "/child-tmp"}, base={"TMPDIR": "/parent-tmp"})
    assert env[PTX_ENV] == str(Path("/parent-tmp") / "mlx" / v / "ptx")  # the parent's, not the child's TMPDIR
    assert child_env({}, base={PTX_ENV: "/mine"})[PTX_ENV] == "/mine"  # the user's own, inherited
    assert child_env({PTX_ENV: "/given"}, base={})[PTX_ENV] == "/given"
    assert PTX_ENV not in child_env({PTX_ENV: None}, base={PTX_ENV: "/mine"})  # unset on purpose stays unset
    monkeypatch.setattr(coldstart, "cuda_installed", lambda: False)
    assert PTX_ENV not in child_env({}, base={})  # Metal / CPU: MLX has no such cache
