"""Overhead and parity of mlxprof's decode loop, in one process, in paired blocks.

Loops, on one model and prompt:
  mlxprof   the instrumented loop `mlxprof decode` measures (decode.run_once's
            loop: decode.timed_tokens, per-token clock reads and stores)
  bare      the same step and loop without per-token timing
  mlx-lm / mlx-vlm   with --with-library: the library's own generate_step, greedy

Method (mlxprof/paired.py has the full reasoning). Whole runs one after the
other cannot resolve 1 % on a shared host whose speed drifts over seconds, so:
- mlxprof and bare run the same step, so they are lanes of one cache and
  stream taking turns on one decode (--separate-caches: a cache each): same
  positions, and a lane's block after its own runs no settle tokens (after
  the other lane's it does, --lane-settle: with none the token after a switch
  carries the other lane's lookahead, which biased 1-token blocks by 1.5 %);
  the library's loop keeps its own cache;
- every other loop keeps its own cache; all decode in blocks of B tokens (B
  = --block, default 4), after 2 settle tokens where the loop switched (they
  absorb the switch from the previous loop); a block's time spans its last B
  deliveries, read with two clock reads; all restart every --tokens (400);
- a round runs one block of each loop in a palindrome (A B C C B A, the
  first loop rotating), so drift that is linear over a round cancels in
  every pair's ratio; loops with a cache of their own decode the same KV
  positions, lanes interleave theirs (about twice the depth by a segment's end);
- every few rounds all loops restart from the same fresh prefill (+ untimed
  warm-up), keeping the KV depth near a decode run's and letting the greedy
  token ids be compared;
- per round and comparison one ratio of tok/s; reported: their geometric
  mean with 20 % of the log ratios trimmed from each end (rounds in which
  another tenant stalled one loop say nothing about the loops),
  its 95 % BCa bootstrap CI over rounds, the Wilcoxon signed-rank p on the
  log ratios; it stops when every CI half-width is ≤ 0.5 % (after 12 rounds)
  or the next round would pass --budget seconds (default 120).
Targets: mlxprof ≥ ×0.99 bare (the timing costs under 1 %) and mlxprof ≥
×0.98 the library's loop (we measure the loop people run). "resolved" means
the CI lies wholly on one side of the target.

  python bench/parity.py                                   # gemma3n-tiny (CPU)
  python bench/parity.py --model gemma3n-e2b-4bit          # on a GPU
  python bench/parity.py --model gemma3n-e2b-4bit --with-library --block 8 --tokens 100
                                                           # the loops of `mlxprof parity` too
"""

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/paired_options.py

from mlxprof import paired, parity, parity_loops  # noqa: E402
from paired_options import add_paired_options  # noqa: E402
from mlxprof.errors import InputError  # noqa: E402


BLOCK, TOKENS = 4, 400


def round_line(rnd, comps) -> str:
    rates = ", ".join(f"{name} {rnd.tok_s(name):.2f}" for name in dict.fromkeys(rnd.order))
    ratios = " ".join(f"{c.numerator}/{c.denominator} ×{c.ratio:.4f}±{c.half_width:.2%} (n={c.pairs})" for c in comps
                      if c.pairs >= 2)
    return f"  round {rnd.round + 1:3d} @{rnd.t_s:6.1f}s  tok/s {rates}   {ratios}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # mlxprof and bare alone, as lanes, in 4-token blocks, 400 tokens between prefills: on an H200
    # (gemma3n-e2b-4bit) this resolved ×0.99 in 59 s where 8-token blocks beside the library's
    # loop stopped unresolved at ±2.4 % after 100 s (docs/benchmark_results/measurement-cost-nvidia-h200.md)
    add_paired_options(ap, block=BLOCK, tokens=TOKENS)
    ap.add_argument("--quiet", action="store_true", help="no line per round")
    ap.add_argument("--with-library", action="store_true",
                    help="the library's generate_step too (a cache of its own): a third of every round goes to it")
    ap.add_argument("--lane-settle", type=int, default=None,
                    help="settle tokens of a lane's block after the other lane's [as every loop: 2]")
    ap.add_argument("--separate-caches", action="store_true",
                    help="mlxprof and bare each on a cache of its own, not lanes of one (the method before lanes)")
    a = ap.parse_args(argv)
    try:
        session, st, pst, ids = parity.prepare_parity(a.model, a.weights, a.dtype, a.rounds, a.warmup, a.tokens,
                                                      a.prompt_tokens, block=a.block, budget=a.budget)
    except InputError as e:
        print(f"bench/parity.py: error: {e}", file=sys.stderr)
        return 2
    loops = parity.loops_for(session.model, bench=True)[:3 if a.with_library else 2]
    pst = pst.model_copy(update={"lane_settle": a.lane_settle})
    print(parity.setup_lines(session, st, pst, loops))
    for note in st.reduced:
        print(f"note: {note}")
    run, runs = parity.run_paired_loops(session.model, ids, st, pst, loops,
                                        on_round=None if a.quiet else lambda r, c: print(round_line(r, c),
                                                                                          flush=True),
                                        lanes=not a.separate_caches, backend=session.backend)
    print()
    for name in loops:
        print(parity.median_line(name, run.tok_s(name)))
    print()
    for c in run.comparisons:
        target = f"   resolved vs ×{c.target:.2f}: {'yes' if c.resolved else 'NO'}" if c.target else ""
        print(c.sentence() + target)
    print(paired.stop_sentence(run))
    cost = parity_loops.bookkeeping_s()
    token = 1 / statistics.median(run.tok_s("bare"))
    print(f"timing bookkeeping in isolation: {cost * 1e6:.2f} µs/token = {cost / token:.3%} of the "
          f"bare loop's median {token * 1e3:.2f} ms token (ratio floor ×{token / (token + cost):.4f})")
    print(parity.token_agreement(runs).sentence)
    return 0


if __name__ == "__main__":
    sys.exit(main())
