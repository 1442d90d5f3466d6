"""The `mlxprof` command line: a click group, one subcommand per question."""

import sys

import click

from .errors import InputError, OutputError
from .subproc import env_option

CONTEXT = dict(help_option_names=["-h", "--help"], max_content_width=100)


class Group(click.Group):
    """The last line of defence: bad input is one line and exit 2; Ctrl-C is
    one line and exit 130; anything unexpected is one line naming the command,
    the exception and the log file holding its traceback, and exit 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as e:
            click.echo(f"mlxprof: error: {e}", err=True)
            ctx.exit(2)
        except OutputError as e:
            click.echo(f"mlxprof: error: {e}", err=True)
            ctx.exit(1)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            from .results import WRITTEN

            kept = ", ".join(f"{p} ({k}, partial)" for p, k in WRITTEN.items())
            click.echo("mlxprof: interrupted; " + (f"measurements so far are in {kept}" if kept else
                       "nothing was saved (--json FILE keeps partial results)"), err=True)
            ctx.exit(130)
        except Exception as e:  # noqa: BLE001 — nothing reaches the user as a raw traceback
            log = _write_traceback()
            name = ctx.invoked_subcommand or "mlxprof"
            click.echo(f"mlxprof {name}: unexpected {type(e).__name__}: {_one_line(e)} "
                       f"(full traceback in {log})", err=True)
            ctx.exit(1)


def _one_line(e) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _write_traceback() -> str:
    """The current exception's traceback in a log file; its path."""
    import datetime
    import os
    import tempfile
    import traceback

    text = f"mlxprof {' '.join(sys.argv[1:])}\n\n{traceback.format_exc()}"
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for folder in (os.path.join(os.path.expanduser("~"), ".cache", "mlxprof", "logs"), tempfile.gettempdir()):
        try:
            os.makedirs(folder, exist_ok=True)
            fd, path = tempfile.mkstemp(prefix=f"mlxprof-{stamp}-", suffix=".log", dir=folder)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            return path
        except OSError:
            continue
    return "nowhere: no writable log folder"


@click.group(cls=Group, context_settings=CONTEXT)
@click.version_option(package_name="mlxprof")
def main():
    """Profile LLM decode on MLX: tok/s with honest spread, where each token's
    time goes, what one token's graph holds, and which scheduler knobs help on
    this chip."""


def command_line() -> str:
    """The command as the user typed it, recorded in every result's provenance."""
    return " ".join(["mlxprof"] + sys.argv[1:])


def weights_options(f):
    f = click.option("--dtype", type=click.Choice(["bfloat16", "float16", "float32"]), default=None,
                     help="Activation / unquantized-parameter dtype for synthetic weights "
                          "(default: the checkpoint's, float32 for quantized models on the CPU backend).")(f)
    f = click.option("--weights", type=click.Choice(["auto", "real", "synthetic"]), default="auto",
                     show_default=True,
                     help="real: checkpoint on disk (never downloaded); synthetic: the published "
                          "architecture with random values; auto: real when on disk.")(f)
    return f


def _config_file(ctx, param, value):
    if value is not None:
        if ctx.params.get("model") is not None:
            raise click.UsageError("give --model or --config, not both")
        ctx.meta["mlxprof.config"] = value
    return value


def _model_or_config(ctx, param, value):
    """--config FILE stands for --model FILE: synthetic weights for that config.json
    (click processes options given on the command line before absent ones)."""
    config = ctx.meta.get("mlxprof.config")
    if value is not None and config is not None:
        raise click.UsageError("give --model or --config, not both")
    if value is None and config is None:
        raise click.UsageError("Missing option '--model' / '-m' (or --config FILE).")
    return value if value is not None else config


def model_options(f):
    f = weights_options(f)
    f = click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
                     default=None, expose_value=False, callback=_config_file,
                     help="A config.json of any mlx-lm / mlx-vlm architecture: build it with synthetic "
                          "weights (instead of --model).")(f)
    return click.option("--model", "-m", default=None, callback=_model_or_config,
                        help="Alias (see `mlxprof models`), local checkpoint directory, config.json file, "
                             "or cached HF repo id.")(f)


