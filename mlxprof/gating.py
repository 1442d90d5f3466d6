"""Per-chip knob policy: which MLX scheduler variables to set on which chip, and why.

The built-in table below is seeded from published and measured numbers
(docs/references.md), each rule with its provenance. A user
gating file (JSON) merges over it, rule by rule (family + knob): that is where
`save_decision` records what a sweep measured on this machine.

Gating file resolution: an explicit path, else $MLXPROF_GATING_FILE, else
~/.config/mlxprof/gating.json ($XDG_CONFIG_HOME honoured). A file that does not
exist yet holds no decisions, except an explicit path, which must exist.

Format:
    {"mlxprof_gating": 1,
     "rules": [{"family": "apple-m3", "knob": "MLX_MAX_OPS_PER_BUFFER", "value": "1000",
                "reason": "...", "provenance": {"source": "...", "gain": "...", "date": "..."}}]}
`value: null` means "leave MLX's default".
"""

import datetime as _dt
import json
import os
import warnings
from pathlib import Path
from typing import Dict, List, Optional

from pydantic import BaseModel, ValidationError, field_validator

from . import hardware
from .errors import InputError
from .hardware import MB, OPS, Chip
from .results import Result, provenance as _provenance, write_text_atomic

GATING_VERSION = 1
ENV_FILE = "MLXPROF_GATING_FILE"

# Knobs every chip gets a recommendation for (a "leave the default" one if nothing is known).
GATED_KNOBS = (OPS,)


class Rule(BaseModel):
    model_config = {"extra": "forbid"}
    family: str
    knob: str
    value: Optional[str] = None  # None: leave MLX's default
    reason: str
    provenance: Dict[str, object] = {}  # source, gain, date, … (free-form, kept verbatim)

    @field_validator("value", mode="before")
    @classmethod
    def _str_value(cls, v):
        if v is None or isinstance(v, str):
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError("value must be a string, a number or null")
        return str(v)

    @field_validator("knob")
    @classmethod
    def _mlx_knob(cls, v):
        if not v.startswith("MLX_"):
            raise ValueError(f"knob {v!r} is not an MLX_* variable")
        return v


# docs/references.md, "Rust MLX runtime, Gemma 3n decode profile" (a public pull request).
_RUNTIME = {
    "source": "a Rust MLX runtime's published Gemma 3n decode profile (pull request #345, 'Gemma3n decode profile, no fusion justified')",
    "measured_on": "Apple M1 Ultra 128 GB",
    "mlx": "0.31.2",
    "date": "2026-06-17",
}
_M1_M4_OPS = Rule(
    family="", knob=OPS, value="1000",
    reason="fewer command-buffer dispatch gaps: +11–13 % Gemma 3n decode at 1000 on M1 Ultra "
           "(measured on M1 Ultra only; that runtime gates all of M1–M4 this way)",
    provenance={**_RUNTIME, "gain": "+11–13 % decode tok/s (e2b 4-bit 82.7 → 93.2, e4b 4-bit 63.0 → 70.0)"},
)
_M1_M4_MB = Rule(
    family="", knob=MB, value=None,
    reason="1000 gave +3–21 % decode on M1 Ultra but roughly doubles prefill peak memory: left at MLX's default",
    provenance={**_RUNTIME, "gain": "+3–21 % decode tok/s, ≈2× prefill peak memory"},
)
_M5_OPS = Rule(
    family="", knob=OPS, value=None,
    reason="flat on M5 Max (within +1.7 % for 100–2000): larger buffers do not help from M5 on",
    provenance={**_RUNTIME, "measured_on": "Apple M5 Max (40-core GPU)",
                "gain": "≤ +1.7 % (e2b 161.6 → 164.4, e4b 112.6 → 114.4, e4b bf16 40.5 → 41.1 tok/s)"},
)
_SM90_OPS = Rule(
    family="cuda-sm90", knob=OPS, value=None,
    reason="no difference outside the noise on an H200 (default 100 vs 100 vs 1000, interleaved); "
           "decode is host-bound there",
    provenance={"source": "mlxprof measurement on an NVIDIA H200 (docs/references.md, 'Measured by this project')",
                "measured_on": "NVIDIA H200", "mlx": "0.32.4",
                "gain": "none (≈89–98 tok/s for all values, E2B 4-bit synthetic)", "date": None},
)
_CPU = {
    k: Rule(family="cpu", knob=k, value=None,
            reason="no effect: the CPU backend does not read this variable",
            provenance={"source": "MLX 0.32 source (mlx/backend/metal/device.cpp, mlx/backend/cuda/device.cpp "
                                  "only)",
                        "gain": None, "date": None})
    for k in (OPS, MB)
}


