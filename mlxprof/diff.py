"""Two saved results of one kind side by side: `mlxprof diff A.json B.json`.

    from mlxprof import diff
    d = diff.diff("a.json", "b.json")         # or diff.diff_results(a, b) on loaded results
    d.warnings; d.differences; d.metrics      # provenance first, then every measured number
    diff.slower(d, 0.05)                      # the tok/s metrics where B is slower by more than 5%

A and B may differ in MLX version, machine, knobs, model or mlxprof version;
the result lists every provenance, model and settings field that differs, and
warns above the numbers when they mix real and synthetic weights, chips or
token counts. Kinds read: decode, ops, floor, sweep, compare, parity, and
(diff_kinds.py) depth, per depth both measured, and distributed.

Each metric is B against A: B − A, B / A and, where both sides keep raw
samples, stats.compare's bootstrap 95% CI of median(B) / median(A), p-value
and verdict ("significant gain" means B is better, for ms as for tok/s). Which
samples each metric used is in its `samples` column (see SAMPLES).

Slower gate (`--fail-if-slower X`): B is slower than A by more than X when
the upper end of the 95% CI of median(B) / median(A) tok/s is below 1 − X:
with 95% confidence B keeps less than 1 − X of A's speed. The CI, not the
rank test, decides, because decode's usual 3 runs a side can never reach
p < 0.05 with Mann-Whitney (3+3: p ≥ 0.1) while runs that do not overlap
still give a CI clear of 1 − X. With a single run a side the CI is the point
ratio and the result warns. Every tok/s metric with samples is gated:
decode's, each compare variant's, each sweep value's, each parity loop's,
the floor's, each depth's, a distributed group's, each rank's and its
one-device baseline's; ops results hold none.
"""

import math
import statistics
from typing import Dict, List, Optional, Sequence

from . import results, stats
from .diff_kinds import depth_metrics, depth_warnings, distributed_metrics, distributed_warnings
from .errors import InputError
from .results import Record, Result

# What the `samples` column of a metric means.
SAMPLES = {
    "runs": "one sample per run (run-level tok/s); Mann-Whitney U, bootstrap CI",
    "tokens by run": "every measured token, grouped by run: the CI resamples whole runs, "
                     "the test is Welch's t on per-run medians (tokens of one run are not independent)",
    "points": "each sweep point's runs, grouped by point (one process each): the CI resamples "
              "whole points, the test is Welch's t on per-point medians",
    "evaluations": "one sample per timed evaluation; Mann-Whitney U, bootstrap CI",
    "value": "one number a side: no spread, no test",
}


class FieldDiff(Record):
    field: str  # "versions.mlx", "model.weights", "settings.tokens" …
    a: Optional[str] = None
    b: Optional[str] = None


class MetricDiff(Record):
    metric: str  # "tok/s", "build ms", "op Add", "tok/s [4bit]" …
    a: Optional[float] = None  # A's median (sampled metrics) or value
    b: Optional[float] = None
    delta: Optional[float] = None  # b − a
    ratio: Optional[float] = None  # b / a
    ci_low: Optional[float] = None  # bootstrap 95% CI of the ratio of medians
    ci_high: Optional[float] = None
    p_value: Optional[float] = None
    verdict: Optional[str] = None  # stats.compare's, B against A
    samples: str  # a key of SAMPLES, with the counts: "runs (3+3)"
    n_a: Optional[int] = None  # independent samples: runs, points or evaluations (tokens count by run)
    n_b: Optional[int] = None
    higher_is_better: Optional[bool] = None
    rate: bool = False  # a tok/s metric: what --fail-if-slower gates


class DiffResult(Result):
    kind: str = "diff"
    of: str  # the kind of A and B
    a_path: str
    b_path: str
    warnings: List[str] = []
    differences: List[FieldDiff] = []  # provenance, model and settings fields that differ
    same: int = 0  # fields compared and equal
    metrics: List[MetricDiff] = []
    fail_if_slower: Optional[float] = None  # the gate asked for, as a fraction
    slower: List[str] = []  # metrics that failed it
    notes: List[str] = []