COUNT_HELP = {
    "runs": "Independent runs (fresh cache + prefill each)",
    "warmup": "Warm-up tokens per run, not measured",
    "tokens": "Measured tokens per run",
    "prompt_tokens": "Length of the deterministic prompt of token ids",
}


def counts(**defaults):
    """--runs/--warmup/--tokens/--prompt-tokens with one wording everywhere;
    each keyword names an option and the default its help shows."""

    def deco(f):
        for name, default in reversed(defaults.items()):
            f = click.option("--" + name.replace("_", "-"), name, type=int, default=None,
                             help=f"{COUNT_HELP[name]} [default {default}].")(f)
        return f

    return deco


def prompt_option(f):
    return click.option("--prompt", default=None, help="Prompt text (needs a checkpoint with a tokenizer).")(f)


def _not_empty(ctx, param, value):
    if value is not None and not str(value).strip():
        raise InputError(f"{param.opts[0]} '': name a file, or `-` for stdout")
    return value


def json_option(when: str = "when done"):
    return click.option("--json", "json_path", type=click.Path(dir_okay=False, allow_dash=True), default=None,
                        metavar="FILE", callback=_not_empty,
                        help=f"Write the result as versioned JSON ({when}); `-` prints it on stdout "
                             "instead of the table.")


def quiet_option(f):
    return click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")(f)


def file_path(json_path):
    """The path a library call may write (partial results included); `-` is stdout, written at the end."""
    return None if json_path in (None, "-") else json_path


def finish(result, json_path, table, *written):
    """Print the result: its JSON on stdout for `--json -`, else the table;
    then save it (unless the library already did) and say what was written."""
    from . import results

    if json_path == "-":
        click.echo(result.model_dump_json(by_alias=True, indent=2))
    else:
        table(result)
    if json_path and json_path != "-":
        results.save(result, json_path)
    for path in (file_path(json_path),) + written:
        if path:
            click.echo(f"wrote {path}", err=True)


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
@counts(runs=3, warmup=20, tokens=100, prompt_tokens=16)
@prompt_option
@json_option("rewritten after every run")
@image_options
@quiet_option
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
    from .decode import DecodeResult

    if env:
        from .subproc import parse_env

        result = _in_subprocess(ctx, parse_env(env), DecodeResult)
    else:
        result = profile.decode(
            model, weights=weights, dtype=dtype, runs=runs, warmup=warmup, tokens=tokens,
            prompt_tokens=prompt_tokens, prompt=prompt, json_path=file_path(json_path),
            progress=not quiet, command=command_line(), gpu_timeline=gpu_timeline,
            trace_path=trace_path, image=image, image_size=image_size,
        )
    finish(result, json_path, render.decode_table, trace_path)


@main.command(context_settings=CONTEXT)
@click.argument("match", required=False)
@json_option()
def models(match, json_path):
    """List model families and aliases (those containing MATCH, e.g. `qwen3`) with
    architecture, parameter count and bytes streamed per token. Any mlx-lm or
    mlx-vlm architecture also runs from a checkpoint directory or --config FILE."""
    import json

    from . import render, results
    from .models import catalog, families

    if json_path and json_path != "-":
        results.check_writable(json_path)
    rows = catalog(match)
    if not rows:
        raise InputError(f"no alias or family contains '{match}'; families: {', '.join(families())}")
    if json_path == "-":
        click.echo(json.dumps(rows, indent=2))
        return
    render.models_table(rows)
    if json_path:
        results.write_text_atomic(json_path, json.dumps(rows, indent=2) + "\n")
        click.echo(f"wrote {json_path}", err=True)


@main.command(context_settings=CONTEXT)
@json_option()
@click.option("--gating-file", type=click.Path(dir_okay=False), default=None,
              help="User gating file merged over the built-in table "
                   "[default: $MLXPROF_GATING_FILE, else ~/.config/mlxprof/gating.json].")
def env(json_path, gating_file):
    """Backend, chip, MLX's per-chip scheduler defaults, the MLX_* variables in
    force, and the knob gating advice for this chip. `--json -` prints the
    versioned JSON result instead of the tables."""
    from . import gating, render, results

    if file_path(json_path):
        results.check_writable(json_path)
    finish(gating.environment(gating_file, command=command_line()), json_path, render.env_table)


