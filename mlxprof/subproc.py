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
import time
from typing import Dict, List, Sequence

import click

from .child import child_env, is_env_name
from .errors import InputError


def parse_env(pairs: Sequence[str]) -> Dict[str, str]:
    """['A=1', 'B='] → {'A': '1', 'B': ''}; malformed entries are InputError;
    an MLX_* name MLX does not read is a warning on stderr."""
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
    _warn_unknown(out)
    return out


def _warn_unknown(variables: Dict[str, str]) -> None:
    """One stderr line per MLX_* name MLX does not read: a mistyped knob would
    otherwise measure the default while the result records the knob as set."""
    from .sweep.knobs import unknown_knob_warning

    for name in variables:
        w = unknown_knob_warning(name, "setting it anyway") if name.startswith("MLX_") else None
        if w:
            click.echo(f"mlxprof: warning: {w}", err=True)


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
    return its result as `cls`. A failing or interrupted child leaves what it
    measured at the user's --json path (or, without one, in the temporary file,
    named on stderr); then this process exits with the child's code, or raises
    KeyboardInterrupt (exit 130) on Ctrl-C."""
    from . import results

    fd, tmp = tempfile.mkstemp(prefix="mlxprof-", suffix=".json")
    os.close(fd)
    shown = " ".join(f"{k}={v}" for k, v in env.items())
    mine = ctx.params.get(json_param)
    mine = None if mine in (None, "-") else mine

    def command_of(result):
        cmd = (result.provenance.command or "").replace(f" --json {tmp}", "")
        return f"{shown} {cmd}" + (f" --json {mine}" if mine else "")

    argv = [sys.executable, "-m", "mlxprof", ctx.info_name, *argv_of(ctx, replace={json_param: tmp})]
    click.echo(f"mlxprof: measuring in a fresh process with {shown}", err=True)
    try:
        code = _wait_for_child(argv, child_env(env))
    except KeyboardInterrupt:
        _keep_partial(tmp, mine, cls, command_of)
        raise
    if code != 0:
        kept = _keep_partial(tmp, mine, cls, command_of)
        if kept:
            click.echo(f"mlxprof: the measurements the child made before it failed are in {kept}", err=True)
        ctx.exit(code)
    try:
        result = results.load(tmp, cls)
    finally:
        os.unlink(tmp)
    result.provenance.command = command_of(result)
    return result


# How long an interrupted child may take to save its partial result and exit
# before it is stopped: it rewrites one JSON file, which takes well under this.
CHILD_GRACE_S = 30.0


def _wait_for_child(argv: List[str], env: Dict[str, str]) -> int:
    """Run the child to the end; its exit code. On Ctrl-C let it save and exit
    (`_settle`), then raise KeyboardInterrupt: subprocess.run would kill it
    0.25 s after the interrupt, in the middle of saving what it measured."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        _settle(proc)
        raise


def _settle(proc: subprocess.Popen) -> None:
    """The terminal's Ctrl-C reaches the whole process group, the child
    included: give it time to exit by itself; then send SIGINT (a signal to
    this process alone did not reach it); kill it only as a last resort."""
    import signal

    for sig, wait_s in ((None, 2.0), (signal.SIGINT, CHILD_GRACE_S), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        if sig is not None:
            proc.send_signal(sig)
        end = time.monotonic() + wait_s
        while proc.poll() is None and time.monotonic() < end:
            try:
                proc.wait(timeout=max(0.01, end - time.monotonic()))
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                pass  # a second Ctrl-C reaches the child too; keep waiting for its file


def _keep_partial(tmp: str, mine, cls, command_of):
    """Move what the child wrote to the user's --json path (its command line
    corrected), or leave it in `tmp` without one; the path kept, or None (and
    `tmp` removed) when the child wrote nothing."""
    from . import results

    if not os.path.exists(tmp) or os.path.getsize(tmp) == 0:
        if os.path.exists(tmp):
            os.unlink(tmp)
        return None
    try:
        result = results.load(tmp, cls)
    except Exception:  # noqa: BLE001 — half a file is still kept, as written
        result = None
    if result is not None:
        result.provenance.command = command_of(result)
        results.save(result, mine or tmp)
    elif mine:
        with open(tmp) as f:
            results.write_text_atomic(mine, f.read())
        results.WRITTEN[mine] = "unreadable"
    else:
        results.WRITTEN[tmp] = "unreadable"
    if mine:
        os.unlink(tmp)
    return mine or tmp
