"""What the GPU timeline costs, measured in one process (issue 12).

    python bench/tracing_cost.py [--model gemma3n-e2b-4bit] [--rounds 6] [--warmup 20] [--tokens 100]
                                 [--variants untraced,nvml,kernel,graph,graph-only] [--detach]

On MLX's CUDA backend (needs cupti-python), one model, one process, one stream:
  clean    --clean untraced runs before CUPTI is ever loaded
  rounds   the variants interleaved round-robin, each round starting one later:
             untraced    no CUPTI attached, nothing read after the run
             nvml        an untraced run, NVML's samples read after it: what
                         `decode --gpu-timeline` does for the busy fraction
                         and the verdict (gpu/nvml.py)
             graph       GRAPH_TRACE + CONCURRENT_KERNEL + MEMCPY/MEMSET: the
                         CUPTI graph level (SIGSEGV on an H200, MLX 0.32.4)
             kernel      CONCURRENT_KERNEL + MEMCPY/MEMSET: the kernel table's runs
             graph-only  GRAPH_TRACE alone (diagnostic: what CONCURRENT_KERNEL adds)
  after    --clean untraced runs after CUPTI's last detach (cuptiFinalize)
Every run: fresh KV cache, prefill, warm-up, measured tokens (decode.run_once),
after one discarded priming run; untraced and graph runs share a stream, the
kernel-level variants have their own (as in `decode --gpu-timeline`). Prints each variant's tok/s and its ratio to
the interleaved untraced runs (95% CI), the target (the busy-fraction
measurement, nvml or else graph, ≥ ×0.95) met or NOT met, the busy fraction
each variant saw (NVML's on every variant, CUPTI's on traced ones: the two
methods side by side on the same runs), and two checks that tracing leaves
nothing behind: interleaved untraced vs clean, after vs clean.
Writes tracing_cost.json to $OUT when that is set. --detach calls cuptiFinalize
after every traced run (a diagnostic: not yet cleared as a cause of the SIGSEGV seen on an H200).
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET = 0.95
KINDS = {"graph": "graph", "kernel": "kernel", "graph-only": ("graph",)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma3n-e2b-4bit")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--clean", type=int, default=3, help="untraced runs before CUPTI loads, and after it detaches")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--tokens", type=int, default=100)
    ap.add_argument("--prompt-tokens", type=int, default=16)
    ap.add_argument("--variants", default="untraced,nvml,kernel")
    ap.add_argument("--detach", action="store_true")
    a = ap.parse_args()
    variants = a.variants.split(",")
    bad = [v for v in variants if v not in ("untraced", "nvml") and v not in KINDS]
    if bad or "untraced" not in variants:
        sys.exit(f"--variants: untraced plus any of nvml, {', '.join(KINDS)}; not {a.variants}")

    import mlx.core as mx

    from mlxprof import decode as dec
    from mlxprof import hardware, results, stats
    from mlxprof.gpu import nvml
    from mlxprof.gpu.cupti import Recorder, check_available
    from mlxprof.session import open_session

    chip = hardware.detect()
    if chip.backend != "cuda":
        try:
            check_available(chip.backend)
        except Exception as e:  # one line saying why not
            sys.exit(f"bench/tracing_cost.py: {e}")
    v = results.package_versions()
    print(f"machine: {chip.backend} / {chip.label}; mlx {v.get('mlx')}, mlx-lm {v.get('mlx-lm')}, "
          f"mlx-vlm {v.get('mlx-vlm')}, cupti-python {_version('cupti-python')}")
    t = time.perf_counter()
    s = open_session(a.model)
    ids = s.prompt(a.prompt_tokens)
    print(f"model: {a.model} ({s.identity.weights} weights), opened in {time.perf_counter() - t:.1f} s; "
          f"{a.prompt_tokens} prompt + {a.warmup} warm-up + {a.tokens} measured tokens per run")
    # as in `decode --gpu-timeline` (gpu/interleave.py): untraced and graph-traced runs share a
    # stream; kernel-level variants get their own, whose CUDA graphs are instantiated under tracing
    shared = mx.new_stream(mx.default_device())
    streams = {v: shared if v in ("untraced", "nvml", "graph") else mx.new_stream(mx.default_device())
               for v in variants}

    def one(variant="untraced"):
        return dec.run_once(s.model, ids, a.warmup, a.tokens, stream=streams[variant])

    t = time.perf_counter()
    dec.run_once(s.model, ids, 0, 2, stream=shared)  # priming: first-run compilation lands here
    print(f"priming run: {time.perf_counter() - t:.1f} s")

    clean = [one() for _ in range(a.clean)]
    reading, why = nvml.open_reading()
    if reading is None:
        print(f"NVML: {why}")
    check_available(chip.backend)  # loads CUPTI: only after the clean runs
    rec = Recorder(sync=mx.synchronize, detach=a.detach)
    by = {name: [] for name in variants}
    order = stats.interleave(variants, a.rounds)
    for name in order:
        if name in KINDS:
            rec.start(KINDS[name])
        by[name].append(one(name))
        if name in KINDS:
            rec.stop()
        if reading is not None and name != "untraced":  # the ring holds seconds: read often
            reading.read()
    rec.close()
    after = [one() for _ in range(a.clean)]
    report(a, variants, by, clean, after, rec, reading)


def report(a, variants, by, clean, after, rec, reading):
    from mlxprof import stats

    def tok(runs):
        return [r.tok_s for r in runs]

    base = tok(by["untraced"])
    print(f"\norder: {a.rounds} rounds of {', '.join(variants)} (rotating); CUPTI "
          f"{'detached after every traced run' if a.detach else 'kept attached, every kind disabled between traced runs'}")
    print(f"{'runs':<24}{'n':>3}{'tok/s median':>14}{'MAD':>8}   × untraced (95% CI), verdict")
    out = {"model": a.model, "rounds": a.rounds, "detach": a.detach, "variants": {}}
    from mlxprof.gpu.timeline import run_window

    for name in variants:
        xs = tok(by[name])
        row = f"{name:<24}{len(xs):>3}{statistics.median(xs):>14.2f}{stats.mad(xs):>8.2f}"
        entry = {"tok_s": xs}
        if name != "untraced":
            c = stats.compare(base, xs, names=("untraced", name))
            row += f"   ×{c.ratio:.3f} ({c.ci_low:.3f}–{c.ci_high:.3f}), {c.verdict}"
            entry["ratio"], entry["ci"] = c.ratio, [c.ci_low, c.ci_high]
        if reading is not None:
            nb = reading.busy([run_window(r) for r in by[name]])
            if nb.busy_fraction is not None:
                row += f"; NVML busy {nb.busy_fraction:.0%} ({nb.samples} periods)"
            entry["nvml_busy_fraction"], entry["nvml_samples"] = nb.busy_fraction, nb.samples
        if name in KINDS:
            tl = rec.analyze(by[name], kinds=rec.kinds)
            row += (f"; CUPTI busy {tl.busy_fraction:.0%} ({tl.busy_level}-level), per token "
                    f"{tl.graphs_per_token or 0:.1f} graphs + {tl.kernels_per_token:.0f} kernels")
            entry.update(busy_fraction=tl.busy_fraction, busy_level=tl.busy_level,
                         graphs_per_token=tl.graphs_per_token, kernels_per_token=tl.kernels_per_token)
        print(row)
        out["variants"][name] = entry
    for label, runs in (("clean (before CUPTI)", clean), ("after (CUPTI disabled or detached)", after)):
        print(f"{label:<24}{len(runs):>3}{statistics.median(tok(runs)):>14.2f}{stats.mad(tok(runs)):>8.2f}")
        out[label.split()[0]] = tok(runs)
    if clean:
        for label, xs in (("interleaved untraced", base), ("after", tok(after))):
            c = stats.compare(tok(clean), xs, names=("clean", label))
            print(f"check: {label} vs clean: ×{c.ratio:.3f} ({c.ci_low:.3f}–{c.ci_high:.3f}), {c.verdict}")
    busy = "nvml" if "nvml" in variants else "graph" if "graph" in variants else None
    if busy is not None:
        v = out["variants"][busy]
        r, (lo, hi) = v["ratio"], v["ci"]
        what = "untraced runs, NVML read between runs" if busy == "nvml" else "graph-traced runs"
        print(f"\ncost of the busy-fraction measurement ({what}): ×{r:.3f} (95% CI {lo:.3f}–{hi:.3f}); "
              f"target ≥ ×{TARGET}: {'met' if r >= TARGET else 'NOT met'}")
    if "kernel" in variants:
        print(f"tracing cost (kernel-traced runs, kernel table): ×{out['variants']['kernel']['ratio']:.3f}")
    for e in rec.errors:
        print(f"CUPTI: {e}")
    if os.environ.get("OUT"):
        p = Path(os.environ["OUT"]) / "tracing_cost.json"
        p.write_text(json.dumps(out, indent=2))
        print(f"wrote {p}")


def _version(dist):
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return "not installed"


if __name__ == "__main__":
    main()