@main.command(context_settings=CONTEXT)
@model_options
@click.option("--rounds", type=int, default=None,
              help="Interleaved rounds, each one run of every loop (A B, B A, …) [default 5].")
@counts(warmup=20, tokens=100, prompt_tokens=16)
@prompt_option
@json_option("rewritten after every round")
@quiet_option
def parity(model, weights, dtype, rounds, warmup, tokens, prompt_tokens, prompt, json_path, quiet):
    """mlxprof's instrumented loop vs the library's own generate_step
    (mlx-lm's for models mlx-lm builds, mlx-vlm's for the rest).

    Interleaved runs on one model and prompt; tok/s for both computed the
    same way ((tokens - 1) / (t_last - t_first) at delivery, after the same
    warm-up); the ratio mlxprof / library with a bootstrap 95% CI and a
    Mann-Whitney p-value; and whether both loops produce the same greedy
    token ids (a mismatch is reported, not an error).
    """
    from . import parity as par
    from . import render

    result = par.parity(
        model, weights=weights, dtype=dtype, rounds=rounds, warmup=warmup, tokens=tokens,
        prompt_tokens=prompt_tokens, prompt=prompt, json_path=file_path(json_path), progress=not quiet,
        command=command_line(),
    )
    finish(result, json_path, render.parity_table)


@main.command(context_settings=CONTEXT)
@model_options
@click.option("--knob", "knob_specs", multiple=True, required=True, metavar="NAME=V1,V2,…",
              help="A variable and its values; `default` leaves it unset. Several --knob flags make a grid.")
@click.option("--reps", type=int, default=3, show_default=True,
              help="Rounds: each value runs once per round, interleaved round-robin.")
@counts(runs=3, warmup=20, tokens=100, prompt_tokens=16)
@click.option("--timeout", type=float, default=600.0, show_default=True,
              help="Seconds one point may take before it is killed and recorded as failed.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              metavar="FILE",
              help="Result file, rewritten after every point [default: mlxprof-sweep-MODEL-TIME.json, "
                   "or the --resume file]; `-` prints the result on stdout (points still go to the "
                   "default file, for --resume).")
@click.option("--resume", type=click.Path(dir_okay=False), default=None,
              help="Continue a partial sweep from its result file (same model, knobs and settings).")
@click.option("--overwrite", is_flag=True,
              help="Replace the --json file even when it holds a result (another sweep's points included).")
@click.option("--force", is_flag=True, help="Sweep knobs this backend does not read (e.g. buffer sizes on CPU).")
@click.option("--save-gating", is_flag=True, help="Save the recommendation as this chip's gating decision.")
@click.option("--gating-file", type=click.Path(dir_okay=False), default=None,
              help="Gating file for --save-gating [default: mlxprof's per-user file].")
