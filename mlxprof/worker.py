"""One sweep point in a fresh process: build the model, measure decode, print
one tagged JSON line.

MLX reads MLX_MAX_OPS_PER_BUFFER / MLX_MAX_MB_PER_BUFFER once, when the device
is created, so a knob value only takes effect in a process that starts with it
set: the parent (`mlxprof.sweep`) sets the environment and starts
`python -m mlxprof.worker JOB_JSON`. Anything else a library prints on stdout is
fine: the parent reads only the last line that starts with `TAG`.
"""

import time

T_MAIN = time.time()  # before any heavy import: the end of interpreter start-up

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

TAG = "MLXPROF-RESULT "
SPAWN_VAR = "MLXPROF_SPAWN_TIME"  # time.time() of the parent just before it started us


def run(job: dict) -> dict:
    spawn = float(os.environ.get(SPAWN_VAR, T_MAIN))
    t_import = time.time()
    import mlx.core as mx  # noqa: F401  (the device and its knobs are fixed from here on)

    from . import decode as dec
    from .results import env_knobs
    from .session import open_session

    if job.get("weights", "auto") != "real":
        # the model code (mlx-vlm) is an import cost, not a build cost
        from mlx_vlm.models.gemma3n import gemma3n  # noqa: F401

    t_build = time.time()
    s = open_session(job["model"], job.get("weights", "auto"), job.get("dtype"))
    settings = s.plan(job.get("runs"), job.get("warmup"), job.get("tokens"), job.get("prompt_tokens"))
    ids = s.prompt(settings.prompt_tokens)
    t_measure = time.time()
    runs = dec.measure(s.model, ids, settings.runs, settings.warmup, settings.tokens)
    t_done = time.time()
    _, _, split, _ = dec.summarize_runs(runs, s.backend)
    return dict(
        tok_s=[r.tok_s for r in runs],
        prefill_tok_s=[r.prompt_tokens / r.prefill_s for r in runs],
        split=split.model_dump(),
        peak_memory_bytes=max(r.peak_memory_bytes for r in runs),
        model=s.identity.model_dump(),
        settings=settings.model_dump(),
        backend=s.backend,
        chip=s.chip.name,
        env=env_knobs(),
        timing=dict(
            start_s=T_MAIN - spawn,
            import_s=t_build - t_import,
            build_s=t_measure - t_build,
            measure_s=t_done - t_measure,
        ),
    )


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m mlxprof.worker JOB_JSON", file=sys.stderr)
        return 2
    from .errors import InputError

    try:
        out = run(json.loads(argv[0]))
    except InputError as e:
        print(f"mlxprof: error: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(TAG + json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
