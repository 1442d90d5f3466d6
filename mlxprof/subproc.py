"""`--env NAME=VALUE`: run a measurement in a fresh process with variables set.

MLX reads most of its knobs (MLX_DISABLE_COMPILE, MLX_MAX_OPS_PER_BUFFER, …)
once, when it starts, so they cannot be flipped inside a running process. A
command given `--env` re-invokes `python -m mlxprof <same command>` without the
`--env` options and with `--json` pointed at a temporary file, in an
environment with the variables set; the parent loads that JSON (the same
pydantic class) and renders it as if it had measured itself.
"""

import os
import subprocess
import sys
import tempfile
from typing import Dict, List, Sequence

import click

from .child import child_env, is_env_name
from .errors import InputError


def parse_env(pairs: Sequence[str]) -> Dict[str, str]:
    """['A=1', 'B='] → {'A': '1', 'B': ''}; malformed entries are InputError."""
    out = {}
    for p in pairs or ():
        if "=" not in p:
            raise InputError(f"--env '{p}' is not NAME=VALUE")
        name, value = p.split("=", 1)
        if not name:
            raise InputError(f"--env '{p}' has an empty variable name")
        if not is_env_name(name):
            raise InputError(f"--env '{p}': '{name}' is not a valid environment variable name")
        out[name] = value
    return out


def env_option(f):
    return click.option(
        "--env", "env", multiple=True, metavar="NAME=VALUE",
        help="Set an environment variable (repeatable) and measure in a fresh subprocess, "
             "e.g. --env MLX_DISABLE_COMPILE=1 for eager vs compiled.",
    )(f)


def argv_of(ctx: click.Context, drop=("env",), replace: Dict[str, str] = None) -> List[str]:
    """The command's own options rebuilt from its parsed parameters (so it works
    the same from a shell and from click's test runner, where sys.argv is not
    the command line)."""
    replace = replace or {}
    args = []
    for p in ctx.command.params:
        if not isinstance(p, click.Option) or p.name in drop:
            continue
        value = replace.get(p.name, ctx.params.get(p.name))
        longs = [o for o in p.opts if o.startswith("--")] or p.opts
        if p.is_flag and p.secondary_opts:
            args.append(longs[0] if value else p.secondary_opts[0])
        elif p.is_flag:
            if value:
                args.append(longs[0])
        elif value is None or (p.multiple and not value):
            continue
        elif p.multiple:
            for v in value:
                args += [longs[0], str(v)]
        else:
            args += [longs[0], str(value)]
    return args


def rerun(ctx: click.Context, env: Dict[str, str], cls, json_param: str = "json_path"):
    """Run this command again in a fresh `python -m mlxprof` with `env` set;
    return its result as `cls`. A failing child exits this process with the
    child's exit code (its error message has already gone to stderr)."""
    from . import results

    fd, tmp = tempfile.mkstemp(prefix="mlxprof-", suffix=".json")
    os.close(fd)
    try:
        argv = [sys.executable, "-m", "mlxprof", ctx.info_name,
                *argv_of(ctx, replace={json_param: tmp})]
        shown = " ".join(f"{k}={v}" for k, v in env.items())
        click.echo(f"mlxprof: measuring in a fresh process with {shown}", err=True)
        proc = subprocess.run(argv, env=child_env(env), stdout=subprocess.DEVNULL)
        if proc.returncode != 0:
            ctx.exit(proc.returncode)
        result = results.load(tmp, cls)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    cmd = (result.provenance.command or "").replace(f" --json {tmp}", "")
    mine = ctx.params.get(json_param)
    result.provenance.command = f"{shown} {cmd}" + (f" --json {mine}" if mine else "")
    return result
