"""Kernels compiled ahead (precompile.py): a model's quantized calls, the queue's
order, one marker per finished call, the merge into MLX's cache, the stand-in
matmul, and the priming run that uses it all. MLX's CPU backend compiles no
kernels, so the workers run the calls for real and the cache holds markers only;
the `.ptx` handling is exercised on files."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import mlx.core as mx
import mlx.nn as nn
import pytest

from mlxprof import coldstart, kernel_workers, precompile
from mlxprof.coldstart import PTX_ENV, Priming, describe
from mlxprof.kernel_workers import merge
from mlxprof.precompile import Call, calls_of, order, pending, stand_ins


class Tiny(nn.Module):
    """Three quantized layers, one of them an embedding (also usable as the output head)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.QuantizedEmbedding(1000, 128, group_size=64, bits=4)
        self.up = nn.QuantizedLinear(128, 256, bias=False, group_size=64, bits=4)
        self.down = nn.QuantizedLinear(256, 128, bias=False, group_size=32, bits=4, mode="mxfp4")
        self.norm = nn.RMSNorm(128)

    def __call__(self, ids):
        h = self.embed(ids)
        return self.embed.as_linear(self.norm(self.down(nn.gelu(self.up(h)))))


def test_calls_of_lists_each_quantized_signature_once_per_token_count():
    calls = calls_of(Tiny(), "float32", [16, 1, 16])
    assert len(calls) == len(set(calls)) == 8  # (embed rows + head) + up + down, at 16 and 1 tokens
    assert Call("embed", 4, 64, "affine", "float32", 1000, 128, 16) in calls
    assert Call("matmul", 4, 64, "affine", "float32", 1000, 128, 1) in calls  # the tied head
    assert Call("matmul", 4, 64, "affine", "float32", 256, 128, 16) in calls
    assert Call("matmul", 4, 32, "mxfp4", "float32", 128, 256, 1) in calls
    assert calls_of(nn.Linear(8, 8), "float32", [4]) == []  # nothing quantized: nothing to do


def test_order_puts_one_call_of_each_kernel_class_first():
    same = [Call("matmul", 4, 64, "affine", "bfloat16", n, 2048, 16) for n in (2048, 8192, 7680)]
    other = [Call("matmul", 4, 64, "affine", "bfloat16", 4, 2048, 16),  # unaligned width
             Call("matmul", 4, 64, "affine", "bfloat16", 2048, 2048, 1)]  # one token
    q = order(same + other)
    assert sorted(q) == sorted(same + other)
    first = q[:3]
    assert sum(c in same for c in first) == 1 and all(c in first for c in other)


def test_kernel_guess_follows_mlx_cuda_dispatch():
    g = precompile.kernel_guess
    call = lambda n, k, m, gs=64: Call("matmul", 4, gs, "affine", "bfloat16", n, k, m)  # noqa: E731
    assert g(call(2048, 2048, 1))[-1] == g(call(262400, 2048, 1))[-1] == g(call(2048, 2048, 7))[-1] == "qmv"
    assert g(call(2048, 64, 1))[-1] == "qmv" and g(call(262400, 64, 1))[-2:] == ("sm90", 256)
    assert g(call(2048, 64, 16)) == g(call(2048, 64, 274)) == g(call(8192, 64, 16))  # sm90: one module per width tile
    assert g(call(2048, 64, 16))[-2:] == ("sm90", 256) and g(call(4, 64, 16))[-1] == 16
    assert g(call(2048, 2048, 16)) == g(call(8192, 2048, 9)) != g(call(2048, 2048, 274))  # sm80: token tiles
    assert [g(call(2048, 2048, m))[-1] for m in (8, 16, 17, 32, 33, 274)] == [16, 16, 32, 32, 64, 64]
    assert g(call(4, 2048, 16))[-2] == "naive"


