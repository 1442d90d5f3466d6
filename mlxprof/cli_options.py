"""What every mlxprof command shares: the error policy, options declared once,
and how a result reaches the user (table or `--json FILE|-`)."""

import sys

import click

from .errors import InputError, OutputError
from .formats import FORMATS

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
    check_stdout(value, ctx.params.get("fmt"))
    return value


def check_stdout(json_path, fmt):
    """`--json -` and `--format md|csv|jsonl` would both print on stdout."""
    if json_path == "-" and fmt not in (None, "table"):
        raise InputError(f"--json - and --format {fmt} both print on stdout: give one (or --json FILE)")


def _format_alone(ctx, param, value):
    check_stdout(ctx.params.get("json_path"), value)
    return value


def format_option(f):
    """--format: how `finish` prints the result's table (formats.py)."""
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                        show_default=True, callback=_format_alone,
                        help="Print the table as rich text (table), markdown (md), or one flat record a row for "
                             "spreadsheets and databases: csv, jsonl (numbers unformatted, identifiers whole).")(f)


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


def show(result, table, fmt="table"):
    """The result's table: `table(result)` (rich), or formats.write's md/csv/jsonl text."""
    if fmt in (None, "table"):
        table(result)
    else:
        from . import formats

        click.echo(formats.write(result, fmt), nl=False)


def finish(result, json_path, table, *written, fmt="table"):
    """Print the result: its JSON on stdout for `--json -`, else the table
    (in `fmt`, see `show`); then save it and say what was written."""
    from . import results

    check_stdout(json_path, fmt)
    if json_path == "-":
        click.echo(result.model_dump_json(by_alias=True, indent=2))
    else:
        show(result, table, fmt)
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
                     help="Prefill an image prompt through the vision tower (vision-language models through "
                          "mlx-vlm; synthetic vision weights when the checkpoint is not on disk).")(f)
    return f


def in_subprocess(ctx, variables, cls):
    """--env (parsed by subproc.parse_env): re-run this command in a fresh process; its result."""
    from . import subproc

    if file_path(ctx.params.get("json_path")):
        from .session import check_outputs

        check_outputs(ctx.params["json_path"])
    return subproc.rerun(ctx, variables, cls)


def depth_option(f):
    """--depth [D,D,…]: decode with the KV cache filled to each depth (mlxprof/depth.py)."""
    return click.option("--depth", "depth", default=None, is_flag=False, flag_value="default",
                        metavar="[D,D,…]",
                        help="Decode at KV depths: fill the cache with D tokens, then measure tok/s, the "
                             "split, peak memory and the floor (weights + KV read) per depth. Alone: "
                             "0,1024,4096,16384 (0,256,1024 on the CPU backend).")(f)
