"""One-call check of the CUPTI recorder on a CUDA machine.

    python bench/gpu_timeline_check.py                      # tiny model only
    python bench/gpu_timeline_check.py --models gemma3n-tiny gemma3n-e2b-4bit

Steps (each one reports its own failure and the next still runs):
  env       versions, backend, where cupti / libcupti come from
  clock     CUPTI timestamps against perf_counter, time_ns and CLOCK_MONOTONIC(_RAW)
  matmul    kernels of bf16 matmuls recorded; then the same matmuls recorded
            after they already ran untraced (does CUPTI see kernels of CUDA
            graphs built before tracing began?)
  decode    `mlxprof decode --gpu-timeline` on each model: table, per-run
            numbers, unmapped ("other") kernel names verbatim
Writes JSON results (and a Perfetto trace when mlxprof.trace exists) to $OUT
when that is set. Exit status 1 if any step failed.
"""

import argparse
import contextlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FAILED = []


@contextlib.contextmanager
def step(name):
    print(f"\n=== {name} ===", flush=True)
    t = time.perf_counter()
    try:
        yield
        print(f"--- {name}: ok ({time.perf_counter() - t:.1f} s)", flush=True)
    except BaseException as e:  # report everything, keep going
        if isinstance(e, KeyboardInterrupt):
            raise
        FAILED.append(name)
        print(f"--- {name}: FAILED ({type(e).__name__}: {e})", flush=True)
        traceback.print_exc(file=sys.stdout)
        sys.stdout.flush()


def out_dir():
    d = os.environ.get("OUT")
    return Path(d) if d else None


def libs_loaded(*needles):
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "/" in line}
        return sorted(p for p in paths if any(n in p for n in needles))
    except OSError as e:
        return [f"(cannot read /proc/self/maps: {e})"]


def env():
    import mlx.core as mx

    print("python", sys.version.split()[0], sys.executable)
    print("mlx", mx.__version__, "default device", mx.default_device())
    print("cuda available", mx.cuda.is_available(), "metal available", mx.metal.is_available())
    print("device_info", mx.device_info())
    for k in ("LD_LIBRARY_PATH", "PYTHONPATH", "CUDA_VISIBLE_DEVICES"):
        print(k, "=", os.environ.get(k))
    try:
        import cuda.bindings

        print("cuda.bindings", getattr(cuda.bindings, "__version__", "?"), cuda.bindings.__file__)
    except Exception as e:
        print("cuda.bindings import failed:", type(e).__name__, e)
    from cupti import cupti

    print("cupti module", cupti.__file__)
    print("get_timestamp", cupti.get_timestamp())
    print("libcupti loaded:", libs_loaded("cupti"))
    from mlxprof.gpu import kernels
    from mlxprof.gpu.cupti import check_available

    print("libstdc++ demangler:", kernels.demangler() is not None)
    check_available("cuda")
    print("check_available('cuda'): ok")


def clock():
    from cupti import cupti

    from mlxprof.gpu.clock import fit_clock, take_pairs

    pairs = take_pairs(cupti.get_timestamp)
    time.sleep(1.0)
    pairs += take_pairs(cupti.get_timestamp)
    fit = fit_clock(pairs)
    print("fit:", fit.model_dump(), "drift_ppm", round(fit.drift_ppm, 2))
    c = cupti.get_timestamp()
    refs = {"time_ns": time.time_ns(), "perf_counter_ns": time.perf_counter_ns()}
    for name in ("CLOCK_MONOTONIC", "CLOCK_MONOTONIC_RAW", "CLOCK_REALTIME"):
        if hasattr(time, name):
            refs[name] = time.clock_gettime_ns(getattr(time, name))
    for k, v in refs.items():
        print(f"cupti - {k:20s} = {(c - v) / 1e6:+.3f} ms")
    t = [cupti.get_timestamp() for _ in range(1000)]
    print("get_timestamp: 1000 calls monotonic:", all(b >= a for a, b in zip(t, t[1:])),
          "step ns min", min(b - a for a, b in zip(t, t[1:])))


def show_records(rec, host_window, top=12):
    from collections import Counter

    from mlxprof.gpu.kernels import kernel_family
    from mlxprof.gpu.timeline import busy_fraction, to_host

    print(f"records {len(rec.kernels)}, invalid {rec.invalid}, dropped {rec.dropped}, kinds {rec.kinds}, "
          f"errors {rec.errors}")
    print("clock:", rec.clock.model_dump())
    print("buffer deliveries (start - window start s, ms spent, records):",
          [(round(a - host_window[0], 4), round((b - a) * 1e3, 2), n) for a, b, n in rec.deliveries])
    if not rec.kernels:
        return
    host = to_host(rec.kernels, rec.clock)
    lo, hi = host_window
    inside = [h for h in host if lo <= h[0] < hi]
    print(f"first kernel at host {host[0][0] - lo:+.6f} s from window start, last ends at "
          f"{host[-1][1] - hi:+.6f} s from window end; {len(inside)} start inside the host window")
    print("busy fraction over the host window:",
          round(busy_fraction([(s, e) for s, e, _ in host], lo, hi), 4))
    print("graph-launched share:", round(sum(1 for k in rec.kernels if k.graph_id) / len(rec.kernels), 3))
    by = Counter()
    dur = Counter()
    for k in rec.kernels:
        by[k.name] += 1
        dur[k.name] += k.end - k.start
    for name, d in dur.most_common(top):
        short, prim = kernel_family(name)
        print(f"  {by[name]:6d}× {d / 1e6:9.3f} ms  {prim:26s} {short:40s} raw={name[:160]}")


