"""The `mlxprof` command line: a click group, one subcommand per question; each
command a thin call into the library (options and output policy: cli_options.py)."""

import click

from . import cli_tools
from .cli_options import (CONTEXT, Group, command_line, counts, depth_option, file_path, finish,
                          format_option, image_options, in_subprocess, json_option, model_options, prompt_option,
                          quiet_option, weights_options)
from .distributed import table as distributed
from .distributed.table import options as distributed_options
from .errors import InputError
from .subproc import env_option


@click.group(cls=Group, context_settings=CONTEXT)
@click.version_option(package_name="mlxprof")
def main():
    """Profile LLM decode on MLX: tok/s with honest spread, where each token's
    time goes, what one token's graph holds, and which scheduler knobs help on
    this chip."""


for _cmd in (cli_tools.models, cli_tools.env, cli_tools.sweep, cli_tools.report, cli_tools.diff):
    main.add_command(_cmd)


@main.command(context_settings=CONTEXT)
@model_options
@counts(runs=3, warmup=20, tokens=100, prompt_tokens=16)
@prompt_option
@json_option("rewritten after every run")
@format_option
@image_options
@quiet_option
@click.option("--gpu-timeline", is_flag=True,
              help="CUDA only (needs cupti-python: pip install 'mlxprof[cuda]'): record the GPU's "
                   "timeline with CUPTI in extra traced runs interleaved with the untraced ones: "
                   "graph-level runs for the GPU busy fraction and GPU ms per token, one kernel-level "
                   "run for kernels per token and top kernels by MLX primitive, and what each costs "
                   "in tok/s.")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False), default=None,
              help="Write a Chrome/Perfetto trace JSON (open in ui.perfetto.dev): per-token "
                   "build/submit/wait spans, token deliveries, a tok/s counter; warm-up excluded.")
@click.option("--metal-capture", default=None, metavar="FILE.gputrace",
              help="Metal only: capture --capture-tokens decode tokens (after --warmup outside the capture) "
                   "in a fresh process started with MTL_CAPTURE_ENABLED=1, into a new FILE.gputrace for "
                   "Xcode's Metal debugger (the GPU timeline); nothing is timed.")
@click.option("--capture-tokens", type=int, default=None, metavar="N",
              help="Decode tokens inside the --metal-capture.")
@depth_option
@env_option
@distributed_options
@click.pass_context
def decode(ctx, model, weights, dtype, runs, warmup, tokens, prompt_tokens, prompt, json_path, fmt, quiet,
           gpu_timeline, trace_path, metal_capture, capture_tokens, depth, env, image=None, image_size=None,
           ranks=None, parallel=None, port=None):
    """Decode tok/s best-of-N and the per-token pipeline split.

    Per token: build (Python graph construction), submit (inside
    mx.async_eval), wait (blocked in .item()), token (between deliveries).
    tok/s per run = (tokens - 1) / (t_last - t_first).

    \b
    Verdict rule: the device's share of a token is wait/token on CUDA,
    (submit + wait)/token on Metal (async_eval blocks on back-pressure there):
    >= 0.6 GPU-bound, <= 0.3 host-bound, otherwise mixed. With
    --gpu-timeline the GPU busy fraction is used instead:
    >= 0.8 GPU-bound, <= 0.6 host-bound, otherwise mixed.
    On the CPU backend async_eval computes the token itself: no GPU verdict.

    With --metal-capture (Metal): a GPU capture for Xcode instead of a measurement.
    """
    if not (env or prompt or image):
        from .models import lean

        lean.enable()  # token ids only: the model's code without transformers (nor torch through it)
    from . import profile, render
    from .decode import DecodeResult

    if metal_capture is not None or capture_tokens is not None:  # a Metal GPU capture, not a measurement
        from . import capture

        return finish(capture.decode(ctx, command_line()), json_path, capture.print_result)
    if depth is not None:
        from . import depth as dp
        from .subproc import parse_env

        dp.refuse_options(prompt_tokens=prompt_tokens, prompt=prompt, image=image, image_size=image_size,
                         gpu_timeline=gpu_timeline, trace=trace_path)
        result = in_subprocess(ctx, parse_env(env), dp.DepthResult) if env else dp.decode_at_depth(
            model, depth, weights=weights, dtype=dtype, runs=runs,
            warmup=warmup, tokens=tokens, json_path=file_path(json_path), progress=not quiet,
            command=command_line())
        return finish(result, json_path, dp.depth_table, fmt=fmt)
    if distributed.requested(ctx.params):  # --ranks N (or under mlx.launch): see mlxprof/distributed
        result = distributed.from_cli(ctx.params, command_line())
        if result is not None:  # None: a rank other than 0 of an mlx.launch run
            finish(result, json_path, distributed.distributed_table, trace_path, fmt=fmt)
        return
    if env:
        from .subproc import parse_env

        result = in_subprocess(ctx, parse_env(env), DecodeResult)
    else:
        result = profile.decode(
            model, weights=weights, dtype=dtype, runs=runs, warmup=warmup, tokens=tokens,
            prompt_tokens=prompt_tokens, prompt=prompt, json_path=file_path(json_path),
            progress=not quiet, command=command_line(), gpu_timeline=gpu_timeline,
            trace_path=trace_path, image=image, image_size=image_size,
        )
    finish(result, json_path, render.decode_table, trace_path, fmt=fmt)


