"""The environment of a fresh mlxprof child process, shared by `--env` re-runs
(subproc.py) and sweep workers (sweep/runner.py).

Both exist because MLX reads its knobs (MLX_MAX_OPS_PER_BUFFER,
MLX_DISABLE_COMPILE, …) once, when the device is created: a value only takes
effect in a process that starts with it set. On CUDA every child is pointed at
this process's compiled-kernel cache (MLX_PTX_CACHE_DIR, see coldstart.py), so
kernels compile once per machine, not once per child.
"""

import os
import re
from pathlib import Path
from typing import Dict, Mapping, Optional

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# the directory that holds this mlxprof package: a child must import the same
# copy, installed or a checkout
_ROOT = str(Path(__file__).resolve().parent.parent)


def is_env_name(name: str) -> bool:
    """A portable environment variable name (POSIX: letters, digits, underscore)."""
    return bool(name) and bool(_ENV_NAME.match(name))


def child_env(changes: Mapping[str, Optional[str]], base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """`base` (default: this process's environment) with `changes` applied (a
    value None unsets the variable), MLX_PTX_CACHE_DIR pinned to the parent's
    kernel cache unless given, and this mlxprof first on PYTHONPATH."""
    from .coldstart import cache_env

    env = dict(os.environ if base is None else base)
    env.update(cache_env(env, changes))
    for k, v in changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    env["PYTHONPATH"] = os.pathsep.join([_ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env
