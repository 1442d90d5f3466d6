"""Cold starts in the open: the model build, and the first run's kernel compilation.

MLX compiles kernels the first time a process needs them. On CUDA it JIT-compiles
them with NVRTC and keeps the result on disk, one `<module>.ptx` file (PTX or a
cubin) per kernel module, in `MLX_PTX_CACHE_DIR`, by default
`temp_directory_path()/mlx/<MLX version>/ptx` (mlx/backend/cuda/jit_module.cpp,
`ptx_cache_dir()`); later processes read it back instead of compiling. On a
fresh machine the first prefill of a Gemma 3n model spends minutes there.

So every decode starts with a discarded priming run (prefill + PRIME_TOKENS
tokens): whatever compiles, compiles there, out of every figure. Its wall time
against the same work in the measured runs estimates the compile time; the
cache's file count before and after says whether kernels were compiled, and a
count that still grows during the measured runs says that some were compiled
inside them. `ColdStart` records it all in the result.

Importable without MLX (decode.py imports the schema).
"""

import functools
import os
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional

from .results import Record

PRIME_TOKENS = 2  # the priming run's decoded tokens: enough to build the decode step's kernels
PTX_ENV = "MLX_PTX_CACHE_DIR"
COMPILE_MESSAGE = "compiling GPU kernels — first run on this machine"
# below this, a priming run's excess over the warm equivalent is noise, not compilation
COMPILE_NOISE_S = 0.5


class ColdStart(Record):
    """What a decode spent before its first measured run, kept out of every figure."""

    open_s: Optional[float] = None  # session open: resolve, load or build the model
    priming_s: float  # the discarded priming run: prefill + `priming_tokens` decoded tokens
    priming_tokens: int = PRIME_TOKENS
    warm_s: float  # the same work in the measured runs: median prefill + tokens × median token
    compile_s: float  # max(0, priming_s - warm_s) + precompile_s: first-run compilation (estimate)
    backend: str
    cache_dir: Optional[str] = None  # CUDA: MLX's compiled-kernel cache in use
    cache_modules_before: Optional[int] = None  # compiled kernel modules cached before priming
    cache_modules_added: Optional[int] = None  # … written by the precompile and priming (compiled there)
    cache_modules_added_later: Optional[int] = None  # … written during the measured runs
    # CUDA, where kernels were missing: compiled before the priming run, the quantized
    # matmuls' in worker processes at once, the rest meanwhile here (precompile.py)
    precompile_s: Optional[float] = None
    precompile_workers: Optional[int] = None
    precompile_modules: Optional[int] = None  # modules it added to the cache
    precompile_failed: Optional[int] = None  # calls not done: the priming run compiled their kernels
    precompile_slowest: Optional[str] = None  # the slowest quantized call's compile, in words

    @property
    def first_run(self) -> bool:
        """The cache held no compiled kernels before this command (CUDA)."""
        return self.cache_modules_before == 0


# --------------------------------------------------------------------------
# MLX's CUDA kernel cache


def _temp_directory(env: Mapping[str, str]) -> str:
    """std::filesystem::temp_directory_path() on POSIX (libstdc++, fs_ops.cc):
    the first of TMPDIR, TMP, TEMP, TEMPDIR that is set, else /tmp."""
    for name in ("TMPDIR", "TMP", "TEMP", "TEMPDIR"):
        if env.get(name):
            return env[name]
    return "/tmp"


def mlx_version() -> Optional[str]:
    """The MLX version string MLX puts in its cache path (`mx.__version__` is
    mlx::core::version()); from the package metadata when mlx is not imported yet."""
    import sys

    core = sys.modules.get("mlx.core")
    if core is not None and getattr(core, "__version__", None):
        return core.__version__
    try:
        from importlib.metadata import version

        return version("mlx")
    except Exception:
        return None