def test_the_pool_never_compiles_one_guessed_module_twice_at_once(tmp_path, monkeypatch):
    cache = tmp_path / "ptx"
    cache.mkdir()
    log = tmp_path / "log"
    script = ("import sys, time; f = open(sys.argv[1], 'a')\n"
              "for line in sys.stdin:\n"
              "    f.write(f'{time.monotonic()} start {line.strip()}\\n'); f.flush(); time.sleep(0.3)\n"
              "    f.write(f'{time.monotonic()} end {line.strip()}\\n'); f.flush(); print('ok 0.3', flush=True)\n")
    monkeypatch.setattr(kernel_workers.Pool, "command", [sys.executable, "-c", script, str(log)])
    calls = [Call("matmul", 4, 64, "affine", "bfloat16", n, 2048, 16) for n in (2048, 4096, 8192)] + \
        [Call("matmul", 4, 64, "affine", "bfloat16", 2048, 64, 16)]
    out = precompile.precompile(cache, calls, "v1", workers=4)
    assert out.failed == 0
    spans = {}
    for line in log.read_text().splitlines():
        t, what, call = line.split(" ", 2)
        spans.setdefault(call, {})[what] = float(t)
    by_guess = {}
    for c in calls:
        by_guess.setdefault(precompile.kernel_guess(c), []).append(spans[json.dumps(list(c))])
    sm80 = sorted(by_guess[precompile.kernel_guess(calls[0])], key=lambda s: s["start"])
    assert len(sm80) == 3 and all(a["end"] <= b["start"] for a, b in zip(sm80, sm80[1:]))
    sm90 = by_guess[precompile.kernel_guess(calls[3])][0]
    assert sm90["start"] < sm80[0]["end"]  # another guess runs beside them


def cache_with_a_module(tmp_path) -> Path:
    """A kernel cache holding one module (MLX's CPU backend writes none; markers
    count only beside modules)."""
    cache = tmp_path / "ptx"
    cache.mkdir(parents=True)
    (cache / "gather_float32_int32_1.ptx").write_text("ptx")
    return cache


def test_precompile_marks_each_finished_call_and_skips_them_next_time(tmp_path):
    cache = cache_with_a_module(tmp_path)
    calls = calls_of(Tiny(), "float32", [4, 1])
    bad = Call("matmul", 4, 64, "affine", "float32", 64, 100, 1)  # K not a multiple of the group: fails
    out = precompile.precompile(cache, calls + [bad], "v1", workers=2)
    assert out.calls == len(calls) + 1 and out.failed == 1 and out.workers == 2
    assert "at 4 tokens" in out.slowest or "at 1 tokens" in out.slowest
    assert out.error.startswith("matmul 64×100") and "ValueError" in out.error
    assert pending(cache, calls + [bad], "v1") == [bad]
    assert precompile.precompile(cache, calls, "v1") is None  # all done: no worker starts
    assert pending(cache, calls, "v2") == calls  # another MLX version compiles its own
    assert not list(cache.glob(precompile.SCRATCH + "*"))  # the scratch folder is gone
    (cache / "gather_float32_int32_1.ptx").unlink()  # the modules wiped, the markers left behind
    assert pending(cache, calls, "v1") == calls


def test_a_worker_answering_nonsense_ends_at_once(tmp_path, monkeypatch):
    cache = cache_with_a_module(tmp_path)
    monkeypatch.setattr(kernel_workers.Pool, "command",
                        [sys.executable, "-c", "import sys\nfor line in sys.stdin: print('hello', flush=True)"])
    t = time.monotonic()
    out = precompile.precompile(cache, calls_of(Tiny(), "float32", [1]), "v1", workers=1)
    assert time.monotonic() - t < 10 and out.failed == out.calls

