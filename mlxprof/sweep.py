"""Knob sweeps in fresh subprocesses, and the notebook API.

    from mlxprof import sweep
    r = sweep.run(model="gemma3n-e2b-4bit", knob="MLX_MAX_OPS_PER_BUFFER",
                  values=["default", 100, 1000], reps=3)
    r.table(); r.best; r.plot()

MLX reads its buffer knobs once, when the device is created, so every point
runs `python -m mlxprof.worker` in a new process with the variables set (or,
for `default`, unset) before `import mlx`. Points are interleaved round-robin
over the values for `reps` rounds (stats.interleave) so drift hits every value
alike. Each value's samples are the run-level tok/s of all its points; each
value is compared with the all-default baseline by stats.compare, which never
calls a ratio inside the noise a gain.

Nothing measured is lost: a point that crashes, hangs past its timeout or
prints no result is recorded as failed with the tail of its stderr and the
sweep goes on; the result file is rewritten atomically after every point;
Ctrl-C leaves a valid partial result that `resume=` continues.
"""

import itertools
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from pydantic import ValidationError

from . import results, stats
from .decode import DecodeSettings, PhaseSplit
from .errors import InputError
from .results import ModelIdentity, Record, Result
from .worker import SPAWN_VAR, TAG

DEFAULT = "default"  # the value that leaves the variable unset in the child
WORKER_ENV = "MLXPROF_SWEEP_WORKER"  # overrides the worker command (tests inject faults with it)
DEFAULT_TIMEOUT_S = 600.0
STDERR_TAIL = 2000
REFUSED = "worker refused its input: "  # an InputError in the worker: the same for every point


@dataclass(frozen=True)
class KnobInfo:
    kind: str  # "int", "flag" (0/1) or "presence" (any value turns it on)
    minimum: int
    backends: Tuple[str, ...]  # builds that read it
    what: str


# The MLX environment variables that change scheduling or compilation
# (mlx/utils.h and the backends' device.cpp, MLX 0.32; see anchors.md).
KNOBS: Dict[str, KnobInfo] = {
    "MLX_MAX_OPS_PER_BUFFER": KnobInfo("int", 1, ("metal", "cuda"), "kernel dispatches per command buffer / CUDA graph"),
    "MLX_MAX_MB_PER_BUFFER": KnobInfo("int", 1, ("metal", "cuda"), "size budget per command buffer / CUDA graph"),
    "MLX_BFS_MAX_WIDTH": KnobInfo("int", 1, ("metal", "cuda", "cpu"), "breadth of the graph walk in eval"),
    # compile.cpp tests getenv() != nullptr: "0" disables compile too
    "MLX_DISABLE_COMPILE": KnobInfo("presence", 1, ("metal", "cuda", "cpu"), "turn mx.compile off"),
    "MLX_USE_CUDA_GRAPHS": KnobInfo("flag", 0, ("cuda",), "launch through CUDA graphs"),
    "MLX_CUDA_GRAPH_CACHE_SIZE": KnobInfo("int", 0, ("cuda",), "cached CUDA graphs"),
    "MLX_ENABLE_TF32": KnobInfo("flag", 0, ("cuda",), "TF32 matmuls"),
    "MLX_METAL_FAST_SYNCH": KnobInfo("flag", 0, ("metal",), "fast CPU-GPU synchronisation"),
    "MLX_RESIDENCY_SET_MAX_PCT": KnobInfo("int", 0, ("metal",), "residency set size, % of memory"),
}
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ---------------------------------------------------------------- records


class Variant(Record):
    label: str
    env: Dict[str, Optional[str]]  # value None: unset in the child


class Overhead(Record):
    start_s: float  # parent's spawn → the worker's first line (interpreter start-up)
    import_s: float  # mlx, mlx-vlm, mlxprof
    build_s: float  # model build (mlxprof.models.prepare)
    measure_s: float  # the decode runs
    total_s: float  # spawn → exit, as the parent saw it

    @property
    def overhead_s(self) -> float:
        return self.total_s - self.measure_s


