"""Paired, palindromic block comparisons of decode loops in one process.

Whole runs compared one after another cannot resolve a 1 % difference on a
shared host: its speed drifts over seconds (other tenants, clocks), so two
runs a few seconds apart differ by more than the loops do. Pairing close in
time removes the drift instead of averaging over it:

- Every loop keeps its own model cache and stream and decodes in blocks of
  `settle` + `block` tokens. A round runs each loop's block in a palindrome,
  A B C C B A (the first loop rotating from round to round), so in every
  round each loop's two blocks sit symmetrically around the round's middle:
  drift that is linear over a round (a few seconds) adds the same time to
  both loops of any pair and cancels in their ratio.
- A block's time is the span from its `settle`-th delivery to its last:
  `block` token intervals, all in the loop's steady state. The first
  deliveries are left out because the loop resumes with a token its
  lookahead computed before the switch, while the GPU may still finish the
  previous loop's last step. Only two clock reads per block: the bare loop
  must carry no per-token timing, so per-token medians are not available to
  every loop alike.
- Lanes: loops that run the same step (mlxprof's loop and the bare one)
  can instead be lanes of one cache and stream, taking turns on one decode:
  a lane's block after its own needs no settle, after the other lane's it
  runs `lane_settle` (default `settle`): with none, 1-token blocks measured
  mlxprof / bare ×1.0155 on an H200 for loops whose timing costs 0.002 %,
  since the token after a switch carries the other lane's lookahead. Lanes
  advance the one cache together (their positions interleave, at about
  twice the pace of a loop with a cache of its own).
- Same KV depth: all loops advance 2 × (settle + block) tokens per round, so
  in each round every loop decodes the same positions. Every
  `rounds_per_segment` rounds all loops restart from a fresh cache and
  prefill (then untimed warm-up tokens), so the depth stays within the
  range a decode run measures and greedy ids can be compared per segment.
- One pair per round and comparison: ratio = (numerator tok/s) /
  (denominator tok/s) over the loops' two blocks. The estimate is the
  trimmed geometric mean of the pair ratios (20 % of the log ratios cut from
  each end: rounds in which another tenant stalled one loop say nothing
  about the loops), its 95 % CI a BCa bootstrap over pairs
  (scipy.stats.bootstrap), with a Wilcoxon signed-rank test on the log
  ratios (scipy.stats.wilcoxon) beside it.
- Adaptive length: after `min_rounds`, stop as soon as every comparison's
  CI half-width is at most `precision` (0.5 %: a CI that narrow lies wholly
  above or below ×0.99 unless the ratio is within 0.5 % of it), or when the
  next round would pass the time budget, or at `max_rounds`. The rule looks
  at the CI's width, not at where it lies, so stopping early does not bias
  the answer the way stopping on significance would. A comparison whose CI
  still spans its target is reported unresolved, with the reason it stopped.

Rounds are treated as independent: the palindrome removes linear drift
inside a round; drift faster than a round adds noise to the pairs, which
widens the CI rather than biasing it. Nothing here imports MLX: the loops
are handed in (parity.py builds them), so the method runs on recorded or
simulated blocks too.
"""

import math
import time
from typing import Callable, Dict, List, Optional, Protocol, Sequence, Tuple

import numpy as np

from .results import Record
from .stats import _quiet

METHOD = ("paired blocks: each loop continues its own cache in blocks of {settle}+{block} tokens, "
          "run in palindromic rounds (A B … B A) so drift cancels within a round; all loops restart "
          "from a fresh prefill every {per_segment} rounds (same KV depth for all); a pair ratio per "
          "round and comparison; 20%-trimmed geometric mean, 95% BCa bootstrap CI over pairs, Wilcoxon signed-rank "
          "p on log ratios; stop when every CI half-width is ≤ {precision:.1%} (after {min_rounds} "
          "rounds) or the {budget:g} s budget is spent")


# Fewer pairs decide nothing: a bootstrap CI of 2 or 3 values is far too
# narrow, and the Wilcoxon signed-rank test cannot reach p < 0.05 with
# fewer than 6 (its smallest two-sided p is 2 / 2**n).
MIN_PAIRS = 6
# The share of log ratios cut from each end before averaging. A round in
# which one loop lost its core for a while (another tenant, the OS) gives a
# ratio of 2× or 5×; on a shared host such rounds are not rare, and a plain
# mean follows them, with a bootstrap CI that can exclude ×1 for two
# identical loops (tests/test_parity.py simulates it). Cutting 20 % each way
# keeps 60 % of the pairs, costs little precision when the noise is normal,
# and ignores such rounds; noise that hits either loop alike leaves the
# trimmed mean unbiased.
TRIM = 0.2


