"""Compile a model's GPU kernels in parallel before its priming run (CUDA).

On a fresh machine MLX compiles each CUDA kernel module with NVRTC the first
time a process needs it, one after another (coldstart.py): a Gemma 3n decode
spends ~2 minutes there. Most of it goes to the quantized matmuls' modules,
CUTLASS templates (mlx/backend/cuda/quantized/qmm/: one module per dtype ×
tile × bits × group size, 14-42 s each on an H200). Which of them a model
needs depends only on its quantized layers' signatures and the token counts
it runs them at, not on the model's code. So, where some are not cached yet:

- worker processes run those signatures (bits, group size, mode, dtype, N, K,
  M) on zeros, several at once, taking calls from one queue and compiling into
  one scratch folder (a worker reads what another finished);
- meanwhile this process runs the priming passes with `mx.quantized_matmul`
  standing in as a dense array of the right shape that depends on its input
  (`stand_ins`), compiling everything else the model needs (gathers, fused
  elementwise kernels, attention) in parallel;
- when every worker has exited cleanly the scratch modules are copied into
  MLX's cache under temporary names and renamed (`.ptx`, what MLX looks for,
  last), so no process reading the cache meets half a module; the real priming
  run then finds everything compiled.

The first pass then runs once more with the real matmuls, counted: fewer
calls than the stand-ins took means some ran inside `mx.compile`d code, whose
cached graph kept the stand-in; the command then stops with one line rather
than measure it (a rerun finds the kernels compiled and stands nothing in).
The workers live in kernel_workers.py.

Mixture-of-experts layers' gathered matmuls (`mx.gather_qmm`) are not run by
workers: they compile in the pass, one after another, as before.

Only a speed-up: a failed call, pass or worker leaves its modules to the
priming run (a worker that did not exit cleanly discards the whole scratch).
One marker per finished call in the cache says it is done, so a warm machine
starts no workers. MLXPROF_PRECOMPILE=0 turns it off.
"""

import contextlib
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional, Sequence

PRECOMPILE_ENV = "MLXPROF_PRECOMPILE"
MARKERS = ".mlxprof-precompiled"  # in the cache folder; MLX looks files up by module name only
SCRATCH = ".mlxprof-precompiling-"  # the workers' folder, in the cache folder while they run
# NVRTC compiles contend for the host: on a 16-vCPU H200 host the slowest CUTLASS
# module took 42 s alone, 46-49 s beside 7 other workers and 69 s beside 14
# (docs/benchmark_results/measurement-cost-nvidia-h200.md, third session)
MAX_WORKERS = 8
TIMEOUT_S = 900.0  # workers past this are stopped; the priming run compiles what they left


class Call(NamedTuple):
    """One quantized call as the model makes it: `matmul` (x @ W.T, also an
    embedding used as the output head) or `embed` (rows gathered, then dequantized)."""

    kind: str
    bits: int
    group_size: int
    mode: str
    dtype: str
    n: int  # output features (rows of W)
    k: int  # input features
    m: int  # tokens in the call


class Outcome(NamedTuple):
    """What a precompile did, for the cold-start record."""

    seconds: float  # workers started → all exited and merged (the stand-in passes ran meanwhile)
    workers: int
    calls: int
    modules: int  # kernel modules it added to the cache
    failed: int  # calls not kept: failed, or discarded with an unclean worker (the priming run compiles them)
    slowest: str = ""  # the call that took longest in a worker, and how long
    error: str = ""  # the first call's error a worker reported, if any


def enabled() -> bool:
    return os.environ.get(PRECOMPILE_ENV, "1").lower() not in ("0", "false", "no", "off")