def matmul():
    import mlx.core as mx

    from mlxprof.gpu.cupti import Recorder

    a = mx.random.normal((4096, 4096)).astype(mx.bfloat16)
    b = mx.random.normal((4096, 4096)).astype(mx.bfloat16)
    mx.eval(a, b)
    mx.synchronize()

    def work(n=20):
        for _ in range(n):
            mx.eval(a @ b)
        mx.synchronize()

    print("-- fresh shapes, traced from the first launch (cold includes JIT/graph creation):")
    x = mx.random.normal((3000, 3000))
    mx.eval(x)
    t0 = time.perf_counter()
    with Recorder(sync=mx.synchronize) as rec:
        for _ in range(10):
            mx.eval(mx.exp(x) * 2 + x)
        mx.synchronize()
    show_records(rec, (t0, time.perf_counter()))

    print("-- matmuls that already ran untraced, then traced (graphs built before tracing):")
    work()
    t0 = time.perf_counter()
    with Recorder(sync=mx.synchronize) as rec:
        work()
    t1 = time.perf_counter()
    show_records(rec, (t0, t1))
    print(f"host time {t1 - t0:.4f} s for 20 matmuls of 4096^3 "
          f"({20 * 2 * 4096 ** 3 / (t1 - t0) / 1e12:.1f} TFLOP/s incl. launch)")
    if not rec.kernels:
        print("!! CUPTI saw no kernels of work that ran before tracing began")


def decode(model, runs, warmup, tokens):
    from mlxprof import profile, render, results

    res = profile.decode(model, runs=runs, warmup=warmup, tokens=tokens, prompt_tokens=16,
                         gpu_timeline=True, progress=False,
                         command=f"bench/gpu_timeline_check.py decode {model}")
    render.decode_table(res)
    g = res.gpu
    print("busy per run", [round(x, 4) for x in g.busy_fraction_runs])
    print("kernels/token per run", [round(x, 1) for x in g.kernels_per_token_runs])
    print("gpu ms/token", g.gpu_ms_per_token.fmt(3), "kernel ms/token summed", round(g.kernel_ms_per_token, 3))
    print("records", g.records, "in windows", g.records_in_windows, "invalid", g.invalid_records,
          "dropped", g.dropped_records)
    print("by primitive:")
    for p in g.by_primitive:
        print(f"  {p.primitive:26s} {p.ms_per_token:8.3f} ms/token {p.share:6.1%} {p.count_per_token:8.1f}×/token")
    print("top kernels (raw names):")
    for k in g.top_kernels:
        print(f"  {k.primitive:26s} {k.name:40s} {k.ms_per_token:8.3f} ms {k.count_per_token:7.1f}× raw={k.raw[:160]}")
    others = [k for k in g.top_kernels if k.primitive == "other"]
    print(f"unmapped among top kernels: {len(others)}")
    print("overhead:", g.overhead.sentence() if g.overhead else None)
    print("verdict:", res.verdict.sentence)
    d = out_dir()
    if d:
        d.mkdir(parents=True, exist_ok=True)
        results.save(res, str(d / f"decode_gpu_{model}.json"))
        spans = g.spans()
        (d / f"gpu_spans_{model}.json").write_text(json.dumps(spans[:5000]))
        print("wrote", d / f"decode_gpu_{model}.json", "and", len(spans[:5000]), "spans")
        try:
            from mlxprof import trace
        except ImportError:
            print("mlxprof.trace not present: no Perfetto trace written")
        else:
            traced = res.model_copy(update={"runs": res.gpu_runs})
            trace.write(str(d / f"trace_gpu_{model}.json"), traced, gpu_spans=spans)
            print("wrote", d / f"trace_gpu_{model}.json")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=["gemma3n-tiny"])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--tokens", type=int, default=50)
    ap.add_argument("--skip", nargs="*", default=[], help="steps to skip: env clock matmul decode")
    a = ap.parse_args()
    if "env" not in a.skip:
        with step("env"):
            env()
    if "clock" not in a.skip:
        with step("clock"):
            clock()
    if "matmul" not in a.skip:
        with step("matmul"):
            matmul()
    if "decode" not in a.skip:
        for m in a.models:
            with step(f"decode {m}"):
                decode(m, a.runs, a.warmup, a.tokens)
    print("\nFAILED steps:", FAILED or "none")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