@main.command(context_settings=CONTEXT)
@model_options
@click.option("--budget", type=float, default=None, metavar="SECONDS",
              help="Stop when the next round would pass this many seconds of measuring [default 120].")
@click.option("--block", type=int, default=None,
              help="Measured tokens per block (after 2 unmeasured ones) [default 8, less for a small --tokens].")
@click.option("--rounds", type=int, default=None,
              help="At most this many rounds (one block pair per loop each) [default: no limit].")
@counts(warmup="20 (here: after each prefill)", tokens="100 (here: per loop between prefills)", prompt_tokens=16)
@prompt_option
@json_option("rewritten after every segment")
@quiet_option
def parity(model, weights, dtype, budget, block, rounds, warmup, tokens, prompt_tokens, prompt, json_path, quiet):
    """mlxprof's instrumented loop vs the library's own generate_step
    (mlx-lm's for models mlx-lm builds, mlx-vlm's for the rest), in one
    process, in paired blocks.

    Each loop continues its own cache in short blocks run in palindromic
    rounds (A B B A, …), restarting from the same prefill every segment; each
    round gives one ratio mlxprof / library tok/s. The result: their
    trimmed geometric mean with a 95% bootstrap CI over rounds and a Wilcoxon p,
    resolved when the CI lies wholly above or below ×0.98. It stops once the
    CI is within ±0.5% or at the time budget, and checks that both loops
    produce the same greedy token ids (a mismatch is reported, not an error).
    """
    from . import parity as par
    from . import render

    result = par.parity(
        model, weights=weights, dtype=dtype, rounds=rounds, warmup=warmup, tokens=tokens,
        prompt_tokens=prompt_tokens, prompt=prompt, json_path=file_path(json_path), progress=not quiet,
        command=command_line(), block=block, budget=budget,
    )
    finish(result, json_path, render.parity_table)


@main.command(context_settings=CONTEXT)
@model_options
@click.option("--image", required=True, metavar="PATH", help="The image of the image prompt.")
@click.option("--image-size", type=int, default=None,
              help="Resize to N×N instead of the checkpoint's 768 (512, 768, 1024 … keep 256 soft tokens; "
                   "multiples of 32 below 512 are tiny test inputs with (N/32)² soft tokens).")
@click.option("--ttft-runs", type=int, default=None,
              help="Measured TTFT breakdown runs [default 10; 2 on the CPU backend].")
@click.option("--ttft-warmup", type=int, default=None,
              help="TTFT breakdown warm-up runs [default 10; 1 on the CPU backend].")
