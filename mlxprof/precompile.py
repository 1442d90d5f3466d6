"""Compile a model's GPU kernels in parallel before its priming run (CUDA).

On a fresh machine MLX compiles each CUDA kernel module with NVRTC the first
time a process needs it, one after another (coldstart.py): a Gemma 3n decode
spends ~2 minutes there. Most of it goes to the quantized matmuls' modules,
CUTLASS templates (mlx/backend/cuda/quantized/qmm/: one module per dtype ×
tile × bits × group size, 15-45 s each on an H200). Which of them a model
needs depends only on its quantized layers' signatures and the token counts
it runs them at, not on the model's code. So, where some are not cached yet:

- worker processes run those signatures (bits, group size, mode, dtype, N, K,
  M) on zeros, several at once, taking calls from one queue and compiling into
  one scratch folder (a worker reads what another finished);
- meanwhile this process runs the priming passes with `mx.quantized_matmul`
  standing in as zeros of the right shape, compiling everything else the
  model needs (gathers, fused elementwise kernels, attention) in parallel;
- when every worker has exited cleanly the scratch modules are copied into
  MLX's cache under temporary names and renamed (`.ptx`, what MLX looks for,
  last), so no process reading the cache meets half a module; the real priming
  run then finds everything compiled.

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
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

ENV = "MLXPROF_PRECOMPILE"
MARKERS = ".mlxprof-precompiled"  # in the cache folder; MLX looks files up by module name only
SCRATCH = ".mlxprof-precompiling-"  # the workers' folder, in the cache folder while they run
# NVRTC compiles contend for the host: on a 16-vCPU H200 host the slowest CUTLASS
# module took 42 s alone, 49 s beside 7 other workers and 69 s beside 14
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
    failed: int  # calls not done (their modules compile in the priming run)
    slowest: str = ""  # the call that took longest in a worker, and how long


def enabled(env=None) -> bool:
    return (os.environ if env is None else env).get(ENV, "1").lower() not in ("0", "false", "no", "off")


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
    (mlx/backend/cuda/quantized/quantized.cpp, qmm/qmm.cu, MLX 0.32): one token
    at width ≤ 16384 takes the precompiled qmv; K ≤ group size takes the sm90
    CUTLASS kernel, one module per width tile; aligned widths the sm80 one and
    the rest the naive one, per token-count tile. Only for scheduling: a wrong
    guess costs time, never a kernel."""
    base = (c.kind, c.dtype, c.bits, c.group_size, c.mode)
    if c.kind == "embed":
        return base
    if c.m == 1 and c.n <= 16384:
        return base + ("qmv",)
    if c.k <= c.group_size:
        return base + ("sm90", min(256, max(16, 1 << (max(c.n, 1) - 1).bit_length())))
    return base + ("sm80" if c.n % 128 == 0 and c.k % max(64, c.group_size) == 0 else "naive", c.m)


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
    """The calls not precompiled into `cache` yet."""
    return [c for c in calls if not (cache / MARKERS / _key(c, version)).exists()]


def needed(loaded, backend: str, ms: Sequence[int], cache: Optional[Path] = None) -> bool:
    """`prepare` would compile something: CUDA, on, and some of `loaded`'s calls
    at `ms` not in `cache` (default: MLX's kernel cache for this process)."""
    from .coldstart import mlx_version, ptx_cache_dir

    if backend != "cuda" or not enabled() or getattr(loaded, "model", None) is None:
        return False
    cache = cache or ptx_cache_dir()
    return cache is not None and bool(pending(cache, calls_of(loaded.model, loaded.dtype, ms), mlx_version() or ""))


def prepare(loaded, backend: str, ms: Sequence[int], passes: Sequence[Callable[[], object]] = (),
            progress=None, cache: Optional[Path] = None) -> Optional[Outcome]:
    """On CUDA, precompile what `loaded` (a models.Loaded) needs at token counts
    `ms` where any of it is not in `cache` yet (default: MLX's kernel cache for
    this process), running `passes` (its priming work) with the quantized
    matmuls stood in meanwhile; progress shown on `progress`."""
    from .coldstart import COMPILE_MESSAGE, mlx_version, ptx_cache_dir

    cache = cache or ptx_cache_dir()
    if not needed(loaded, backend, ms, cache):
        return None
    version = mlx_version() or ""
    calls = calls_of(loaded.model, loaded.dtype, ms)
    if progress is not None:
        progress.describe(f"{COMPILE_MESSAGE} (several processes at once)")
    out = precompile(cache, calls, version, passes,
                     on_error=(lambda m: progress.note(f"mlxprof: precompile: {m}")) if progress else None)
    if progress is not None and out is not None:
        progress.note(f"mlxprof: {COMPILE_MESSAGE}: {out.modules} kernel modules in {out.seconds:.1f} s, "
                      f"the quantized matmuls' in {out.workers} worker processes at once (slowest: "
                      f"{out.slowest or 'none done'}; MLX caches them in {cache}); kept out of every figure")
    return out


