"""The saved sweep: its records, and the per-value rows and advice computed
from the points measured so far.

Field names are those of the first sweep files (docs/benchmark_results/
*.sweep.json) so every saved sweep still loads through `results.load`.
"""

import statistics
from typing import Dict, List, Optional

from .. import stats
from ..decode import DecodeSettings, PhaseSplit
from ..results import ModelIdentity, Record, Result
from .knobs import KnobSetting
from .protocol import WorkerTiming


class Overhead(WorkerTiming):
    """Where one point's wall time went: the worker's own split, plus the total."""

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
    verdict: str  # "baseline" ("baseline: no data"), a stats.compare verdict, or "no data"


class SweepAdvice(Record):
    """What the sweep says to set (saved as `recommendation`)."""

    label: str  # the setting to use; the baseline label means "leave the default"
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
    worker_imports: List[str] = []  # what the first successful worker changed about its imports
    decode: Optional[DecodeSettings] = None  # the settings the workers used
    settings: SweepSettings
    knobs: Dict[str, List[str]]  # as asked, before skipping
    skipped: Dict[str, str] = {}  # knob → why it was not swept
    variants: List[KnobSetting]
    baseline: str
    order: List[str]  # the planned interleaved labels, one per point
    points: List[Point] = []
    rows: List[Row] = []
    recommendation: Optional[SweepAdvice] = None
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
        from .. import render

        return render.sweep_renderable(self)

    def _repr_markdown_(self) -> str:
        from .. import render

        return render.sweep_markdown(self)

    def _repr_html_(self) -> str:
        from .. import render

        return render.sweep_html(self)

    def plot(self, ax=None):
        """Speedup vs value with 95% CI error bars; returns the matplotlib figure."""
        from .plot import speedup_figure

        return speedup_figure(self, ax)


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep: `.result` is the partial result (saved if a path was given)."""

    def __init__(self, result: SweepResult):
        super().__init__("sweep interrupted")
        self.result = result


def aggregate(result: SweepResult) -> None:
    """Fill rows and the recommendation from the successful points."""
    result.rows = _rows(result)
    result.recommendation = _advice(result)


def _rows(result: SweepResult) -> List[Row]:
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
            # a baseline without measurements says so: every comparison then reads "no data"
            row.update(verdict="baseline" if xs else "baseline: no data", ratio=1.0 if xs else None)
        elif xs and base:
            c = stats.compare(base, xs, names=(result.baseline, v.label),
                              units=(units[result.baseline], units[v.label]))
            row.update(ratio=c.ratio, ci_low=c.ci_low, ci_high=c.ci_high, p_value=c.p_value, verdict=c.verdict)
        else:
            row.update(verdict="no data")
        rows.append(Row(**row))
    return rows


def _advice(result: SweepResult) -> Optional[SweepAdvice]:
    """The best significant gain, else "leave the default" with the reason;
    None while the baseline has no measurements."""
    rows = result.rows
    brow = next(r for r in rows if r.label == result.baseline)
    if not brow.n:
        return None
    chip = f"{result.provenance.chip} ({result.provenance.backend})"
    prefix = f"Provisional ({len(result.points)} of {len(result.order)} points run): " if result.partial else ""
    gains = [r for r in rows if r.verdict == "significant gain"]
    if gains:
        best = max(gains, key=lambda r: r.ratio)
        setting = " ".join(f"{k}={v}" for k, v in best.env.items() if v is not None) or best.label
        sentence = _cap(f"{prefix}on {chip}, set {setting}: ×{best.ratio:.3f} tok/s over the default "
                        f"(95% CI {best.ci_low:.3f}–{best.ci_high:.3f}, p={best.p_value:.2g}).")
        return SweepAdvice(label=best.label, env=best.env, sentence=sentence, ratio=best.ratio,
                           ci_low=best.ci_low, ci_high=best.ci_high, p_value=best.p_value)
    others = [r for r in rows if r.ratio is not None and r.label != result.baseline]
    if others:
        top = max(others, key=lambda r: r.ratio)
        why = (f"no value is a significant gain (best {top.label}: ×{top.ratio:.3f}, "
               f"95% CI {top.ci_low:.3f}–{top.ci_high:.3f}, p={top.p_value:.2g})")
    else:
        why = "no other value has measurements"
    return SweepAdvice(label=brow.label, env=brow.env, sentence=_cap(f"{prefix}leave the default on {chip}: {why}."))


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]
