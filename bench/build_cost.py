"""Cost of building a synthetic model: wall time and peak RSS, in a fresh process.

Target (issue 2): gemma3n-e2b-4bit's text model on the 2-core Linux box in
≤ 15 s with peak RSS ≤ 4 GB. The naive way (float32 weights, then quantize)
took 104 s and 9.2 GB there.

    python bench/build_cost.py [--model gemma3n-e2b-4bit] [--dtype bfloat16]
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
from mlxprof.models import MODELS
from mlxprof.models.synthetic import build_model
from mlxprof.models.weights import total_bytes
t1 = time.perf_counter()
spec = MODELS[sys.argv[1]]
model = build_model(spec, dtype=getattr(mx, sys.argv[2]))
t2 = time.perf_counter()
print(json.dumps(dict(import_s=t1 - t0, build_s=t2 - t1, bytes=total_bytes(model.language_model),
                      peak_rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma3n-e2b-4bit")
    ap.add_argument("--dtype", default=None, help="default: the checkpoint's (bfloat16)")
    ap.add_argument("--target-s", type=float, default=15.0)
    ap.add_argument("--target-gb", type=float, default=4.0)
    a = ap.parse_args()
    from mlxprof import hardware, results
    from mlxprof.models import MODELS

    dtype = a.dtype or MODELS[a.model].quant.dtype
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", CHILD, a.model, dtype], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"build failed:\n{out.stderr[-2000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    chip = hardware.detect()
    v = results.package_versions()
    print(f"machine: {chip.backend} / {chip.name}; mlx {v['mlx']}, mlx-vlm {v['mlx-vlm']}")
    print(f"model: {a.model} ({dtype}), synthetic weights: {r['bytes'] / 1e9:.2f} GB")
    print(f"import: {r['import_s']:.1f} s   build: {r['build_s']:.1f} s   peak RSS: {r['peak_rss'] / 1e9:.2f} GB")
    ok_t, ok_m = r["build_s"] <= a.target_s, r["peak_rss"] / 1e9 <= a.target_gb
    print(f"target build ≤ {a.target_s:.0f} s: {'met' if ok_t else 'NOT met'};"
          f" peak RSS ≤ {a.target_gb:.0f} GB: {'met' if ok_m else 'NOT met'}")


if __name__ == "__main__":
    main()
