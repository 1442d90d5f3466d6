"""Sweep knobs: which MLX variables mlxprof knows, checking the values asked
for, and the grid of settings a sweep runs."""

import difflib
import itertools
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ..child import is_env_name
from ..errors import InputError
from ..results import Record

DEFAULT = "default"  # the value that leaves the variable unset in the child


@dataclass(frozen=True)
class KnobSpec:
    kind: str  # "int", "flag" (0/1) or "presence" (any value turns it on)
    minimum: int
    backends: Tuple[str, ...]  # builds that read it
    what: str


# The MLX environment variables that change scheduling or compilation, as MLX
# 0.32 reads them (https://github.com/ml-explore/mlx: mlx/utils.h's env getters,
# mlx/compile.cpp, mlx/backend/{metal,cuda}/device.cpp). hardware.KNOBS is the
# subset whose per-chip defaults mlxprof reports; this table is what a sweep accepts.
KNOB_SPECS: Dict[str, KnobSpec] = {
    "MLX_MAX_OPS_PER_BUFFER": KnobSpec("int", 1, ("metal", "cuda"), "kernel dispatches per command buffer / CUDA graph"),
    "MLX_MAX_MB_PER_BUFFER": KnobSpec("int", 1, ("metal", "cuda"), "size budget per command buffer / CUDA graph"),
    "MLX_BFS_MAX_WIDTH": KnobSpec("int", 1, ("metal", "cuda", "cpu"), "breadth of the graph walk in eval"),
    # compile.cpp tests getenv() != nullptr: "0" disables compile too
    "MLX_DISABLE_COMPILE": KnobSpec("presence", 1, ("metal", "cuda", "cpu"), "turn mx.compile off"),
    "MLX_USE_CUDA_GRAPHS": KnobSpec("flag", 0, ("cuda",), "launch through CUDA graphs"),
    "MLX_CUDA_GRAPH_CACHE_SIZE": KnobSpec("int", 0, ("cuda",), "cached CUDA graphs"),
    "MLX_ENABLE_TF32": KnobSpec("flag", 0, ("cuda",), "TF32 matmuls"),
    "MLX_METAL_FAST_SYNCH": KnobSpec("flag", 0, ("metal",), "fast CPU-GPU synchronisation"),
    "MLX_RESIDENCY_SET_MAX_PCT": KnobSpec("int", 0, ("metal",), "residency set size, % of memory"),
}


class KnobSetting(Record):
    """One point of the grid: the variables a worker starts with."""

    label: str
    env: Dict[str, Optional[str]]  # value None: unset in the child


def parse_knob(spec: str) -> Tuple[str, List[str]]:
    """`NAME=v1,v2,…` → (NAME, [v1, v2, …])."""
    if "=" not in spec:
        raise InputError(f"--knob '{spec}' is not NAME=VALUE,VALUE,… (e.g. MLX_MAX_OPS_PER_BUFFER=default,100,1000)")
    name, _, vals = spec.partition("=")
    return name.strip(), [v.strip() for v in vals.split(",")] if vals.strip() else []


def validate_knob(name: str, values: Sequence) -> List[str]:
    """Checked, normalised string values; raises InputError. Unknown names are
    allowed (the caller warns)."""
    if not is_env_name(name):
        raise InputError(f"'{name}' is not an environment variable name")
    values = [str(v).strip() for v in (values or [])]
    if not values:
        raise InputError(f"{name}: no values to sweep (give e.g. {name}=default,100,1000)")
    out = []
    for v in values:
        v = _checked_value(name, v, KNOB_SPECS.get(name))
        if v in out:
            raise InputError(f"{name}: value '{v}' listed twice")
        out.append(v)
    return out


def _checked_value(name: str, v: str, spec: Optional[KnobSpec]) -> str:
    if v == "":
        raise InputError(f"{name}: empty value in the list")
    if v.lower() == DEFAULT:
        return DEFAULT
    if spec is None:
        return v
    if spec.kind == "presence":
        if v != "1":
            raise InputError(f"{name}={v}: MLX acts on {name} whenever it is set, whatever its value; "
                             "sweep default (unset) and 1")
        return v
    try:
        iv = int(v)
    except ValueError:
        want = "an integer" if spec.kind == "int" else "0 or 1"
        raise InputError(f"{name}={v}: not {want} (or 'default')") from None
    if spec.kind == "flag" and iv not in (0, 1):
        raise InputError(f"{name}={v}: must be 0 or 1 (or 'default')")
    if iv < spec.minimum:
        raise InputError(f"{name}={v}: must be at least {spec.minimum}")
    return str(iv)


def unknown_knob_warning(name: str, doing: str = "sweeping it anyway") -> Optional[str]:
    """The warning for a variable MLX does not read (as far as mlxprof knows),
    naming the closest known one (a typo such as MLX_DISABLE_COMPLIE is the
    usual cause); None for a known knob. `doing`: what happens anyway."""
    if name in KNOB_SPECS:
        return None
    close = difflib.get_close_matches(name, KNOB_SPECS, n=1, cutoff=0.6)
    known = f"did you mean {close[0]}?" if close else f"known: {', '.join(KNOB_SPECS)}"
    return f"{name} is not an MLX variable mlxprof knows ({known}); {doing}"


def backend_skip(name: str, backend: str) -> Optional[str]:
    """Why `name` does nothing on `backend`, or None when that build reads it."""
    spec = KNOB_SPECS.get(name)
    if spec is None or backend in spec.backends:
        return None
    if backend == "cpu":
        return f"{name} has no effect on the CPU backend (the CPU build does not read it)"
    return f"{name} has no effect on the {backend} backend (read by the {'/'.join(spec.backends)} build only)"


def gating_value(name: str, raw: Optional[str]):
    """A swept value as a gating decision stores it: None (MLX's default), an
    int for a known knob, the string otherwise."""
    if raw is None:
        return None
    return int(raw) if name in KNOB_SPECS else raw


def grid(knobs: Dict[str, List[str]]) -> Tuple[List[KnobSetting], str, List[str]]:
    """The cartesian product of the knobs' values; the all-default point is the
    baseline and is added when not asked for. Returns (settings, baseline, notes)."""
    names = list(knobs)
    settings = []
    for combo in itertools.product(*(knobs[n] for n in names)):
        env = {n: (None if v == DEFAULT else v) for n, v in zip(names, combo)}
        settings.append(KnobSetting(label=_label(env), env=env))
    notes = []
    base_env = {n: None for n in names}
    if not any(s.env == base_env for s in settings):
        settings.insert(0, KnobSetting(label=DEFAULT, env=base_env))
        notes.append("added the all-default point as the baseline")
    return settings, DEFAULT, notes


def _label(env: Dict[str, Optional[str]]) -> str:
    if all(v is None for v in env.values()):
        return DEFAULT
    if len(env) == 1:
        return next(iter(env.values()))
    return " ".join(f"{k}={DEFAULT if v is None else v}" for k, v in env.items())