def precompile(cache: Path, calls: Sequence[Call], version: str,
               passes: Sequence[Callable[[], object]] = (), workers: Optional[int] = None,
               on_error: Optional[Callable[[str], None]] = None) -> Optional[Outcome]:
    """Compile the pending `calls` into `cache` in worker processes while
    `passes` run here with the quantized matmuls stood in; None when none is pending."""
    from .coldstart import cached_modules

    todo = pending(cache, calls, version)
    if not todo:
        return None
    cache.mkdir(parents=True, exist_ok=True)
    before = cached_modules(cache) or 0
    t = time.perf_counter()
    pool = Pool(cache, todo, workers or max(1, min(MAX_WORKERS, (os.cpu_count() or 2) - 1)))
    try:
        pool.start()
        with stand_ins():
            for p in passes:
                try:
                    p()
                except Exception as e:  # the real priming run still compiles whatever this missed
                    if on_error is not None:
                        on_error(f"stand-in pass failed ({type(e).__name__}: {e})")
        done = pool.wait()
    finally:
        pool.close()
    for c in done:
        (cache / MARKERS).mkdir(exist_ok=True)
        (cache / MARKERS / _key(c, version)).write_text(json.dumps(list(c)))
    added = max(0, (cached_modules(cache) or 0) - before)
    slow = max(pool.seconds.items(), key=lambda kv: kv[1], default=None)
    return Outcome(time.perf_counter() - t, len(pool.procs), len(todo), added, len(todo) - len(done),
                   f"{describe_call(slow[0])}: {slow[1]:.1f} s" if slow else "")


def describe_call(c: Call) -> str:
    what = "embedding rows" if c.kind == "embed" else "matmul"
    return f"{what} {c.n}×{c.k} {c.bits}-bit g{c.group_size} {c.mode} {c.dtype} at {c.m} tokens"


