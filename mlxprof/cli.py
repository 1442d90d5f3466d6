"""The `mlxprof` command line: a click group, one subcommand per question."""

import functools
import sys

import click

from .errors import InputError

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
def decode(model, weights, dtype, runs, warmup, tokens, prompt_tokens, prompt, json_path, quiet,
           image=None, image_size=None):
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

    result = profile.decode(
        model, weights=weights, dtype=dtype, runs=runs, warmup=warmup, tokens=tokens,
        prompt_tokens=prompt_tokens, prompt=prompt, json_path=json_path,
        progress=not quiet, command=" ".join(["mlxprof"] + sys.argv[1:]),
        image=image, image_size=image_size,
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


if __name__ == "__main__":  # pragma: no cover
    main()