def test_a_worker_that_does_not_exit_cleanly_keeps_nothing(tmp_path, monkeypatch):
    cache = tmp_path / "ptx"
    cache.mkdir()
    calls = calls_of(Tiny(), "float32", [1])
    # a worker that writes a module, answers ok, then dies: its files may be half written
    script = ("import sys, os; d = os.environ['MLX_PTX_CACHE_DIR']; open(d + '/half.ptx', 'w').write('x'); "
              "[print('ok 0.1', flush=True) for _ in sys.stdin]; sys.exit(3)")
    monkeypatch.setattr(kernel_workers.Pool, "command", [sys.executable, "-c", script])
    out = precompile.precompile(cache, calls, "v1", workers=1)
    assert out.failed == len(calls) and out.modules == 0
    assert not (cache / "half.ptx").exists() and pending(cache, calls, "v1") == calls


def test_merge_renames_the_ptx_into_place_last(tmp_path, monkeypatch):
    src, cache = tmp_path / "scratch", tmp_path / "ptx"
    src.mkdir()
    cache.mkdir()
    for ext in (".ptx", ".txt", ".cu"):
        (src / f"m{ext}").write_text(ext)
    done = []
    real = os.replace
    monkeypatch.setattr(kernel_workers.os, "replace", lambda a, b: (done.append(Path(b).suffix), real(a, b)))
    assert merge(src, cache) == 1
    assert done[-1] == ".ptx" and sorted(done) == [".cu", ".ptx", ".txt"]


def test_merge_copies_missing_modules_whole_and_leaves_existing_ones(tmp_path):
    src, cache = tmp_path / "scratch", tmp_path / "ptx"
    (src / "long_name").mkdir(parents=True)
    cache.mkdir()
    for stem in ("new", "long_name/rest", "old"):
        for ext in (".ptx", ".txt", ".cu"):
            (src / (stem + ext)).write_text(f"scratch {stem}{ext}")
    (cache / "old.ptx").write_text("cached")
    assert merge(src, cache) == 2
    assert (cache / "new.ptx").read_text() == "scratch new.ptx"
    assert (cache / "long_name" / "rest.txt").read_text() == "scratch long_name/rest.txt"
    assert (cache / "old.ptx").read_text() == "cached"  # never replaced
    assert not list(cache.rglob("*.tmp"))


def test_seeded_scratch_holds_whole_modules_only(tmp_path):
    cache = tmp_path / "ptx"
    (cache / precompile.MARKERS).mkdir(parents=True)
    (cache / precompile.MARKERS / "k").write_text("[]")
    for f in ("a.ptx", "a.txt", "a.cu", "b.txt", "b.ptx.123.tmp"):  # b: another process mid-merge
        (cache / f).write_text(f)
    kernel_workers.seed(cache, tmp_path / "own")
    assert sorted(p.name for p in (tmp_path / "own").rglob("*")) == ["a.cu", "a.ptx", "a.txt"]


def test_stand_in_matmul_is_dense_depends_on_its_input_and_is_put_back():
    layer = nn.QuantizedLinear(128, 256, bias=False, group_size=64, bits=4)
    x = mx.arange(2 * 3 * 128, dtype=mx.float32).reshape(2, 3, 128)
    real = mx.quantized_matmul
    with stand_ins():
        y = layer(x)
        assert mx.quantized_matmul is not real
    assert mx.quantized_matmul is real
    assert y.shape == (2, 3, 256) and y.dtype == x.dtype
    assert mx.array_equal(y, mx.broadcast_to(x[..., :1], (2, 3, 256))).item()
    with pytest.raises(RuntimeError):
        with stand_ins():
            raise RuntimeError("a pass failed")
    assert mx.quantized_matmul is real