class BlockLoop(Protocol):
    """A decode loop that can be advanced block by block (see parity.py).
    Lanes (loops with a `lanes` attribute other than None) share one cache
    and stream with the loops of the same `lanes`: a lane's block after its
    own block runs no settle tokens, after any other block
    `PairedSettings.lane_settle`."""

    def restart(self, tokens: int) -> None:
        """Fresh cache, prefill and untimed warm-up; `tokens` more will follow."""

    def block(self, settle: int, tokens: int) -> float:
        """Decode settle + tokens tokens; seconds from the settle-th delivery to the last."""

    def finish(self) -> None:
        """Drain the work in flight; the segment is over."""


class PairedSettings(Record):
    block: int  # measured token intervals per block
    settle: int  # deliveries at the start of each block, not measured
    rounds_per_segment: int  # rounds between restarts from a fresh prefill
    budget_s: float
    precision: float  # stop when every CI half-width is at most this (0.005: 0.5 %)
    min_rounds: int
    max_rounds: Optional[int] = None
    level: float = 0.95
    lanes: List[str] = []  # loops that took turns on one shared cache
    # settle tokens of a lane's block after another lane's block (None: lanes settle as every loop
    # does); a lane's block after its own needs none. Measured on an H200 (gemma3n-e2b, 1-token blocks,
    # no settle): mlxprof / bare ×1.0155, CI 1.011–1.021, for loops whose timing costs 0.002 % — a
    # token just after the other lane's is not like the next: the pipeline carries one token over.
    lane_settle: Optional[int] = None

    def method(self) -> str:
        text = METHOD.format(settle=self.settle, block=self.block, per_segment=self.rounds_per_segment,
                             precision=self.precision, min_rounds=self.min_rounds, budget=self.budget_s)
        if self.lanes:
            text += (f"; {' and '.join(self.lanes)} are lanes of one cache and stream, taking turns on one "
                     f"decode: a lane's block runs {self.settle if self.lane_settle is None else self.lane_settle} "
                     "settle tokens after the other lane's "
                     "block and none after its own")
        return text


class PairedRound(Record):
    round: int
    segment: int
    t_s: float  # start, seconds after the measurement began
    order: List[str]  # loops in block order (a palindrome)
    seconds: List[float]  # each block's measured span, in `order`
    tokens: int  # measured token intervals per block

    def loop_seconds(self, name: str) -> float:
        return sum(s for n, s in zip(self.order, self.seconds) if n == name)

    def loop_tokens(self, name: str) -> int:
        return self.order.count(name) * self.tokens

    def tok_s(self, name: str) -> float:
        secs = self.loop_seconds(name)
        return self.loop_tokens(name) / secs if secs > 0 else float("nan")


class PairedComparison(Record):
    numerator: str
    denominator: str
    ratio: float  # trimmed geometric mean over pairs of numerator tok/s / denominator tok/s
    ci_low: Optional[float]  # None below 2 pairs
    ci_high: Optional[float]
    half_width: Optional[float]  # (ci_high - ci_low) / 2
    mean_ratio: float  # the plain geometric mean
    median_ratio: float
    pairs: int
    p_value: float  # Wilcoxon signed-rank on log ratios, two-sided
    difference: str  # "none detected", "numerator faster", "numerator slower", "too few pairs"
    target: Optional[float] = None
    resolved: Optional[bool] = None  # CI wholly on one side of the target
    meets_target: Optional[bool] = None  # resolved and above it
    verdict: str

    def sentence(self) -> str:
        ci = (f"95% CI {self.ci_low:.4f}–{self.ci_high:.4f}, ±{self.half_width:.2%}"
              if self.half_width is not None else "no CI")
        return (f"{self.numerator} / {self.denominator}: ×{self.ratio:.4f} ({ci}; {self.pairs} pairs, "
                f"Wilcoxon p={self.p_value:.2g}): {self.verdict}")


class PairedRun(Record):
    settings: PairedSettings
    loops: List[str]
    rounds: List[PairedRound]
    comparisons: List[PairedComparison]
    elapsed_s: float
    stop: str  # "precision", "budget", "rounds"; "partial" in a result saved while measuring
    method: str

    def tok_s(self, name: str) -> List[float]:
        """The loop's tok/s in each round (its blocks' tokens over their time)."""
        return [r.tok_s(name) for r in self.rounds]

    def segment_tok_s(self, name: str) -> List[float]:
        out: Dict[int, List[float]] = {}
        for r in self.rounds:
            out.setdefault(r.segment, [0.0, 0.0])
            out[r.segment][0] += r.loop_tokens(name)
            out[r.segment][1] += r.loop_seconds(name)
        return [t / s if s > 0 else float("nan") for t, s in (out[k] for k in sorted(out))]


def palindrome(names: Sequence[str], r: int) -> List[str]:
    """Round r's block order: the loops rotated by r, then reversed."""
    k = len(names)
    base = [names[(i + r) % k] for i in range(k)]
    return base + base[::-1]