def _family_rules(families, *rules):
    return [r.model_copy(update={"family": f}) for f in families for r in rules]


BUILTIN: List[Rule] = (
    _family_rules(["apple-m1", "apple-m2", "apple-m3", "apple-m4"], _M1_M4_OPS, _M1_M4_MB)
    + _family_rules(["apple-m5", "apple-m6+"], _M5_OPS)
    + [_SM90_OPS, _CPU[OPS], _CPU[MB]]
)


class Recommendation(BaseModel):
    model_config = {"extra": "forbid"}
    family: str
    knob: str
    value: Optional[str] = None  # None: leave MLX's default
    default: Optional[int] = None  # MLX's built-in value on this chip (None: not read)
    read: bool = True  # does this chip's backend read the variable?
    reason: str
    provenance: Dict[str, object] = {}
    origin: str  # "built-in" or the gating file's path


class Action(BaseModel):
    model_config = {"extra": "forbid"}
    knob: str
    value: Optional[str] = None  # what was (or would have been) set
    action: str  # "set", "kept" (user's value), "default" (left unset), "late" (too late to set)
    reason: str


# --- the user gating file ----------------------------------------------------------------


def default_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "mlxprof" / "gating.json"


def gating_path(path=None) -> Path:
    """The gating file in use: explicit path, else $MLXPROF_GATING_FILE, else the default."""
    if path:
        return Path(path)
    if os.environ.get(ENV_FILE):
        return Path(os.environ[ENV_FILE])
    return default_path()


def load_rules(path=None) -> List[Rule]:
    """The user's rules, [] when the (non-explicit) file does not exist. Bad file → InputError."""
    p = gating_path(path)
    if not p.exists():
        if path:
            raise InputError(f"gating file {p}: no such file")
        return []
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"gating file {p}: not JSON ({e})")
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise InputError(f"gating file {p}: expected an object with a 'rules' list")
    if data.get("mlxprof_gating", GATING_VERSION) != GATING_VERSION:
        raise InputError(f"gating file {p}: version {data.get('mlxprof_gating')}, this mlxprof reads {GATING_VERSION}")
    rules = []
    for i, r in enumerate(data["rules"]):
        try:
            rules.append(Rule.model_validate(r))
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(x) for x in err["loc"]) or "rule"
            raise InputError(f"gating file {p}: rule {i}: {where}: {err['msg']}")
    return rules


def table(path=None) -> List[Rule]:
    """Built-in rules with the user's merged over them (user wins per family + knob)."""
    merged = {(r.family, r.knob): r for r in BUILTIN}
    merged.update({(r.family, r.knob): r for r in load_rules(path)})
    return list(merged.values())


# --- recommend / apply -------------------------------------------------------------------


def recommend(chip: Chip, gating_file=None) -> List[Recommendation]:
    """What to do with each gated knob on this chip, and why."""
    user = {(r.family, r.knob): r for r in load_rules(gating_file)}
    where = str(gating_path(gating_file))
    rules = {(r.family, r.knob): r for r in BUILTIN}
    rules.update(user)
    defaults = hardware.mlx_defaults(chip)
    mine = [r for (fam, _), r in rules.items() if fam == chip.family]
    have = {r.knob for r in mine}
    out = []
    for r in mine:
        d = defaults.get(r.knob)
        read = d.read if d else True
        reason = r.reason
        if not read and r.value is not None:
            reason += f" (note: the {chip.backend} backend does not read {r.knob})"
        out.append(Recommendation(
            family=chip.family, knob=r.knob, value=r.value, default=d.value if d else None, read=read,
            reason=reason, provenance=r.provenance,
            origin=where if (r.family, r.knob) in user else "built-in"))
    for k in GATED_KNOBS:
        if k not in have:
            d = defaults[k]
            why = (f"no measurement for chip family {chip.family!r}: leave MLX's default" if d.read
                   else f"no effect: the {chip.backend} backend does not read this variable")
            out.append(Recommendation(family=chip.family, knob=k, value=None, default=d.value, read=d.read,
                                      reason=why, provenance={}, origin="built-in"))
    order = {k: i for i, k in enumerate(hardware.KNOBS)}
    return sorted(out, key=lambda r: (order.get(r.knob, len(order)), r.knob))