def test_priming_on_cuda_precompiles_while_the_stand_in_pass_runs(tmp_path):
    """The priming run's flow with the backend called CUDA: workers for the
    quantized calls, the pass with stand-ins meanwhile, then the real priming run."""
    cache = tmp_path / "ptx"
    model = Tiny()
    loaded = SimpleNamespace(model=model, dtype="float32")
    seen = []

    def run_once(m, ids, warmup, tokens, prefill=None):
        seen.append(mx.quantized_matmul is precompile_real)
        mx.eval(m.model(mx.array([ids])))

    precompile_real = mx.quantized_matmul
    events = []
    bar = SimpleNamespace(describe=lambda d: events.append(d), note=lambda m: events.append(m))
    p = Priming("cuda", bar, env={PTX_ENV: str(cache)})
    p.run(loaded, [1, 2, 3], run_once=run_once)
    assert seen == [False, False, True]  # the stand-in pass, its check (counted), the real priming run
    assert any(coldstart.COMPILE_MESSAGE in e for e in events)  # the cache was empty: a first run
    (cache / "m.ptx").write_text("ptx")  # what a CUDA run would have left there
    assert p.pre is not None and p.pre.failed == 0 and not pending(cache, calls_of(model, "float32", [3, 1]), coldstart.mlx_version())
    c = p.record([SimpleNamespace(prefill_s=0.01, token_ms=[float("nan"), 1.0])])
    assert c.precompile_workers == p.pre.workers and c.precompile_s == pytest.approx(p.pre.seconds)
    assert "worker processes at once" in describe(c) and "slowest: " in describe(c)
    again = Priming("cuda", bar, env={PTX_ENV: str(cache)})
    seen.clear()
    again.run(loaded, [1, 2, 3], run_once=run_once)
    assert seen == [True] and again.pre is None  # everything marked: no workers, no stand-in pass


def test_off_by_environment_and_off_cuda(tmp_path, monkeypatch):
    loaded = SimpleNamespace(model=Tiny(), dtype="float32")
    assert not precompile.needed(loaded, "cpu", [4], tmp_path)
    assert not precompile.needed(loaded, "metal", [4], tmp_path)
    assert precompile.needed(loaded, "cuda", [4], tmp_path)
    monkeypatch.setenv(precompile.PRECOMPILE_ENV, "0")
    assert not precompile.needed(loaded, "cuda", [4], tmp_path)


def test_the_worker_answers_each_call_and_imports_mlx_core_only():
    code = ("import sys; from mlxprof.kernel_workers import worker; worker(); "
            "print(sorted(m for m in ('mlx_lm', 'mlx_vlm', 'transformers', 'torch', 'mlx.nn') if m in sys.modules))")
    calls = [Call("matmul", 4, 64, "affine", "float32", 256, 128, 4), Call("embed", 4, 64, "affine", "float32", 300,
                                                                            128, 4),
             Call("matmul", 4, 64, "affine", "float32", 64, 100, 1)]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         input="".join(json.dumps(list(c)) + "\n" for c in calls),
                         cwd=Path(__file__).resolve().parents[1])
    lines = out.stdout.splitlines()
    assert [x.split()[0] for x in lines[:3]] == ["ok", "ok", "err"] and lines[3] == "[]"
    assert float(lines[0].split()[1]) >= 0


def test_a_model_that_compiles_its_quantized_matmuls_is_stopped_not_mismeasured(tmp_path):
    """mx.compile keeps the graph it traced: a quantized matmul traced during the
    stand-in pass would stay a stand-in. The check pass sees fewer real calls and stops."""
    from mlxprof.errors import InputError

    model = Tiny()
    up = mx.compile(lambda x: model.up(x))  # e.g. a fused MLP compiled whole
    x = mx.ones((1, 4, 128))
    with pytest.raises(InputError, match="inside mx.compile"):
        precompile.precompile(cache_with_a_module(tmp_path), calls_of(model, "float32", [4]), "v1",
                              passes=[lambda: mx.eval(up(x))], workers=1)
    plain = Tiny()
    more = lambda: mx.eval(plain.down(plain.up(x)), plain.up(x))  # noqa: E731  (a later pass with more calls)
    out = precompile.precompile(cache_with_a_module(tmp_path / "b"), calls_of(plain, "float32", [4]), "v1",
                                passes=[lambda: mx.eval(plain.up(x)), more], workers=1)
    assert out is not None and out.failed == 0  # the check reruns the first pass against its own count
