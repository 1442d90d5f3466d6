"""Run one sweep point: start a worker with the point's environment, wait for
it, and turn what it left behind into a `Point`.

A worker that crashes, hangs past its timeout or prints no readable reply is a
failed point with the tail of its stderr, never an exception: the sweep goes
on. Ctrl-C (SIGINT to the process group) passes through as KeyboardInterrupt.
"""

import os
import shlex
import signal
import subprocess
import sys
import time
from typing import List, Optional, Tuple

from ..child import child_env
from .knobs import KnobSetting
from .protocol import SPAWN_VAR, ProtocolError, WorkerJob, WorkerReply, decode_reply, encode_job
from .result import Overhead, Point
from .worker import REFUSAL

WORKER_ENV = "MLXPROF_SWEEP_WORKER"  # overrides the worker command (tests inject faults with it)
DEFAULT_TIMEOUT_S = 600.0
STDERR_TAIL = 2000
REFUSED = "worker refused its input: "  # starts Point.error when the worker raised InputError


def worker_command(worker_cmd=None) -> List[str]:
    if worker_cmd:
        return list(worker_cmd)
    if os.environ.get(WORKER_ENV):
        return shlex.split(os.environ[WORKER_ENV])
    return [sys.executable, "-m", "mlxprof.sweep.worker"]


def tail(text: str, n: int = STDERR_TAIL) -> str:
    text = (text or "").strip()
    return text if len(text) <= n else "…" + text[-n:]


def failure_reason(error: Optional[str]) -> str:
    """A failed point's error in one line: what happened and the last line the
    worker printed (for a Python crash, the exception itself)."""
    lines = [ln.strip() for ln in (error or "").splitlines() if ln.strip()]
    if not lines:
        return "no error recorded"
    head = lines[0]
    for cut in ("; stderr tail:", "; stdout tail:"):
        head = head.split(cut)[0]
    last = next((ln for ln in reversed(lines[1:]) if not ln.endswith("tail:")), None)
    return f"{head}: {last.lstrip('…')}" if last else head + (" (no stderr)" if "tail:" in lines[0] else "")


def run_point(setting: KnobSetting, job: WorkerJob, index: int, rnd: int, timeout: Optional[float],
              worker_cmd=None) -> Tuple[Point, Optional[WorkerReply]]:
    """Start one worker, wait for it, read its reply. Never raises for a bad
    worker (KeyboardInterrupt passes through; subprocess.run kills the child)."""
    env = child_env(setting.env)
    cmd = worker_command(worker_cmd) + [encode_job(job)]
    t0 = time.time()
    env[SPAWN_VAR] = repr(t0)
    base = dict(index=index, round=rnd, label=setting.label)
    try:
        proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return Point(**base, status="timeout", wall_s=time.time() - t0,
                     error=f"killed after the {timeout:g} s per-point timeout; stderr tail:\n{tail(err)}"), None
    except OSError as e:
        return Point(**base, status="failed", wall_s=time.time() - t0,
                     error=f"could not start the worker {cmd[0]}: {e}"), None
    wall = time.time() - t0
    if proc.returncode == -signal.SIGINT:
        raise KeyboardInterrupt  # Ctrl-C reaches the whole process group: the user stopped the sweep
    failed = dict(base, status="failed", wall_s=wall, returncode=proc.returncode)
    refused = [ln for ln in proc.stderr.splitlines() if ln.startswith(REFUSAL)]
    if proc.returncode == 2 and refused:
        return Point(**failed, error=REFUSED + refused[-1][len(REFUSAL):]), None
    if proc.returncode != 0:
        return Point(**failed, error=f"worker exited with code {proc.returncode}; stderr tail:\n"
                                     f"{tail(proc.stderr)}"), None
    try:
        reply = decode_reply(proc.stdout)
    except ProtocolError as e:
        return Point(**failed, error=f"unreadable worker output ({e}); stdout tail:\n{tail(proc.stdout, 500)}\n"
                                     f"stderr tail:\n{tail(proc.stderr)}"), None
    return Point(
        **base, status="ok", tok_s=reply.tok_s, prefill_tok_s=reply.prefill_tok_s, split=reply.split,
        overhead=Overhead(**reply.timing.model_dump(), total_s=wall),
        wall_s=wall, returncode=0, env_seen=reply.env,
    ), reply
