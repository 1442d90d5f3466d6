"""A whole sweep: lay it out, run every point still to do in a fresh worker,
rewrite the result file after each, and finish (or leave a valid partial file
on Ctrl-C that `resume=` continues).

Points are interleaved round-robin over the settings for `reps` rounds
(stats.interleave) so drift hits every value alike.
"""

import statistics
import sys
from typing import Callable, Dict, Optional, Sequence

from .. import results, stats
from ..errors import InputError
from ..progress import Progress
from .guard import check_not_overwriting, exclusive
from .layout import layout_differences, plan
from .protocol import WorkerJob
from .result import Point, SweepInterrupted, SweepResult, aggregate
from .runner import DEFAULT_TIMEOUT_S, REFUSED, failure_reason, run_point

_INTERRUPTED = "interrupted after"
_FAILED = "see points[].error"


def run(
    model: str,
    knob: Optional[str] = None,
    values: Optional[Sequence] = None,
    *,
    knobs: Optional[Dict[str, Sequence]] = None,
    variants: Optional[Sequence] = None,
    reps: int = 3,
    runs: Optional[int] = None,
    warmup: Optional[int] = None,
    tokens: Optional[int] = None,
    prompt_tokens: Optional[int] = None,
    weights: str = "auto",
    dtype: Optional[str] = None,
    timeout: Optional[float] = DEFAULT_TIMEOUT_S,
    force: bool = False,
    json_path=None,
    resume=None,
    overwrite: bool = False,
    progress: bool = False,
    worker_cmd: Optional[Sequence[str]] = None,
    on_point: Optional[Callable[[Point, SweepResult], None]] = None,
    command: Optional[str] = None,
) -> SweepResult:
    """Sweep one knob (`knob=`, `values=`), a grid (`knobs={name: values}`) or
    explicit environments (`variants=[(label, env), …]`, first = baseline).
    `default` leaves a variable unset. runs/warmup/tokens/prompt_tokens go to
    each point's decode measurement. Ctrl-C raises SweepInterrupted (a
    KeyboardInterrupt) carrying the partial result. A `json_path` that holds a
    result is refused unless it is the `resume` file or `overwrite` is set;
    `<json_path>.lock` keeps a second sweep off the file while this one runs."""
    knobs, skipped, settings, baseline, sweep_settings, notes = plan(
        model, knob, values, knobs, variants, reps, runs, warmup, tokens, prompt_tokens, weights, dtype,
        timeout, force)
    if json_path:
        results.check_writable(json_path)
        check_not_overwriting(json_path, resume, overwrite)
    fresh = SweepResult(
        provenance=results.provenance(command), model_name=model, settings=sweep_settings, knobs=knobs,
        skipped=skipped, variants=settings, baseline=baseline,
        order=stats.interleave([v.label for v in settings], reps), notes=notes,
    )
    job = WorkerJob(model=model, weights=weights, dtype=dtype, runs=runs, warmup=warmup, tokens=tokens,
                    prompt_tokens=prompt_tokens)
    with exclusive(json_path or resume):
        r = _resumed(resume, fresh, command) if resume else fresh
        for n in notes + list(skipped.values()):
            print(f"mlxprof: warning: {n}", file=sys.stderr)
        _run_points(r, job, json_path or resume, timeout, worker_cmd, progress, on_point)
        _finish(r, json_path or resume)
    return r


def _finish(r: SweepResult, json_path) -> None:
    """Every point has run (failed ones included: a resume retries them)."""
    r.partial = False
    r.notes = [n for n in r.notes if not n.startswith(_INTERRUPTED) and not n.endswith(_FAILED)]
    failed = [p for p in r.points if p.status != "ok"]
    if failed:
        first = f"first, {failed[0].label}: {failure_reason(failed[0].error)}"
        r.notes.append(f"{len(failed)} of {len(r.order)} points failed ({first}); {_FAILED}")
    _save(r, json_path)


def _resumed(path, fresh: SweepResult, command: Optional[str]) -> SweepResult:
    r = results.load(path, SweepResult)
    diff = layout_differences(r, fresh)
    if diff:
        raise InputError(f"{path}: cannot resume a different sweep ({'; '.join(diff)})")
    r.settings.timeout_s = fresh.settings.timeout_s
    r.provenance.command = command or r.provenance.command
    return r


def _save(r: SweepResult, json_path) -> None:
    aggregate(r)
    if json_path:
        results.save(r, json_path)


def _run_points(r: SweepResult, job: WorkerJob, json_path, timeout, worker_cmd, progress, on_point) -> None:
    """Run the points not yet ok, saving after each; Ctrl-C saves and raises
    SweepInterrupted; a worker's InputError (the same for every point) stops
    the sweep as InputError."""
    by_label = {v.label: v for v in r.variants}
    done = {p.index for p in r.points if p.status == "ok"}
    tries = {p.index: p.attempts for p in r.points}
    k = len(r.variants)
    r.partial = True
    _save(r, json_path)
    total = len(r.order)
    with Progress(progress, total, "sweep") as prog:
        prog.advance(steps=len(done))
        try:
            for i, label in enumerate(r.order):
                if i in done:
                    continue
                prog.describe(f"point {i + 1}/{total}: {label}")
                point, reply = run_point(by_label[label], job, i, i // k, timeout, worker_cmd)
                point.attempts = tries.get(i, 0) + 1
                if reply is not None and r.model is None:
                    r.model, r.decode, r.worker_imports = reply.model, reply.settings, reply.imports
                r.points = sorted([p for p in r.points if p.index != i] + [point], key=lambda p: p.index)
                _save(r, json_path)
                prog.note(_point_line(point, total))
                prog.advance()
                if point.error and point.error.startswith(REFUSED):
                    raise InputError(point.error[len(REFUSED):])
                if on_point:
                    on_point(point, r)
        except KeyboardInterrupt:
            r.notes = [n for n in r.notes if not n.startswith(_INTERRUPTED)]
            r.notes.append(f"{_INTERRUPTED} {len(r.points)} of {total} points")
            _save(r, json_path)
            raise SweepInterrupted(r) from None


def _point_line(point: Point, total: int) -> str:
    if point.status == "ok":
        what = f"{statistics.median(point.tok_s):.2f} tok/s (median of {len(point.tok_s)} runs)"
    else:
        what = f"{point.status}: {failure_reason(point.error)}"
    return f"[{point.index + 1}/{total}] {point.label}: {what}, {point.wall_s:.1f} s"