@counts(runs="3 per prompt, text and image interleaved; 2 on the CPU backend", warmup=20, tokens=100,
        prompt_tokens=16)
@prompt_option
@json_option()
@quiet_option
def vlm(model, weights, dtype, runs, warmup, tokens, prompt_tokens, prompt, json_path, image, image_size,
        ttft_runs, ttft_warmup, quiet):
    """Image prompt: TTFT breakdown, and text vs image prefill/TTFT/decode.

    \b
    TTFT breakdown (median, stddev, largest deviation from the median,
    over --ttft-runs after --ttft-warmup): preprocess, vision tower,
    projection (embed_vision), embedding merge, text prefill, first token.
    Stages are synchronised with mx.eval between them, so the breakdown is
    sequential by construction.

    \b
    Then --runs interleaved runs of the same text with and without the
    image (fresh cache each): prefill tok/s, TTFT (raw input → first token
    in one fused eval) and decode tok/s, with a significance statement.
    """
    from . import profile, render

    result = profile.vlm(
        model, image, weights=weights, dtype=dtype, image_size=image_size, runs=runs, warmup=warmup,
        tokens=tokens, ttft_runs=ttft_runs, ttft_warmup=ttft_warmup, prompt_tokens=prompt_tokens,
        prompt=prompt, progress=not quiet, json_path=file_path(json_path), command=command_line(),
    )
    finish(result, json_path, render.vlm_table)


@main.command(context_settings=CONTEXT)
@model_options
@click.option("--context", type=int, default=None,
              help="KV length before the step: tokens already in the cache [default 16, just after "
                   "a short prompt].")
@json_option("usable as a later --diff")
@click.option("--dot", "dot_path", type=click.Path(dir_okay=False), default=None,
              help="Also keep the raw DOT export (render with graphviz).")
@click.option("--diff", "diff_path", type=click.Path(dir_okay=False), default=None,
              help="Another `mlxprof ops --json` result: print per-op +/− (this − that).")
@click.option("--top", type=int, default=25, show_default=True, help="Ops listed (0: all).")
@env_option
@click.pass_context
def ops(ctx, model, weights, dtype, context, json_path, dot_path, diff_path, top, env):
    """One decode token's graph as an op histogram.

    Prefills --context tokens into a fresh cache, builds the next decode step
    lazily (forward, log-softmax, greedy pick, as mlx-lm does), exports it with
    mx.export_to_dot before anything evaluates it, and counts primitives. Each
    op is a view (no kernel: Broadcast, Reshape, Transpose, Squeeze, Slice, …),
    compute (a kernel), or compiled (all Compiled… fusions collapse into one
    family; their fused ops are listed). A sanity line compares the weight
    products found (QuantizedMatmul, or Matmul for bf16) with those expected
    from the model object (streamed weights, KV-shared layers skipping k/v,
    per-layer projections, tied LM head, modules called twice).

    \b
    The graph depends on the step: mlx-lm's KV caches grow in 256-token blocks,
    so a step whose context is a multiple of 256 (e.g. --context 256) also
    allocates and concatenates a new block (extra Concatenate/Full/Broadcast
    nodes). Pick --context to choose the step; compare steps, bits or
    MLX_DISABLE_COMPILE=1 with --json and --diff:
      mlxprof ops -m gemma3n-e2b-4bit --json q4.json
      mlxprof ops -m gemma3n-e2b-bf16 --diff q4.json
      mlxprof ops -m gemma3n-e2b-4bit --env MLX_DISABLE_COMPILE=1 --diff q4.json
    """
    from . import ops as ops_mod
    from . import render
    from .subproc import parse_env

    if top is not None and top < 0:
        raise InputError(f"--top must be >= 0, not {top}")
    if env:
        variables = parse_env(env)
        if diff_path:
            ops_mod.load_histogram(diff_path)
        result = in_subprocess(ctx, variables, ops_mod.OpsResult)
    else:
        result = ops_mod.run(model, weights, dtype, context, file_path(json_path), dot_path, diff_path,
                             command=command_line())
    finish(result, json_path, lambda r: render.ops_table(r, top=top), dot_path)


