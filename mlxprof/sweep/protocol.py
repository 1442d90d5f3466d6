"""What crosses the process boundary between a sweep and its worker.

The parent starts `python -m mlxprof.sweep.worker JOB_JSON` (a `WorkerJob`);
the worker prints one line `TAG + WorkerReply JSON` on stdout. Libraries may
print anything else on stdout: only the last line that starts with `TAG`
counts. Both sides use these records, so a field added on one side is a field
the other side reads, and a reply of the wrong shape is a `ProtocolError`.
"""

import math
from typing import Dict, List, Optional

from pydantic import ValidationError, field_validator

from ..decode import DecodeSettings, PhaseSplit
from ..results import ModelIdentity, Record

TAG = "MLXPROF-RESULT "
SPAWN_VAR = "MLXPROF_SPAWN_TIME"  # time.time() of the parent just before it started the worker


class ProtocolError(ValueError):
    """A worker's stdout holds no readable reply."""


class WorkerJob(Record):
    model: str
    weights: str = "auto"
    dtype: Optional[str] = None
    runs: Optional[int] = None  # None: the decode defaults for this backend
    warmup: Optional[int] = None
    tokens: Optional[int] = None
    prompt_tokens: Optional[int] = None


class WorkerTiming(Record):
    start_s: float  # parent's spawn → the worker module's first line (interpreter start-up)
    import_s: float  # mlx, mlxprof, the model's code (mlx-lm or mlx-vlm)
    build_s: float  # opening the model (mlxprof.session.open_session) and its prompt
    measure_s: float  # the decode runs


class WorkerReply(Record):
    tok_s: List[float]  # run-level decode tok/s, one per measured run
    prefill_tok_s: List[float] = []
    split: Optional[PhaseSplit] = None
    peak_memory_bytes: Optional[int] = None
    model: Optional[ModelIdentity] = None
    settings: Optional[DecodeSettings] = None  # as the worker resolved them
    backend: Optional[str] = None
    chip: Optional[str] = None
    env: Dict[str, str] = {}  # the MLX_* variables the worker saw
    imports: List[str] = []  # what the worker changed about its imports (models/lean.py enable)
    timing: WorkerTiming

    @field_validator("tok_s")
    @classmethod
    def _measured(cls, v: List[float]) -> List[float]:
        if not v or not all(math.isfinite(x) and x > 0 for x in v):
            raise ValueError(f"bad tok/s samples {v}")
        return v


def encode_job(job: WorkerJob) -> str:
    return job.model_dump_json()


def decode_job(text: str) -> WorkerJob:
    return read_record(text, WorkerJob, "unreadable job: ")


def encode_reply(reply: WorkerReply) -> str:
    """The one tagged line the worker prints (newline included)."""
    return tagged_line(reply)


def decode_reply(stdout: str) -> WorkerReply:
    """The reply in a worker's stdout: its last tagged line."""
    return read_tagged(stdout, WorkerReply)


# The same protocol for any record (the distributed ranks' too: mlxprof/distributed/protocol.py)


def tagged_line(record) -> str:
    return TAG + record.model_dump_json() + "\n"


def read_record(text: str, cls, what: str = ""):
    """`text` as a `cls` record; ProtocolError naming the first bad field."""
    try:
        return cls.model_validate_json(text)
    except ValidationError as e:
        raise ProtocolError(what + _first_error(e)) from None


def read_tagged(stdout: str, cls):
    """The last line of `stdout` that starts with TAG, as a `cls` record."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith(TAG)]
    if not lines:
        raise ProtocolError(f"no '{TAG.strip()}' line on stdout")
    return read_record(lines[-1][len(TAG):], cls)


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(x) for x in err.get("loc", ())) or "reply"
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{where}: {err['msg']}{more}"[:300]