class Point(Record):
    index: int  # position in `order`
    round: int
    label: str
    status: str  # "ok", "failed" (crash, garbage) or "timeout"
    tok_s: List[float] = []
    prefill_tok_s: List[float] = []
    split: Optional[PhaseSplit] = None
    overhead: Optional[Overhead] = None
    wall_s: float
    returncode: Optional[int] = None
    error: Optional[str] = None  # why it failed, with the tail of its stderr
    env_seen: Dict[str, str] = {}  # the MLX_* variables the worker saw
    attempts: int = 1


class Row(Record):
    label: str
    env: Dict[str, Optional[str]]
    points: int  # successful points
    failed: int
    n: int  # run-level tok/s samples
    median: Optional[float] = None
    mad: Optional[float] = None
    ratio: Optional[float] = None  # median / baseline median
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    p_value: Optional[float] = None
    verdict: str  # "baseline", a stats.compare verdict, or "no data"


class Recommendation(Record):
    label: str  # the variant to use; the baseline label means "leave the default"
    env: Dict[str, Optional[str]]
    sentence: str
    ratio: Optional[float] = None
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    p_value: Optional[float] = None


class SweepSettings(Record):
    reps: int
    runs: Optional[int] = None  # as asked; None: the decode defaults (see `decode`)
    warmup: Optional[int] = None
    tokens: Optional[int] = None
    prompt_tokens: Optional[int] = None
    weights: str = "auto"
    dtype: Optional[str] = None
    timeout_s: Optional[float] = None
    force: bool = False


class SweepResult(Result):
    kind: str = "sweep"
    model_name: str
    model: Optional[ModelIdentity] = None  # as the first successful worker built it
    decode: Optional[DecodeSettings] = None  # the settings the workers used
    settings: SweepSettings
    knobs: Dict[str, List[str]]  # as asked, before skipping
    skipped: Dict[str, str] = {}  # knob → why it was not swept
    variants: List[Variant]
    baseline: str
    order: List[str]  # the planned interleaved labels, one per point
    points: List[Point] = []
    rows: List[Row] = []
    recommendation: Optional[Recommendation] = None
    partial: bool = True
    notes: List[str] = []

    # -- notebook API

    def table(self) -> List[dict]:
        """One dict per value: n, median, MAD, speedup, CI, p, verdict."""
        return [r.model_dump() for r in self.rows]

    @property
    def best(self) -> Optional[Row]:
        """The recommended value's row: the best significant gain, else the baseline."""
        if self.recommendation is None:
            return None
        return next((r for r in self.rows if r.label == self.recommendation.label), None)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)

    def ok_points(self) -> List[Point]:
        return [p for p in self.points if p.status == "ok"]

    def overhead(self) -> Optional[Dict[str, float]]:
        """Median per-point overhead over the successful points, seconds."""
        ov = [p.overhead for p in self.ok_points() if p.overhead]
        if not ov:
            return None
        med = lambda f: statistics.median(f(o) for o in ov)  # noqa: E731
        return dict(
            start_s=med(lambda o: o.start_s), import_s=med(lambda o: o.import_s),
            build_s=med(lambda o: o.build_s), measure_s=med(lambda o: o.measure_s),
            total_s=med(lambda o: o.total_s), overhead_s=med(lambda o: o.overhead_s),
        )

    def __rich__(self):
        from . import render

        return render.sweep_renderable(self)

    def _repr_markdown_(self) -> str:
        from . import render

        return render.sweep_markdown(self)

    def _repr_html_(self) -> str:
        from . import render

        return render.sweep_html(self)

    def plot(self, ax=None):
        """Speedup vs value with 95% CI error bars; returns the matplotlib figure."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("SweepResult.plot() needs matplotlib: pip install 'mlxprof[plot]'") from None
        rows = [r for r in self.rows if r.ratio is not None]
        if ax is None:
            fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows) + 2), 4.0))
        else:
            fig = ax.figure
        colors = {"significant gain": "tab:green", "regression": "tab:red", "baseline": "black"}
        for i, r in enumerate(rows):
            lo, hi = (r.ci_low, r.ci_high) if r.ci_low is not None else (r.ratio, r.ratio)
            ax.errorbar([i], [r.ratio], yerr=[[r.ratio - lo], [hi - r.ratio]], fmt="o", capsize=4,
                        color=colors.get(r.verdict, "tab:gray"))
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([r.label for r in rows], rotation=30 if len(rows) > 5 else 0, ha="right" if len(rows) > 5 else "center")
        ax.set_ylabel(f"tok/s vs {self.baseline} (×, 95% CI)")
        swept = [k for k in self.knobs if k not in self.skipped]
        ax.set_xlabel(swept[0] if len(swept) == 1 else "variant")
        ax.set_title(f"{self.model_name} on {self.provenance.chip} ({self.provenance.backend}), "
                     f"{self.settings.reps} reps", fontsize=10)
        fig.tight_layout()
        return fig


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep: `.result` is the partial result (saved if a path was given)."""

    def __init__(self, result: SweepResult):
        super().__init__("sweep interrupted")
        self.result = result


