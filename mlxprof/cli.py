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


def image_options(f):
    """--image / --image-size, for any command that prefills a prompt."""
    f = click.option("--image-size", type=int, default=None,
                     help="Resize the image to N×N instead of the checkpoint's 768 (512, 768, 1024 … keep "
                          "256 soft tokens; multiples of 32 below 512 are tiny test inputs with (N/32)² soft "
                          "tokens).")(f)
    f = click.option("--image", default=None, metavar="PATH",
                     help="Prefill an image prompt through the vision tower (Gemma 3n: MobileNetV5; "
                          "synthetic weights when the checkpoint is not on disk).")(f)
    return f


@main.command(context_settings=CONTEXT)
@model_options
@decode_options
@image_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--gpu-timeline", is_flag=True,
              help="CUDA only (needs cupti-python: pip install 'mlxprof[cuda]'): record the GPU's "
                   "kernel timeline with CUPTI over an extra, separate set of traced runs; report "
                   "GPU busy fraction, GPU ms and kernels per token, top kernels by MLX primitive, "
                   "and what tracing costs in tok/s.")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False), default=None,
              help="Write a Chrome/Perfetto trace JSON (open in ui.perfetto.dev): per-token "
                   "build/submit/wait spans, token deliveries, a tok/s counter; warm-up excluded.")
@env_option
@click.pass_context
def decode(ctx, model, weights, dtype, runs, warmup, tokens, prompt_tokens, prompt, json_path, quiet,
           gpu_timeline, trace_path, env, image=None, image_size=None):
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
        progress=not quiet, command=" ".join(["mlxprof"] + sys.argv[1:]), gpu_timeline=gpu_timeline,
        trace_path=trace_path,
        image=image, image_size=image_size,
    )
    render.decode_table(result)
    for path in (json_path, trace_path):
        if path:
            click.echo(f"wrote {path}", err=True)


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


@main.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON result instead of tables.")
@click.option("--gating-file", type=click.Path(dir_okay=False), default=None,
              help="User gating file merged over the built-in table "
                   "[default: $MLXPROF_GATING_FILE, else ~/.config/mlxprof/gating.json].")
def env(as_json, gating_file):
    """Backend, chip, MLX's per-chip scheduler defaults, the MLX_* variables in
    force, and the knob gating advice for this chip."""
    from . import gating, render

    result = gating.environment(gating_file, command=" ".join(["mlxprof"] + sys.argv[1:]))
    if as_json:
        click.echo(result.model_dump_json(by_alias=True, indent=2))
    else:
        render.env_table(result)


@main.command(context_settings=CONTEXT)
@model_options
@click.option("--rounds", type=int, default=None,
              help="Interleaved rounds, each one run of every loop (A B, B A, …) [default 5].")
@click.option("--warmup", type=int, default=None, help="Warm-up tokens per run, not measured [default 20].")
@click.option("--tokens", type=int, default=None, help="Measured tokens per run [default 100].")
@click.option("--prompt-tokens", type=int, default=None,
              help="Length of the deterministic prompt of token ids [default 16].")
