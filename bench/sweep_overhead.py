"""Is a sweep point cheap to start? Per-point process overhead, against the
target of at most 2 s per point (wall time minus the decode measurement).

Runs a small A/A sweep per model through mlxprof.sweep (two labels, both
MLX's defaults, `--reps` rounds: 2 x reps fresh worker processes, exactly as a
real sweep starts them) and prints each point's split: spawn → worker main
(interpreter start-up), imports (mlx, mlxprof, the model's code), model
build, decode measurement, the parent's wall time, and the overhead = wall -
measure. The machine, backend, versions and whether PyTorch is installed here
come first: with PyTorch beside MLX a point used to spend most of its time
importing torch through transformers.

    python bench/sweep_overhead.py                  # gemma3n-tiny (mlx-vlm) + a tiny llama config (mlx-lm)
    python bench/sweep_overhead.py --model qwen3-0.6b-4bit --reps 3

`tiny-llama` names a two-layer llama config.json this script writes to a
temporary folder (mlx-lm's model classes, synthetic weights): mlx-lm has no
test-sized alias.
"""

import argparse
import importlib.metadata
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlxprof import sweep  # noqa: E402

TARGET_S = 2.0
TINY_LLAMA = "tiny-llama"
# two layers, mlx-lm's llama (the shape of tests/tiny_checkpoints.py's "llama")
TINY_LLAMA_CONFIG = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
                     "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "vocab_size": 256,
                     "max_position_embeddings": 512, "tie_word_embeddings": False}
COLUMNS = ("start_s", "import_s", "build_s", "measure_s", "total_s", "overhead_s")
HEADER = ("spawn→main", "import", "build", "measure", "wall", "overhead")


def installed(dist: str):
    """The installed version of `dist`, found without importing it."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def bare_start_s(n: int = 3) -> float:
    """Median wall time of `python -c pass`: the interpreter's own floor."""
    times = []
    for _ in range(n):
        t0 = time.time()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.time() - t0)
    return statistics.median(times)


def model_arg(name: str, folder: Path) -> str:
    if name != TINY_LLAMA:
        return name
    path = folder / "config.json"
    path.write_text(json.dumps(TINY_LLAMA_CONFIG))
    return str(path)


def overheads(p) -> dict:
    o = p.overhead
    return dict(start_s=o.start_s, import_s=o.import_s, build_s=o.build_s, measure_s=o.measure_s,
                total_s=o.total_s, overhead_s=o.overhead_s)


def print_points(name: str, r) -> list:
    print(f"\n{name}: {len(r.points)} points ({len(r.ok_points())} ok), seconds")
    print("  " + "".join(f"{h:>12}" for h in ("point",) + HEADER))
    rows = []
    for p in r.points:
        if p.status != "ok" or p.overhead is None:
            print(f"  {p.index + 1:>12} {p.status}: {sweep.failure_reason(p.error)}")
            continue
        row = overheads(p)
        rows.append(row)
        print("  " + f"{p.index + 1:>12}" + "".join(f"{row[c]:>12.2f}" for c in COLUMNS))
    if rows:
        print("  " + f"{'median':>12}" + "".join(f"{statistics.median(x[c] for x in rows):>12.2f}" for c in COLUMNS))
    for line in r.worker_imports:
        print(f"  worker imports: {line}")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", default=None,
                    help=f"alias, checkpoint or config.json (repeatable) [default: gemma3n-tiny, {TINY_LLAMA}]")
    ap.add_argument("--reps", type=int, default=2, help="rounds of the two A/A labels (points = 2 x reps)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--weights", default="synthetic")
    a = ap.parse_args(argv)
    names = a.model or ["gemma3n-tiny", TINY_LLAMA]

    torch = installed("torch")
    print(f"python {sys.version.split()[0]} ({sys.executable}); bare interpreter start {bare_start_s():.2f} s")
    print(f"torch installed here: {'yes, ' + torch if torch else 'no'}; torchvision: {installed('torchvision') or 'no'}; "
          f"transformers: {installed('transformers') or 'no'}")
    rows, prov = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            r = sweep.run(model_arg(name, Path(tmp)), variants=[("default", {}), ("default again", {})],
                          reps=a.reps, runs=a.runs, warmup=a.warmup, tokens=a.tokens, weights=a.weights)
            prov = prov or r.provenance
            rows[name] = print_points(name, r)
    print(f"\nbackend {prov.backend} ({prov.chip}), {prov.platform}; versions "
          + ", ".join(f"{k} {v}" for k, v in prov.versions.items()))
    passed = True
    for name, got in rows.items():
        if not got:
            print(f"{name}: no point finished: FAIL")
            passed = False
            continue
        med = statistics.median(x["overhead_s"] for x in got)
        passed &= med <= TARGET_S
        print(f"{name}: process overhead per point (wall - measure), median of {len(got)} points: {med:.2f} s "
              f"(target <= {TARGET_S:g} s): {'PASS' if med <= TARGET_S else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