@main.command(context_settings=CONTEXT)
@model_options
@click.option("--decode", "decode_path", type=click.Path(dir_okay=False), default=None,
              help="Take decode tok/s from this `mlxprof decode --json` result instead of measuring.")
@click.option("--no-decode", is_flag=True, help="Skip the decode comparison.")
@counts(runs="1, for the short decode measurement", warmup=10, tokens=50)
@click.option("--iterations", type=int, default=None, help="Floor evaluations timed [default 30].")
@click.option("--floor-warmup", type=int, default=None, help="Floor evaluations not timed [default 5].")
@click.option("--probe-mb", type=int, default=None,
              help="Size of the copy-bandwidth probe array [1024 on a GPU, 256 on the CPU].")
@json_option()
@env_option
@click.pass_context
def floor(ctx, model, weights, dtype, decode_path, no_decode, runs, warmup, tokens,
          iterations, floor_warmup, probe_mb, json_path, env):
    """The weight-streaming floor: decode's matrix-vector products and nothing else.

    Builds a graph of exactly the products one decode token performs, over
    exactly the weights it streams (derived from the model object: every
    Linear it reaches, KV-shared layers without k/v, the tied LM head; lookup
    embeddings are gathers, not streams), each weight distinct, with the
    model's own quantization and dtypes, evaluated once per token. Reports
    ms/token, bytes/token, achieved GB/s and floor tok/s, a large copy as the
    device's bandwidth, and "decode runs at X% of the floor, the floor at Y% of
    the copy bandwidth".
    """
    from . import floor as floor_mod
    from . import render

    if env:
        from .subproc import parse_env

        variables = parse_env(env)
        result = in_subprocess(ctx, variables, floor_mod.FloorResult)
    else:
        result = floor_mod.run(
            model, weights, dtype, iterations=iterations, warmup=floor_warmup, probe_mb=probe_mb,
            decode_path=decode_path, no_decode=no_decode, runs=runs, decode_warmup=warmup,
            tokens=tokens, json_path=file_path(json_path), command=command_line(),
        )
    finish(result, json_path, render.floor_table)


@main.command(context_settings=CONTEXT)
@click.option("--model", "-m", required=True,
              help="An alias family (gemma3n-e2b, gemma3n-e4b, gemma3n-tiny) or one of its aliases.")
@click.option("--bits", default="4,8,16", show_default=True,
              help="Comma-separated variants of the family; 16 = the bf16 alias.")
@weights_options
@counts(runs="5 per variant; 3 for big models on the CPU", warmup=20, tokens=100, prompt_tokens=16)
@click.option("--no-floor", is_flag=True, help="Skip the per-variant streaming floor.")
@json_option()
@format_option
@quiet_option
@env_option
@click.pass_context
def compare(ctx, model, bits, weights, dtype, runs, warmup, tokens, prompt_tokens, no_floor,
            json_path, fmt, quiet, env):
    """Bits side by side: is the lower-bit model faster here, and why?

    For each variant of an alias family: decode tok/s (best, median, spread),
    the pipeline split, bytes per token, the weight-streaming floor and its GEMV
    GB/s, and one step's graph size; then one sentence, from those numbers, on
    why the lower-bit model is or is not faster. Variants run interleaved
    (A B C, B C A, …) when all fit in memory at once, else one after another;
    the output says which.
    """
    from . import compare as cmp
    from . import render

    if env:
        from .subproc import parse_env

        variables = parse_env(env)
        cmp.parse_bits(bits, cmp.family_of(model))
        result = in_subprocess(ctx, variables, cmp.CompareResult)
    else:
        result = cmp.run(model, bits, weights, dtype, runs, warmup, tokens, prompt_tokens,
                         floor=not no_floor, json_path=file_path(json_path), progress=not quiet,
                         command=command_line())
    finish(result, json_path, render.compare_table, fmt=fmt)


if __name__ == "__main__":  # pragma: no cover
    main()
