"""Time to a full decode profile: `mlxprof report` for one model, wall clock, cold then warm.

Targets (issue 12), on an H100 or H200: a full report for gemma3n-e2b-4bit,
synthetic weights built included, in ≤ 180 s cold (MLX's compiled-kernel cache
empty: the first run on a machine) and ≤ 120 s warm (the same command again).

    python bench/time_to_profile.py [--model gemma3n-e2b-4bit] [--out DIR] [--no-gpu-timeline] [-- extra report args]

The cold run gets a fresh, empty MLX_PTX_CACHE_DIR (a temp folder, or
--ptx-cache); the warm run reuses it, so "cold" is cold whatever this machine compiled before and the
machine's own cache is left alone. On CUDA with cupti-python installed the
report includes --gpu-timeline, as in the issue. Prints both wall times against
their targets, where each report spent its time (its `[report] step: N s`
lines), the decode step's cold-start record and the compiled kernel modules
in the cache after each run.
"""

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLD_TARGET_S, WARM_TARGET_S = 180.0, 120.0


def run_report(cmd, env):
    """Run the report, echo its stderr, return (wall seconds, exit code, [report] step lines)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, errors="replace")
    steps = []
    for line in proc.stderr:
        sys.stderr.write(line)
        if line.startswith("[report]") and line.rstrip().endswith(" s"):
            steps.append(line.strip()[len("[report] "):])
    code = proc.wait()
    return time.perf_counter() - t0, code, steps


def cold_line(path):
    """The decode step's cold-start record, in words (coldstart.describe)."""
    import json

    from mlxprof.coldstart import ColdStart, describe

    try:
        c = json.loads(path.read_text()).get("cold_start")
    except (OSError, ValueError) as e:
        return f"not read ({e})"
    return describe(ColdStart.model_validate(c)) if c else "not recorded"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma3n-e2b-4bit")
    ap.add_argument("--out", default=None, help="directory for the documents [default: a temp dir]")
    ap.add_argument("--no-gpu-timeline", action="store_true")
    ap.add_argument("--ptx-cache", default=None,
                    help="the kernel cache folder to fill (must not exist yet: cold), left for later commands "
                         "[default: a temp folder]")
    ap.add_argument("extra", nargs="*", help="more `mlxprof report` arguments (after --)")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from mlxprof import hardware, results
    from mlxprof.coldstart import PTX_ENV, cached_modules

    chip = hardware.detect()
    out = Path(a.out or tempfile.mkdtemp(prefix="mlxprof-ttp-"))
    cache = Path(a.ptx_cache or Path(tempfile.mkdtemp(prefix="mlxprof-ttp-ptx-")) / "ptx")
    if cache.exists() and any(cache.iterdir()):
        sys.exit(f"--ptx-cache {cache} already holds compiled kernels: the first run would not be cold")
    timeline = chip.backend == "cuda" and not a.no_gpu_timeline and importlib.util.find_spec("cupti") is not None
    extra = (["--gpu-timeline"] if timeline else []) + a.extra
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env[PTX_ENV] = str(cache)
    rows = []
    for name, target in (("cold", COLD_TARGET_S), ("warm", WARM_TARGET_S)):
        d = out / name
        d.mkdir(parents=True, exist_ok=True)
        doc = d / f"{a.model.replace('/', '_')}.md"
        cmd = [sys.executable, "-m", "mlxprof", "report", "--model", a.model, "--out", str(doc), *extra]
        print(f"=== {name}: {' '.join(cmd[1:])} ({PTX_ENV}={cache})", flush=True)
        wall, code, steps = run_report(cmd, env)
        if code != 0:
            sys.exit(f"{name} report failed (exit {code}) after {wall:.1f} s")
        rows.append((name, wall, target, steps, cached_modules(cache), doc))
    v = results.package_versions()
    print(f"\nmachine: {chip.backend} / {chip.label}; mlx {v['mlx']}, mlx-lm {v['mlx-lm']}, mlx-vlm {v['mlx-vlm']}")
    print(f"command: mlxprof report --model {a.model} {' '.join(extra)}".rstrip())
    for name, wall, target, steps, modules, doc in rows:
        print(f"time to profile, {name}: {wall:.1f} s wall (target ≤ {target:.0f} s: "
              f"{'met' if wall <= target else 'NOT met'}); kernel modules cached after it: {modules}")
        print(f"  steps: {'; '.join(steps) or 'none reported'}")
        in_steps = sum(float(x.rsplit(": ", 1)[1][:-2]) for x in steps)
        print(f"  outside the steps (start-up, imports, opening the model, the document): {wall - in_steps:.1f} s")
        print(f"  decode's cold start: {cold_line(doc.with_suffix('.decode.json'))}")
        print(f"  document: {doc}")


if __name__ == "__main__":
    main()
