"""One sweep point in a fresh process: open the model, measure decode, print
one tagged reply line (see protocol.py).

    python -m mlxprof.sweep.worker JOB_JSON

MLX reads MLX_MAX_OPS_PER_BUFFER / MLX_MAX_MB_PER_BUFFER once, when the device
is created, so a knob value only takes effect in a process that starts with it
set: the parent (sweep/runner.py) sets the environment and starts this module.
Nothing heavy is imported before `T_MAIN` (mlxprof/__init__.py and
mlxprof/sweep/__init__.py import nothing), so the start / import / build /
measure split is honest.

A point imports only what it needs (models/lean.py, models/library_code.py):
mlx-lm's or mlx-vlm's model code without the packages' __init__ or mlx-vlm's
processing modules, and transformers, where a real checkpoint's loader
imports it, takes torch as absent (a point never tokenizes or preprocesses
an image). Without that, on a machine with PyTorch
installed most of every point's overhead was importing torch through
transformers.

Why every point is still a fresh interpreter and not a fork of a parent that
imported all this once (a fork server): the knobs are read through
function-local statics (`env::max_ops_per_buffer` in mlx/utils.h) when the
device is built: the Metal `Device` constructor (mlx/backend/metal/device.cpp)
or the first CUDA `CommandEncoder` of a stream (`get_graph_limits`,
mlx/backend/cuda/device.cpp, called from `gpu::new_stream`,
mlx/backend/cuda/eval.cpp). A forked child starts with its parent's memory,
statics and device included, so the guarantee needs a parent that provably
never built the device, and imports do not promise that: mlx_lm/generate.py
calls `mx.default_device()` at import, mlx_lm/models/deepseek_v41.py and
mlx_vlm/models/deepseek_v41/fakequant.py create `mx.array`s at import (an
array's buffer comes from the device's allocator), and any model module may
start doing so in a later release. A CUDA context does not survive fork()
(a child of a process that initialized CUDA cannot use it), and on macOS the
system frameworks Metal loads are not fork-safe (CPython made "spawn" the
macOS default for that reason: https://bugs.python.org/issue33725). With the
imports above a point's import phase is a fraction of a second, so a fork
server would save little and risk the one thing a sweep must get right.
"""

import time

T_MAIN = time.time()  # before any heavy import: the end of interpreter start-up

import os  # noqa: E402
import sys  # noqa: E402

# An InputError in the worker (a model too big for the device, …) is the same
# for every point; the runner recognises it by this prefix and stops the sweep.
REFUSAL = "mlxprof: error: "


def run(job_json: str, t_import: float, imports):
    """Measure the job; returns the protocol.WorkerReply. `t_import`: when
    importing began; `imports`: what lean.enable did (recorded in the reply)."""
    import mlx.core as mx  # noqa: F401  (the device and its knobs are fixed from here on)

    from .. import decode as dec
    from .. import models
    from ..models.adapters import import_model_code
    from ..results import env_knobs
    from ..session import open_session
    from .protocol import SPAWN_VAR, WorkerReply, WorkerTiming, decode_job

    job = decode_job(job_json)
    spawn = float(os.environ.get(SPAWN_VAR, T_MAIN))
    target = models.resolve(job.model, job.weights)
    import_model_code(target.config, target.library)  # the model's code is an import cost, not a build cost

    t_build = time.time()
    s = open_session(job.model, job.weights, job.dtype)
    settings = s.plan(job.runs, job.warmup, job.tokens, job.prompt_tokens)
    ids = s.prompt(settings.prompt_tokens)
    t_measure = time.time()
    runs = dec.measure(s.model, ids, settings.runs, settings.warmup, settings.tokens)
    t_done = time.time()
    _, _, split, _ = dec.summarize_runs(runs, s.backend)
    return WorkerReply(
        tok_s=[r.tok_s for r in runs],
        prefill_tok_s=[r.prompt_tokens / r.prefill_s for r in runs],
        split=split,
        peak_memory_bytes=max(r.peak_memory_bytes for r in runs),
        model=s.identity,
        settings=settings,
        backend=s.backend,
        chip=s.chip.name,
        env=env_knobs(),
        imports=imports,
        timing=WorkerTiming(start_s=T_MAIN - spawn, import_s=t_build - t_import,
                            build_s=t_measure - t_build, measure_s=t_done - t_measure),
    )


def main(argv=None) -> int:
    return serve(sys.argv[1:] if argv is None else argv, "mlxprof.sweep.worker", run)


def serve(argv, module: str, measure) -> int:
    """A worker's whole life: `measure(JOB_JSON, t_import, imports)` → one tagged reply line on
    stdout, exit 0; bad input → one REFUSAL line on stderr, exit 2; a job it
    cannot read (the parent's bug, not the user's input) → exit 3. Shared by
    the distributed ranks (mlxprof/distributed/rank.py)."""
    if len(argv) != 1:
        print(f"usage: python -m {module} JOB_JSON", file=sys.stderr)
        return 2
    t_import = time.time()
    from ..models import lean

    imports = lean.enable()  # before anything imports mlx-lm, mlx-vlm or transformers
    from ..errors import InputError
    from .protocol import ProtocolError, tagged_line

    try:
        reply = measure(argv[0], t_import, imports)
    except InputError as e:
        print(f"{REFUSAL}{e}", file=sys.stderr)
        return 2
    except ProtocolError as e:
        print(f"{module}: {e}", file=sys.stderr)
        return 3
    sys.stdout.write(tagged_line(reply))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