# ---------------------------------------------------------------- metrics


def _clean(xs) -> List[float]:
    return [float(x) for x in xs if x is not None and not math.isnan(x)]


def value_metric(name: str, a, b, higher_is_better: Optional[bool] = None) -> MetricDiff:
    """A number each side holds once (bytes, counts, saved medians)."""
    a = None if a is None else float(a)
    b = None if b is None else float(b)
    both = a is not None and b is not None
    return MetricDiff(metric=name, a=a, b=b, delta=b - a if both else None,
                      ratio=b / a if both and a else None, samples="value", higher_is_better=higher_is_better)


def sampled_metric(name: str, xa, xb, label: str, higher_is_better: bool = True, rate: bool = False,
                   units: Optional[tuple] = None) -> MetricDiff:
    """stats.compare of B's samples against A's; `units` (lists of lists)
    groups them (runs, points) and makes those the independent samples."""
    if units is not None:
        units = tuple([u for u in (_clean(x) for x in side) if u] for side in units)
        xa, xb = ([x for u in side for x in u] for side in units)
    xa, xb = _clean(xa), _clean(xb)
    count = (f"{label} ({len(xa)}+{len(xb)})" if units is None
             else f"{label} ({len(xa)}+{len(xb)} in {len(units[0])}+{len(units[1])})")
    n_a, n_b = (len(xa), len(xb)) if units is None else map(len, units)
    if not xa or not xb:
        m = value_metric(name, statistics.median(xa) if xa else None, statistics.median(xb) if xb else None,
                         higher_is_better)
        return m.model_copy(update=dict(samples=count, rate=rate, n_a=n_a, n_b=n_b))
    c = stats.compare(xa, xb, higher_is_better=higher_is_better, units=units)
    a, b = c.baseline_summary.median, c.candidate_summary.median
    return MetricDiff(metric=name, a=a, b=b, delta=b - a, ratio=None if math.isnan(c.ratio) else c.ratio,
                      ci_low=c.ci_low, ci_high=c.ci_high, p_value=c.p_value, verdict=c.verdict,
                      samples=count, n_a=n_a, n_b=n_b, higher_is_better=higher_is_better, rate=rate)


def phase_metrics(runs_a, runs_b, suffix: str = "") -> List[MetricDiff]:
    """token / build / submit / wait ms of every token of two sets of decode.RunRecord, grouped by run."""
    out = []
    for phase in ("token", "build", "submit", "wait"):
        runs = tuple([getattr(r, f"{phase}_ms") for r in x] for x in (runs_a, runs_b))
        out.append(sampled_metric(f"{phase} ms{suffix}", [], [], "tokens by run", higher_is_better=False,
                                  units=runs))
    return out


def decode_metrics(a, b) -> List[MetricDiff]:
    out = [sampled_metric("tok/s", a.tok_s.samples, b.tok_s.samples, "runs", rate=True),
           sampled_metric("prefill tok/s", a.prefill_tok_s.samples, b.prefill_tok_s.samples, "runs")]
    return out + phase_metrics(a.runs, b.runs) + [
        value_metric("weight bytes/token", a.model.bytes_per_token, b.model.bytes_per_token, False),
        value_metric("KV bytes/token", a.kv_bytes_per_token, b.kv_bytes_per_token, False),
        value_metric("peak memory bytes", a.peak_memory_bytes, b.peak_memory_bytes, False),
    ]


def ops_metrics(a, b) -> List[MetricDiff]:
    from .ops import diff as ops_diff

    d = ops_diff(b, a, "A")  # B − A, ops with a count change only, largest first
    out = [value_metric("graph nodes", a.nodes, b.nodes)]
    out += [value_metric(f"{c} nodes", a.classes.get(c, 0), b.classes.get(c, 0)) for c in d.classes]
    return out + [value_metric(f"op {op}", a.histogram.get(op, 0), b.histogram.get(op, 0)) for op in d.ops]