# ---------------------------------------------------------------- input


def parse_knob(spec: str) -> Tuple[str, List[str]]:
    """`NAME=v1,v2,…` → (NAME, [v1, v2, …])."""
    if "=" not in spec:
        raise InputError(f"--knob '{spec}' is not NAME=VALUE,VALUE,… (e.g. MLX_MAX_OPS_PER_BUFFER=default,100,1000)")
    name, _, vals = spec.partition("=")
    return name.strip(), [v.strip() for v in vals.split(",")] if vals.strip() else []


def validate_knob(name: str, values: Sequence) -> List[str]:
    """Checked, normalised string values; raises InputError. Unknown names are
    allowed (the caller warns)."""
    if not name or not NAME_RE.match(name):
        raise InputError(f"'{name}' is not an environment variable name")
    values = [str(v).strip() for v in (values or [])]
    if not values:
        raise InputError(f"{name}: no values to sweep (give e.g. {name}=default,100,1000)")
    info = KNOBS.get(name)
    out = []
    for v in values:
        if v == "":
            raise InputError(f"{name}: empty value in the list")
        if v.lower() == DEFAULT:
            v = DEFAULT
        elif info is not None and info.kind == "presence":
            if v != "1":
                raise InputError(f"{name}={v}: MLX acts on {name} whenever it is set, whatever its value; "
                                 "sweep default (unset) and 1")
        elif info is not None:
            try:
                iv = int(v)
            except ValueError:
                want = "an integer" if info.kind == "int" else "0 or 1"
                raise InputError(f"{name}={v}: not {want} (or 'default')") from None
            if info.kind == "flag" and iv not in (0, 1):
                raise InputError(f"{name}={v}: must be 0 or 1 (or 'default')")
            if iv < info.minimum:
                raise InputError(f"{name}={v}: must be at least {info.minimum}")
            v = str(iv)
        if v in out:
            raise InputError(f"{name}: value '{v}' listed twice")
        out.append(v)
    return out


def unknown_knob_warning(name: str) -> Optional[str]:
    if name in KNOBS:
        return None
    return f"{name} is not an MLX variable mlxprof knows (known: {', '.join(KNOBS)}); sweeping it anyway"


def backend_skip(name: str, backend: str) -> Optional[str]:
    info = KNOBS.get(name)
    if info is None or backend in info.backends:
        return None
    if backend == "cpu":
        return f"{name} has no effect on the CPU backend (the CPU build does not read it)"
    return f"{name} has no effect on the {backend} backend (read by the {'/'.join(info.backends)} build only)"


def grid(knobs: Dict[str, List[str]]) -> Tuple[List[Variant], str, List[str]]:
    """The cartesian product of the knobs' values; the all-default point is the
    baseline and is added when not asked for. Returns (variants, baseline, notes)."""
    names = list(knobs)
    variants = []
    for combo in itertools.product(*(knobs[n] for n in names)):
        env = {n: (None if v == DEFAULT else v) for n, v in zip(names, combo)}
        variants.append(Variant(label=_label(env), env=env))
    notes = []
    base_env = {n: None for n in names}
    if not any(v.env == base_env for v in variants):
        variants.insert(0, Variant(label=DEFAULT, env=base_env))
        notes.append("added the all-default point as the baseline")
    return variants, DEFAULT, notes


