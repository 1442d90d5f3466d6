"""Sweeps: validation, aggregation and verdicts, injected worker faults,
interrupt + resume, and one real end-to-end sweep on gemma3n-tiny."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlxprof import results
from mlxprof import sweep as sw
from mlxprof.cli import main
from mlxprof.errors import InputError

ROOT = Path(__file__).resolve().parent.parent

# A stand-in for `python -m mlxprof.sweep.worker`: behaves by the value of MLX_FAKE
# (unset: ~100 tok/s; fast 130; same 100; slow 70; crash; hang; garbage; noisy)
# and appends its label to $FAKE_LOG so tests can count invocations.
FAKE_WORKER = textwrap.dedent(r'''
    import json, os, random, sys, time
    t0 = time.time()
    job = json.loads(sys.argv[-1])
    mode = os.environ.get("MLX_FAKE", "default")
    rep = 0  # how many times this label ran before: makes each process's numbers deterministic
    if os.environ.get("FAKE_LOG"):
        if os.path.exists(os.environ["FAKE_LOG"]):
            rep = open(os.environ["FAKE_LOG"]).read().split().count(mode)
        with open(os.environ["FAKE_LOG"], "a") as f:
            f.write(mode + "\n")
    time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
    if mode == "crash":
        print("Traceback (most recent call last):\nRuntimeError: boom in the worker", file=sys.stderr)
        sys.exit(3)
    if mode == "refuse":
        print("mlxprof: error: gemma3n-huge needs ~99 GB but the device offers 1 GB", file=sys.stderr)
        sys.exit(2)
    if mode == "hang":
        print("about to hang", file=sys.stderr, flush=True)
        time.sleep(60)
    if mode == "garbage":
        print("hello from a library\nMLXPROF-RESULT {not json")
        sys.exit(0)
    base = {"fast": 130.0, "slow": 70.0}.get(mode, 100.0)
    # processes alternate ±1 % around base (by how often the mode ran before),
    # so equal labels overlap however the rounds interleave them
    rng = random.Random(rep)
    level = base * (1.01 if rep % 2 else 0.99)
    tok = [level * (1 + rng.gauss(0, 0.002)) for _ in range(job.get("runs") or 3)]
    if mode == "noisy":
        print("some library chatter\n{\"tok_s\": [1]}\nMLXPROF-RESULT-NOT {}")
    spawn = float(os.environ["MLXPROF_SPAWN_TIME"])
    out = dict(tok_s=tok, prefill_tok_s=[500.0] * len(tok),
               split=dict(build_ms=1.0, submit_ms=8.0, wait_ms=0.0, token_ms=9.0, unattributed_ms=0.0),
               model=None, settings=None,
               env={k: v for k, v in os.environ.items() if k.startswith("MLX_")},
               timing=dict(start_s=t0 - spawn, import_s=0.01, build_s=0.02, measure_s=0.03))
    print("MLXPROF-RESULT " + json.dumps(out))
    if mode == "noisy":
        print("trailing chatter")
''')


@pytest.fixture
def fake(tmp_path, monkeypatch):
    path = tmp_path / "fake_worker.py"
    path.write_text(FAKE_WORKER)
    log = tmp_path / "calls.log"
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.delenv("MLX_FAKE", raising=False)
    cmd = [sys.executable, str(path)]
    cmd_calls = lambda: log.read_text().split() if log.exists() else []  # noqa: E731
    return types.SimpleNamespace(cmd=cmd, calls=cmd_calls, path=path)


def one_line_error(res):
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlxprof: error: "), res.stderr
    return lines[0]


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("args, needle", [
    (["--knob", "MLX_MAX_OPS_PER_BUFFER=abc", "--force"], "not an integer"),
    (["--knob", "MLX_BFS_MAX_WIDTH=default,abc"], "not an integer"),
    (["--knob", "MLX_BFS_MAX_WIDTH="], "no values"),
    (["--knob", "MLX_BFS_MAX_WIDTH=default,,5"], "empty value"),
    (["--knob", "MLX_BFS_MAX_WIDTH=default,5,5"], "listed twice"),
    (["--knob", "MLX_BFS_MAX_WIDTH=0"], "at least 1"),
    (["--knob", "MLX_BFS_MAX_WIDTH"], "not NAME=VALUE"),
    (["--knob", "MLX_BFS_MAX_WIDTH=default"], "one value only"),
    (["--knob", "MLX_DISABLE_COMPILE=default,0"], "whenever it is set"),
    (["--knob", "MLX_BFS_MAX_WIDTH=default,5", "--knob", "MLX_BFS_MAX_WIDTH=7"], "given twice"),
    (["--knob", "MLX_BFS_MAX_WIDTH=default,5", "--reps", "0"], "--reps"),
    (["--knob", "MLX_BFS_MAX_WIDTH=default,5", "--tokens", "1"], "--tokens"),
    (["--knob", "MLX_BFS_MAX_WIDTH=default,5", "--timeout", "0"], "--timeout"),
])
def test_cli_validation_errors(args, needle, fake, monkeypatch, tmp_path):
    monkeypatch.setenv(sw.WORKER_ENV, " ".join(fake.cmd))
    res = CliRunner().invoke(main, ["sweep", "-m", "gemma3n-tiny", "--json", str(tmp_path / "s.json")] + args)
    assert needle in one_line_error(res)
    assert fake.calls() == []  # nothing ran


def test_unknown_model_fails_before_any_worker(fake, monkeypatch, tmp_path):
    monkeypatch.setenv(sw.WORKER_ENV, " ".join(fake.cmd))
    res = CliRunner().invoke(main, ["sweep", "-m", "gemma3n-nope", "--knob", "MLX_BFS_MAX_WIDTH=default,5",
                                    "--json", str(tmp_path / "s.json")])
    assert "gemma3n-nope" in one_line_error(res)
    assert fake.calls() == [] and not (tmp_path / "s.json").exists()


def test_buffer_knobs_skipped_on_cpu_unless_forced():
    knobs = {"MLX_MAX_OPS_PER_BUFFER": ["default", "100"], "MLX_BFS_MAX_WIDTH": ["default", "5"]}
    k, skipped, variants, base, _, _ = sw.plan("gemma3n-tiny", knobs=knobs, backend="cpu")
    assert list(skipped) == ["MLX_MAX_OPS_PER_BUFFER"] and "CPU" in skipped["MLX_MAX_OPS_PER_BUFFER"]
    assert [v.label for v in variants] == ["default", "5"] and base == "default"
    _, skipped, variants, _, _, notes = sw.plan("gemma3n-tiny", knobs=knobs, backend="cpu", force=True)
    assert skipped == {} and len(variants) == 4 and any("--force" in n for n in notes)
    _, skipped, variants, _, _, _ = sw.plan("gemma3n-tiny", knobs=knobs, backend="metal")
    assert skipped == {} and len(variants) == 4
    # the CUDA-only cache size is skipped on Metal too
    _, skipped, _, _, _, _ = sw.plan("gemma3n-tiny", knobs={"MLX_CUDA_GRAPH_CACHE_SIZE": ["default", "10"],
                                                             "MLX_BFS_MAX_WIDTH": ["default", "5"]}, backend="metal")
    assert list(skipped) == ["MLX_CUDA_GRAPH_CACHE_SIZE"]
    with pytest.raises(InputError, match="nothing to sweep.*--force"):
        sw.plan("gemma3n-tiny", knobs={"MLX_MAX_OPS_PER_BUFFER": ["default", "100"]}, backend="cpu")


def test_grid_adds_the_all_default_baseline():
    variants, base, notes = sw.grid({"MLX_A": ["1", "2"], "MLX_B": ["3"]})
    assert base == "default" and variants[0].env == {"MLX_A": None, "MLX_B": None}
    assert [v.label for v in variants[1:]] == ["MLX_A=1 MLX_B=3", "MLX_A=2 MLX_B=3"]
    assert notes


# ---------------------------------------------------------------- aggregation, faults


def test_verdicts_and_recommendation(fake, tmp_path, capsys):
    out = tmp_path / "s.json"
    r = sw.run("gemma3n-tiny", "MLX_FAKE", ["default", "fast", "same", "slow", "noisy"], reps=3, runs=3,
               worker_cmd=fake.cmd, json_path=out)
    assert "not an MLX variable" in capsys.readouterr().err  # unknown name: a warning, still runs
    verdicts = {row["label"]: row["verdict"] for row in r.table()}
    assert verdicts == {"default": "baseline", "fast": "significant gain", "same": "no significant difference",
                        "slow": "regression", "noisy": "no significant difference"}
    assert r.best.label == "fast" and r.recommendation.env == {"MLX_FAKE": "fast"}
    assert "MLX_FAKE=fast" in r.recommendation.sentence and not r.partial
    fast = next(x for x in r.rows if x.label == "fast")
    assert fast.n == 9 and fast.points == 3 and 1.25 < fast.ratio < 1.35 and fast.ci_low > 1.0
    # interleaved: each round holds every value once
    assert [sorted(r.order[i:i + 5]) for i in (0, 5, 10)] == [sorted(v.label for v in r.variants)] * 3
    # `default` means unset in the child, even when the parent has it set
    assert all(("MLX_FAKE" in p.env_seen) == (p.label != "default") for p in r.points)
    again = results.load(out, sw.SweepResult)
    assert again.table() == r.table() and json.loads(r.to_json())["kind"] == "sweep"
    md, html = r._repr_markdown_(), r._repr_html_()
    assert "| fast | 9 |" in md and "significant gain" in html and "process start" in md


def test_noise_is_never_a_gain(fake):
    r = sw.run("gemma3n-tiny", variants=[("A", {}), ("A'", {})], reps=3, runs=3, worker_cmd=fake.cmd)
    assert r.rows[1].verdict == "no significant difference"
    assert r.recommendation.label == "A" and r.recommendation.sentence.startswith("Leave the default")


def test_faults_are_recorded_and_the_sweep_goes_on(fake, tmp_path):
    out = tmp_path / "s.json"
    r = sw.run("gemma3n-tiny", "MLX_FAKE", ["default", "crash", "hang", "garbage"], reps=1, runs=2,
               timeout=1.5, worker_cmd=fake.cmd, json_path=out)
    by = {p.label: p for p in r.points}
    assert by["default"].status == "ok"
    assert by["crash"].status == "failed" and by["crash"].returncode == 3 and "boom" in by["crash"].error
    assert by["hang"].status == "timeout" and "1.5 s" in by["hang"].error and "about to hang" in by["hang"].error
    assert by["garbage"].status == "failed" and "unreadable" in by["garbage"].error
    assert not r.partial and any("3 of 4 points failed" in n for n in r.notes)
    assert {x.label: x.verdict for x in r.rows}["crash"] == "no data"
    assert results.load(out, sw.SweepResult).points[1].error == by[r.order[1]].error


def test_worker_input_error_stops_the_sweep(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("MLX_FAKE", "refuse")  # every point refuses, as a model too big for the device would
    monkeypatch.setenv(sw.WORKER_ENV, " ".join(fake.cmd))
    res = CliRunner().invoke(main, ["sweep", "-m", "gemma3n-tiny", "--knob", "MLX_BFS_MAX_WIDTH=default,7",
                                    "--json", str(tmp_path / "s.json"), "-q"])
    assert "needs ~99 GB" in one_line_error(res) and len(fake.calls()) == 1


def test_interrupt_leaves_partial_file_and_resume_completes(fake, tmp_path, monkeypatch):
    out = tmp_path / "s.json"
    args = dict(knob="MLX_FAKE", values=["default", "fast"], reps=3, runs=2, worker_cmd=fake.cmd)

    def stop_after_two(point, result):
        if len(result.points) == 2:
            raise KeyboardInterrupt

    with pytest.raises(sw.SweepInterrupted) as e:
        sw.run("gemma3n-tiny", json_path=out, on_point=stop_after_two, **args)
    part = results.load(out, sw.SweepResult)
    assert part.partial and len(part.points) == 2 and e.value.result.partial
    assert part.recommendation.sentence.startswith("Provisional (2 of 6")
    assert any("interrupted after 2 of 6" in n for n in part.notes)

    # a different sweep cannot resume it
    monkeypatch.setenv(sw.WORKER_ENV, " ".join(fake.cmd))
    res = CliRunner().invoke(main, ["sweep", "-m", "gemma3n-tiny", "--knob", "MLX_FAKE=default,slow",
                                    "--reps", "3", "--runs", "2", "--resume", str(out)])
    assert "cannot resume" in one_line_error(res)

    res = CliRunner().invoke(main, ["sweep", "-m", "gemma3n-tiny", "--knob", "MLX_FAKE=default,fast",
                                    "--reps", "3", "--runs", "2", "--resume", str(out), "-q"],
                             env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    done = results.load(out, sw.SweepResult)
    assert not done.partial and len(done.points) == 6 and all(p.status == "ok" for p in done.points)
    assert len(fake.calls()) == 6  # the two finished points were not run again
    assert not any(n.startswith("interrupted") for n in done.notes)
    assert "significant gain" in res.stdout and "MLX_FAKE=fast" in res.stdout


def test_sigint_on_the_cli(fake, tmp_path):
    out = tmp_path / "s.json"
    env = dict(os.environ, FAKE_SLEEP="0.4", PYTHONPATH=str(ROOT), **{sw.WORKER_ENV: " ".join(fake.cmd)})
    proc = subprocess.Popen([sys.executable, "-m", "mlxprof", "sweep", "-m", "gemma3n-tiny", "--knob",
                             "MLX_FAKE=default,fast", "--reps", "5", "--json", str(out), "-q"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        if out.exists() and json.loads(out.read_text())["points"]:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C does: the sweep and its running worker
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    part = results.load(out, sw.SweepResult)
    assert part.partial and 1 <= len(part.points) < 10 and f"--resume {out}" in err
    assert all(p.status == "ok" for p in part.points)  # the interrupted worker is not a failed point


def test_save_gating_through_the_agreed_api(fake, monkeypatch):
    calls = []
    mod = types.ModuleType("mlxprof.gating")
    mod.save_decision = lambda chip, knob, value, provenance, path=None: calls.append((knob, value, provenance, path))
    monkeypatch.setitem(sys.modules, "mlxprof.gating", mod)
    import mlxprof

    monkeypatch.setattr(mlxprof, "gating", mod, raising=False)
    r = sw.run("gemma3n-tiny", knobs={"MLX_BFS_MAX_WIDTH": ["default", "7"]}, reps=2, runs=2, worker_cmd=fake.cmd)
    chip = types.SimpleNamespace(backend="cpu", name="test chip", device_info={})
    assert sw.save_gating(r, chip=chip, path="/tmp/g.json") == ["MLX_BFS_MAX_WIDTH"]
    knob, value, prov, path = calls[0]
    assert knob == "MLX_BFS_MAX_WIDTH" and value is None and path == "/tmp/g.json"  # equal speeds: leave default
    assert prov["source"] == "mlxprof sweep" and prov["recommendation"] == "default"
    r.partial = True
    with pytest.raises(InputError, match="partial"):
        sw.save_gating(r, chip=chip)


@pytest.mark.skipif(importlib.util.find_spec("mlxprof.gating") is not None, reason="gating module present")
def test_save_gating_without_gating_module_fails_fast(fake, monkeypatch, tmp_path):
    monkeypatch.setenv(sw.WORKER_ENV, " ".join(fake.cmd))
    res = CliRunner().invoke(main, ["sweep", "-m", "gemma3n-tiny", "--knob", "MLX_BFS_MAX_WIDTH=default,5",
                                    "--save-gating", "--json", str(tmp_path / "s.json")])
    assert "mlxprof.gating" in one_line_error(res) and fake.calls() == []


def test_plot(fake, monkeypatch):
    r = sw.run("gemma3n-tiny", "MLX_FAKE", ["default", "fast"], reps=2, runs=3, worker_cmd=fake.cmd)
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    fig = r.plot()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["default", "fast"] and "CI" in ax.get_ylabel()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"mlxprof\[plot\]"):
        r.plot()


# ---------------------------------------------------------------- the real thing


def test_real_sweep_end_to_end(tmp_path):
    out = tmp_path / "real.json"
    res = CliRunner().invoke(main, ["sweep", "-m", "gemma3n-tiny", "--knob", "MLX_DISABLE_COMPILE=default,1",
                                    "--reps", "2", "--runs", "2", "--tokens", "8", "--warmup", "2",
                                    "--json", str(out)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    r = results.load(out, sw.SweepResult)
    assert [p.status for p in r.points] == ["ok"] * 4, [p.error for p in r.points]
    assert r.model.alias == "gemma3n-tiny" and r.decode.tokens == 8 and r.decode.runs == 2
    for p in r.points:
        assert len(p.tok_s) == 2 and all(x > 0 for x in p.tok_s)
        assert (p.env_seen.get("MLX_DISABLE_COMPILE") == "1") == (p.label == "1")
        o = p.overhead
        assert o.import_s > 0 and o.build_s > 0 and o.measure_s > 0 and o.total_s >= o.measure_s + o.build_s
    assert {x.verdict for x in r.rows} <= {"baseline", "significant gain", "no significant difference", "regression"}
    assert r.recommendation is not None and "process start" in res.stdout and "95% CI" in res.stdout