class Pool:
    """Worker processes taking `calls` from one queue, compiling into one
    scratch folder inside `cache` (seeded with what `cache` holds)."""

    command = [sys.executable, "-c", "from mlxprof.precompile import worker; worker()"]

    def __init__(self, cache: Path, calls: Sequence[Call], workers: int):
        self.cache, self.calls, self.workers = cache, list(calls), max(1, min(workers, len(calls)))
        self.ok: List[Call] = []
        self.seconds: Dict[Call, float] = {}
        self.procs: List[subprocess.Popen] = []
        self.threads: List[threading.Thread] = []
        self.scratch: Optional[Path] = None

    def start(self):
        from .child import child_env
        from .coldstart import PTX_ENV

        self.scratch = Path(tempfile.mkdtemp(prefix=SCRATCH, dir=self.cache))  # same file system: links, renames
        seed(self.cache, self.scratch)
        self.todo, self.busy = list(self.calls), set()  # calls not started; guesses compiling now
        self.turn = threading.Condition()
        env = child_env({PTX_ENV: str(self.scratch)})
        for _ in range(self.workers):
            self.procs.append(subprocess.Popen(
                self.command, env=env,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
            self.threads.append(threading.Thread(target=self._feed, args=(self.procs[-1],), daemon=True))
            self.threads[-1].start()

    def _next(self) -> Optional[Call]:
        """The first call not started whose guessed module nobody is compiling
        (waiting while every remaining one's is being compiled); None when none is left."""
        with self.turn:
            while self.todo:
                c = next((c for c in self.todo if kernel_guess(c) not in self.busy), None)
                if c is not None:
                    self.todo.remove(c)
                    self.busy.add(kernel_guess(c))
                    return c
                self.turn.wait()
            return None

    def _feed(self, proc):
        try:
            while True:
                c = self._next()
                if c is None:
                    break
                try:
                    proc.stdin.write(json.dumps(list(c)) + "\n")
                    proc.stdin.flush()
                    reply = proc.stdout.readline()
                finally:
                    with self.turn:
                        self.busy.discard(kernel_guess(c))
                        self.turn.notify_all()
                if not reply:  # the worker died
                    break
                if reply.startswith("ok"):
                    with self.turn:
                        self.ok.append(c)
                        self.seconds[c] = float(reply.split()[1])
            proc.stdin.close()
        except (OSError, ValueError):  # its pipe closed under us (killed)
            pass

    def wait(self, timeout: float = TIMEOUT_S) -> List[Call]:
        """The calls done, merged into the cache when every worker exited cleanly."""
        deadline = time.monotonic() + timeout
        for th in self.threads:
            th.join(max(0.0, deadline - time.monotonic()))
        clean = True
        for p in self.procs:
            try:
                clean &= p.wait(max(0.1, deadline - time.monotonic())) == 0
            except subprocess.TimeoutExpired:
                clean = False
        if not clean:  # a module may be half written: keep none of them
            return []
        merge(self.scratch, self.cache)
        return list(self.ok)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def seed(cache: Path, own: Path) -> None:
    """`own` holding what `cache` holds (hard links where the file system allows)."""
    from .coldstart import cache_files

    for f in cache_files(cache):
        rel = f.relative_to(cache)
        (own / rel).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(f, own / rel)
        except OSError:
            shutil.copyfile(f, own / rel)


def merge(src: Path, cache: Path) -> int:
    """Copy each module compiled under `src` that `cache` lacks into `cache`:
    sidecars first, the `.ptx` (what MLX looks for) last, each renamed from a
    temporary name. Returns the modules copied."""
    copied = 0
    for ptx in sorted(src.rglob("*.ptx")):
        dest = cache / ptx.relative_to(src)
        if dest.exists():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        for f in [ptx.with_suffix(s) for s in (".txt", ".cu")] + [ptx]:
            if f.exists():
                tmp = dest.with_name(f"{dest.with_suffix(f.suffix).name}.{os.getpid()}.tmp")
                shutil.copyfile(f, tmp)
                os.replace(tmp, dest.with_suffix(f.suffix))
        copied += 1
    return copied


@contextlib.contextmanager
def stand_ins():
    """`mx.quantized_matmul` standing in as a dense copy of the input's first
    feature at the output's shape and dtype: the rest of the graph still depends on
    its input (a constant would leave the layers unevaluated) and sees the same
    dense, row-contiguous arrays, so it compiles the same kernels."""
    import mlx.core as mx

    real = mx.quantized_matmul

    def stand_in(x, w, scales=None, biases=None, transpose=True, group_size=None, bits=None, mode="affine",
                 **kw):
        n = w.shape[-2] if transpose else w.shape[-1] * 32 // (bits or 4)
        return mx.contiguous(mx.broadcast_to(x[..., :1], x.shape[:-1] + (n,)))

    mx.quantized_matmul = stand_in
    try:
        yield
    finally:
        mx.quantized_matmul = real


def run_call(c: Call) -> None:
    """One call on zeros, evaluated (compiling its kernels)."""
    import mlx.core as mx

    dt = getattr(mx, c.dtype)
    # quantize a few rows for this mode's packed layout, then zeros of the full size
    small = list(mx.quantize(mx.zeros((8, c.k), dt), c.group_size, c.bits, mode=c.mode))
    w, scales, biases = ([mx.zeros((c.n,) + a.shape[1:], a.dtype) for a in small] + [None])[:3]
    opts = dict(group_size=c.group_size, bits=c.bits, mode=c.mode)
    if c.kind == "embed":
        rows = mx.zeros((1, c.m), mx.int32)
        y = mx.dequantize(w[rows], scales[rows], None if biases is None else biases[rows], **opts)
    else:
        y = mx.quantized_matmul(mx.zeros((1, c.m, c.k), dt), w, scales, biases, transpose=True, **opts)
    mx.eval(y)


def worker() -> None:
    """A worker process: one call per line on stdin, `ok` or `err …` per line on stdout."""
    for line in sys.stdin:
        t = time.perf_counter()
        try:
            run_call(Call(*json.loads(line)))
            reply = f"ok {time.perf_counter() - t:.3f}"
        except Exception as e:
            reply = "err " + f"{type(e).__name__}: {e}".replace("\n", " ")
        print(reply, flush=True)
