"""Per-token alternation: two token loops that run the same step take turns,
token by token, on one decode, and each token's time is paired with its
neighbour's.

Why: on the H100 host of issue 12 (gemma3n-e2b-4bit, synthetic weights, ~30
ms tokens, almost all of it host work: graph build and `mx.async_eval`),
the log of a token's time had a standard deviation of 0.2 with lag-1
autocorrelation 0.6 and none left by lag 5: the host's speed wandered over
tens of milliseconds. Blocks of 4 tokens a few hundred ms apart then
differed by ±13 % (1.4826 × MAD of the log ratio), and 190 palindromic rounds of
paired blocks (paired.py) left a 95 % CI of ±2.1 % after two minutes. Two
neighbouring tokens share most of that wander, and most of what remains is
a few slow tokens, which a trimmed mean ignores. On that host's recorded
data, the 20 %-trimmed mean of neighbour log ratios spread 0.09 per pair of
tokens (about 16 pairs a second) against 0.14 per round of blocks (1.6
rounds a second): a 25th of the variance per second, a CI about 5× narrower.

The method:
- One cache, one stream, one lookahead decode. Before every token one clock
  read (the probe), the same for both arms; a token's time runs from its
  probe to the next one: the arm's whole iteration (build of the next
  step, `mx.async_eval`, the wait for this token, the arm's own
  bookkeeping). Each arm's loop function runs one token per call, so the
  code measured is the arm's own (decode.timed_tokens for mlxprof).
- Tokens go in pairs, and each pair's order is drawn at random (seeded):
  for two identical arms the pair log ratios are then symmetric about 0
  and uncorrelated whatever the host's noise, which the Wilcoxon test needs.
  Their size still follows the host's quiet and noisy spells, so pairs are
  not strictly independent, as the bootstrap CI assumes; a fixed A B order
  would pair A with the noise of even positions.
- The trimmed mean describes the typical token: slow tokens are cut from
  both ends, whichever arm caused them (the bench prints the untrimmed
  geometric mean beside it).
- A pair's ratio is the denominator's token time over the numerator's: the
  numerator's tok/s over the denominator's for that pair. The estimate, CI
  and test are paired.py's (20 %-trimmed geometric mean, BCa bootstrap CI
  over pairs, Wilcoxon signed-rank p).
- Every `tokens` tokens the decode restarts from a fresh cache and the same
  prefill, then untimed warm-up tokens (run by decode.timed_tokens), so the
  KV depth stays within a decode run's and every segment's greedy ids can be
  compared.
- Stop after a segment once the CI half-width is at most `precision`
  (after `min_pairs` pairs), at `max_segments`, or at the budget: no pair
  starts after it, and no segment starts that the last restart's time
  says would not fit.

What it cannot see. The probe cancels between the arms, so a loop without
it would be faster by one clock read per token than both (bench/parity.py
prints the cost of clock reads measured in isolation beside the ratio).
Where the GPU is the bottleneck, an arm's host work can hide in the next
token's wait; half of the time that next token is the other arm's, so the
ratio then overstates the arm's cost, never understates it. Nothing here
imports MLX: the decode is handed in (parity_loops.py builds it), so tests
run the method on simulated hosts.
"""

import math
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from . import paired, stats
from .paired import PairedComparison, compare_pairs
from .results import Record

ALTERNATION_METHOD = (
    "per-token alternation: {a} and {b} take turns on one decode, one token per turn, in pairs of "
    "random order (seeded); a token's time runs from a clock read before it to the one before the next; "
    "a pair ratio per pair of tokens; 20%-trimmed geometric mean, 95% BCa bootstrap CI over pairs, "
    "Wilcoxon signed-rank p on log ratios; a fresh prefill + {warmup} untimed tokens every {tokens} "
    "tokens; stop when the CI half-width is ≤ {precision:.1%} (after {min_pairs} pairs) or the "
    "{budget:g} s budget is spent")


