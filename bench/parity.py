"""Overhead and parity of mlxprof's decode loop, in one process.

Interleaved (A B C, B C A, …) on one model and prompt:
  mlxprof   the instrumented loop `mlxprof decode` measures (decode.run_once)
  bare      the same lookahead loop without per-token timing
  mlx-vlm   mlx-vlm's own generate_step, greedy
tok/s computed the same way for all (see mlxprof/parity.py). Targets:
instrumented >= 0.99 x bare (the timing costs under 1 %), and
mlxprof >= 0.98 x mlx-vlm (we measure the loop people run).

  python bench/parity.py                                  # gemma3n-tiny (CPU)
  python bench/parity.py --model gemma3n-e2b-4bit         # on a GPU
"""

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlxprof import parity  # noqa: E402
from mlxprof.errors import InputError  # noqa: E402

def targets(library):
    return (("mlxprof", "bare", 0.99), ("mlxprof", library, 0.98))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="gemma3n-tiny")
    ap.add_argument("--weights", default="auto", choices=["auto", "real", "synthetic"])
    ap.add_argument("--dtype", default=None, choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--tokens", type=int, default=None, help="measured tokens per run [100]")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up tokens per run [20]")
    ap.add_argument("--prompt-tokens", type=int, default=None)
    a = ap.parse_args(argv)
    try:
        session, st, ids = parity.prepare_parity(a.model, a.weights, a.dtype, a.rounds, a.warmup,
                                                 a.tokens, a.prompt_tokens)
    except InputError as e:
        print(f"bench/parity.py: error: {e}", file=sys.stderr)
        return 2
    import mlx.core as mx

    ident = session.identity
    loops = parity.loops_for(session.model, bench=True)
    library = session.model.library
    print(f"model {ident.name} ({ident.quantization}, {ident.weights} weights, {ident.dtype}) on "
          f"{mx.default_device()}; {st.rounds} rounds × {', '.join(loops)} interleaved, "
          f"each {st.prompt_tokens} prompt + {st.warmup} warm-up + {st.tokens} measured tokens")
    for note in st.reduced:
        print(f"note: {note}")
    runs = parity.interleaved_runs(session.model, ids, st.rounds, st.warmup, st.tokens, loops,
                                   on_run=lambda r: print(f"  {r.loop:>8} round {r.round + 1}: {r.tok_s:.2f} tok/s",
                                                          flush=True))
    by = parity.samples(runs)
    print()
    for name in loops:
        print(parity.median_line(name, by[name]))
    print()
    for num, den, target in targets(library):
        print(parity.ratio_line(num, den, by, target))
    print(parity.ratio_line("bare", library, by))
    cost = parity.bookkeeping_s()
    token = 1 / statistics.median(by["bare"])
    print(f"timing bookkeeping in isolation: {cost * 1e6:.2f} µs/token = {cost / token:.3%} of the "
          f"bare loop's median {token * 1e3:.2f} ms token (ratio floor ×{token / (token + cost):.4f})")
    print(parity.token_agreement(runs).sentence)
    return 0


if __name__ == "__main__":
    sys.exit(main())