def ptx_cache_dir(env: Optional[Mapping[str, str]] = None) -> Optional[Path]:
    """The directory MLX's CUDA backend reads and writes compiled kernels in for
    a process with environment `env` (default: this one): MLX_PTX_CACHE_DIR,
    else temp_directory_path()/mlx/<version>/ptx (mlx/backend/cuda/jit_module.cpp)."""
    env = os.environ if env is None else env
    if env.get(PTX_ENV):
        return Path(env[PTX_ENV])
    v = mlx_version()
    return Path(_temp_directory(env)) / "mlx" / v / "ptx" if v else None


def cached_modules(path: Optional[Path]) -> Optional[int]:
    """Compiled kernel modules in MLX's cache: one `.ptx` file each (long module
    names are split into subfolders, so the whole tree counts; mlxprof's own
    `.mlxprof*` folders do not). 0 when the folder does not exist yet; None
    when there is no cache to count."""
    if path is None:
        return None
    return sum(1 for f in cache_files(path) if f.suffix == ".ptx")


def cache_files(path: Path) -> List[Path]:
    """Every file of MLX's kernel cache at `path`, outside mlxprof's `.mlxprof*` folders."""
    out = []
    for top, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not (top == str(path) and d.startswith(".mlxprof"))]
        out += [Path(top) / f for f in files]
    return out


# --------------------------------------------------------------------------
# the priming run


class Priming:
    """Runs the discarded priming run and, once the measured runs are known, the
    `ColdStart` record.

        p = Priming(backend, progress); p.run(model, ids, prefill)
        ...measured runs...
        cold = p.record(measured_runs, open_s)
    """

    def __init__(self, backend: str, progress=None, env: Optional[Mapping[str, str]] = None):
        self.backend = backend
        self.progress = progress
        self.cache = ptx_cache_dir(env) if backend == "cuda" else None
        self.before = cached_modules(self.cache)
        self.after: Optional[int] = None
        self.priming_s = float("nan")
        self.pre = None  # precompile.Outcome, when workers ran

    @property
    def expect_compile(self) -> bool:
        """CUDA with nothing compiled in the cache yet: the priming run will compile everything."""
        return self.backend == "cuda" and self.before == 0

    def run(self, model, ids: List[int], prefill: Optional[Callable] = None, run_once=None):
        """The priming run: fresh cache, prefill, PRIME_TOKENS tokens; discarded."""
        if run_once is None:
            from . import decode as dec

            run_once = dec.run_once
        p = self.progress
        from . import precompile

        self.pre = precompile.prepare(model, self.backend, [len(ids), 1], progress=p, cache=self.cache,
                                      passes=[lambda: run_once(model, ids, 0, PRIME_TOKENS, prefill=prefill)])
        mid = self.before if self.pre is None else cached_modules(self.cache)  # what priming finds cached
        if p is not None:
            if self.expect_compile and not self.pre:
                p.note(f"mlxprof: {COMPILE_MESSAGE} (MLX caches them in {self.cache}); "
                       "kept out of every figure")
                p.describe(COMPILE_MESSAGE)
            elif self.backend == "cuda":
                p.describe("priming run (discarded; compiles any GPU kernels not cached yet)")
            else:
                p.describe("priming run (prefill + 2 tokens, discarded)")
        t = time.perf_counter()
        run_once(model, ids, 0, PRIME_TOKENS, prefill=prefill)
        self.priming_s = time.perf_counter() - t
        self.after = cached_modules(self.cache)
        if p is not None and self.after and self.after > (mid or 0):
            p.note(f"mlxprof: compiled {self.after - (mid or 0)} GPU kernel modules in the priming run "
                   f"({self.priming_s:.1f} s)")

    @property
    def added(self) -> Optional[int]:
        if self.before is None or self.after is None:
            return None
        return max(0, self.after - self.before)

    def record(self, runs: List, open_s: Optional[float] = None) -> ColdStart:
        """The cold-start record against the measured runs (RunRecords)."""
        pre = statistics.median(r.prefill_s for r in runs) if runs else float("nan")
        toks = [t for r in runs for t in r.token_ms if t == t]
        tok_s = statistics.median(toks) / 1e3 if toks else 0.0
        warm = pre + PRIME_TOKENS * tok_s
        later = cached_modules(self.cache)
        pc = self.pre
        return ColdStart(
            open_s=open_s, priming_s=self.priming_s, warm_s=warm,
            compile_s=max(0.0, self.priming_s - warm) + (pc.seconds if pc else 0.0), backend=self.backend,
            cache_dir=str(self.cache) if self.cache is not None else None,
            cache_modules_before=self.before, cache_modules_added=self.added,
            cache_modules_added_later=(max(0, later - self.after)
                                       if later is not None and self.after is not None else None),
            precompile_s=pc.seconds if pc else None, precompile_workers=pc.workers if pc else None,
            precompile_modules=pc.modules if pc else None, precompile_failed=pc.failed if pc else None,
            precompile_slowest=pc.slowest or None if pc else None,
        )