@quiet_option
def sweep(model, weights, dtype, knob_specs, reps, runs, warmup, tokens, prompt_tokens, timeout, json_path,
          resume, overwrite, force, save_gating, gating_file, quiet):
    """Sweep MLX environment knobs, each point in a fresh process.

    \b
    mlxprof sweep -m gemma3n-e2b-4bit --knob MLX_MAX_OPS_PER_BUFFER=default,50,100,200,1000,2000

    MLX reads its buffer knobs once, when the device is created, so every
    point starts a new worker with the variables set (`default`: unset).
    Points run round-robin over the values for --reps rounds, so drift hits
    all values alike. Each value's run-level tok/s samples are compared with
    the default: speedup, bootstrap 95% CI and Mann-Whitney p; only a ratio
    whose CI excludes 1 with p < 0.05 is a gain. A crashed or hung point is
    recorded as failed and the sweep goes on (the command exits 1 when every
    point failed); Ctrl-C leaves a partial file that --resume continues. A
    --json file that already holds a result is refused unless --resume or
    --overwrite says what to do with it; two sweeps never write one file.
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
    if save_gating:
        sw.check_gating_file(gating_file)
    to_stdout = json_path == "-"
    if to_stdout:
        json_path = None
    if json_path is None and resume is None:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_")
        json_path = f"mlxprof-sweep-{stem}-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    try:
        result = sw.run(
            model, knobs=knobs, reps=reps, runs=runs, warmup=warmup, tokens=tokens,
            prompt_tokens=prompt_tokens, weights=weights, dtype=dtype, timeout=timeout, force=force,
            json_path=json_path, resume=resume, overwrite=overwrite, progress=not quiet,
            command=command_line(),
        )
    except sw.SweepInterrupted as e:
        render.sweep_table(e.result)
        path = json_path or resume
        click.echo(f"interrupted: partial result in {path}; continue with --resume {path}", err=True)
        sys.exit(130)
    finish(result, "-" if to_stdout else None, render.sweep_table, json_path or resume)
    if result.points and not result.ok_points():
        first = result.points[0]
        click.echo(f"mlxprof: error: every point failed; first, {first.label}: {sw.failure_reason(first.error)}",
                   err=True)
        sys.exit(1)
    if save_gating:
        saved = sw.save_gating(result, path=gating_file, source=json_path or resume)
        click.echo(f"saved gating decision for {', '.join(saved)}", err=True)


@main.command(context_settings=CONTEXT)
@click.option("--model", "-m", default=None, help="Measure this model (alias, directory or cached repo id).")
@weights_options
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Markdown path [default: docs/benchmark_results/<model>-<backend>.md]; JSON results beside it.")
@click.option("--quick", is_flag=True, help="Small token counts: about a minute for gemma3n-tiny on 2 CPU cores.")
@click.option("--from", "from_paths", multiple=True, type=click.Path(),
              help="Render saved JSON results (one per kind) instead of measuring. Repeatable.")
@click.option("--gpu-timeline", is_flag=True, help="CUDA: record the kernel timeline (CUPTI) in the decode step.")
@click.option("--image", type=click.Path(), default=None, help="Image for the text-vs-image section.")
@click.option("--bits", default=None, help="Also compare bit widths of the model's family, e.g. 4,16.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              metavar="FILE", help="Also write every result of the document as one JSON object "
                                   "{kind: result}; `-` prints it on stdout.")
@quiet_option
def report(model, weights, dtype, out, quick, from_paths, gpu_timeline, image, bits, no_plots, json_path, quiet):
    """Write a decode-profile markdown document.

    Either measures everything (decode best-of-N and the split, op
    histogram, streaming floor, a sweep of MLX_MAX_OPS_PER_BUFFER where the
    backend reads it, text vs image, parity with the library's loop) or, with --from,
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
        docs = rep.measure(model, Path(out), quick=quick, weights=weights, dtype=dtype, gpu_timeline=gpu_timeline,
                           image=image, progress=not quiet, bits=bits, log=log)
    path = rep.write(docs, Path(out), plots=not no_plots)
    click.echo(f"wrote {path}", err=True)
    if json_path:
        import json

        from . import results

        text = json.dumps(docs, indent=2)
        if json_path == "-":
            click.echo(text)
        else:
            results.write_text_atomic(json_path, text + "\n")
            click.echo(f"wrote {json_path}", err=True)


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


def _in_subprocess(ctx, variables, cls):
    """--env (parsed by subproc.parse_env): re-run this command in a fresh process; its result."""
    from . import subproc

    if file_path(ctx.params.get("json_path")):
        from . import results

        results.check_writable(ctx.params["json_path"])
    return subproc.rerun(ctx, variables, cls)


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
        result = _in_subprocess(ctx, variables, ops_mod.OpsResult)
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
        result = _in_subprocess(ctx, variables, floor_mod.FloorResult)
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
@quiet_option
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

        variables = parse_env(env)
        cmp.parse_bits(bits, cmp.family_of(model))
        result = _in_subprocess(ctx, variables, cmp.CompareResult)
    else:
        result = cmp.run(model, bits, weights, dtype, runs, warmup, tokens, prompt_tokens,
                         floor=not no_floor, json_path=file_path(json_path), progress=not quiet,
                         command=command_line())
    finish(result, json_path, render.compare_table)


if __name__ == "__main__":  # pragma: no cover
    main()