def floor_metrics(a, b) -> List[MetricDiff]:
    def rates(r):
        return [1e3 / x for x in r.floor_ms.samples if x > 0]

    out = [sampled_metric("floor tok/s", rates(a), rates(b), "evaluations", rate=True),
           sampled_metric("floor ms", a.floor_ms.samples, b.floor_ms.samples, "evaluations", False),
           value_metric("floor GB/s", a.gb_s, b.gb_s, True),
           value_metric("bytes/token", a.bytes_per_token, b.bytes_per_token, False),
           value_metric("matvecs", a.matvecs, b.matvecs)]
    if a.probe and b.probe:
        out += [sampled_metric("copy ms", a.probe.ms.samples, b.probe.ms.samples, "evaluations", False),
                value_metric("copy GB/s", a.probe.gb_s, b.probe.gb_s, True)]
    if a.decode and b.decode:
        out += [value_metric("decode tok/s (median)", a.decode.tok_s_median, b.decode.tok_s_median, True),
                value_metric("floor / decode token", a.decode_share, b.decode_share)]
    return out


def pairs(items_a, items_b, key):
    """(a, b) for each key both sides hold, in A's order (values, variants,
    loops that only one side measured are left out)."""
    by_key = {key(x): x for x in items_b}
    return [(x, by_key[key(x)]) for x in items_a if key(x) in by_key]


def sweep_metrics(a, b) -> List[MetricDiff]:
    out = []
    for ra, rb in pairs(a.rows, b.rows, lambda r: r.label):
        units = tuple([p.tok_s for p in x.ok_points() if p.label == ra.label] for x in (a, b))
        out.append(sampled_metric(f"tok/s [{ra.label}]", [], [], "points", rate=True, units=units))
        if ra.label != a.baseline:
            out.append(value_metric(f"speedup [{ra.label}]", ra.ratio, rb.ratio, True))
    return out


def compare_metrics(a, b) -> List[MetricDiff]:
    out = []
    for va, vb in pairs(a.variants, b.variants, lambda v: v.bits):
        k = va.bits
        out.append(sampled_metric(f"tok/s [{k}]", va.tok_s.samples, vb.tok_s.samples, "runs", rate=True))
        out += [value_metric(f"{ph} ms [{k}] (median)", getattr(va.split, f"{ph}_ms"),
                             getattr(vb.split, f"{ph}_ms"), False) for ph in ("token", "build", "submit", "wait")]
        if va.floor_ms and vb.floor_ms:
            out.append(sampled_metric(f"floor ms [{k}]", va.floor_ms.samples, vb.floor_ms.samples, "evaluations",
                                      False))
        out += [value_metric(f"GEMV GB/s [{k}]", va.floor_gb_s, vb.floor_gb_s, True),
                value_metric(f"bytes/token [{k}]", va.bytes_per_token, vb.bytes_per_token, False),
                value_metric(f"graph nodes [{k}]", va.nodes, vb.nodes)]
    for ca, cb in pairs(a.comparisons, b.comparisons, lambda c: (c.candidate, c.baseline)):
        out.append(value_metric(f"{ca.candidate} / {ca.baseline} tok/s", ca.ratio, cb.ratio))
    return out


def parity_metrics(a, b) -> List[MetricDiff]:
    out = [sampled_metric(f"tok/s [{loop}]", sa.samples, sb.samples, "runs", rate=True)
           for (loop, sa), (_, sb) in pairs(a.tok_s.items(), b.tok_s.items(), lambda kv: kv[0])]
    for ca, cb in pairs([a.comparison], [b.comparison], lambda c: (c.candidate, c.baseline)):
        out.append(value_metric(f"{ca.candidate} / {ca.baseline} tok/s", ca.ratio, cb.ratio))
    return out


