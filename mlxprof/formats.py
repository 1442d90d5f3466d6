"""`--format md|csv|jsonl`: the tables of decode, sweep, compare and diff as
flat records, so results drop into spreadsheets and databases (llama-bench's
output formats: github.com/ggml-org/llama.cpp, tools/llama-bench, `-o`).

One record per row of measured data, the same columns on every row:

  decode   one per measured run: tok/s, prefill tok/s, and the medians of the
           run's per-token build / submit / wait / token ms
  sweep    one per point (one worker process): the median of its runs' tok/s,
           its split, and its value's speedup, CI, p-value and verdict
  compare  one per variant: tok/s best / median / MAD, split, bytes, floor,
           and its comparison with the baseline variant
  diff     one per metric: A, B, B − A, B / A, CI, p-value, verdict, samples

Identifiers are never shortened. csv and jsonl keep numbers as measured
(NaN and missing values: an empty cell, null); md rounds floats to 4
significant digits and writes a diff as its full document (diff_table.py).
"""

import csv
import io
import json
import math
import statistics
from typing import Dict, List

from .errors import InputError

FORMATS = ("table", "md", "csv", "jsonl")


def _where(r) -> Dict[str, object]:
    """Where and with what a result was measured: the provenance columns of every row."""
    p = r.provenance
    v = p.versions
    return {"chip": p.chip, "backend": p.backend, "mlx": v.get("mlx"), "mlx_lm": v.get("mlx-lm"),
            "mlx_vlm": v.get("mlx-vlm"), "mlxprof": v.get("mlxprof"),
            "knobs": " ".join(f"{k}={x}" for k, x in p.knobs.items()), "date": p.date}


def _identity(m) -> Dict[str, object]:
    return {"model": m.name, "weights": m.weights, "quantization": m.quantization, "dtype": m.dtype}


def _median(xs):
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return statistics.median(xs) if xs else None


def decode_records(r) -> List[dict]:
    out = []
    for i, run in enumerate(r.runs, 1):
        out.append({**_identity(r.model), **_where(r), "run": i, "prompt_tokens": run.prompt_tokens,
                    "warmup": run.warmup, "tokens": run.tokens, "tok_s": run.tok_s,
                    "prefill_tok_s": run.prompt_tokens / run.prefill_s if run.prefill_s > 0 else None,
                    **{f"{ph}_ms": _median(getattr(run, f"{ph}_ms")) for ph in ("token", "build", "submit", "wait")},
                    "peak_memory_bytes": run.peak_memory_bytes})
    return out


def sweep_records(r) -> List[dict]:
    rows = {row.label: row for row in r.rows}
    env = {v.label: v.env for v in r.variants}
    ident = _identity(r.model) if r.model else dict.fromkeys(("weights", "quantization", "dtype"))
    ident["model"] = r.model_name
    out = []
    for p in r.points:
        row, s = rows.get(p.label), p.split
        out.append({**ident, **_where(r), "label": p.label, **{k: env.get(p.label, {}).get(k) for k in r.knobs},
                    "round": p.round, "status": p.status, "runs": len(p.tok_s), "tok_s": _median(p.tok_s),
                    "prefill_tok_s": _median(p.prefill_tok_s),
                    **{f"{ph}_ms": getattr(s, f"{ph}_ms") if s else None for ph in ("token", "build", "submit", "wait")},
                    "wall_s": p.wall_s, "speedup": row and row.ratio, "ci_low": row and row.ci_low,
                    "ci_high": row and row.ci_high, "p_value": row and row.p_value, "verdict": row and row.verdict})
    return out


def compare_records(r) -> List[dict]:
    vs = {c.candidate: c for c in r.comparisons}
    out = []
    for v in r.variants:
        c, s = vs.get(v.bits), v.split
        out.append({"family": r.family, "bits": v.bits, "alias": v.alias, **_identity(v.model), **_where(r),
                    "order": r.order, "runs": v.tok_s.n, "tok_s_best": v.tok_s.best, "tok_s_median": v.tok_s.median,
                    "tok_s_mad": v.tok_s.mad, "prefill_tok_s": v.prefill_tok_s.median,
                    **{f"{ph}_ms": getattr(s, f"{ph}_ms") for ph in ("token", "build", "submit", "wait")},
                    "verdict": v.verdict.label, "bytes_per_token": v.bytes_per_token,
                    "floor_ms": v.floor_ms.median if v.floor_ms else None, "floor_gb_s": v.floor_gb_s,
                    "nodes": v.nodes, "peak_memory_bytes": v.peak_memory_bytes,
                    "baseline": c and c.baseline, "ratio": c and c.ratio, "ci_low": c and c.ci_low,
                    "ci_high": c and c.ci_high, "p_value": c and c.p_value, "significance": c and c.verdict})
    return out


def diff_records(r) -> List[dict]:
    gated = r.fail_if_slower is not None
    return [{"kind": r.of, "a_file": r.a_path, "b_file": r.b_path, **m.model_dump(),
             "slower": (m.metric in r.slower) if gated and m.rate else None} for m in r.metrics]


def depth_records(r) -> List[dict]:
    """One row per depth: tok/s, the split, the KV bytes and the floor at that depth."""
    return [{**_identity(r.model), **_where(r), "depth": p.depth, "kv_context": p.kv_context,
             "kv_bytes_per_token": p.kv_bytes_per_token, "runs": p.tok_s.n, "tok_s_best": p.tok_s.best,
             "tok_s_median": p.tok_s.median, "tok_s_mad": p.tok_s.mad, "fill_tok_s": p.fill_tok_s.median,
             **{f"{ph}_ms": getattr(p.split, f"{ph}_ms") for ph in ("token", "build", "submit", "wait")},
             "verdict": p.verdict.label, "floor_tok_s": p.floor_tok_s, "floor_share": p.floor_share,
             "peak_memory_bytes": p.peak_memory_bytes} for p in r.points]


RECORDS = {"decode": decode_records, "sweep": sweep_records, "compare": compare_records, "diff": diff_records,
           "depth": depth_records}


def records(result) -> List[dict]:
    """The result's table as flat records (see the module docstring)."""
    fn = RECORDS.get(result.kind)
    if fn is None:
        raise InputError(f"--format: {result.kind} results have no row table ({', '.join(RECORDS)} do)")
    return [{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}
            for row in fn(result)]


def _columns(rows) -> List[str]:
    cols = {}
    for row in rows:
        cols.update(dict.fromkeys(row))
    return list(cols)


def _md_cell(v) -> str:
    if v is None:
        return ""
    text = format(v, ".4g") if isinstance(v, float) else str(v)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(columns, rows) -> str:
    """A pipe table; `rows` are sequences of cells in `columns` order."""
    lines = ["| " + " | ".join(_md_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]) + "\n"


def write(result, fmt: str) -> str:
    """The result's table as text in `fmt` (md, csv or jsonl)."""
    if fmt not in FORMATS[1:]:
        raise InputError(f"--format {fmt}: one of {', '.join(FORMATS)}")
    if fmt == "md" and result.kind == "diff":
        from .diff_table import diff_markdown

        return diff_markdown(result)
    rows = records(result)
    cols = _columns(rows)
    if fmt == "jsonl":
        return "".join(json.dumps(row) + "\n" for row in rows)
    if fmt == "md":
        return markdown_table(cols, [[row.get(c) for c in cols] for row in rows]) if rows else ""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if rows:
        w.writerow(cols)
    w.writerows([row.get(c) for c in cols] for row in rows)
    return buf.getvalue()