def _label(env: Dict[str, Optional[str]]) -> str:
    if all(v is None for v in env.values()):
        return DEFAULT
    if len(env) == 1:
        return next(iter(env.values()))
    return " ".join(f"{k}={DEFAULT if v is None else v}" for k, v in env.items())


# ---------------------------------------------------------------- running one point


def worker_command(worker_cmd=None) -> List[str]:
    if worker_cmd:
        return list(worker_cmd)
    if os.environ.get(WORKER_ENV):
        return shlex.split(os.environ[WORKER_ENV])
    return [sys.executable, "-m", "mlxprof.worker"]


def child_env(variant: Variant) -> Dict[str, str]:
    env = dict(os.environ)
    for k, v in variant.env.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    # the worker must import this mlxprof, installed or not
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def _tail(text: str, n: int = STDERR_TAIL) -> str:
    text = (text or "").strip()
    return text if len(text) <= n else "…" + text[-n:]


def run_point(variant: Variant, job: dict, index: int, rnd: int, timeout: Optional[float],
              worker_cmd=None) -> Tuple[Point, Optional[dict]]:
    """Start one worker, wait for it, parse its tagged line. Never raises for a
    bad worker (KeyboardInterrupt passes through; subprocess.run kills the child)."""
    env = child_env(variant)
    cmd = worker_command(worker_cmd) + [json.dumps(job)]
    t0 = time.time()
    env[SPAWN_VAR] = repr(t0)
    base = dict(index=index, round=rnd, label=variant.label)
    try:
        proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return Point(**base, status="timeout", wall_s=time.time() - t0,
                     error=f"killed after the {timeout:g} s per-point timeout; stderr tail:\n{_tail(err)}"), None
    except OSError as e:
        return Point(**base, status="failed", wall_s=time.time() - t0,
                     error=f"could not start the worker {cmd[0]}: {e}"), None
    wall = time.time() - t0
    if proc.returncode == -signal.SIGINT:
        raise KeyboardInterrupt  # Ctrl-C reaches the whole process group: the user stopped the sweep
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(TAG)]
    refused = [ln for ln in proc.stderr.splitlines() if ln.startswith("mlxprof: error: ")]
    if proc.returncode == 2 and refused:
        return Point(**base, status="failed", wall_s=wall, returncode=2,
                     error=REFUSED + refused[-1][len("mlxprof: error: "):]), None
    if proc.returncode != 0:
        return Point(**base, status="failed", wall_s=wall, returncode=proc.returncode,
                     error=f"worker exited with code {proc.returncode}; stderr tail:\n{_tail(proc.stderr)}"), None
    try:
        if not lines:
            raise ValueError(f"no '{TAG.strip()}' line on stdout")
        out = json.loads(lines[-1][len(TAG):])
        tok_s = [float(x) for x in out["tok_s"]]
        if not tok_s or not all(x == x and x > 0 for x in tok_s):
            raise ValueError(f"bad tok/s samples {tok_s}")
        t = out["timing"]
        # the worker's identity of the model and its decode settings (checked here, kept once)
        out["model"] = ModelIdentity(**out["model"]) if out.get("model") else None
        out["settings"] = DecodeSettings(**out["settings"]) if out.get("settings") else None
        point = Point(
            **base, status="ok", tok_s=tok_s, prefill_tok_s=[float(x) for x in out.get("prefill_tok_s", [])],
            split=PhaseSplit(**out["split"]) if out.get("split") else None,
            overhead=Overhead(start_s=t["start_s"], import_s=t["import_s"], build_s=t["build_s"],
                              measure_s=t["measure_s"], total_s=wall),
            wall_s=wall, returncode=0, env_seen=out.get("env", {}),
        )
    except (ValueError, KeyError, TypeError, ValidationError) as e:
        return Point(**base, status="failed", wall_s=wall, returncode=proc.returncode,
                     error=f"unreadable worker output ({type(e).__name__}: {str(e)[:300]}); stdout tail:\n"
                           f"{_tail(proc.stdout, 500)}\nstderr tail:\n{_tail(proc.stderr)}"), None
    return point, out


# ---------------------------------------------------------------- aggregation