METRICS = {"decode": decode_metrics, "ops": ops_metrics, "floor": floor_metrics, "sweep": sweep_metrics,
           "compare": compare_metrics, "parity": parity_metrics, "depth": depth_metrics,
           "distributed": distributed_metrics}
# What only some kinds can mix up (depths or ranks measured on one side only …), warned about.
KIND_WARNINGS = {"depth": depth_warnings, "distributed": distributed_warnings}


# ---------------------------------------------------------------- provenance

# Per kind, the top-level fields that say what was measured and how.
IDENTITY = {
    "decode": ("model", "settings", "kv_context"), "ops": ("model", "context"),
    "floor": ("model", "iterations", "warmup"), "parity": ("model", "settings"),
    "sweep": ("model_name", "model", "settings", "decode", "knobs", "baseline"),
    "compare": ("family", "order", "settings"), "depth": ("model", "settings"),
    "distributed": ("model", "settings", "parallel", "launch"),
}
# Flattened fields that count tokens (sweep: `decode.*`): a difference in one is warned about.
TOKEN_FIELDS = tuple(f"{s}.{k}" for s in ("settings", "decode") for k in ("tokens", "warmup", "prompt_tokens")) \
    + ("context", "kv_context")


def _flat(value, prefix: str, out: Dict[str, str]):
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = None if value is None else str(value)
    return out


def identity_fields(r: Result) -> Dict[str, str]:
    """Provenance (less the verbatim device info), model and settings, flattened."""
    data = r.model_dump()
    out = _flat({k: v for k, v in data["provenance"].items() if k != "device"}, "", {})
    for key in IDENTITY.get(r.kind, ()):
        _flat(data.get(key), key, out)
    for v in data.get("variants", []) if r.kind == "compare" else []:
        _flat(v["model"], f"model[{v['bits']}]", out)
    return out


def field_diffs(a: Result, b: Result):
    """([FieldDiff] of the fields that differ, number of equal fields)."""
    fa, fb = identity_fields(a), identity_fields(b)
    keys = list(fa) + [k for k in fb if k not in fa]
    diffs = [FieldDiff(field=k, a=fa.get(k), b=fb.get(k)) for k in keys if fa.get(k) != fb.get(k)]
    return diffs, len(keys) - len(diffs)


def _weights(r: Result) -> List[str]:
    models = [v.model for v in r.variants] if r.kind == "compare" else [getattr(r, "model", None)]
    return sorted({m.weights for m in models if m is not None})


def mix_warnings(a: Result, b: Result, diffs: List[FieldDiff]) -> List[str]:
    """What makes the numbers answer another question than the one asked."""
    out = []
    wa, wb = _weights(a), _weights(b)
    if wa and wb and wa != wb:
        out.append(f"weights differ: A {'/'.join(wa)}, B {'/'.join(wb)} (synthetic weights are the "
                   "published architecture with random values)")
    pa, pb = a.provenance, b.provenance
    if (pa.chip, pa.backend) != (pb.chip, pb.backend):
        out.append(f"chips differ: A {pa.chip} ({pa.backend}), B {pb.chip} ({pb.backend}): "
                   "the hardware is part of the difference")
    counts = [d for d in diffs if d.field in TOKEN_FIELDS]
    if counts:
        out.append("token counts differ: " + ", ".join(f"{d.field} {d.a} → {d.b}" for d in counts)
                   + " (tok/s and per-token times depend on the context length)")
    return out


def _few_runs(metrics: List[MetricDiff]) -> List[str]:
    return [f"{m.metric}: a single sample on one side ({m.samples}): no spread, the CI is the ratio itself"
            for m in metrics if m.rate and m.n_a is not None and min(m.n_a, m.n_b) < 2]


# ---------------------------------------------------------------- the diff


