"""The worker side of precompile.py: worker processes that run quantized
calls on zeros (compiling their kernels into one scratch cache), fed from one
queue by `Pool`, and the scratch cache's seeding from and merging into MLX's
kernel cache."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .precompile import SCRATCH, TIMEOUT_S, Call, describe_call, kernel_guess


class Pool:
    """Worker processes taking `calls` from one queue, compiling into one
    scratch folder inside `cache` (seeded with what `cache` holds)."""

    command = [sys.executable, "-c", "from mlxprof.kernel_workers import worker; worker()"]

    def __init__(self, cache: Path, calls: Sequence[Call], workers: int):
        self.cache, self.calls, self.workers = cache, list(calls), max(1, min(workers, len(calls)))
        self.ok: List[Call] = []
        self.seconds: Dict[Call, float] = {}
        self.procs: List[subprocess.Popen] = []
        self.threads: List[threading.Thread] = []
        self.scratch: Optional[Path] = None
        self.error = ""  # the first error a worker reported

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
        """Hand `proc` calls until none is left or it dies; its stdin is closed at
        the end whatever happens, so the worker exits."""
        try:
            while True:
                c = self._next()
                if c is None:
                    break
                try:
                    proc.stdin.write(json.dumps(list(c)) + "\n")
                    proc.stdin.flush()
                    reply = proc.stdout.readline().split(" ", 1)
                finally:
                    with self.turn:
                        self.busy.discard(kernel_guess(c))
                        self.turn.notify_all()
                with self.turn:
                    if reply[0] == "ok" and len(reply) == 2:
                        self.ok.append(c)
                        self.seconds[c] = float(reply[1])
                    elif reply[0] == "err" and not self.error:
                        self.error = f"{describe_call(c)}: {reply[1].strip()}"
                if reply[0] not in ("ok", "err"):  # the worker died, or answered nonsense
                    break
        except (OSError, ValueError):  # its pipe closed under us (killed)
            pass
        finally:
            try:
                proc.stdin.close()
            except OSError:
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
        for th in self.threads:  # their pipes are closed now: they end at once
            th.join(5.0)
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def seed(cache: Path, own: Path) -> None:
    """`own` holding the modules `cache` holds (hard links where the file
    system allows): each whole module whose `.ptx` is there, never another
    process's temporary files or a module it is still renaming into place
    (MLX would rewrite a module it cannot read, through the link)."""
    from .coldstart import cache_files

    for ptx in (f for f in cache_files(cache) if f.suffix == ".ptx"):
        rel = ptx.relative_to(cache)
        (own / rel).parent.mkdir(parents=True, exist_ok=True)
        for f in (ptx.with_suffix(".txt"), ptx.with_suffix(".cu"), ptx):
            try:
                os.link(f, own / f.relative_to(cache))
            except FileNotFoundError:
                continue
            except OSError:
                try:
                    shutil.copyfile(f, own / f.relative_to(cache))
                except FileNotFoundError:
                    continue


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