def aggregate(result: SweepResult) -> None:
    """Fill rows and the recommendation from the successful points."""
    chip = f"{result.provenance.chip} ({result.provenance.backend})"
    samples = {v.label: [] for v in result.variants}
    units = {v.label: [] for v in result.variants}  # one list per process: the independent unit
    counts = {v.label: [0, 0] for v in result.variants}
    for p in result.points:
        if p.status == "ok":
            samples[p.label].extend(p.tok_s)
            units[p.label].append(list(p.tok_s))
            counts[p.label][0] += 1
        else:
            counts[p.label][1] += 1
    base = samples[result.baseline]
    rows = []
    for v in result.variants:
        xs = samples[v.label]
        row = dict(label=v.label, env=v.env, points=counts[v.label][0], failed=counts[v.label][1], n=len(xs))
        if xs:
            s = stats.summarize(xs)
            row.update(median=s.median, mad=s.mad)
        if v.label == result.baseline:
            row.update(verdict="baseline", ratio=1.0 if xs else None)
        elif xs and base:
            c = stats.compare(base, xs, names=(result.baseline, v.label),
                              units=(units[result.baseline], units[v.label]))
            row.update(ratio=c.ratio, ci_low=c.ci_low, ci_high=c.ci_high, p_value=c.p_value, verdict=c.verdict)
        else:
            row.update(verdict="no data")
        rows.append(Row(**row))
    result.rows = rows

    prefix = f"Provisional ({len(result.points)} of {len(result.order)} points run): " if result.partial else ""
    brow = next(r for r in rows if r.label == result.baseline)
    if not base:
        result.recommendation = None
        return
    gains = [r for r in rows if r.verdict == "significant gain"]
    if gains:
        best = max(gains, key=lambda r: r.ratio)
        setting = " ".join(f"{k}={v}" for k, v in best.env.items() if v is not None) or best.label
        sentence = _cap(f"{prefix}on {chip}, set {setting}: ×{best.ratio:.3f} tok/s over the default "
                    f"(95% CI {best.ci_low:.3f}–{best.ci_high:.3f}, p={best.p_value:.2g}).")
        result.recommendation = Recommendation(label=best.label, env=best.env, sentence=sentence, ratio=best.ratio,
                                               ci_low=best.ci_low, ci_high=best.ci_high, p_value=best.p_value)
        return
    others = [r for r in rows if r.ratio is not None and r.label != result.baseline]
    if others:
        top = max(others, key=lambda r: r.ratio)
        why = (f"no value is a significant gain (best {top.label}: ×{top.ratio:.3f}, "
               f"95% CI {top.ci_low:.3f}–{top.ci_high:.3f}, p={top.p_value:.2g})")
    else:
        why = "no other value has measurements"
    result.recommendation = Recommendation(
        label=brow.label, env=brow.env, sentence=_cap(f"{prefix}leave the default on {chip}: {why}."))


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


# ---------------------------------------------------------------- the sweep