# --------------------------------------------------------------------------
# in words


def describe(c: ColdStart) -> str:
    """One line for the table and the document."""
    parts = []
    if c.open_s is not None:
        parts.append(f"model opened in {c.open_s:.1f} s")
    if c.precompile_s is not None:
        failed = f" ({c.precompile_failed} calls not kept; the priming run compiled their kernels)" \
            if c.precompile_failed else ""
        parts.append(f"{c.precompile_modules or 0} kernel modules compiled before the priming run in "
                     f"{c.precompile_s:.1f} s, the quantized matmuls' in {c.precompile_workers} worker "
                     f"processes at once{failed}"
                     + (f" (slowest: {c.precompile_slowest})" if c.precompile_slowest else ""))
    prime = f"priming run {c.priming_s:.2f} s vs {c.warm_s:.2f} s warm"
    if c.compile_s >= COMPILE_NOISE_S or c.cache_modules_added:
        what = "compiling GPU kernels" if c.backend == "cuda" else "first-run compilation"
        prime += f" → ~{c.compile_s:.1f} s {what}" + (" in all" if c.precompile_s is not None else "")
        if c.first_run:
            prime += " (first run on this machine)"
    parts.append(prime)
    if c.cache_dir is not None:
        parts.append(f"{c.cache_modules_added or 0} kernel modules compiled into {c.cache_dir} "
                     f"({c.cache_modules_before} were cached)")
    line = "; ".join(parts) + "; kept out of every figure"
    if c.cache_modules_added_later:
        line += (f". {c.cache_modules_added_later} more modules were compiled during the measured "
                 "runs: their first run's figures include that compilation")
    return line


@functools.lru_cache(maxsize=None)
def cuda_installed() -> bool:
    """MLX's CUDA backend is installed (an `mlx-cuda-*` distribution), found
    without importing MLX or touching the GPU."""
    from importlib.metadata import distributions

    try:
        return any((d.metadata["Name"] or "").lower().replace("_", "-").startswith("mlx-cuda")
                   for d in distributions())
    except Exception:
        return False


def cache_env(base: Mapping[str, str], changes: Mapping[str, Optional[str]],
              cuda: Optional[bool] = None) -> Dict[str, str]:
    """MLX_PTX_CACHE_DIR for a child process on MLX's CUDA backend: the
    parent's own compiled-kernel cache, so a child reads what this process (or
    an earlier child) compiled even when `changes` move its temp directory.
    Empty when the parent already sets it (the child inherits it), when
    `changes` set or unset it themselves, off CUDA, or when there is no MLX to
    name the cache by."""
    if base.get(PTX_ENV) or PTX_ENV in changes:
        return {}
    if not (cuda_installed() if cuda is None else cuda):
        return {}
    d = ptx_cache_dir(base)
    return {PTX_ENV: str(d)} if d is not None else {}