def pair_ratios(rounds: Sequence[PairedRound], numerator: str, denominator: str) -> List[float]:
    """Per round: numerator tok/s / denominator tok/s (equal tokens: time ratio inverted)."""
    out = []
    for r in rounds:
        num, den = r.tok_s(numerator), r.tok_s(denominator)
        out.append(num / den if num > 0 and den > 0 else float("nan"))
    return out


def trimmed_mean(x, axis=-1):
    """The mean of the middle 60 % (scipy.stats.trim_mean, 20 % cut from each end)."""
    from scipy import stats as sps  # ~1 s to import, once

    return sps.trim_mean(x, TRIM, axis=axis)


def _bootstrap_ci(logs: np.ndarray, level: float, seed: int) -> Tuple[float, float]:
    from scipy import stats as sps

    if np.ptp(logs) == 0:
        return float(logs[0]), float(logs[0])
    with _quiet():
        for method in ("BCa", "percentile"):  # BCa can fail on tiny or degenerate samples
            res = sps.bootstrap((logs,), trimmed_mean, confidence_level=level, n_resamples=1000,
                                method=method, rng=np.random.default_rng(seed))
            lo, hi = res.confidence_interval
            if np.isfinite(lo) and np.isfinite(hi):
                return float(lo), float(hi)
    return float("nan"), float("nan")


def _wilcoxon_p(logs: np.ndarray) -> float:
    from scipy import stats as sps

    if not np.any(logs != 0):
        return 1.0
    with _quiet():
        p = float(sps.wilcoxon(logs, alternative="two-sided").pvalue)
    return 1.0 if math.isnan(p) else p


def compare_pairs(ratios: Sequence[float], numerator: str, denominator: str, target: Optional[float] = None,
                  level: float = 0.95, alpha: float = 0.05, seed: int = 0,
                  unresolved_why: str = "") -> PairedComparison:
    """The trimmed geometric mean of the pair ratios with its bootstrap CI
    and Wilcoxon p; against `target`, resolved when the CI lies wholly on one
    side of it (with at least MIN_PAIRS pairs). A difference from 1 is
    called only when the CI excludes 1 and p < alpha."""
    logs = np.log(np.asarray([x for x in ratios if x > 0 and math.isfinite(x)], float))
    n = len(logs)
    ratio = float(np.exp(trimmed_mean(logs))) if n else float("nan")
    mean = float(np.exp(logs.mean())) if n else float("nan")
    median = float(np.exp(np.median(logs))) if n else float("nan")
    lo = hi = half = None
    p = 1.0
    if n >= 2:
        b_lo, b_hi = _bootstrap_ci(logs, level, seed)
        if math.isfinite(b_lo) and math.isfinite(b_hi):
            lo, hi = math.exp(b_lo), math.exp(b_hi)
            half = (hi - lo) / 2
        p = _wilcoxon_p(logs)
    if n < MIN_PAIRS:
        difference = "too few pairs"
    elif lo > 1 and p < alpha:
        difference = "numerator faster"
    elif hi < 1 and p < alpha:
        difference = "numerator slower"
    else:
        difference = "none detected"
    resolved = meets = None
    if target is None:
        verdict = {"none detected": "no difference detected (95% CI covers ×1, or p ≥ 0.05)",
                   "numerator faster": f"{numerator} faster than {denominator}",
                   "numerator slower": f"{numerator} slower than {denominator}",
                   "too few pairs": f"too few pairs to tell (fewer than {MIN_PAIRS})"}[difference]
    elif n >= MIN_PAIRS and lo >= target:
        resolved, meets = True, True
        verdict = f"resolved: ≥ ×{target:.2f} (95% CI above it)"
    elif n >= MIN_PAIRS and hi < target:
        resolved, meets = True, False
        verdict = f"resolved: below ×{target:.2f} (95% CI under it)"
    else:
        resolved, meets = False, None
        verdict = f"unresolved{unresolved_why}: the 95% CI spans ×{target:.2f}" if n >= MIN_PAIRS else \
            f"unresolved{unresolved_why}: fewer than {MIN_PAIRS} pairs"
    return PairedComparison(numerator=numerator, denominator=denominator, ratio=ratio, ci_low=lo, ci_high=hi,
                            half_width=half, mean_ratio=mean, median_ratio=median, pairs=n, p_value=p,
                            difference=difference, target=target, resolved=resolved, meets_target=meets, verdict=verdict)


def compare_all(rounds, comparisons, level=0.95, why="") -> List[PairedComparison]:
    return [compare_pairs(pair_ratios(rounds, num, den), num, den, target, level=level, unresolved_why=why)
            for num, den, target in comparisons]


