"""Knob sweeps in fresh subprocesses, and the notebook API.

    from mlxprof import sweep
    r = sweep.run(model="gemma3n-e2b-4bit", knob="MLX_MAX_OPS_PER_BUFFER",
                  values=["default", 100, 1000], reps=3)
    r.table(); r.best; r.plot()

MLX reads its buffer knobs once, when the device is created, so every point
runs `python -m mlxprof.sweep.worker` in a new process with the variables set
(or, for `default`, unset) before `import mlx`. Each value's samples are the
run-level tok/s of all its points; each value is compared with the all-default
baseline by stats.compare, which never calls a ratio inside the noise a gain.

Nothing measured is lost: a point that crashes, hangs past its timeout or
prints no result is recorded as failed with the tail of its stderr and the
sweep goes on; the result file is rewritten atomically after every point;
Ctrl-C leaves a valid partial result that `resume=` continues.

One job a file: knobs.py (specs, validation, grid), layout.py (plan, resume
check), protocol.py (the typed worker job and reply), worker.py (the child),
runner.py (one point), result.py (records, rows, advice), drive.py (the whole
sweep), guard.py (no silent overwrite, one sweep a file), plot.py, gating_save.py.

The names below load on first use (PEP 562 module __getattr__): importing
this package must stay free of mlx and pydantic, because `python -m
mlxprof.sweep.worker` imports it before the worker's clock starts, and the
worker reports its import time apart from interpreter start-up.
"""

import importlib
from typing import TYPE_CHECKING

_WHERE = {
    "run": "drive",
    "plan": "layout",
    "SweepResult": "result", "SweepInterrupted": "result", "SweepAdvice": "result", "SweepSettings": "result",
    "Point": "result", "Row": "result", "Overhead": "result", "aggregate": "result",
    "DEFAULT": "knobs", "KNOB_SPECS": "knobs", "KnobSpec": "knobs", "KnobSetting": "knobs", "parse_knob": "knobs",
    "validate_knob": "knobs", "grid": "knobs", "backend_skip": "knobs",
    "WORKER_ENV": "runner", "DEFAULT_TIMEOUT_S": "runner", "run_point": "runner",
    "save_gating": "gating_save", "check_gating_file": "gating_save", "failure_reason": "runner",
}
__all__ = sorted(_WHERE)


def __getattr__(name):
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))


if TYPE_CHECKING:  # for editors and type checkers; at run time the names load lazily
    from .drive import run  # noqa: F401
    from .gating_save import check_gating_file, save_gating  # noqa: F401
    from .knobs import (DEFAULT, KNOB_SPECS, KnobSetting, KnobSpec, backend_skip, grid,  # noqa: F401
                        parse_knob, validate_knob)
    from .layout import plan  # noqa: F401
    from .result import (Overhead, Point, Row, SweepAdvice, SweepInterrupted, SweepResult,  # noqa: F401
                         SweepSettings, aggregate)
    from .runner import DEFAULT_TIMEOUT_S, WORKER_ENV, failure_reason, run_point  # noqa: F401