def parse_threshold(text) -> float:
    """`5%` or `0.05` → 0.05; anything else (or 100% and more) is an InputError."""
    t = str(text).strip()
    try:
        x = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        x = math.nan
    if not 0 <= x < 1:  # NaN fails too
        raise InputError(f"--fail-if-slower '{text}': give a percentage below 100% (5%) or a fraction (0.05)")
    return x


def slower(d: DiffResult, threshold: float) -> List[MetricDiff]:
    """The tok/s metrics whose 95% CI of median(B) / median(A) lies wholly below 1 − threshold."""
    return [m for m in d.metrics if m.rate and m.ci_high is not None and m.ci_high < 1 - threshold]


def slower_sentence(d: DiffResult) -> str:
    """`B is slower than A by …` for the metrics that failed the gate."""
    parts = []
    for m in d.metrics:
        if m.metric in d.slower:
            parts.append(f"{1 - m.ratio:.1%} on {m.metric} (×{m.ratio:.3f}, 95% CI {m.ci_low:.3f}–{m.ci_high:.3f})")
    return (f"B is slower than A by {'; '.join(parts)}: more than the {d.fail_if_slower:.1%} "
            f"--fail-if-slower allows ({d.b_path} vs {d.a_path})")


def check_kinds(kind_a, kind_b, names: Sequence[str] = ("A", "B"), gated: bool = False):
    """Two results of one kind that METRICS reads (and, `gated`, holding tok/s)."""
    if kind_a != kind_b:
        raise InputError(f"{names[0]} is a '{kind_a}' result and {names[1]} a '{kind_b}' one: "
                         "diff compares two results of one kind")
    if not isinstance(kind_a, str) or kind_a not in METRICS:
        raise InputError(f"{names[0]}: diff reads {', '.join(METRICS)} results, not '{kind_a}'")
    if gated and kind_a == "ops":
        raise InputError("--fail-if-slower: ops results hold no tok/s to compare")


def check_output(json_path, names: Sequence[str]):
    """Before any work: the diff's file must be neither A nor B nor any other
    saved result (session.check_outputs: a measurement is never replaced)."""
    import os

    from .session import check_outputs

    for side, p in zip(("A", "B"), names):
        if os.path.realpath(json_path) == os.path.realpath(p):
            raise InputError(f"--json {json_path} is {side} itself: the diff would replace its own input; "
                             "pick another file name")
    check_outputs(json_path)


def diff_results(a: Result, b: Result, names: Sequence[str] = ("A", "B"), fail_if_slower: Optional[float] = None,
                 command: Optional[str] = None) -> DiffResult:
    """B against A: provenance differences, warnings, every metric, and the gate."""
    check_kinds(a.kind, b.kind, names, fail_if_slower is not None)
    diffs, same = field_diffs(a, b)
    metrics = [m for m in METRICS[a.kind](a, b) if m.a is not None or m.b is not None]
    used = sorted({m.samples.split(" (")[0] for m in metrics})
    warnings = mix_warnings(a, b, diffs) + KIND_WARNINGS.get(a.kind, lambda *_: [])(a, b) + _few_runs(metrics)
    d = DiffResult(provenance=results.provenance(command), of=a.kind, a_path=str(names[0]),
                   b_path=str(names[1]), warnings=warnings,
                   differences=diffs, same=same, metrics=metrics, fail_if_slower=fail_if_slower,
                   notes=[f"samples '{k}': {SAMPLES[k]}" for k in used])
    if fail_if_slower is not None:
        d.slower = [m.metric for m in slower(d, fail_if_slower)]
    return d


def diff(a_path, b_path, fail_if_slower: Optional[float] = None, command: Optional[str] = None) -> DiffResult:
    """Load two saved results (any kind METRICS reads) and diff them; the
    kinds are checked before either file is validated in full."""
    names = (str(a_path), str(b_path))
    check_kinds(*(results.load_any(p)["kind"] for p in names), names, fail_if_slower is not None)
    a, b = (results.load_result(p) for p in names)
    return diff_results(a, b, names, fail_if_slower, command)
