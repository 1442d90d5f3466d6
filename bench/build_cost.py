"""Cost of building a synthetic model: import time, build time, weight bytes and
peak RSS, each alias in a fresh process, built exactly as a profiling session
builds it (`mlxprof.models.resolve(..., "synthetic")` then `prepare_target`:
the memory preflight and `load`, with the dtype the session picks on this
backend unless --dtype says otherwise).

Target (issue 10): qwen3-8b-4bit on the 2-core Linux CPU box builds in ≤ 30 s
with peak RSS ≤ 1.3 × its weight bytes.

    python bench/build_cost.py [--model qwen3-8b-4bit] [--dtype bfloat16]
    python bench/build_cost.py --all [--skip-larger-than 10] [--json rows.json]

Peak RSS is the child's `ru_maxrss` (whole process: interpreter, imports and
the build). "import s" covers importing mlx, mlxprof and the model library
(mlx-lm / mlx-vlm) and resolving the alias; "build s" is `prepare_target`.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import mlx.core as mx
from mlxprof import hardware, models
from mlxprof.models.weights import total_bytes
chip = hardware.detect()
# imports mlx_lm.utils and mlx_vlm.utils (library_for): import time, not build time
target = models.resolve(sys.argv[1], weights="synthetic")
dtype = sys.argv[2] or models.default_dtype(models.target_spec(target), chip.backend)
t1 = time.perf_counter()
loaded, _ = models.prepare_target(target, dtype, chip)
t2 = time.perf_counter()
print(json.dumps(dict(import_s=t1 - t0, build_s=t2 - t1, weight_bytes=total_bytes(loaded.text),
                      dtype=loaded.dtype, library=loaded.library,
                      peak_rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)))
"""

COLUMNS = ("alias", "dtype", "weight bytes", "build s", "peak RSS", "RSS / weights", "import s")


def measure(alias: str, dtype: str = "") -> dict:
    """One alias built in a fresh process; the row, or a row with `error`."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", CHILD, alias, dtype], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        lines = [x for x in out.stderr.strip().splitlines() if x.strip()]
        return dict(alias=alias, error=lines[-1] if lines else f"exit {out.returncode}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["alias"] = alias
    r["rss_ratio"] = r["peak_rss"] / r["weight_bytes"] if r["weight_bytes"] else None
    return r


def _gb(n) -> str:
    return f"{n / 1e9:.2f} GB"


def format_row(r: dict) -> tuple:
    if "error" in r:
        return (r["alias"], "failed: " + r["error"])
    ratio = f"{r['rss_ratio']:.2f}" if r.get("rss_ratio") else "-"
    return (r["alias"], r["dtype"], _gb(r["weight_bytes"]), f"{r['build_s']:.1f}", _gb(r["peak_rss"]),
            ratio, f"{r['import_s']:.1f}")


def table(rows) -> str:
    """A plain fixed-width table; failed rows print their one-line error."""
    cells = [format_row(r) for r in rows]
    full = [c for c in cells if len(c) == len(COLUMNS)]
    widths = [max(len(str(x)) for x in col) for col in zip(COLUMNS, *full)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(COLUMNS, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for c in cells:
        if len(c) != len(COLUMNS):
            lines.append(f"{c[0].ljust(widths[0])}  {c[1]}")
            continue
        lines.append("  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(c, widths))))
    return "\n".join(lines)


def lazy_weight_bytes(alias: str, dtype: str, backend: str) -> int:
    """The alias's weight bytes from a lazily built model (nothing evaluated)."""
    from mlxprof import models

    target = models.resolve(alias, weights="synthetic")
    return models.estimate_bytes(target, dtype or models.default_dtype(models.target_spec(target), backend))


def plan(aliases, dtype: str, limit_gb, chip):
    """(to build, skipped as (alias, why)): skip those whose weights exceed
    `limit_gb`, or by default the machine's available memory."""
    from mlxprof import hardware

    if limit_gb is not None:
        limit, what = int(limit_gb * 1e9), f"--skip-larger-than {limit_gb:g} GB"
    else:
        limit, what = hardware.available_memory(chip)
        what = f"{what} {_gb(limit)}" if limit else what
    keep, skipped = [], []
    for alias in aliases:
        need = lazy_weight_bytes(alias, dtype, chip.backend)
        if limit is not None and need > limit:
            skipped.append((alias, f"weights {_gb(need)} > {what}"))
        else:
            keep.append(alias)
    return keep, skipped


def run_all(aliases, dtype: str) -> list:
    """Build each alias in turn, printing progress; Ctrl-C keeps the rows so far."""
    rows = []
    try:
        for i, alias in enumerate(aliases, 1):
            print(f"[{i}/{len(aliases)}] {alias} …", file=sys.stderr, flush=True)
            rows.append(measure(alias, dtype))
            print("    " + "  ".join(format_row(rows[-1])[1:]), file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {len(rows)} of {len(aliases)} aliases measured", file=sys.stderr)
    return rows


def header(chip):
    from mlxprof import results

    v = results.package_versions()
    print(f"machine: {chip.backend} / {chip.name}, {os.cpu_count()} CPUs; "
          f"mlx {v.get('mlx')}, mlx-lm {v.get('mlx-lm')}, mlx-vlm {v.get('mlx-vlm')}; synthetic weights")


def check_targets(r: dict, target_s: float, target_ratio: float) -> bool:
    ok_t = r["build_s"] <= target_s
    ok_m = r["rss_ratio"] is not None and r["rss_ratio"] <= target_ratio
    print(f"target build ≤ {target_s:g} s: {'met' if ok_t else 'NOT met'} ({r['build_s']:.1f} s); "
          f"peak RSS ≤ {target_ratio:g} × weight bytes: {'met' if ok_m else 'NOT met'} "
          f"({r['rss_ratio']:.2f} ×)")
    return ok_t and ok_m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen3-8b-4bit", help="alias to build (default: issue 10's target)")
    ap.add_argument("--all", action="store_true", help="build every alias, one fresh process each")
    ap.add_argument("--dtype", default="", help="activation/scales dtype; default: what a session picks here")
    ap.add_argument("--target-s", type=float, default=30.0)
    ap.add_argument("--target-rss-ratio", type=float, default=1.3)
    ap.add_argument("--skip-larger-than", type=float, default=None, metavar="GB",
                    help="--all: skip aliases whose weights exceed GB (default: available memory)")
    ap.add_argument("--json", default=None, metavar="FILE", help="write the rows as JSON")
    a = ap.parse_args()
    from mlxprof import hardware
    from mlxprof.models import MODELS

    chip = hardware.detect()
    header(chip)
    if a.all:
        aliases, skipped = plan(list(MODELS), a.dtype, a.skip_larger_than, chip)
        for alias, why in skipped:
            print(f"skipped {alias}: {why}")
        rows = run_all(aliases, a.dtype)
    else:
        if a.model not in MODELS:
            sys.exit(f"unknown alias '{a.model}'; one of: {', '.join(MODELS)}")
        rows = [measure(a.model, a.dtype)]
    print(table(rows))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")
    if not a.all and "error" not in rows[0]:
        check_targets(rows[0], a.target_s, a.target_rss_ratio)
    elif not a.all:
        sys.exit(1)


if __name__ == "__main__":
    main()
