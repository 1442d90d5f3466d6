"""Hostile but realistic input: one line and exit 2 before work, nothing measured
lost, no raw traceback. Every case runs on the tiny model in seconds."""

import json
import sys
import os

import pytest
from click.testing import CliRunner

from mlxprof import results
from mlxprof.cli import main

TINY = ["-m", "gemma3n-tiny", "--runs", "1", "--warmup", "1", "--tokens", "3", "-q"]


def run(*args, **kw):
    return CliRunner().invoke(main, list(args), **kw)


def one_line(r, code=2):
    assert r.exit_code == code, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    return lines[0]


@pytest.mark.parametrize("args, says", [
    (["decode", *TINY, "--json", ""], "--json ''"),
    (["env", "--json", ""], "--json ''"),
    (["decode", *TINY, "--json", "same.json", "--trace", "same.json"], "same file"),
    (["decode", *TINY, "--tokens", "0"], "--tokens"),
    (["vlm", "-m", "gemma3n-tiny", "--image", "nothing.png"], "no such file"),
])
def test_bad_values_are_one_line_and_exit_2(tmp_path, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    assert says in one_line(run(*args))
    assert not (tmp_path / "same.json").exists()


def test_image_size_and_decompression_bomb_refused_before_building(tmp_path):
    from PIL import Image

    small = tmp_path / "small.png"
    Image.new("RGB", (8, 8)).save(small)
    assert "at most" in one_line(run("decode", *TINY, "--image", str(small), "--image-size", "102400"))
    bomb = tmp_path / "bomb.png"
    _png_claiming(bomb, 100_000, 100_000)
    assert "refusing to decode" in one_line(run("decode", *TINY, "--image", str(bomb)))


def _png_claiming(path, w, h):
    """A PNG whose header claims w×h pixels (its data is one empty row)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
                     + chunk(b"IEND", b""))


def full_disk_for(monkeypatch, name):
    """Writes to files ending in `name` fail as on a full disk; others go through."""
    real = results._write_atomic

    def full_disk(path, text):
        if str(path).endswith(name):
            raise OSError(28, "No space left on device")
        return real(path, text)

    monkeypatch.setattr(results, "_write_atomic", full_disk)


def test_a_failed_write_after_measuring_prints_the_result_and_keeps_a_copy(tmp_path, monkeypatch):
    full_disk_for(monkeypatch, "k.json")
    monkeypatch.setattr(results, "WRITTEN", {})
    r = run("decode", *TINY, "--json", str(tmp_path / "k.json"))
    assert r.exit_code == 1
    assert "tok/s" in r.stdout  # the table came first
    last = r.stderr.strip().splitlines()[-1]
    assert "No space left on device" in last and "kept in" in last and "Traceback" not in r.output
    kept = last.split("kept in ")[1].strip()
    try:
        assert json.loads(open(kept).read())["kind"] == "decode"
    finally:
        os.unlink(kept)


def test_an_unexpected_exception_is_one_line_with_a_log(tmp_path, monkeypatch):
    import mlxprof.profile as profile

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(profile, "open_session", lambda *a, **k: {}["boom"])
    line = one_line(run("decode", *TINY), code=1)
    assert line.startswith("mlxprof decode: unexpected KeyError") and "full traceback in" in line
    log = line.split("full traceback in ")[1].rstrip(")")
    assert "Traceback" in open(log).read()


def test_ctrl_c_says_where_the_partial_result_is(tmp_path, monkeypatch):
    from mlxprof import decode as dec

    real = dec.run_once
    calls = []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 3:  # the discarded priming run, measured run 1, then Ctrl-C in run 2
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(dec, "run_once", interrupted)
    monkeypatch.setattr(results, "WRITTEN", {})
    out = tmp_path / "k.json"
    r = run("decode", "-m", "gemma3n-tiny", "--runs", "3", "--warmup", "1", "--tokens", "3", "-q",
            "--json", str(out))
    assert r.exit_code == 130
    assert f"measurements so far are in {out}" in r.stderr
    assert json.loads(out.read_text())["runs"] and "partial: 1 of 3" in out.read_text()


# ---------------------------------------------------------------- sweeps never destroy measurements

from test_sweep import FAKE_WORKER  # noqa: E402  (the stand-in worker the sweep tests use)

SWEEP = ["sweep", "-m", "gemma3n-tiny", "--knob", "MLX_FAKE=default,fast", "--reps", "1", "--runs", "2", "-q"]


@pytest.fixture
def fake_worker(tmp_path, monkeypatch):
    from mlxprof import sweep as sw

    path = tmp_path / "fake_worker.py"
    path.write_text(FAKE_WORKER)
    monkeypatch.setenv(sw.WORKER_ENV, f"{sys.executable} {path}")
    monkeypatch.delenv("MLX_FAKE", raising=False)
    monkeypatch.delenv("FAKE_LOG", raising=False)
    return path


def test_a_sweep_file_is_not_replaced_without_resume_or_overwrite(tmp_path, fake_worker):
    out = tmp_path / "s.json"
    assert run(*SWEEP, "--json", str(out)).exit_code == 0
    before = out.read_text()
    line = one_line(run(*SWEEP, "--json", str(out)))
    assert "already holds a sweep" in line and f"--resume {out}" in line and "--overwrite" in line
    assert out.read_text() == before and not (tmp_path / "s.json.lock").exists()
    r = run(*SWEEP, "--json", str(out), "--overwrite")
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["provenance"]["date"] and not (tmp_path / "s.json.lock").exists()
    other = tmp_path / "decode.json"
    other.write_text(json.dumps({"schema": json.loads(before)["schema"], "kind": "decode"}))
    assert "holds a 'decode' result" in one_line(run(*SWEEP, "--json", str(other)))


def test_two_sweeps_on_one_file_the_second_is_refused(tmp_path, fake_worker):
    from mlxprof.sweep.guard import exclusive

    out = tmp_path / "s.json"
    with exclusive(out):  # a sweep running in another process holds the same lock
        line = one_line(run(*SWEEP, "--json", str(out)))
        assert "another mlxprof sweep is writing" in line and not out.exists()
    r = run(*SWEEP, "--json", str(out))  # released: the file is free again
    assert r.exit_code == 0, r.output


def test_a_sweep_where_every_point_failed_exits_1_with_the_real_error(tmp_path, monkeypatch, fake_worker):
    monkeypatch.setenv("MLX_FAKE", "crash")  # the fake worker prints a traceback and exits 3
    out = tmp_path / "s.json"
    r = run("sweep", "-m", "gemma3n-tiny", "--knob", "MLX_BFS_MAX_WIDTH=default,7", "--reps", "1",
            "--json", str(out), "-q")
    assert r.exit_code == 1, r.output
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("mlxprof: error: every point failed") and "RuntimeError: boom in the worker" in last
    assert "exited with code 3" in last and "stderr tail:" not in last
    assert "RuntimeError: boom in the worker" in r.stdout  # the table's note says it too
    assert "baseline: no data" in r.stdout
    assert all(p["status"] == "failed" for p in json.loads(out.read_text())["points"])


def test_a_failed_point_line_names_the_error():
    from mlxprof.sweep.runner import failure_reason

    assert failure_reason("worker exited with code 3; stderr tail:\nTraceback (most recent call last):\n"
                          "  File x\nRuntimeError: boom\n") == "worker exited with code 3: RuntimeError: boom"
    assert failure_reason("worker exited with code 9; stderr tail:\n") == "worker exited with code 9 (no stderr)"
    assert failure_reason("killed after the 2 s per-point timeout; stderr tail:\n…about to hang") == \
        "killed after the 2 s per-point timeout: about to hang"


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_corrupt_gating_file_is_refused_before_the_sweep(tmp_path, monkeypatch, fake_worker, how):
    bad = tmp_path / "gating.json"
    bad.write_text("{not json")
    log = tmp_path / "calls.log"
    monkeypatch.setenv("FAKE_LOG", str(log))
    args = ["--save-gating", "--json", str(tmp_path / "s.json")]
    if how == "option":
        args += ["--gating-file", str(bad)]
    else:
        monkeypatch.setenv("MLXPROF_GATING_FILE", str(bad))
    line = one_line(run(*SWEEP, *args))
    assert f"gating file {bad}" in line and "not JSON" in line
    assert not log.exists() and not (tmp_path / "s.json").exists()  # no worker ran


# ---------------------------------------------------------------- --env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_mistyped_mlx_variable_is_a_warning_naming_the_known_one(capsys):
    from mlxprof.subproc import parse_env

    assert parse_env(["MLX_DISABLE_COMPLIE=1", "OMP_NUM_THREADS=2"]) == {"MLX_DISABLE_COMPLIE": "1",
                                                                       "OMP_NUM_THREADS": "2"}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "MLX_DISABLE_COMPLIE" in err[0] and "did you mean MLX_DISABLE_COMPILE?" in err[0]
    parse_env(["MLX_DISABLE_COMPILE=1", "MLX_MAX_OPS_PER_BUFFER=10"])
    assert capsys.readouterr().err == ""


def test_ctrl_c_under_env_keeps_the_childs_runs_in_the_json(tmp_path):
    import signal
    import subprocess
    import time

    out = tmp_path / "k.json"
    env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "mlxprof", "decode", "-m", "gemma3n-tiny", "--runs", "2000",
                             "--warmup", "1", "--tokens", "20", "-q", "--json", str(out),
                             "--env", "MLX_DISABLE_COMPILE=1"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        child = [p for p in tmp_path.glob("mlxprof-*.json") if p.stat().st_size]
        if child and '"runs"' in child[0].read_text():
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C does: the parent and the child measuring
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    saved = json.loads(out.read_text())
    assert saved["kind"] == "decode" and saved["runs"] and len(saved["runs"]) < 2000
    assert saved["provenance"]["command"].startswith("MLX_DISABLE_COMPILE=1 ")
    assert f"measurements so far are in {out}" in err.strip().splitlines()[-1]
    assert not list(tmp_path.glob("mlxprof-*.json"))  # the child's temporary file was moved, not copied


def test_a_failing_env_child_leaves_what_it_measured(tmp_path, monkeypatch):
    """The child measured a run, then failed (exit 3): its result reaches --json."""
    monkeypatch.setattr(results, "WRITTEN", {})
    first = tmp_path / "first.json"
    assert run("decode", *TINY, "--json", str(first)).exit_code == 0
    fake = tmp_path / "python"
    fake.write_text(f"#!{sys.executable}\nimport shutil, sys\n"
                    f"shutil.copy({str(first)!r}, sys.argv[sys.argv.index('--json') + 1])\nsys.exit(3)\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    out = tmp_path / "k.json"
    r = run("decode", *TINY, "--json", str(out), "--env", "MLX_DISABLE_COMPILE=1")
    assert r.exit_code == 3
    assert f"before it failed are in {out}" in r.stderr.strip().splitlines()[-1]
    saved = json.loads(out.read_text())
    assert saved["runs"] == json.loads(first.read_text())["runs"]
    assert saved["provenance"]["command"].startswith("MLX_DISABLE_COMPILE=1 ")


# ---------------------------------------------------------------- absurd numbers, before any work

@pytest.mark.parametrize("args, says", [
    (["decode", "-m", "gemma3n-tiny", "--tokens", "99999999999999999999999"], "at most 10,000,000"),
    (["decode", "-m", "gemma3n-tiny", "--runs", "100000000"], "--runs 100000000 is too large"),
    (["parity", "-m", "gemma3n-tiny", "--warmup", "100000000"], "--warmup"),
    (["decode", "-m", "gemma3n-tiny", "--prompt-tokens", "5000"], "holds 4096 (max_position_embeddings)"),
    (["decode", "-m", "gemma3n-tiny", "--tokens", "4000", "--warmup", "90", "--prompt-tokens", "7"], "4097"),
    (["sweep", "-m", "gemma3n-tiny", "--knob", "MLX_BFS_MAX_WIDTH=default,5", "--tokens", "9000"], "4096"),
    (["floor", "-m", "gemma3n-tiny", "--probe-mb", "100000000"], "--probe-mb 100000000 "),
])
def test_absurd_counts_are_refused_before_the_model_is_built(tmp_path, monkeypatch, args, says):
    from mlxprof import models

    monkeypatch.chdir(tmp_path)
    built = []
    monkeypatch.setattr(models, "prepare_target", lambda *a, **k: built.append(1) or {}["built"])
    assert says in one_line(run(*args, "-q") if args[0] != "floor" else run(*args))
    assert built == [] and not list(tmp_path.iterdir())


def test_a_probe_larger_than_the_device_memory_is_refused_before_building(monkeypatch):
    from mlxprof import hardware, models

    monkeypatch.setattr(hardware, "available_memory", lambda chip: (8 << 30, "available RAM"))
    monkeypatch.setattr(models, "prepare_target", lambda *a, **k: {}["built"])
    line = one_line(run("floor", "-m", "gemma3n-tiny", "--probe-mb", "5000"))
    assert "needs ~9.8 GiB" in line and "offers 8.0 GiB" in line and "at most 4096 MB" in line


DOCS = os.path.join(os.path.dirname(__file__), "..", "docs", "benchmark_results")


def test_report_refuses_results_of_two_models(tmp_path):
    a = os.path.join(DOCS, "llama3.2-1b-4bit-nvidia-h200.decode.json")
    b = os.path.join(DOCS, "gemma3n-e2b-4bit-nvidia-h200.floor.json")
    line = one_line(run("report", "--from", a, "--from", b, "--out", str(tmp_path / "x.md")))
    assert "a report describes one model" in line and not (tmp_path / "x.md").exists()


def test_report_checks_the_image_before_measuring(tmp_path, monkeypatch):
    import mlxprof.profile as profile

    monkeypatch.setattr(profile, "decode", lambda *a, **k: pytest.fail("measured before the image was checked"))
    line = one_line(run("report", "-m", "gemma3n-tiny", "--image", str(tmp_path / "missing.png"),
                        "--out", str(tmp_path / "r.md"), "-q"))
    assert "no such file" in line


def test_a_partial_decode_says_so_in_the_document(tmp_path):
    data = json.loads(open(os.path.join(DOCS, "llama3.2-1b-4bit-nvidia-h200.decode.json")).read())
    data["notes"] = data.get("notes", []) + ["partial: 2 of 3 runs finished"]
    src = tmp_path / "p.decode.json"
    src.write_text(json.dumps(data))
    r = run("report", "--from", str(src), "--out", str(tmp_path / "p.md"), "--no-plots")
    assert r.exit_code == 0, r.output
    assert "partial: 2 of 3 runs finished" in (tmp_path / "p.md").read_text()


def test_floor_prints_its_table_before_a_failed_write(tmp_path, monkeypatch):
    full_disk_for(monkeypatch, "f.json")
    r = run("floor", "-m", "gemma3n-tiny", "--no-decode", "--iterations", "2", "--probe-mb", "1",
            "--json", str(tmp_path / "f.json"))
    assert r.exit_code == 1 and "GB/s" in r.stdout  # the table came first
    kept = r.stderr.strip().splitlines()[-1].split("kept in ")[1].strip()
    try:
        assert json.loads(open(kept).read())["kind"] == "floor"
    finally:
        os.unlink(kept)


@pytest.mark.parametrize("extra", [[], ["--depth", "0"], ["--env", "MLX_MAX_OPS_PER_BUFFER=10"]])
def test_a_second_measurement_never_replaces_a_saved_result(tmp_path, extra):
    out = tmp_path / "r.json"
    r = run("decode", "-m", "gemma3n-tiny", "--runs", "1", "--warmup", "1", "--tokens", "2", "-q",
            "--json", str(out))
    assert r.exit_code == 0, r.output
    before = out.read_bytes()
    r = run("decode", "-m", "gemma3n-tiny", "--runs", "1", "--warmup", "1", "--tokens", "2", "-q",
            "--json", str(out), *extra)
    assert r.exit_code == 2 and "already holds a saved 'decode' result" in r.output, r.output
    assert out.read_bytes() == before


def test_report_refuses_to_measure_over_saved_results(tmp_path):
    from mlxprof.errors import InputError
    from mlxprof.report.measure import Steps

    (tmp_path / "t.floor.json").write_text(json.dumps({"schema": "mlxprof", "kind": "floor"}))
    Steps(tmp_path / "x", ["decode", "floor"], print)  # another stem: nothing to replace
    with pytest.raises(InputError, match="t.floor.json already holds a saved 'floor' result"):
        Steps(tmp_path / "t", ["decode", "floor"], print)