@click.option("--prompt", default=None, help="Prompt text (needs a checkpoint with a tokenizer).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the result as versioned JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def parity(model, weights, dtype, rounds, warmup, tokens, prompt_tokens, prompt, json_path, quiet):
    """mlxprof's instrumented loop vs mlx-vlm's own generate_step.

    Interleaved runs on one model and prompt; tok/s for both computed the
    same way ((tokens - 1) / (t_last - t_first) at delivery, after the same
    warm-up); the ratio mlxprof / mlx-vlm with a bootstrap 95% CI and a
    Mann-Whitney p-value; and whether both loops produce the same greedy
    token ids (a mismatch is reported, not an error).
    """
    from . import parity as par
    from . import render

    result = par.parity(
        model, weights=weights, dtype=dtype, rounds=rounds, warmup=warmup, tokens=tokens,
        prompt_tokens=prompt_tokens, prompt=prompt, json_path=json_path, progress=not quiet,
        command=" ".join(["mlxprof"] + sys.argv[1:]),
    )
    render.parity_table(result)
    if json_path:
        click.echo(f"wrote {json_path}", err=True)


@main.command(context_settings=CONTEXT)
@model_options
@click.option("--knob", "knob_specs", multiple=True, required=True, metavar="NAME=V1,V2,…",
              help="A variable and its values; `default` leaves it unset. Several --knob flags make a grid.")
@click.option("--reps", type=int, default=3, show_default=True,
              help="Rounds: each value runs once per round, interleaved round-robin.")
@click.option("--runs", type=int, default=None, help="Decode runs per point [default 3].")
@click.option("--warmup", type=int, default=None, help="Warm-up tokens per run [default 20].")
@click.option("--tokens", type=int, default=None, help="Measured tokens per run [default 100].")
@click.option("--prompt-tokens", type=int, default=None, help="Prompt length in token ids [default 16].")
@click.option("--timeout", type=float, default=600.0, show_default=True,
              help="Seconds one point may take before it is killed and recorded as failed.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Result file, rewritten after every point [default: mlxprof-sweep-MODEL-TIME.json, "
                   "or the --resume file].")
@click.option("--resume", type=click.Path(dir_okay=False), default=None,
              help="Continue a partial sweep from its result file (same model, knobs and settings).")
@click.option("--force", is_flag=True, help="Sweep knobs this backend does not read (e.g. buffer sizes on CPU).")
@click.option("--save-gating", is_flag=True, help="Save the recommendation as this chip's gating decision.")
@click.option("--gating-file", type=click.Path(dir_okay=False), default=None,
              help="Gating file for --save-gating [default: mlxprof's per-user file].")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def sweep(model, weights, dtype, knob_specs, reps, runs, warmup, tokens, prompt_tokens, timeout, json_path,
          resume, force, save_gating, gating_file, quiet):
    """Sweep MLX environment knobs, each point in a fresh process.

    \b
    mlxprof sweep -m gemma3n-e2b-4bit --knob MLX_MAX_OPS_PER_BUFFER=default,50,100,200,1000,2000

    MLX reads its buffer knobs once, when the device is created, so every
    point starts a new worker with the variables set (`default`: unset).
    Points run round-robin over the values for --reps rounds, so drift hits
    all values alike. Each value's run-level tok/s samples are compared with
    the default: speedup, bootstrap 95% CI and Mann-Whitney p; only a ratio
    whose CI excludes 1 with p < 0.05 is a gain. A crashed or hung point is
    recorded as failed and the sweep goes on; Ctrl-C leaves a partial file
    that --resume continues.
    """
    import datetime
    import importlib.util
    import re

    from . import render
    from . import sweep as sw

    knobs = {}
    for spec in knob_specs:
        name, values = sw.parse_knob(spec)
        if name in knobs:
            raise InputError(f"--knob {name} given twice; list all its values in one flag")
        knobs[name] = values
    if gating_file and not save_gating:
        raise InputError("--gating-file goes with --save-gating")
    if save_gating and importlib.util.find_spec("mlxprof.gating") is None:
        raise InputError("--save-gating needs mlxprof.gating, which this installation lacks")
    if json_path is None and resume is None:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_")
        json_path = f"mlxprof-sweep-{stem}-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    try:
        result = sw.run(
            model, knobs=knobs, reps=reps, runs=runs, warmup=warmup, tokens=tokens,
            prompt_tokens=prompt_tokens, weights=weights, dtype=dtype, timeout=timeout, force=force,
            json_path=json_path, resume=resume, progress=not quiet,
            command=" ".join(["mlxprof"] + sys.argv[1:]),
        )
    except sw.SweepInterrupted as e:
        render.sweep_table(e.result)
        path = json_path or resume
        click.echo(f"interrupted: partial result in {path}; continue with --resume {path}", err=True)
        sys.exit(130)
    render.sweep_table(result)
    click.echo(f"wrote {json_path or resume}", err=True)
    if save_gating:
        saved = sw.save_gating(result, path=gating_file, source=json_path or resume)
        click.echo(f"saved gating decision for {', '.join(saved)}", err=True)


@main.command(context_settings=CONTEXT)
@click.option("--model", "-m", default=None, help="Measure this model (alias, directory or cached repo id).")
@click.option("--weights", type=click.Choice(["auto", "real", "synthetic"]), default="auto", show_default=True)
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Markdown path [default: docs/benchmark_results/<model>-<backend>.md]; JSON results beside it.")
@click.option("--quick", is_flag=True, help="Small token counts: about a minute for gemma3n-tiny on 2 CPU cores.")
@click.option("--from", "from_paths", multiple=True, type=click.Path(),
              help="Render saved JSON results (one per kind) instead of measuring. Repeatable.")
@click.option("--gpu-timeline", is_flag=True, help="CUDA: record the kernel timeline (CUPTI) in the decode step.")
@click.option("--image", type=click.Path(), default=None, help="Image for the text-vs-image section.")
@click.option("--bits", default=None, help="Also compare bit widths of the model's family, e.g. 4,16.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("--quiet", "-q", is_flag=True)
def report(model, weights, out, quick, from_paths, gpu_timeline, image, bits, no_plots, quiet):
    """Write a decode-profile markdown document.

    Either measures everything (decode best-of-N and the split, op
    histogram, streaming floor, a sweep of MLX_MAX_OPS_PER_BUFFER where the
    backend reads it, text vs image, parity with mlx-vlm) or, with --from,
    renders saved JSON results without measuring again. Saves every JSON
    result beside the markdown and ends with the commands that reproduce
    each table.
    """
    from pathlib import Path

    from . import report as rep

    if bool(model) == bool(from_paths):
        raise InputError("give either --model (measure) or --from RESULT.json … (render), not both or neither")
    if from_paths:
        docs = rep.load_results(from_paths)
        if out is None:
            d = docs.get("decode") or {}
            out = _default_out(d.get("model", {}).get("name", "report"), d.get("provenance", {}).get("backend", ""))
    else:
        if out is None:
            from . import hardware

            out = _default_out(model, hardware.backend_name())
        log = (lambda m: None) if quiet else (lambda m: click.echo(m, err=True))
        docs = rep.measure(model, Path(out), quick=quick, weights=weights, gpu_timeline=gpu_timeline,
                           image=image, progress=not quiet, bits=bits, log=log)
    path = rep.write(docs, Path(out), plots=not no_plots)
    click.echo(f"wrote {path}", err=True)


def _default_out(name, backend):
    safe = name.replace("/", "_").strip("._") or "report"
    return f"docs/benchmark_results/{safe}-{backend or 'unknown'}.md"


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
@click.option("--runs", type=int, default=None,
              help="Decode runs per prompt, text and image interleaved, fresh cache each "
                   "[default 3; 2 on the CPU backend].")
@click.option("--warmup", type=int, default=None, help="Warm-up tokens per decode run, not measured [default 20].")
@click.option("--tokens", type=int, default=None, help="Measured tokens per decode run [default 100].")
@click.option("--prompt-tokens", type=int, default=None,
              help="Length of the deterministic text prompt of token ids [default 16].")
@click.option("--prompt", default=None, help="Prompt text (needs a checkpoint with a tokenizer).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the result as versioned JSON (kind 'vlm') when done.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def vlm(model, weights, dtype, runs, warmup, tokens, prompt_tokens, prompt, json_path, image, image_size,
        ttft_runs, ttft_warmup, quiet):
    """Image prompt: TTFT breakdown, and text vs image prefill/TTFT/decode.

    \b
    TTFT breakdown (seed 001's cells: median, stddev, largest deviation
    from the median, over --ttft-runs after --ttft-warmup): preprocess,
    vision tower, projection (embed_vision), embedding merge, text prefill,
    first token. Stages are synchronised with mx.eval between them, so
    the breakdown is sequential by construction.

    \b
    Then --runs interleaved runs of the same text with and without the
    image (fresh cache each): prefill tok/s, TTFT (raw input → first token
    in one fused eval) and decode tok/s, with a significance statement.
    """
    from . import profile, render, results

    result = profile.vlm(
        model, image, weights=weights, dtype=dtype, image_size=image_size, runs=runs, warmup=warmup,
        tokens=tokens, ttft_runs=ttft_runs, ttft_warmup=ttft_warmup, prompt_tokens=prompt_tokens,
        prompt=prompt, progress=not quiet, json_path=json_path,
        command=" ".join(["mlxprof"] + sys.argv[1:]),
    )
    render.vlm_table(result)
    if json_path:
        results.save(result, json_path)
        click.echo(f"wrote {json_path}", err=True)




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
