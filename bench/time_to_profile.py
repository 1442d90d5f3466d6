"""Time to a full decode profile: `mlxprof report` for one model, wall clock.

Target (issue 6): a full report for gemma3n-e2b-4bit on the GPU machine in
≤ 4 minutes, synthetic weights built included.

    python bench/time_to_profile.py [--model gemma3n-e2b-4bit] [--out DIR] [-- extra report args]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma3n-e2b-4bit")
    ap.add_argument("--out", default=None, help="directory for the document [default: a temp dir]")
    ap.add_argument("--target-s", type=float, default=240.0)
    ap.add_argument("extra", nargs="*", help="more `mlxprof report` arguments (after --)")
    a = ap.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="mlxprof-ttp-"))
    out.mkdir(parents=True, exist_ok=True)
    doc = out / f"{a.model.replace('/', '_')}.md"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "mlxprof", "report", "--model", a.model, "--out", str(doc), "-q", *a.extra]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"report failed (exit {r.returncode}) after {wall:.1f} s")
    sys.path.insert(0, str(ROOT))
    from mlxprof import hardware, results

    chip = hardware.detect()
    v = results.package_versions()
    print(f"machine: {chip.backend} / {chip.name}; mlx {v['mlx']}, mlx-vlm {v['mlx-vlm']}")
    print(f"command: mlxprof report --model {a.model} {' '.join(a.extra)}".rstrip())
    print(f"time to profile: {wall:.1f} s wall (target ≤ {a.target_s:.0f} s: {'met' if wall <= a.target_s else 'NOT met'})")
    print(f"document: {doc}")


if __name__ == "__main__":
    main()
