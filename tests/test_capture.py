"""`mlxprof decode --metal-capture`: driven through a fake capture API on this
CPU box, with recorded Metal device_info standing in for Apple silicon."""

import json
import sys

import pytest
from click.testing import CliRunner

from mlxprof import capture, decode, hardware, results, session, subproc
from mlxprof.cli import main
from mlxprof.results import ModelIdentity

from recorded_chips import CHIPS

TINY = ["-m", "gemma3n-tiny", "--weights", "synthetic", "--prompt-tokens", "4", "-q"]


def fake_chip(monkeypatch, key):
    backend, info = CHIPS[key]
    real = hardware.detect
    monkeypatch.setattr(hardware, "detect", lambda *a, **kw: real(device_info=info, backend=backend))


@pytest.fixture(autouse=True)
def parent_process(monkeypatch):
    """Each test starts as the user's process (no MTL_CAPTURE_ENABLED)."""
    monkeypatch.delenv(capture.ENV, raising=False)
    monkeypatch.setattr(results, "WRITTEN", {})


class FakeCapture:
    """Records start/stop with the number of decode steps built so far;
    `writes` makes stop() leave a .gputrace bundle, as Metal does."""

    def __init__(self, log, steps, writes=True):
        self.log, self.steps, self.writes = log, steps, writes

    def start(self, path):
        self.log.append(("start", path, self.steps[0]))

    def stop(self):
        self.log.append(("stop", self.steps[0]))
        if self.writes:
            import os

            path = next(e[1] for e in self.log if e[0] == "start")
            os.makedirs(path)


def counting_steps(monkeypatch, log):
    """Wrap decode.make_step so every forward pass built is counted (and logged
    beside syncs), the prefill included."""
    steps = [0]
    real = decode.make_step

    def make_step(*a, **kw):
        step = real(*a, **kw)

        def counted(y):
            steps[0] += 1
            return step(y)

        return counted

    monkeypatch.setattr(decode, "make_step", make_step)
    return steps


def no_work(monkeypatch):
    """Any model resolve, build or fresh process fails the test."""
    def boom(*a, **kw):
        raise AssertionError("work started")

    import mlxprof.models

    monkeypatch.setattr(session, "open_session", boom)
    monkeypatch.setattr(mlxprof.models, "resolve", boom)
    monkeypatch.setattr(subproc, "rerun", boom)
    monkeypatch.setattr(capture, "metal_api", boom)


def one_line_error(r, code, says, alone=True):
    """One error line, the last on stderr; `alone`: the only line (nothing started)."""
    assert r.exit_code == code, r.output
    lines = r.stderr.strip().splitlines()
    assert [x for x in lines if x.startswith("mlxprof: error: ")] == lines[-1:], r.stderr
    assert says in lines[-1] and (len(lines) == 1 or not alone), r.stderr


# ------------------------------------------------------------------ the window, alone

def test_window_starts_after_warmup_and_stops_after_n_tokens():
    log = []
    api = FakeCapture(log, [0], writes=False)
    w = capture.Window(api, "/t/x.gputrace", warmup=3, tokens=2, sync=lambda: log.append("sync"))
    for n in range(5):
        log.append(n)
        w.on_token(n)
    assert log == [0, 1, 2, "sync", ("start", "/t/x.gputrace", 0), 3, 4, "sync", ("stop", 0)]
    w.close()  # already stopped: no second stop
    assert log[-1] == ("stop", 0) and log.count(("stop", 0)) == 1


def test_window_close_stops_a_capture_an_error_left_open():
    log = []
    w = capture.Window(FakeCapture(log, [0], writes=False), "/t/x.gputrace", warmup=1, tokens=5, sync=lambda: None)
    w.close()
    assert log == []  # never started: nothing to stop
    w.on_token(0)
    w.close()
    assert [e[0] for e in log] == ["start", "stop"]


# ------------------------------------------------------------------ the capture process

def test_capture_process_warmup_outside_exactly_n_tokens_inside(tmp_path, monkeypatch):
    """MTL_CAPTURE_ENABLED=1 at start (the fresh process): prefill and warm-up,
    sync, start(path), exactly N forward passes, sync, stop(), in that order."""
    fake_chip(monkeypatch, "m4-pro")
    monkeypatch.setenv(capture.ENV, "1")
    log = []
    steps = counting_steps(monkeypatch, log)
    monkeypatch.setattr(capture, "metal_api", lambda: FakeCapture(log, steps))
    import mlx.core as mx

    real_sync = mx.synchronize
    monkeypatch.setattr(mx, "synchronize", lambda *a: (log.append(("sync", steps[0])), real_sync(*a))[1])
    trace = tmp_path / "d" / "run.gputrace"
    r = CliRunner().invoke(main, ["decode", *TINY, "--warmup", "3", "--metal-capture", str(trace),
                                  "--capture-tokens", "5", "--json", "-"])
    assert r.exit_code == 0, r.output
    warm = 1 + 3  # the prefill's forward pass, then one per warm-up token
    assert log == [("sync", warm), ("start", str(trace), warm), ("sync", warm + 5), ("stop", warm + 5)]
    res = capture.CaptureResult.model_validate(json.loads(r.stdout))
    assert res.kind == "capture" and res.path == str(trace) and trace.is_dir()
    assert (res.settings.warmup, res.settings.tokens, res.settings.prompt_tokens) == (3, 5, 4)
    assert len(res.token_ids) == 5 and res.model.name == "gemma3n-tiny" and res.model.weights == "synthetic"
    assert res.provenance.backend == "metal" and res.provenance.command.startswith("mlxprof")


