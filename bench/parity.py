"""Overhead and parity of mlxprof's decode loop against a bare loop, in one process.

Loops, on one model and prompt:
  mlxprof   the instrumented loop `mlxprof decode` measures (decode.run_once's
            loop: decode.timed_tokens, per-token clock reads and stores)
  bare      the same step and loop without per-token timing
  mlx-lm / mlx-vlm   with --with-library: the library's own generate_step, greedy

Method (default; mlxprof/alternating.py has the full reasoning): per-token
alternation. Whole runs one after the other cannot resolve 1 % on a shared
host, and on a host whose speed wanders over tens of milliseconds neither
can blocks of a few tokens (the H100 host of issue 12: ±2.1 % after 2
minutes of paired 4-token blocks). So:
- mlxprof and bare run the same step, so they take turns on one decode
  (one cache, one stream), one token per turn: each token is run by one call
  of the arm's own loop function, and one clock read before every token (the
  same for both arms) times it, from that read to the next;
- tokens go in pairs whose order is drawn at random, so pairs of identical
  arms are exchangeable whatever the host does; one ratio per pair: the
  bare token's time over the mlxprof token's (mlxprof tok/s over bare's);
- reported: the geometric mean of the pair ratios with 20 % of the log
  ratios trimmed from each end (a token the host stalled says nothing about
  the loops), its 95 % BCa bootstrap CI over pairs, the Wilcoxon
  signed-rank p on the log ratios;
- every --tokens (400) tokens the decode restarts from the same fresh
  prefill (+ untimed warm-up), keeping the KV depth near a decode run's and
  letting every segment's greedy ids be compared;
- it stops once the CI half-width is ≤ 0.5 % (after 100 pairs) or at
  --budget seconds (default 120), or after --segments segments.
Both arms carry the probe; the cost of one clock read, measured in
isolation, is printed beside the ratio, with the cost of mlxprof's whole
per-token bookkeeping.

--blocks: paired palindromic blocks instead (mlxprof/paired.py), the method
before per-token alternation: mlxprof and bare as lanes of one cache
(--separate-caches: a cache each) in blocks of --block tokens (default 4)
after 2 settle tokens where the lanes switch (--lane-settle), timed by two
clock reads per block, in palindromic rounds (A B B A) so that drift linear
over a round cancels; the library's loop (--with-library, which implies
--blocks) keeps its own cache, and a third of every round goes to it. Stops at
±0.5 % (after 12 rounds), at --budget or at --rounds.

Targets: mlxprof ≥ ×0.99 bare (the timing costs under 1 %) and mlxprof ≥
×0.98 the library's loop (we measure the loop people run). "resolved" means
the CI lies wholly on one side of the target.

  python bench/parity.py                                   # gemma3n-tiny (CPU)
  python bench/parity.py --model gemma3n-e2b-4bit          # on a GPU
  python bench/parity.py --model gemma3n-e2b-4bit --blocks # the paired-block method, for comparison
  python bench/parity.py --model gemma3n-e2b-4bit --with-library --block 8 --tokens 100
                                                           # the loops of `mlxprof parity` too
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/paired_options.py

from mlxprof import alternating, paired, parity, parity_loops, results  # noqa: E402
from paired_options import add_paired_options  # noqa: E402
from mlxprof.errors import InputError, OutputError  # noqa: E402


BLOCK, TOKENS = 4, 400


def round_line(rnd, comps) -> str:
    rates = ", ".join(f"{name} {rnd.tok_s(name):.2f}" for name in dict.fromkeys(rnd.order))
    ratios = " ".join(f"{c.numerator}/{c.denominator} ×{c.ratio:.4f}±{c.half_width:.2%} (n={c.pairs})" for c in comps
                      if c.pairs >= 2)
    return f"  round {rnd.round + 1:3d} @{rnd.t_s:6.1f}s  tok/s {rates}   {ratios}"


def segment_line(run) -> str:
    c = run.comparison
    rates = ", ".join(f"{arm} {run.segment_tok_s(arm)[-1]:.2f}" for arm in run.arms)
    ci = f"±{c.half_width:.2%}" if c.half_width is not None else "(no CI yet)"
    return (f"  segment {len(run.t_s):3d} @{run.elapsed_s:6.1f}s  tok/s {rates}   "
            f"{c.numerator}/{c.denominator} ×{c.ratio:.4f}{ci} (n={c.pairs})")


def target_line(c) -> str:
    return c.sentence() + (f"   resolved vs ×{c.target:.2f}: {'yes' if c.resolved else 'NO'}" if c.target else "")


def cost_lines(token_s: float) -> str:
    """mlxprof's per-token timing and the probe, in isolation, against a token."""
    out = []
    for what, cost in (("timing bookkeeping", parity_loops.bookkeeping_s()),
                       ("one clock read (the probe both arms carry)", parity_loops.bookkeeping_s(probe=True))):
        out.append(f"{what} in isolation: {cost * 1e6:.2f} µs/token = {cost / token_s:.3%} of the bare loop's "
                   f"median {token_s * 1e3:.2f} ms token (ratio floor ×{token_s / (token_s + cost):.4f})")
    return "\n".join(out)