class AlternatingSettings(Record):
    tokens: int  # alternated tokens per segment, between fresh prefills
    warmup: int  # untimed tokens after each prefill
    budget_s: float
    precision: float  # stop when the CI half-width is at most this (0.005: 0.5 %)
    min_pairs: int
    max_segments: Optional[int] = None
    level: float = 0.95
    seed: int = 0


class AlternatingRun(Record):
    settings: AlternatingSettings
    arms: List[str]  # [numerator, denominator]
    segment: List[int]  # per pair: the segment it was decoded in
    first: List[str]  # per pair: the arm whose token came first
    seconds: Dict[str, List[float]]  # per arm, per pair: its token's time
    t_s: List[float]  # per segment: its start, seconds after the measurement began
    finite: List[Optional[bool]] = []  # per segment: its logits finite after it (None: not checked)
    comparison: PairedComparison
    elapsed_s: float
    stop: str  # "precision", "budget", "segments"
    method: str

    def tok_s(self, arm: str) -> float:
        secs = self.seconds[arm]
        return len(secs) / sum(secs) if secs else float("nan")

    def segment_tok_s(self, arm: str) -> List[float]:
        out: Dict[int, List[float]] = {}
        for k, s in zip(self.segment, self.seconds[arm]):
            out.setdefault(k, []).append(s)
        return [len(v) / sum(v) for _, v in sorted(out.items())]


class SharedDecode:
    """What run_alternating advances (parity_loops.StepLoop is one): a
    lookahead decode whose `step`, token in flight `y`, clock record
    `times` and position `n` the arms' loop functions continue."""

    step: Callable
    y: object
    times: object
    n: int

    def restart(self, tokens: int) -> None:
        """Fresh cache, prefill and untimed warm-up; `tokens` more will follow."""

    def finish(self) -> None:
        """Drain the step in flight and keep the segment's ids (and, in a
        `finite` list, whether its logits stayed finite)."""


def alternate(fns: Sequence[Callable], step, y, times, n: int, stamps: List[float], deadline: float,
              clock: Callable[[], float] = time.perf_counter):
    """Tokens n, n+1, … each run by one call of fns[i](step, y, times, i, i+1),
    stamps[i] read before it and one more after the last. A pair (an even i)
    is not started past `deadline`. Returns (token in flight, tokens run)."""
    k = 0
    for fn in fns:
        t = clock()
        if not k & 1 and t > deadline:
            break
        stamps[k] = t
        y = fn(step, y, times, n + k, n + k + 1)
        k += 1
    stamps[k] = clock()
    return y, k


def _compare(pairs_a: List[float], pairs_b: List[float], arms, target, st, why=""):
    ratios = [b / a if a > 0 else float("nan") for a, b in zip(pairs_a, pairs_b)]
    return compare_pairs(ratios, arms[0], arms[1], target, level=st.level, unresolved_why=why)


