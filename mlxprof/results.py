"""The versioned JSON schema every command emits, and atomic reads/writes.

Every result carries `schema` (this module's SCHEMA_VERSION), `kind` (which
command made it) and a `Provenance`: chip, backend, versions, knobs, weights,
date. `load` refuses files of another schema version or another kind.
"""

import datetime as _dt
import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional

from pydantic import BaseModel, Field, ValidationError

from .errors import InputError, OutputError

SCHEMA_VERSION = 1

# Environment variables that change how MLX schedules or compiles work.
KNOB_PREFIXES = ("MLX_",)


class Record(BaseModel):
    model_config = {"extra": "forbid", "protected_namespaces": ()}


class ModelIdentity(Record):
    name: str  # alias, repo id or path as given
    alias: Optional[str] = None
    repo_id: Optional[str] = None
    path: Optional[str] = None
    weights: str  # "real" or "synthetic"
    quantization: str  # "4bit", "8bit", "bfloat16" …
    group_size: Optional[int] = None
    dtype: str  # activations / unquantized parameters
    num_layers: int
    parameters: int
    bytes_per_token: int  # weight bytes streamed per decoded token
    model_type: Optional[str] = None  # config.json's model_type
    library: Optional[str] = None  # whose model classes built it: "mlx-lm" or "mlx-vlm"
    experts_per_token: Optional[int] = None  # MoE: the k experts a token is routed to
    experts: Optional[int] = None  # MoE: the n experts of each MoE layer


class Provenance(Record):
    backend: str  # "metal", "cuda" or "cpu"
    device: Dict[str, object]  # mx.device_info(), verbatim
    chip: str
    versions: Dict[str, Optional[str]]
    knobs: Dict[str, str]  # MLX_* variables set in the environment
    imports: List[str] = []  # what mlxprof changed about this process's imports (models/lean.py)
    python: str
    platform: str
    date: str
    command: Optional[str] = None


class Result(Record):
    schema_version: int = Field(default=SCHEMA_VERSION, alias="schema")
    kind: str
    provenance: Provenance

    model_config = {"extra": "forbid", "populate_by_name": True, "protected_namespaces": ()}


def package_versions() -> Dict[str, Optional[str]]:
    out = {}
    for name in ("mlx", "mlx-lm", "mlx-vlm", "mlxprof"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    if out["mlxprof"] is None:  # running from a checkout without installing
        from . import __version__

        out["mlxprof"] = f"{__version__} (uninstalled checkout)"
    return out


def env_knobs(environ=None) -> Dict[str, str]:
    environ = os.environ if environ is None else environ
    return {k: v for k, v in sorted(environ.items()) if k.startswith(KNOB_PREFIXES)}


def provenance(command: Optional[str] = None, chip=None) -> Provenance:
    from . import hardware
    from .models import lean

    chip = chip or hardware.detect()
    return Provenance(
        backend=chip.backend,
        device=chip.device_info,
        chip=chip.label,  # name plus architecture / compute capability
        versions=package_versions(),
        knobs=env_knobs(),
        imports=lean.applied(),
        python=platform.python_version(),
        platform=f"{platform.system()} {platform.machine()}",
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        command=command,
    )


def check_writable(path) -> Path:
    """Fail fast, before measuring, if `path` cannot be written."""
    if not str(path).strip():
        raise InputError("an output path is empty (e.g. --json ''); name a file, or `-` for stdout")
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InputError(f"output path {path} is a directory")
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create output directory {parent}: {e.strerror}")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(f"cannot write {path}: permission denied")
    return path


def write_text_atomic(path, text: str):
    """Write `text` to `path` through a temporary file and a rename, so a
    reader never sees half a file and a failed write leaves the old one.
    An OSError becomes an OutputError naming the path."""
    try:
        _write_atomic(Path(path), text)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from e


def _write_atomic(path: Path, text: str):
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are for sharing
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# Result files written by this process, so an interruption can say where
# the measurements so far were kept.
WRITTEN: Dict[str, str] = {}


def save(result: Result, path):
    """Save `result`; if that fails, keep a copy in the temp folder and raise
    OutputError saying where (a measurement is never lost to a full disk)."""
    text = result.model_dump_json(by_alias=True, indent=2) + "\n"
    try:
        write_text_atomic(path, text)
    except OutputError as e:
        fd, rescue = tempfile.mkstemp(prefix=f"mlxprof-{result.kind}-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
        except OSError:
            raise OutputError(f"{e}; no copy could be kept either") from e
        WRITTEN[rescue] = result.kind
        raise OutputError(f"{e}; the result was kept in {rescue}") from e
    WRITTEN[str(path)] = result.kind


def load(path, cls, kind: Optional[str] = None):
    """Read a result of class `cls`, refusing other schema versions and kinds."""
    data = load_any(path)
    want = kind or cls.model_fields["kind"].default
    if want and data["kind"] != want:
        raise InputError(f"{path}: a '{data['kind']}' result, expected '{want}'")
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise InputError(f"{path}: invalid {want} result: {e.errors()[0]['msg']}")


# Every kind of result mlxprof saves → "module:Class" under mlxprof, for readers
# that take any kind (`load_result`, `mlxprof diff`); imported on first use.
KINDS = {
    "decode": "decode:DecodeResult", "ops": "ops:OpsResult", "floor": "floor:FloorResult",
    "sweep": "sweep.result:SweepResult", "vlm": "vlm:VLMResult", "compare": "compare:CompareResult",
    "parity": "parity:ParityResult", "env": "gating:EnvResult", "diff": "diff:DiffResult",
    "depth": "depth:DepthResult", "distributed": "distributed.result:DistributedResult",
}


def result_class(kind: str):
    """The Result class of a registered `kind`."""
    import importlib

    where = KINDS.get(kind) if isinstance(kind, str) else None
    if where is None:
        raise InputError(f"'{kind}' is not a kind of mlxprof result ({', '.join(KINDS)})")
    module, name = where.split(":")
    return getattr(importlib.import_module(f"mlxprof.{module}"), name)


def load_result(path) -> Result:
    """Any saved result, as its own class (see KINDS)."""
    kind = load_any(path)["kind"]
    try:
        cls = result_class(kind)
    except InputError as e:
        raise InputError(f"{path}: {e}")
    return load(path, cls, kind)


def load_any(path) -> dict:
    """The raw dict of any mlxprof result file, schema-checked."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file")
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not a JSON result ({e})")
    if not isinstance(data, dict) or "schema" not in data or "kind" not in data:
        raise InputError(f"{path}: not an mlxprof result (no schema/kind)")
    if data["schema"] != SCHEMA_VERSION:
        raise InputError(
            f"{path}: schema version {data['schema']}, this mlxprof reads {SCHEMA_VERSION}"
        )
    return data