def save(path, setup: str, run, agreement=None):
    """The run so far, with what it ran on, to `path` (None: nowhere)."""
    if path and path not in FAILED:
        # schema and kind, as every result has them: a later run refuses to replace this file
        doc = {"schema": 1, "kind": "parity-bench", "bench": "parity.py", "setup": setup.splitlines(),
               "run": json.loads(run.model_dump_json()),
               "tokens": agreement.model_dump() if agreement else None}  # model_dump_json: NaN as null
        try:
            results.write_text_atomic(path, json.dumps(doc, indent=1) + "\n")
        except OutputError as e:  # keep measuring; the printed figures remain
            FAILED.add(path)
            print(f"bench/parity.py: {e}; not saving again", file=sys.stderr)


FAILED = set()  # --json files that could not be written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # Per-token alternation, 400 tokens between prefills. With --blocks: lanes in 4-token blocks, which
    # on an H200 (gemma3n-e2b-4bit) resolved ×0.99 in 59 s but on the noisier H100 host stopped at ±2.1 %
    # (docs/benchmark_results/measurement-cost-nvidia-h200.md)
    add_paired_options(ap, block=BLOCK, tokens=TOKENS, blocks_only="--blocks: ")
    ap.set_defaults(block=None)  # --blocks applies BLOCK; a --block given without it is refused
    ap.add_argument("--segments", type=int, default=None,
                    help="per-token alternation: at most this many segments of --tokens tokens [no limit]")
    ap.add_argument("--quiet", action="store_true", help="no line per segment (or round)")
    ap.add_argument("--json", default=None, metavar="FILE",
                    help="per-token alternation: save the run (every pair's token times) as JSON, after each segment")
    ap.add_argument("--blocks", action="store_true",
                    help="paired palindromic blocks (mlxprof/paired.py) instead of per-token alternation")
    ap.add_argument("--with-library", action="store_true",
                    help="the library's generate_step too (a cache of its own; implies --blocks): a third of "
                         "every round goes to it")
    ap.add_argument("--lane-settle", type=int, default=None,
                    help="--blocks: settle tokens of a lane's block after the other lane's [as every loop: 2]")
    ap.add_argument("--separate-caches", action="store_true",
                    help="--blocks: mlxprof and bare each on a cache of its own, not lanes of one")
    a = ap.parse_args(argv)
    blocks = a.blocks or a.with_library
    try:
        if not blocks:
            given = [f"--{k.replace('_', '-')}" for k in ("block", "rounds", "lane_settle") if getattr(a, k) is not None]
            given += ["--separate-caches"] if a.separate_caches else []
            if given:
                raise InputError(f"{', '.join(given)}: only with --blocks (per-token alternation stops at --budget "
                                 "or --segments)")
        elif a.segments is not None or a.json is not None:
            raise InputError(f"{'--segments' if a.segments is not None else '--json'} applies to per-token "
                             "alternation; --blocks stops at --budget or --rounds")
        # the session checks --json as every command's output: writable, and not holding a result already
        session, st, pst, ids = parity.prepare_parity(a.model, a.weights, a.dtype, a.rounds, a.warmup, a.tokens,
                                                      a.prompt_tokens, json_path=a.json,
                                                      block=BLOCK if blocks and a.block is None else a.block,
                                                      budget=a.budget)
        if not blocks:
            pst = parity.alternating_settings(st.tokens, st.warmup, pst.budget_s, a.segments)
    except InputError as e:
        print(f"bench/parity.py: error: {e}", file=sys.stderr)
        return 2
    if blocks:
        return run_blocks(a, session, st, pst, ids)
    loops = parity.loops_for(session.model, bench=True)[:2]
    setup = parity.setup_lines(session, st, pst, loops)
    print(setup)
    for note in st.reduced:
        print(f"note: {note}")

    def on_segment(run):
        if not a.quiet:
            print(segment_line(run), flush=True)
        save(a.json, setup, run)

    try:
        run, agreement = parity.run_alternating_loops(session.model, ids, pst, backend=session.backend,
                                                      on_segment=on_segment)
    except KeyboardInterrupt:
        kept = f"; the finished segments are in {a.json}" if a.json and a.json not in FAILED else ""
        print(f"bench/parity.py: interrupted{kept}", file=sys.stderr)
        return 130
    save(a.json, setup, run, agreement)
    print()
    for arm in run.arms:
        secs = run.seconds[arm]
        print(f"{arm:>8}: {run.tok_s(arm):8.2f} tok/s over its {len(secs)} tokens (median token "
              f"{statistics.median(secs) * 1e3:.2f} ms)" if secs else f"{arm:>8}: no tokens")
    print()
    c = run.comparison
    print(target_line(c))
    print(f"untrimmed: geometric mean ×{c.mean_ratio:.4f}, median ×{c.median_ratio:.4f} (the trimmed mean "
          "describes the typical token)")
    print(alternating.summary_line(run))
    print(alternating.balance(run) + "; " + alternating.noise_line(run))
    if run.seconds["bare"]:
        print(cost_lines(statistics.median(run.seconds["bare"])))
    print(agreement.sentence)
    return 1 if FAILED else 0  # the figures are printed; the file is not what it should be


def run_blocks(a, session, st, pst, ids) -> int:
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
        print(target_line(c))
    print(paired.stop_sentence(run))
    print(cost_lines(1 / statistics.median(run.tok_s("bare"))))
    print(parity.token_agreement(runs).sentence)
    return 0


if __name__ == "__main__":
    sys.exit(main())