def run_alternating(decode: SharedDecode, arms: Dict[str, Callable], target: Optional[float], st: AlternatingSettings,
                    clock: Callable[[], float] = time.perf_counter,
                    on_segment: Optional[Callable[["AlternatingRun"], None]] = None) -> AlternatingRun:
    """Segments of alternated tokens until the stop rule (module doc) ends
    them; `arms`: numerator then denominator, each a loop function with
    decode.timed_tokens' arguments. `on_segment` sees the run so far after
    every segment (stop "partial"), for progress and saving."""
    a, b = names = list(arms)
    rng = np.random.default_rng(st.seed)
    t_start = clock()
    deadline = t_start + st.budget_s
    segment: List[int] = []
    first: List[str] = []
    seconds: Dict[str, List[float]] = {a: [], b: []}
    starts: List[float] = []
    finite: List[Optional[bool]] = []
    restart_s = 0.0
    stop = None
    k = 0
    while stop is None:
        t = clock()
        if t + restart_s > deadline:
            stop = "budget"
            break
        decode.restart(st.tokens)
        restart_s = clock() - t
        order = rng.integers(0, 2, st.tokens // 2)
        seq = [names[i] for o in order for i in ((0, 1) if o == 0 else (1, 0))]
        stamps = [0.0] * (len(seq) + 1)
        decode.y, ran = alternate([arms[name] for name in seq], decode.step, decode.y, decode.times, decode.n,
                                  stamps, deadline, clock)
        decode.n += ran
        decode.finish()
        if ran < 2:  # the deadline came before its first pair
            stop = "budget"
            break
        starts.append(t - t_start)
        checked = getattr(decode, "finite", None)
        finite.append(checked[-1] if checked else None)
        for p in range(ran // 2):
            pair = seq[2 * p: 2 * p + 2]
            segment.append(k)
            first.append(pair[0])
            for j, name in enumerate(pair):
                seconds[name].append(stamps[2 * p + j + 1] - stamps[2 * p + j])
        comp = _compare(seconds[a], seconds[b], names, target, st)
        k += 1
        if comp.pairs >= st.min_pairs and comp.half_width is not None and comp.half_width <= st.precision:
            stop = "precision"
        elif st.max_segments is not None and k >= st.max_segments:
            stop = "segments"
        elif ran < len(seq):
            stop = "budget"
        if on_segment and stop is None:
            on_segment(_run(st, names, segment, first, seconds, starts, finite, comp, clock() - t_start,
                             "partial"))
    why = {**paired.STOP_WHY, "segments": " at the segment limit"}[stop]  # paired's, and this method's limit
    comp = _compare(seconds[a], seconds[b], names, target, st, why)
    return _run(st, names, segment, first, seconds, starts, finite, comp, clock() - t_start, stop)


def _run(st, names, segment, first, seconds, starts, finite, comp, elapsed, stop) -> AlternatingRun:
    method = ALTERNATION_METHOD.format(a=names[0], b=names[1], warmup=st.warmup, tokens=st.tokens,
                                       precision=st.precision, min_pairs=st.min_pairs, budget=st.budget_s)
    return AlternatingRun(settings=st, arms=list(names), segment=list(segment), first=list(first),
                          seconds={n: list(v) for n, v in seconds.items()}, t_s=list(starts), finite=list(finite),
                          comparison=comp,
                          elapsed_s=elapsed, stop=stop, method=method)


def summary_line(run: AlternatingRun) -> str:
    st = run.settings
    return paired.stopped(f"{len(run.segment)} pairs of tokens in {len(run.t_s)} segments, {run.elapsed_s:.1f} s",
                          run.stop, {"precision": f"the {st.level:.0%} CI is within ±{st.precision:.1%}",
                                     "budget": f"the {st.budget_s:g} s budget was spent",
                                     "segments": f"{st.max_segments} segments were run"})


def balance(run: AlternatingRun) -> str:
    """How often each arm went first: the random orders should be near half."""
    n = len(run.first)
    a = sum(1 for f in run.first if f == run.arms[0])
    return f"{run.arms[0]} first in {a} of {n} pairs" + (f" ({a / n:.0%})" if n else "")


def noise_line(run: AlternatingRun) -> str:
    """The host's token-to-token noise, which sets how fast a CI narrows:
    the spread of one arm's log token times and of the pair log ratios."""
    x = np.log(np.asarray(run.seconds[run.arms[1]], float))
    d = np.log(np.asarray(run.seconds[run.arms[1]], float) / np.asarray(run.seconds[run.arms[0]], float))
    if len(x) < 2:
        return "host noise: too few pairs"
    robust = lambda v: 1.4826 * stats.mad(v)  # noqa: E731  (the sd a normal sample's MAD implies)
    lo, hi = (math.exp(np.percentile(x, q)) * 1e3 for q in (5, 95))
    return (f"host noise: {run.arms[1]} token times log sd {x.std():.3f} (1.4826 × MAD {robust(x):.3f}); pair "
            f"log ratios sd {d.std():.3f} (1.4826 × MAD {robust(d):.3f}); tokens {lo:.1f}–{hi:.1f} ms (5–95 %)")
