"""Hostile but realistic input: one line and exit 2 before work, nothing measured
lost, no raw traceback. Every case runs on the tiny model in seconds."""

import json
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


def test_a_failed_write_after_measuring_prints_the_result_and_keeps_a_copy(tmp_path, monkeypatch):
    real = results._write_atomic

    def full_disk(path, text):
        if str(path).endswith("k.json"):
            raise OSError(28, "No space left on device")
        return real(path, text)

    monkeypatch.setattr(results, "_write_atomic", full_disk)
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
        if len(calls) == 2:
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