def test_capture_process_prints_the_path_and_how_to_open_it(tmp_path, monkeypatch):
    fake_chip(monkeypatch, "m1-ultra")
    monkeypatch.setenv(capture.ENV, "1")
    log = []
    monkeypatch.setattr(capture, "metal_api", lambda: FakeCapture(log, [0]))
    trace = tmp_path / "a.gputrace"
    out = tmp_path / "a.json"
    r = CliRunner().invoke(main, ["decode", *TINY, "--warmup", "1", "--metal-capture", str(trace),
                                  "--capture-tokens", "1", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert f"capture: {trace}" in r.stdout
    assert f"open it in Xcode (File > Open, or `open {trace}`)" in r.stdout
    assert "Metal debugger shows the GPU timeline" in r.stdout
    assert results.load(out, capture.CaptureResult).settings.tokens == 1
    assert [e[0] for e in log] == ["start", "stop"]


def test_capture_process_says_when_metal_wrote_nothing(tmp_path, monkeypatch):
    fake_chip(monkeypatch, "m4")
    monkeypatch.setenv(capture.ENV, "1")
    monkeypatch.setattr(capture, "metal_api", lambda: FakeCapture([], [0], writes=False))
    trace = tmp_path / "none.gputrace"
    r = CliRunner().invoke(main, ["decode", *TINY, "--warmup", "1", "--metal-capture", str(trace),
                                  "--capture-tokens", "2"])
    one_line_error(r, 1, f"Metal wrote no {trace}")


# ------------------------------------------------------------------ the parent: checks, then a fresh process

def fake_child(monkeypatch, seen, writes=True, code=0):
    """Stand in for the fresh process: record its argv and environment, write
    the result it would write (and the capture, unless told not to)."""
    def wait(argv, env):
        seen.update(argv=argv, env=env)
        trace = argv[argv.index("--metal-capture") + 1]
        if writes:
            import os

            os.makedirs(trace)
        ident = ModelIdentity(name="gemma3n-tiny", weights="synthetic", quantization="bfloat16",
                              dtype="bfloat16", num_layers=2, parameters=1, bytes_per_token=1)
        res = capture.CaptureResult(
            provenance=results.provenance("mlxprof decode " + " ".join(argv[4:])), model=ident,
            settings=capture.CaptureSettings(warmup=20, tokens=3, prompt_tokens=4, dtype="bfloat16"),
            path=trace, token_ids=[1, 2, 3])
        results.save(res, argv[argv.index("--json") + 1])
        return code

    monkeypatch.setattr(subproc, "_wait_for_child", wait)


def test_parent_reruns_with_mtl_capture_enabled(tmp_path, monkeypatch):
    fake_chip(monkeypatch, "m3-max")
    seen = {}
    fake_child(monkeypatch, seen)
    trace = tmp_path / "x.gputrace"
    out = tmp_path / "x.json"
    r = CliRunner().invoke(main, ["decode", *TINY, "--metal-capture", str(trace), "--capture-tokens", "3",
                                  "--env", "MLX_DISABLE_COMPILE=1", "--json", str(out)])
    assert r.exit_code == 0, r.output
    env, argv = seen["env"], seen["argv"]
    assert env[capture.ENV] == "1" and env["MLX_DISABLE_COMPILE"] == "1"
    assert argv[:4] == [sys.executable, "-m", "mlxprof", "decode"] and "--env" not in argv
    assert argv[argv.index("--metal-capture") + 1] == str(trace)
    assert argv[argv.index("--capture-tokens") + 1] == "3"
    assert "fresh process with MLX_DISABLE_COMPILE=1 MTL_CAPTURE_ENABLED=1" in r.stderr
    assert f"open `{trace}`" not in r.stdout and f"`open {trace}`" in r.stdout
    saved = results.load(out, capture.CaptureResult)
    assert saved.provenance.command.startswith("MLX_DISABLE_COMPILE=1 MTL_CAPTURE_ENABLED=1 mlxprof decode")


def test_parent_says_when_the_child_left_no_capture(tmp_path, monkeypatch):
    fake_chip(monkeypatch, "m3-max")
    fake_child(monkeypatch, {}, writes=False)
    trace = tmp_path / "x.gputrace"
    r = CliRunner().invoke(main, ["decode", *TINY, "--metal-capture", str(trace), "--capture-tokens", "3"])
    one_line_error(r, 1, f"Metal wrote no {trace}", alone=False)
    assert "fresh process with MTL_CAPTURE_ENABLED=1" in r.stderr


def test_a_failing_child_exit_code_comes_back(tmp_path, monkeypatch):
    fake_chip(monkeypatch, "m3-max")
    monkeypatch.setattr(subproc, "_wait_for_child", lambda argv, env: 2)
    r = CliRunner().invoke(main, ["decode", *TINY, "--metal-capture", str(tmp_path / "x.gputrace"),
                                  "--capture-tokens", "3"])
    assert r.exit_code == 2


@pytest.mark.parametrize("key, says", [("cpu", "this is the CPU backend"), ("h100", "this is the CUDA backend")])
def test_not_metal_exit_2_before_any_work(tmp_path, monkeypatch, key, says):
    fake_chip(monkeypatch, key)
    no_work(monkeypatch)
    r = CliRunner().invoke(main, ["decode", *TINY, "--metal-capture", str(tmp_path / "x.gputrace"),
                                  "--capture-tokens", "3"])
    one_line_error(r, 2, f"--metal-capture needs MLX's Metal backend (Apple silicon); {says}")
    assert not (tmp_path / "x.gputrace").exists()


def test_not_metal_in_the_capture_process_too(tmp_path, monkeypatch):
    fake_chip(monkeypatch, "cpu")
    monkeypatch.setenv(capture.ENV, "1")
    no_work(monkeypatch)
    r = CliRunner().invoke(main, ["decode", *TINY, "--metal-capture", str(tmp_path / "x.gputrace"),
                                  "--capture-tokens", "3"])
    one_line_error(r, 2, "needs MLX's Metal backend")


def test_an_existing_capture_is_never_replaced(tmp_path, monkeypatch):
    fake_chip(monkeypatch, "m4-pro")
    no_work(monkeypatch)
    old = tmp_path / "mine.gputrace"
    old.mkdir()  # a .gputrace document is a bundle (a folder)
    (old / "data").write_text("a user's capture")
    r = CliRunner().invoke(main, ["decode", *TINY, "--metal-capture", str(old), "--capture-tokens", "3"])
    one_line_error(r, 2, "already exists")
    assert (old / "data").read_text() == "a user's capture"
    plain = tmp_path / "file.gputrace"
    plain.write_text("x")
    r = CliRunner().invoke(main, ["decode", *TINY, "--metal-capture", str(plain), "--capture-tokens", "3"])
    one_line_error(r, 2, "already exists")


@pytest.mark.parametrize("args, says", [
    (["--metal-capture", "{d}/x.trace", "--capture-tokens", "3"], "must end in .gputrace"),
    (["--metal-capture", "{d}/x", "--capture-tokens", "3"], "must end in .gputrace"),
    (["--capture-tokens", "3"], "--capture-tokens needs --metal-capture"),
    (["--metal-capture", "{d}/x.gputrace"], "--metal-capture needs --capture-tokens"),
    (["--metal-capture", "{d}/x.gputrace", "--capture-tokens", "0"], "--capture-tokens must be a positive"),
    (["--metal-capture", "{d}/x.gputrace", "--capture-tokens", "3", "--warmup", "0"], "--warmup must be"),
    (["--metal-capture", "{d}/x.gputrace", "--capture-tokens", "3", "--runs", "2"], "--runs does not apply"),
    (["--metal-capture", "{d}/x.gputrace", "--capture-tokens", "3", "--tokens", "9"], "--tokens does not apply"),
    (["--metal-capture", "{d}/x.gputrace", "--capture-tokens", "3", "--gpu-timeline"], "--gpu-timeline does not"),
    (["--metal-capture", "{d}/x.gputrace", "--capture-tokens", "3", "--trace", "{d}/t.json"], "--trace does not"),
    (["--metal-capture", "{d}/x.gputrace", "--capture-tokens", "3", "--image", "{d}/i.png"], "--image does not"),
])
def test_bad_requests_exit_2_before_any_work(tmp_path, monkeypatch, args, says):
    fake_chip(monkeypatch, "m4-pro")
    no_work(monkeypatch)
    r = CliRunner().invoke(main, ["decode", *TINY, *[a.format(d=tmp_path) for a in args]])
    one_line_error(r, 2, says)


def test_unwritable_folder_exit_2(tmp_path, monkeypatch):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    fake_chip(monkeypatch, "m4-pro")
    no_work(monkeypatch)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        r = CliRunner().invoke(main, ["decode", *TINY, "--metal-capture", str(ro / "x.gputrace"),
                                      "--capture-tokens", "3"])
    finally:
        ro.chmod(0o700)
    one_line_error(r, 2, "permission denied")


def test_positions_checked_with_the_captured_tokens(tmp_path, monkeypatch):
    """gemma3n-tiny holds 4096 positions: 4 + 20 + 4073 = 4097 is refused before any process starts."""
    fake_chip(monkeypatch, "m4-pro")
    monkeypatch.setattr(subproc, "rerun", lambda *a, **kw: pytest.fail("a process started"))
    r = CliRunner().invoke(main, ["decode", *TINY, "--metal-capture", str(tmp_path / "x.gputrace"),
                                  "--capture-tokens", "4073"])
    one_line_error(r, 2, "--capture-tokens = 4097 positions")