def plan(model, knob=None, values=None, knobs=None, variants=None, reps=3, runs=None, warmup=None,
         tokens=None, prompt_tokens=None, weights="auto", dtype=None, timeout=DEFAULT_TIMEOUT_S,
         force=False, backend=None):
    """Validate everything and lay out the sweep; nothing is run. Returns
    (knobs, skipped, variants, baseline, settings, notes)."""
    from .decode import validate_counts
    from .models import resolve

    if (knob is not None) + (knobs is not None) + (variants is not None) != 1:
        raise InputError("give exactly one of knob= (with values=), knobs={name: values} or variants=")
    if knob is not None:
        knobs = {knob: values}
    elif values is not None:
        raise InputError("values= goes with knob=")
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise InputError(f"--reps must be a positive integer, not {reps}")
    validate_counts(runs=runs, warmup=warmup, tokens=tokens, prompt_tokens=prompt_tokens)
    if timeout is not None and not timeout > 0:
        raise InputError(f"--timeout must be positive seconds, not {timeout}")
    notes = []
    skipped = {}
    if variants is None:
        if not knobs:
            raise InputError("no knobs to sweep")
        checked = {}
        for name, vals in knobs.items():
            checked[name] = validate_knob(name, vals)
            w = unknown_knob_warning(name)
            if w:
                notes.append(w)
        knobs = checked
        if backend is None:
            from .hardware import backend_name

            backend = backend_name()
        for name in knobs:
            why = backend_skip(name, backend)
            if why and not force:
                skipped[name] = why + "; skipped (force=True / --force sweeps it anyway)"
            elif why:
                notes.append(why + "; swept anyway (--force)")
        live = {k: v for k, v in knobs.items() if k not in skipped}
        if not live:
            raise InputError("nothing to sweep: " + "; ".join(backend_skip(k, backend) for k in skipped)
                             + "; pass --force (force=True) to sweep it anyway")
        variants, baseline, more = grid(live)
        notes += more
        for name in live:
            if name in os.environ:
                notes.append(f"{name}={os.environ[name]} is set in this environment; its 'default' points unset it")
    else:
        variants = [v if isinstance(v, Variant) else Variant(label=v[0], env=dict(v[1])) for v in variants]
        if len(variants) < 2:
            raise InputError("variants= needs at least two variants (the first is the baseline)")
        labels = [v.label for v in variants]
        if len(set(labels)) != len(labels):
            raise InputError(f"variant labels must be distinct: {labels}")
        knobs, baseline = {}, variants[0].label
    if len(variants) < 2:
        raise InputError("one value only: a sweep needs the default and at least one other value")
    resolve(model, weights)  # fast: an unknown model fails here, before any worker starts
    settings = SweepSettings(reps=reps, runs=runs, warmup=warmup, tokens=tokens, prompt_tokens=prompt_tokens,
                             weights=weights, dtype=dtype, timeout_s=timeout, force=force)
    return knobs, skipped, variants, baseline, settings, notes