def _stop_reason(r: int, comps: Optional[List[PairedComparison]], st: PairedSettings, elapsed: float,
                 next_s: float) -> Optional[str]:
    if comps is not None and r >= st.min_rounds and \
            all(c.half_width is not None and c.half_width <= st.precision for c in comps):
        return "precision"
    if st.max_rounds is not None and r >= st.max_rounds:
        return "rounds"
    if elapsed + next_s > st.budget_s:
        return "budget"
    return None


STOP_WHY = {"precision": "", "budget": " at budget", "rounds": " at the round limit"}


def run_rounds(loops: Dict[str, BlockLoop], comparisons: Sequence[Tuple[str, str, Optional[float]]],
               settings: PairedSettings, clock: Callable[[], float] = time.perf_counter,
               on_round: Optional[Callable[[PairedRound, List[PairedComparison]], None]] = None,
               on_segment: Optional[Callable[[int], None]] = None) -> PairedRun:
    """Palindromic rounds over `loops` until the stop rule (module doc) ends
    them. `comparisons`: (numerator, denominator, target or None).
    `on_round` sees each round and the comparisons as last computed (none
    before `min_rounds`; then after every round while they are few, later
    after every 5 % more rounds, since bootstrapping many pairs takes tens
    of ms); `on_segment(k)` runs after segment k's loops have finished (the
    caller may save), for every segment but the last: the caller has the
    whole run then."""
    names = list(loops)
    lanes = [n for n in names if getattr(loops[n], "lanes", None) is not None]
    st = settings.model_copy(update={"lanes": lanes, "lane_settle": settings.settle
                                     if lanes and settings.lane_settle is None else settings.lane_settle})
    per_token_block = st.settle + st.block
    segment_tokens = st.rounds_per_segment * 2 * per_token_block
    t_start = clock()
    rounds: List[PairedRound] = []
    restart_s = 0.0
    stop = None
    comps: List[PairedComparison] = []
    r, next_check = 0, st.min_rounds
    while stop is None:
        segment, first = divmod(r, st.rounds_per_segment)
        if first == 0:
            t = clock()
            if r:
                _finish(loops, names, on_segment, segment - 1)
            for name in names:
                loops[name].restart(segment_tokens)
            restart_s = clock() - t
            prev = None  # every loop's first block after a restart settles
        t_round = clock()
        order = palindrome(names, r)
        seconds = []
        for name in order:
            settle = (0 if name == prev else st.lane_settle) if name in st.lanes else st.settle
            seconds.append(loops[name].block(settle, st.block))
            prev = name
        rounds.append(PairedRound(round=r, segment=segment, t_s=t_round - t_start, order=order, seconds=seconds,
                                  tokens=st.block))
        round_s = clock() - t_round
        r += 1
        fresh = None
        if r >= next_check:
            comps = fresh = compare_all(rounds, comparisons, st.level)
            next_check = r + max(1, r // 20)
        if on_round:
            on_round(rounds[-1], comps)
        next_s = round_s + (restart_s if r % st.rounds_per_segment == 0 else 0.0)
        stop = _stop_reason(r, fresh, st, clock() - t_start, next_s)
    _finish(loops, names, None, rounds[-1].segment)
    comps = compare_all(rounds, comparisons, st.level, STOP_WHY[stop])
    return PairedRun(settings=st, loops=names, rounds=rounds, comparisons=comps, elapsed_s=clock() - t_start,
                     stop=stop, method=st.method())


def partial_run(settings: PairedSettings, loops: Sequence[str], rounds: List[PairedRound],
                comparisons) -> PairedRun:
    """The rounds so far as a run, for a result saved while measuring."""
    return PairedRun(settings=settings, loops=list(loops), rounds=rounds,
                     comparisons=compare_all(rounds, comparisons, settings.level),
                     elapsed_s=rounds[-1].t_s + sum(rounds[-1].seconds) if rounds else 0.0,
                     stop="partial", method=settings.method())


def _finish(loops, names, on_segment, segment):
    for name in names:
        loops[name].finish()
    if on_segment:
        on_segment(segment)


def stop_sentence(run: PairedRun) -> str:
    st = run.settings
    return stopped(f"{len(run.rounds)} rounds in {run.elapsed_s:.1f} s", run.stop,
                   {"precision": f"every 95% CI is within ±{st.precision:.1%}",
                    "budget": f"the next round would pass the {st.budget_s:g} s budget",
                    "rounds": f"--rounds {st.max_rounds} were run"}, " (saved while measuring)")


def stopped(head: str, stop: str, why: Dict[str, str], partial_tail: str = "") -> str:
    """'<head>; stopped because <why[stop]>', or 'partial: <head> so far' for a run still measuring."""
    if stop == "partial":
        return f"partial: {head} so far{partial_tail}"
    return f"{head}; stopped because {why[stop]}"
