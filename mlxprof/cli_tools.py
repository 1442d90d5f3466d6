"""Commands about the tool and its results rather than one measurement:
`models`, `env`, `sweep`, `report`, `diff`."""

import sys

import click

from .cli_options import (CONTEXT, check_stdout, command_line, counts, depth_option, file_path, finish,
                          format_option, json_option, model_options, quiet_option, show, weights_options)
from .errors import InputError


@click.command(context_settings=CONTEXT)
@click.argument("match", required=False)
@json_option()
def models(match, json_path):
    """List model families and aliases (those containing MATCH, e.g. `qwen3`) with
    architecture, parameter count and bytes streamed per token. Any mlx-lm or
    mlx-vlm architecture also runs from a checkpoint directory or --config FILE."""
    import json

    from . import render, results
    from .models import catalog, families
    from .session import check_outputs

    check_outputs(file_path(json_path))  # a file holding a saved result is never replaced
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


@click.command(context_settings=CONTEXT)
@json_option()
@click.option("--gating-file", type=click.Path(dir_okay=False), default=None,
              help="User gating file merged over the built-in table "
                   "[default: $MLXPROF_GATING_FILE, else ~/.config/mlxprof/gating.json].")
def env(json_path, gating_file):
    """Backend, chip, MLX's per-chip scheduler defaults, the MLX_* variables in
    force, and the knob gating advice for this chip. `--json -` prints the
    versioned JSON result instead of the tables."""
    from . import gating, render
    from .session import check_outputs

    check_outputs(file_path(json_path))  # a file holding a saved result is never replaced
    finish(gating.environment(gating_file, command=command_line()), json_path, render.env_table)


@click.command(context_settings=CONTEXT)
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
@format_option
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
          fmt, resume, overwrite, force, save_gating, gating_file, quiet):
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

    from .models import lean

    lean.enable()  # this process plans and reads replies: --model needs the model's code alone
    from . import render
    from . import sweep as sw

    check_stdout(json_path, fmt)
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
        show(e.result, render.sweep_table, fmt)
        path = json_path or resume
        click.echo(f"interrupted: partial result in {path}; continue with --resume {path}", err=True)
        sys.exit(130)
    finish(result, "-" if to_stdout else None, render.sweep_table, json_path or resume, fmt=fmt)
    if result.points and not result.ok_points():
        first = result.points[0]
        click.echo(f"mlxprof: error: every point failed; first, {first.label}: {sw.failure_reason(first.error)}",
                   err=True)
        sys.exit(1)
    if save_gating:
        saved = sw.save_gating(result, path=gating_file, source=json_path or resume)
        click.echo(f"saved gating decision for {', '.join(saved)}", err=True)


@click.command(context_settings=CONTEXT)
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
@depth_option
@click.option("--ranks", type=int, default=None,
              help="Also decode sharded over N ranks against one device (mlxprof decode --ranks N).")
@click.option("--parallel", type=click.Choice(["tensor", "pipeline"]), default=None,
              help="With --ranks: tensor or pipeline parallel [default tensor].")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              metavar="FILE", help="Also write every result of the document as one JSON object "
                                   "{kind: result}; `-` prints it on stdout.")
@quiet_option
def report(model, weights, dtype, out, quick, from_paths, gpu_timeline, image, bits, depth, no_plots, json_path,
           quiet, ranks=None, parallel=None):
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
    if from_paths and depth:
        raise InputError("--depth measures; with --from, pass the saved depth result as another --from")
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
                           image=image, progress=not quiet, bits=bits, depth=depth, log=log, ranks=ranks,
                           parallel=parallel)
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


@click.command(context_settings=CONTEXT)
@click.argument("a_path", metavar="A.json")
@click.argument("b_path", metavar="B.json")
@click.option("--fail-if-slower", "threshold", metavar="X%", default=None,
              help="Exit 1 (after printing and saving the diff) when B is slower than A by more than X "
                   "(5% or 0.05): the upper end of the 95% bootstrap CI of median(B) / median(A) tok/s "
                   "is below 1 − X, for any tok/s metric of the diff (the CI, not the rank test, "
                   "decides: 3 runs a side can never reach p < 0.05).")
@json_option()
@format_option
def diff(a_path, b_path, threshold, json_path, fmt):
    """Two saved results of one kind side by side: B against A.

    \b
    mlxprof diff before.decode.json after.decode.json --fail-if-slower 5%

    Reads decode, ops, floor, sweep, compare, parity, depth (each depth
    both files measured: `tok/s @4096` …) and distributed results. Lists the
    provenance, model and settings fields that differ (versions, chip,
    knobs, weights, token counts …), warning first when the two mix real
    and synthetic weights, chips or token counts. Then every metric: A, B,
    B − A, B / A and, from the raw samples, the bootstrap 95% CI of the
    ratio of medians, a p-value and a verdict ("significant gain" means B
    is better). tok/s compares one sample per run; build / submit / wait /
    token ms compare every token, grouped by run (the CI resamples runs);
    sweep values compare their points, floors their timed evaluations; op
    histograms give deltas. The samples column says which.

    \b
    Exit codes: 0 done; 1 B is slower than --fail-if-slower allows (one
    line `mlxprof diff: B is slower than A by …` on stderr); 2 bad input
    (files of different kinds, an unreadable file, a bad threshold, a
    --json file that is A, B or any other saved result).
    """
    from . import diff as diff_mod
    from . import diff_table

    limit = None if threshold is None else diff_mod.parse_threshold(threshold)
    if file_path(json_path):
        diff_mod.check_output(json_path, (a_path, b_path))
    result = diff_mod.diff(a_path, b_path, fail_if_slower=limit, command=command_line())
    finish(result, json_path, diff_table.diff_table, fmt=fmt)
    if result.slower:
        click.echo(f"mlxprof diff: {diff_mod.slower_sentence(result)}", err=True)
        sys.exit(1)