def apply(chip: Optional[Chip] = None, environ=None, gating_file=None,
          device_created: Optional[bool] = None) -> List[Action]:
    """Set the recommended variables the user has not set, before MLX creates its device.

    With `environ` other than os.environ (e.g. a child process's environment)
    the late-call check is skipped: those values are for a process yet to start.
    Without `chip`, the chip is probed in a subprocess so that this process's
    device is not created by the detection itself. `device_created` overrides
    the check (hardware.mlx_device_created()) when given.
    Returns one Action per recommendation: set, kept (user's value), default, late.
    """
    own = environ is None or environ is os.environ
    environ = os.environ if environ is None else environ
    if device_created is None:
        device_created = own and hardware.mlx_device_created()
    if chip is None:
        chip = hardware.detect() if device_created else hardware.current_chip()
    recs = recommend(chip, gating_file)
    actions = []
    late = device_created
    for r in recs:
        if r.knob in environ:
            want = "leave MLX's default" if r.value is None else r.value
            actions.append(Action(knob=r.knob, value=environ[r.knob], action="kept",
                                  reason=f"set by the user ({r.knob}={environ[r.knob]}); recommended: {want}"))
        elif r.value is None:
            actions.append(Action(knob=r.knob, value=None, action="default", reason=r.reason))
        elif late:
            actions.append(Action(knob=r.knob, value=r.value, action="late",
                                  reason="MLX already created its device in this process and read its "
                                         "variables once: set it before importing mlx, or in a fresh process"))
        else:
            environ[r.knob] = r.value
            actions.append(Action(knob=r.knob, value=r.value, action="set", reason=r.reason))
    missed = [a.knob for a in actions if a.action == "late"]
    if missed:
        warnings.warn(
            f"mlxprof.gating.apply: too late to set {', '.join(missed)} — MLX reads them once, when it "
            "creates its device, and mlx.core is already imported in this process. Call apply() before "
            "importing mlx, or set them in the environment of a fresh process.",
            RuntimeWarning, stacklevel=2)
    return actions


def save_decision(chip: Chip, knob: str, value, provenance: dict, path=None) -> Path:
    """Record a measured decision for this chip's family in the gating file (created if absent).

    value None means "leave MLX's default". Replaces an earlier rule for the
    same family and knob. Returns the file's path.
    """
    p = gating_path(path)
    rules = load_rules(p) if p.exists() else []
    prov = dict(provenance or {})
    prov.setdefault("chip", chip.label)
    prov.setdefault("recorded", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    reason = prov.get("reason") or (
        f"measured on {chip.name}: " + (f"{knob}={value}" if value is not None else "no gain, leave MLX's default")
        + (f" ({prov['gain']})" if prov.get("gain") else ""))
    try:
        rule = Rule(family=chip.family, knob=knob, value=value, reason=str(reason), provenance=prov)
    except ValidationError as e:
        raise InputError(f"gating decision: {e.errors()[0]['msg']}")
    try:
        json.dumps(rule.provenance)
    except TypeError as e:
        raise InputError(f"gating decision: provenance is not JSON-serialisable ({e})")
    rules = [r for r in rules if (r.family, r.knob) != (rule.family, rule.knob)] + [rule]
    p.parent.mkdir(parents=True, exist_ok=True)
    doc = {"mlxprof_gating": GATING_VERSION, "rules": [r.model_dump() for r in rules]}
    write_text_atomic(p, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return p


# --- `mlxprof env` -----------------------------------------------------------------------


class EnvResult(Result):
    kind: str = "env"
    chip: hardware.ChipRecord
    knobs: List[hardware.KnobState]  # MLX's defaults on this chip and the values in force
    gating_file: str  # the user gating file consulted (it may not exist)
    gating_file_exists: bool
    recommendations: List[Recommendation]


def environment(gating_file=None, command: Optional[str] = None) -> EnvResult:
    """Backend, chip, MLX's defaults and the values in force, and the gating advice."""
    recs_path = gating_path(gating_file)
    load_rules(gating_file)  # validate before touching MLX
    chip = hardware.detect()
    return EnvResult(
        provenance=_provenance(command),
        chip=chip.record(),
        knobs=list(hardware.knob_states(chip).values()),
        gating_file=str(recs_path),
        gating_file_exists=recs_path.exists(),
        recommendations=recommend(chip, gating_file),
    )