def calls_of(module, dtype: str, ms: Sequence[int]) -> List[Call]:
    """The distinct quantized calls of `module`'s layers at each token count in `ms`, queued by `order`."""
    import mlx.nn as nn

    found = set()
    for _, layer in module.named_modules():
        if not isinstance(layer, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
            continue
        bits, gs, mode = layer.bits, layer.group_size, getattr(layer, "mode", "affine")
        n, k = layer.weight.shape[0], layer.weight.shape[1] * 32 // bits
        kinds = ["matmul"] if isinstance(layer, nn.QuantizedLinear) else ["embed", "matmul"]  # tied heads
        found.update(Call(kind, bits, gs, mode, dtype, n, k, m) for m in set(ms) for kind in kinds)
    return order(found)


def kernel_guess(c: Call) -> tuple:
    """Which kernel module a call likely compiles, after MLX's CUDA dispatch
    (mlx/backend/cuda/quantized/quantized.cpp and qmm/*.cu, MLX 0.32): where K ≤
    group size (the sm90 CUTLASS kernel on Hopper) one token at width ≤ 16384
    takes the precompiled qmv and the rest sm90, one module per width tile;
    elsewhere fewer than 8 tokens take qmv, aligned widths the sm80 kernel and
    the rest the naive one, one module per token tile (16, 32 or 64). Only for
    scheduling: a wrong guess costs time, never a kernel."""
    base = (c.kind, c.dtype, c.bits, c.group_size, c.mode)
    if c.kind == "embed":
        return base
    if c.k <= c.group_size:
        if c.m == 1 and c.n <= 16384:
            return base + ("qmv",)
        return base + ("sm90", _tile(c.n, 16, 256))
    if c.m < 8:
        return base + ("qmv",)
    return base + ("sm80" if c.n % 128 == 0 and c.k % max(64, c.group_size) == 0 else "naive", _tile(c.m, 16, 64))


def _tile(x: int, lo: int, hi: int) -> int:
    return min(hi, max(lo, 1 << (max(x, 1) - 1).bit_length()))


def order(calls) -> List[Call]:
    """One call per guessed kernel module first (the largest token counts and
    weights first), then the rest: the distinct modules start compiling at once,
    and the rest find theirs compiled (`Pool` never runs two calls of one guess
    at the same time)."""
    seen, first, rest = set(), [], []
    for c in sorted(set(calls), key=lambda c: (-c.m, -c.n * c.k, c.n, c.k, c.kind)):
        (rest if kernel_guess(c) in seen else first).append(c)
        seen.add(kernel_guess(c))
    return first + rest


def _key(call: Call, version: str) -> str:
    return hashlib.sha256(json.dumps([version, *call]).encode()).hexdigest()[:24]


def pending(cache: Path, calls: Sequence[Call], version: str) -> List[Call]:
    """The calls not precompiled into `cache` yet (all of them when the cache
    holds no module: its markers outlived the modules they stood for)."""
    from .coldstart import cached_modules

    if not cached_modules(cache):
        return list(calls)
    return [c for c in calls if not (cache / MARKERS / _key(c, version)).exists()]


def _todo(loaded, backend: str, ms: Sequence[int], cache: Optional[Path]):
    """(cache, version, calls) when `prepare` has something to compile, else None."""
    from .coldstart import mlx_version, ptx_cache_dir

    if backend != "cuda" or not enabled() or getattr(loaded, "model", None) is None:
        return None
    cache = cache or ptx_cache_dir()
    if cache is None:
        return None
    version, calls = mlx_version() or "", calls_of(loaded.model, loaded.dtype, ms)
    return (cache, version, calls) if pending(cache, calls, version) else None


def needed(loaded, backend: str, ms: Sequence[int], cache: Optional[Path] = None) -> bool:
    """`prepare` would compile something: CUDA, on, and some of `loaded`'s calls
    at `ms` not in `cache` (default: MLX's kernel cache for this process)."""
    return _todo(loaded, backend, ms, cache) is not None


def prepare(loaded, backend: str, ms: Sequence[int], passes: Sequence[Callable[[], object]] = (),
            progress=None, cache: Optional[Path] = None) -> Optional[Outcome]:
    """On CUDA, precompile what `loaded` (a models.Loaded) needs at token counts
    `ms` where any of it is not in `cache` yet (default: MLX's kernel cache for
    this process), running `passes` (its priming work) with the quantized
    matmuls stood in meanwhile; progress shown on `progress`. Never raises for
    its own sake (it is only a head start): a file-system error is a note."""
    from .coldstart import COMPILE_MESSAGE, cached_modules

    todo = _todo(loaded, backend, ms, cache)
    if todo is None:
        return None
    cache, version, calls = todo
    what = COMPILE_MESSAGE if not cached_modules(cache) else "compiling GPU kernels not cached yet"
    say = (lambda m: progress.note(f"mlxprof: {m}")) if progress is not None else (lambda m: None)
    if progress is not None:
        progress.describe(f"{what} (several processes at once)")
    try:
        out = precompile(cache, calls, version, passes, on_error=say)
    except OSError as e:  # a read-only or full cache folder: the priming run compiles as MLX would
        say(f"compiling kernels ahead skipped ({e}); the priming run compiles them one after another")
        return None
    if out is not None:
        not_kept = f"; {out.failed} of {out.calls} calls not kept ({out.error or 'a worker did not exit cleanly'})" \
            if out.failed else ""
        say(f"{what}: {out.modules} kernel modules in {out.seconds:.1f} s, the quantized matmuls' in "
            f"{out.workers} worker processes at once (slowest: {out.slowest or 'none done'}{not_kept}; "
            f"MLX caches them in {cache}); kept out of every figure")
    return out


def precompile(cache: Path, calls: Sequence[Call], version: str,
               passes: Sequence[Callable[[], object]] = (), workers: Optional[int] = None,
               on_error: Optional[Callable[[str], None]] = None) -> Optional[Outcome]:
    """Compile the pending `calls` into `cache` in worker processes while
    `passes` run here with the quantized matmuls stood in; None when none is
    pending. One precompile per cache at a time (a lock): a second process,
    e.g. another rank, waits and then finds the calls done."""
    import fcntl

    from .coldstart import cached_modules

    (cache / MARKERS).mkdir(parents=True, exist_ok=True)
    with open(cache / MARKERS / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        todo = pending(cache, calls, version)
        if not todo:
            return None
        for stale in cache.glob(SCRATCH + "*"):  # left by a process killed mid-precompile
            shutil.rmtree(stale, ignore_errors=True)
        before = cached_modules(cache) or 0
        t = time.perf_counter()
        from .kernel_workers import Pool

        pool = Pool(cache, todo, workers or max(1, min(MAX_WORKERS, (os.cpu_count() or 2) - 1)))
        try:
            pool.start()
            stood_in = []  # each pass's stand-in calls
            for p in passes:
                stood_in.append([0])
                with stand_ins(stood_in[-1]):
                    try:
                        p()
                    except Exception as e:  # the real priming run still compiles whatever this missed
                        if on_error is not None:
                            on_error(f"stand-in pass failed ({type(e).__name__}: {e})")
            done = pool.wait()
        finally:
            pool.close()
        for c in done:
            (cache / MARKERS / _key(c, version)).write_text(json.dumps(list(c)))
        added = max(0, (cached_modules(cache) or 0) - before)
    if passes and stood_in[0][0]:  # the first pass again, against its own count
        check_untraced(passes[0], stood_in[0][0])
    slow = max(pool.seconds.items(), key=lambda kv: kv[1], default=None)
    return Outcome(time.perf_counter() - t, len(pool.procs), len(todo), added, len(todo) - len(done),
                   f"{describe_call(slow[0])}: {slow[1]:.1f} s" if slow else "", pool.error)


def describe_call(c: Call) -> str:
    what = "embedding rows" if c.kind == "embed" else "matmul"
    return f"{what} {c.n}×{c.k} {c.bits}-bit g{c.group_size} {c.mode} {c.dtype} at {c.m} tokens"


@contextlib.contextmanager
def _swapped(make: Callable, calls: List[int]):
    """`mx.quantized_matmul` replaced by `make(real)` while the block runs, its
    calls counted in `calls[0]`; the real one put back whatever happens."""
    import mlx.core as mx

    real = mx.quantized_matmul
    fn = make(real)

    def counted(*a, **kw):
        calls[0] += 1
        return fn(*a, **kw)

    mx.quantized_matmul = counted
    try:
        yield calls
    finally:
        mx.quantized_matmul = real


def stand_ins(calls: Optional[List[int]] = None):
    """`mx.quantized_matmul` standing in as a dense copy of the input's first
    feature at the output's shape and dtype: the rest of the graph still depends on
    its input (a constant would leave the layers unevaluated) and sees the same
    dense, row-contiguous arrays, so it compiles the same kernels. `calls[0]`
    counts the calls."""
    import mlx.core as mx

    def stand_in(x, w, scales=None, biases=None, transpose=True, group_size=None, bits=None, mode="affine",
                 **kw):
        n = w.shape[-2] if transpose else w.shape[-1] * 32 // (bits or 4)
        return mx.contiguous(mx.broadcast_to(x[..., :1], x.shape[:-1] + (n,)))

    return _swapped(lambda real: stand_in, calls if calls is not None else [0])


def check_untraced(first_pass: Callable[[], object], stood_in: int) -> None:
    """Run the first pass again with the real matmuls, counting them: fewer
    calls than the stand-in pass made means some ran inside `mx.compile`d code,
    whose cached graph now holds the stand-in. Nothing in this process could be
    measured then; the next run finds the kernels compiled and uses no stand-in."""
    from .errors import InputError

    real = [0]
    with _swapped(lambda fn: fn, real):  # the real matmul, counted
        try:
            first_pass()
        except Exception:  # then the priming run fails too, and says why
            return
    if real[0] < stood_in:
        raise InputError(
            f"this model calls {stood_in - real[0]} of its quantized matmuls inside mx.compile'd code, which "
            "kept the kernel precompile's stand-in; nothing measured in this process would be right. Its "
            "kernels are compiled now: run the same command again (or set MLXPROF_PRECOMPILE=0)")
