"""A/A sweeps: does `mlxprof sweep` call noise a gain?

Each trial sweeps two labels with the identical environment (MLX's defaults),
interleaved, in fresh worker processes exactly as a real sweep runs. Every
trial should come out "no significant difference"; the false-positive rate
over K trials should be <= 5 %. Also prints the per-point overhead (process
start, imports, model build, measurement).

    python bench/sweep_noise.py --model gemma3n-tiny --trials 20 --reps 3
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlxprof import sweep  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="gemma3n-tiny")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=600.0)
    a = ap.parse_args(argv)

    t_start = time.time()
    fp, overheads, failed = 0, [], 0
    for k in range(a.trials):
        r = sweep.run(a.model, variants=[("default", {}), ("default again", {})], reps=a.reps, runs=a.runs,
                      warmup=a.warmup, tokens=a.tokens, timeout=a.timeout)
        row = r.rows[1]
        failed += sum(p.status != "ok" for p in r.points)
        if row.verdict != "no significant difference":
            fp += 1
        overheads += [p.overhead for p in r.ok_points()]
        print(f"trial {k + 1:3d}/{a.trials}: ×{row.ratio:.3f} (95% CI {row.ci_low:.3f}–{row.ci_high:.3f}, "
              f"p={row.p_value:.2g}, n={r.rows[0].n}+{row.n}) {row.verdict}", flush=True)

    rate = fp / a.trials
    med = lambda f: statistics.median(f(o) for o in overheads)  # noqa: E731
    print()
    print(f"model {a.model}, backend {r.provenance.backend} ({r.provenance.chip}); {a.trials} A/A trials × "
          f"{a.reps} reps × 2 labels, {a.runs} runs × ({a.warmup} warm-up + {a.tokens} tokens) per point")
    print(f"false positives: {fp}/{a.trials} = {rate:.1%} (target <= 5%): {'PASS' if rate <= 0.05 else 'FAIL'}"
          + (f"; {failed} points failed" if failed else ""))
    print(f"per-point overhead (median of {len(overheads)} points): process start {med(lambda o: o.start_s):.2f} s, "
          f"imports {med(lambda o: o.import_s):.2f} s, model build {med(lambda o: o.build_s):.2f} s, "
          f"measure {med(lambda o: o.measure_s):.2f} s, total {med(lambda o: o.total_s):.2f} s "
          f"(overhead {med(lambda o: o.overhead_s):.2f} s)")
    print(f"wall time {time.time() - t_start:.0f} s")
    return 0 if rate <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