def _same_plan(old: SweepResult, new: SweepResult) -> List[str]:
    diff = []
    if old.model_name != new.model_name:
        diff.append(f"model {old.model_name} vs {new.model_name}")
    if old.knobs != new.knobs or [v.model_dump() for v in old.variants] != [v.model_dump() for v in new.variants]:
        diff.append(f"knobs {old.knobs} vs {new.knobs}")
    for f in ("reps", "runs", "warmup", "tokens", "prompt_tokens", "weights", "dtype"):
        a, b = getattr(old.settings, f), getattr(new.settings, f)
        if a != b:
            diff.append(f"{f.replace('_', '-')} {a} vs {b}")
    return diff


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
    progress: bool = False,
    worker_cmd: Optional[Sequence[str]] = None,
    on_point: Optional[Callable[[Point, SweepResult], None]] = None,
    command: Optional[str] = None,
) -> SweepResult:
    """Sweep one knob (`knob=`, `values=`), a grid (`knobs={name: values}`) or
    explicit environments (`variants=[(label, env), …]`, first = baseline).
    `default` leaves a variable unset. runs/warmup/tokens/prompt_tokens go to
    each point's decode measurement. Ctrl-C raises SweepInterrupted (a
    KeyboardInterrupt) carrying the partial result."""
    knobs, skipped, variants, baseline, settings, notes = plan(
        model, knob, values, knobs, variants, reps, runs, warmup, tokens, prompt_tokens, weights, dtype,
        timeout, force)
    if json_path:
        results.check_writable(json_path)
    fresh = SweepResult(
        provenance=results.provenance(command), model_name=model, settings=settings, knobs=knobs,
        skipped=skipped, variants=variants, baseline=baseline,
        order=stats.interleave([v.label for v in variants], reps), notes=notes,
    )
    if resume:
        r = results.load(resume, SweepResult)
        diff = _same_plan(r, fresh)
        if diff:
            raise InputError(f"{resume}: cannot resume a different sweep ({'; '.join(diff)})")
        r.settings.timeout_s = settings.timeout_s
        r.provenance.command = command or r.provenance.command
        if not json_path:
            json_path = resume
    else:
        r = fresh
    for n in notes + list(skipped.values()):
        print(f"mlxprof: warning: {n}", file=sys.stderr)

    by_label = {v.label: v for v in r.variants}
    done = {p.index for p in r.points if p.status == "ok"}
    tries = {p.index: p.attempts for p in r.points}
    todo = [(i, lab) for i, lab in enumerate(r.order) if i not in done]
    k = len(r.variants)
    job = dict(model=model, weights=weights, dtype=dtype, runs=runs, warmup=warmup, tokens=tokens,
               prompt_tokens=prompt_tokens)

    def save():
        aggregate(r)
        if json_path:
            results.save(r, json_path)

    r.partial = True
    save()
    with _Progress(progress, len(r.order), len(done)) as prog:
        try:
            for i, label in todo:
                prog.start(i, label)
                point, out = run_point(by_label[label], job, i, i // k, timeout, worker_cmd)
                point.attempts = tries.get(i, 0) + 1
                if out is not None and r.model is None:
                    r.model, r.decode = out["model"], out["settings"]
                r.points = [p for p in r.points if p.index != i] + [point]
                r.points.sort(key=lambda p: p.index)
                save()
                prog.done(point)
                if point.error and point.error.startswith(REFUSED):
                    raise InputError(point.error[len(REFUSED):])
                if on_point:
                    on_point(point, r)
        except KeyboardInterrupt:
            r.partial = True
            msg = f"interrupted after {len(r.points)} of {len(r.order)} points"
            r.notes = [n for n in r.notes if not n.startswith("interrupted after")] + [msg]
            save()
            raise SweepInterrupted(r) from None
    r.partial = False  # every point has run (failed ones included: a resume retries them)
    r.notes = [n for n in r.notes if not n.startswith("interrupted after")]
    failed = [p for p in r.points if p.status != "ok"]
    if failed:
        r.notes = [n for n in r.notes if not n.endswith("see points[].error")]
        r.notes.append(f"{len(failed)} of {len(r.order)} points failed; see points[].error")
    save()
    return r


class _Progress:
    """Point i/N, value and last tok/s on stderr (a no-op when off)."""

    def __init__(self, enabled, total, already):
        self.enabled, self.total, self.already = enabled, total, already

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.console = Console(stderr=True)
            self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), console=self.console, transient=True)
            self.p.__enter__()
            self.task = self.p.add_task("sweep", total=self.total, completed=self.already)
        return self

    def start(self, i, label):
        if self.enabled:
            self.p.update(self.task, description=f"point {i + 1}/{self.total}: {label}")

    def done(self, point: Point):
        if not self.enabled:
            return
        if point.status == "ok":
            med = statistics.median(point.tok_s)
            what = f"{med:.2f} tok/s (median of {len(point.tok_s)} runs)"
        else:
            what = f"[red]{point.status}[/red]: {(point.error or '').splitlines()[0]}"
        self.console.print(f"[{point.index + 1}/{self.total}] {point.label}: {what}, {point.wall_s:.1f} s")
        self.p.update(self.task, advance=1)

    def __exit__(self, *exc):
        if self.enabled:
            self.p.__exit__(*exc)
        return False


def save_gating(result: SweepResult, chip=None, path=None, source: Optional[str] = None) -> List[str]:
    """Record the recommendation as a per-chip gating decision, one per swept
    knob (value None = leave MLX's default). Returns the knobs saved."""
    from . import gating  # written alongside; imported only when asked for
    from . import hardware

    if result.recommendation is None:
        raise InputError("no recommendation to save: the baseline has no measurements")
    if result.partial:
        raise InputError("the sweep is partial; finish it (--resume) before saving a gating decision")
    chip = chip or hardware.detect()
    rec = result.recommendation
    saved = []
    for name in result.knobs:
        if name in result.skipped:
            continue
        raw = rec.env.get(name)
        info = KNOBS.get(name)
        value = None if raw is None else (int(raw) if info else raw)
        prov = dict(
            source="mlxprof sweep", result_file=str(source) if source else None, model=result.model_name,
            recommendation=rec.label, sentence=rec.sentence, ratio=rec.ratio,
            ci=[rec.ci_low, rec.ci_high] if rec.ci_low is not None else None, p_value=rec.p_value,
            reps=result.settings.reps, points=len(result.ok_points()), knobs=result.knobs,
            date=result.provenance.date, versions=result.provenance.versions,
        )
        gating.save_decision(chip, name, value, prov, path=path)
        saved.append(name)
    return saved
