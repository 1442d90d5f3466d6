"""The `mlxprof` command line: a click group, one subcommand per question."""

import functools
import sys

import click

from .errors import InputError
from .subproc import env_option

CONTEXT = dict(help_option_names=["-h", "--help"], max_content_width=100)


class Group(click.Group):
    """Turns InputError into a one-line message and exit code 2, anywhere."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as e:
            click.echo(f"mlxprof: error: {e}", err=True)
            ctx.exit(2)


@click.group(cls=Group, context_settings=CONTEXT)
@click.version_option(package_name="mlxprof")
def main():
    """Profile LLM decode on MLX: tok/s with honest spread, where each token's
    time goes, what one token's graph holds, and which scheduler knobs help on
    this chip."""


def model_options(f):
    f = click.option("--dtype", type=click.Choice(["bfloat16", "float16", "float32"]), default=None,
                     help="Activation / unquantized-parameter dtype for synthetic weights "
                          "(default: the checkpoint's, float32 for quantized models on the CPU backend).")(f)
    f = click.option("--weights", type=click.Choice(["auto", "real", "synthetic"]), default="auto",
                     show_default=True,
                     help="real: checkpoint on disk (never downloaded); synthetic: the published "
                          "architecture with random values; auto: real when on disk.")(f)
    f = click.option("--model", "-m", required=True,
                     help="Alias (see `mlxprof models`), local checkpoint directory, or cached HF repo id.")(f)
    return f


def decode_options(f):
    for name, hlp in (
        ("--runs", "Independent runs (fresh cache + prefill each) [default 3]."),
        ("--warmup", "Warm-up tokens per run, not measured [default 20]."),
        ("--tokens", "Measured tokens per run [default 100]."),
        ("--prompt-tokens", "Length of the deterministic prompt of token ids [default 16]."),
    ):
        f = click.option(name, type=int, default=None, help=hlp)(f)
    f = click.option("--prompt", default=None, help="Prompt text (needs a checkpoint with a tokenizer).")(f)
    f = click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
                     help="Write the result as versioned JSON (rewritten after every run).")(f)
    return f


@main.command(context_settings=CONTEXT)
@model_options
@decode_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@env_option
@click.pass_context
def decode(ctx, model, weights, dtype, runs, warmup, tokens, prompt_tokens, prompt, json_path, quiet, env):
    """Decode tok/s best-of-N and the per-token pipeline split.

    Per token: build (Python graph construction), submit (inside
    mx.async_eval), wait (blocked in .item()), token (between deliveries).
    tok/s per run = (tokens - 1) / (t_last - t_first).

    \b
    Verdict rule: the device's share of a token is wait/token on CUDA,
    (submit + wait)/token on Metal (async_eval blocks on back-pressure there),
    or the GPU busy fraction when a kernel timeline is recorded.
    >= 0.6 GPU-bound, <= 0.3 host-bound, otherwise mixed.
    On the CPU backend async_eval computes the token itself: no GPU verdict.
    """
    from . import profile, render

    if env:
        from .decode import DecodeResult

        result = _in_subprocess(ctx, env, DecodeResult, json_path)
        render.decode_table(result)
        return
    result = profile.decode(
        model, weights=weights, dtype=dtype, runs=runs, warmup=warmup, tokens=tokens,
        prompt_tokens=prompt_tokens, prompt=prompt, json_path=json_path,
        progress=not quiet, command=" ".join(["mlxprof"] + sys.argv[1:]),
    )
    render.decode_table(result)
    if json_path:
        click.echo(f"wrote {json_path}", err=True)


@main.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def models(as_json):
    """List model aliases with parameter count and bytes streamed per token."""
    from . import render
    from .models import catalog

    rows = catalog()
    if as_json:
        import json

        click.echo(json.dumps(rows, indent=2))
    else:
        render.models_table(rows)




def _command_line():
    return " ".join(["mlxprof"] + sys.argv[1:])


def _in_subprocess(ctx, env, cls, json_path):
    """--env: validate, re-run this command in a fresh process, save its result."""
    from . import results, subproc

    variables = subproc.parse_env(env)
    if json_path:
        results.check_writable(json_path)
    result = subproc.rerun(ctx, variables, cls)
    if json_path:
        results.save(result, json_path)
        click.echo(f"wrote {json_path}", err=True)
    return result


@main.command(context_settings=CONTEXT)
@model_options
@click.option("--context", type=int, default=None,
              help="KV length before the step: tokens already in the cache [default 16, just after "
                   "a short prompt].")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the histogram as versioned JSON (usable as a later --diff).")
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
    lazily (forward, log-softmax, greedy pick, as mlx-vlm does), exports it with
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
        parse_env(env)
        if diff_path:
            ops_mod.load_histogram(diff_path)
        result = _in_subprocess(ctx, env, ops_mod.OpsResult, json_path)
    else:
        result = ops_mod.run(model, weights, dtype, context, json_path, dot_path, diff_path,
                             command=_command_line())
        if json_path:
            click.echo(f"wrote {json_path}", err=True)
    render.ops_table(result, top=top)


@main.command(context_settings=CONTEXT)
@model_options
@click.option("--decode", "decode_path", type=click.Path(dir_okay=False), default=None,
              help="Take decode tok/s from this `mlxprof decode --json` result instead of measuring.")
@click.option("--no-decode", is_flag=True, help="Skip the decode comparison.")
@click.option("--runs", type=int, default=None, help="Decode runs for the short measurement [1].")
@click.option("--decode-warmup", type=int, default=None, help="Decode warm-up tokens [10].")
@click.option("--tokens", type=int, default=None, help="Decode measured tokens [50].")
@click.option("--iterations", type=int, default=None, help="Floor evaluations timed [30].")
@click.option("--warmup", type=int, default=None, help="Floor evaluations not timed [5].")
@click.option("--probe-mb", type=int, default=None,
              help="Size of the copy-bandwidth probe array [1024 on a GPU, 256 on the CPU].")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the result as versioned JSON.")
@env_option
@click.pass_context
def floor(ctx, model, weights, dtype, decode_path, no_decode, runs, decode_warmup, tokens,
          iterations, warmup, probe_mb, json_path, env):
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

        parse_env(env)
        result = _in_subprocess(ctx, env, floor_mod.FloorResult, json_path)
    else:
        result = floor_mod.run(
            model, weights, dtype, iterations=iterations, warmup=warmup, probe_mb=probe_mb,
            decode_path=decode_path, no_decode=no_decode, runs=runs, decode_warmup=decode_warmup,
            tokens=tokens, json_path=json_path, command=_command_line(),
        )
        if json_path:
            click.echo(f"wrote {json_path}", err=True)
    render.floor_table(result)


@main.command(context_settings=CONTEXT)
@click.option("--model", "-m", required=True,
              help="An alias family (gemma3n-e2b, gemma3n-e4b, gemma3n-tiny) or one of its aliases.")
@click.option("--bits", default="4,8,16", show_default=True,
              help="Comma-separated variants of the family; 16 = the bf16 alias.")
@click.option("--weights", type=click.Choice(["auto", "real", "synthetic"]), default="auto",
              show_default=True, help="As for decode, per variant.")
@click.option("--dtype", type=click.Choice(["bfloat16", "float16", "float32"]), default=None,
              help="Activation dtype for every variant (default: each variant's own).")
@click.option("--runs", type=int, default=None, help="Runs per variant [5; 3 for big models on the CPU].")
@click.option("--warmup", type=int, default=None, help="Warm-up tokens per run [20].")
@click.option("--tokens", type=int, default=None, help="Measured tokens per run [100].")
@click.option("--prompt-tokens", type=int, default=None, help="Prompt length [16].")
@click.option("--no-floor", is_flag=True, help="Skip the per-variant streaming floor.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the result as versioned JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
@env_option
@click.pass_context
def compare(ctx, model, bits, weights, dtype, runs, warmup, tokens, prompt_tokens, no_floor,
            json_path, quiet, env):
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

        parse_env(env)
        cmp.parse_bits(bits, cmp.family_of(model))
        result = _in_subprocess(ctx, env, cmp.CompareResult, json_path)
    else:
        result = cmp.run(model, bits, weights, dtype, runs, warmup, tokens, prompt_tokens,
                         floor=not no_floor, json_path=json_path, progress=not quiet,
                         command=_command_line())
        if json_path:
            click.echo(f"wrote {json_path}", err=True)
    render.compare_table(result)


if __name__ == "__main__":  # pragma: no cover
    main()
