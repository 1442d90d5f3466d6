"""Parity: mlxprof's instrumented loop against the library's own generation loop.

A profiler that slows what it measures, or measures a loop nobody runs, is
wrong. `mlxprof parity` compares, in one process, on one model and prompt:

  mlxprof   decode.run_once's loop: lookahead decode with per-token timing
  mlx-lm    mlx_lm.generate.generate_step, greedy (models mlx-lm builds)
  mlx-vlm   mlx_vlm.generate.ar.generate_step, greedy (models mlx-vlm builds)

and `bench/parity.py` adds

  bare      the same lookahead loop as mlxprof's with no per-token timing

The method is paired blocks (mlxprof/paired.py): every loop continues its own
cache in short blocks, in palindromic rounds, and each round gives one pair
ratio per comparison. Each loop's blocks are timed alike: two clock reads, at
the delivery ending the block's unmeasured start and at its last delivery
(after `.item()` for our loops, when generate_step yields for the library's).
Every segment of rounds starts all loops from a fresh cache and the same
prefill, and their greedy token ids must agree; a mismatch is reported, not
raised.
"""

import time
from typing import Dict, List, Optional, Sequence

import mlx.core as mx
from pydantic import BaseModel

from . import decode as dec
from . import paired, stats
from .errors import InputError, OutputError
from .paired import PairedRun
from .results import ModelIdentity, Result

DEFAULT_BUDGET_S = 120.0
DEFAULT_BLOCK = 8  # short blocks pair closest in time; see paired.py
SETTLE = 2  # deliveries at a block's start left out: the token in flight, and the one after it
PRECISION = 0.005  # stop when every 95% CI is within ±0.5 %
MIN_ROUNDS = 12  # a bootstrap CI of fewer pairs runs narrow (tests: simulated hosts)
TARGETS = {"bare": 0.99, "library": 0.98}  # mlxprof / bare ≥ 0.99, mlxprof / library ≥ 0.98


def loops_for(loaded, bench: bool = False) -> tuple:
    """mlxprof against the loop of the library that built the model (`bare`,
    the loop without per-token timing, for bench/parity.py)."""
    return ("mlxprof", "bare", loaded.library) if bench else ("mlxprof", loaded.library)


def comparisons_for(loops: Sequence[str], library: str) -> list:
    """(numerator, denominator, target): mlxprof against each other loop, and
    bare against the library when both run."""
    out = [("mlxprof", name, TARGETS["bare" if name == "bare" else "library"]) for name in loops if name != "mlxprof"]
    if "bare" in loops and library in loops:
        out.append(("bare", library, None))
    return out


class StepLoop:
    """decode.run_once's loop, a block at a time: the same step and the same
    per-token timing (decode.timed_tokens), continuing one cache."""

    def __init__(self, loaded, prompt_ids: List[int], warmup: int, stream=None):
        self.loaded, self.prompt_ids, self.warmup = loaded, list(prompt_ids), warmup
        self.stream = stream or mx.new_stream(mx.default_device())
        self.segments: List[List[int]] = []  # the greedy ids of each finished segment
        self.y = None

    def make_step(self, cache):
        return dec.make_step(self.loaded, cache, self.stream)

    def restart(self, tokens: int):
        self.step = self.make_step(self.loaded.make_cache())
        self.times = dec.TokenTimes(self.warmup + tokens)
        self.n = 0
        y, _ = self.step(mx.array([self.prompt_ids]))
        mx.eval(y)
        self.y = y
        self.run(self.warmup)

    def run(self, k: int):
        self.y = dec.timed_tokens(self.step, self.y, self.times, self.n, self.n + k)
        self.n += k

    def block(self, settle: int, tokens: int) -> float:
        return two_reads(self.run, settle, tokens)

    def finish(self):
        mx.eval(self.y)  # drain the lookahead step in flight
        self.segments.append(self.times.ids[: self.n])


def bare_tokens(step, y, ids: List[int], lo: int, hi: int):
    """timed_tokens' loop without its clock reads and stores."""
    for n in range(lo, hi):
        next_y, next_lp = step(y)
        mx.async_eval(next_y, next_lp)
        ids[n] = y.item()
        y, logprobs = next_y, next_lp  # logprobs held one token, as timed_tokens and generate_step hold them
    return y


def two_reads(run, settle: int, tokens: int) -> float:
    """A block timed by two clock reads: after `settle` tokens and after the rest."""
    run(settle)
    t0 = time.perf_counter()
    run(tokens)
    return time.perf_counter() - t0


class BareLoop(StepLoop):
    """The same loop and step as StepLoop, the clock read twice per block."""

    def run(self, k: int):
        self.y = _bare(self.step, self.y, self.times, self.n, self.n + k)
        self.n += k


class Lanes:
    """One StepLoop's cache, stream and token record, advanced in turn by
    several loops (its lanes) that run the same step, each with its own token
    loop: mlxprof's (timed_tokens) and the bare one. Their blocks then follow
    each other with nothing switched, so a pair of blocks is token-adjacent
    (paired.py: lanes run no settle tokens after a block of their cache).
    paired.run_rounds restarts and finishes every loop at once, so the first
    lane's restart or finish of a segment does the work for all."""

    def __init__(self, loaded, prompt_ids: List[int], warmup: int, count: int):
        self.core = StepLoop(loaded, prompt_ids, warmup)
        self.count, self.restarts, self.finishes = count, 0, 0

    def restart(self, tokens: int):
        if self.restarts % self.count == 0:
            self.core.restart(tokens * self.count)  # every lane's tokens land in the one record
        self.restarts += 1

    def finish(self):
        if self.finishes % self.count == 0:
            self.core.finish()
        self.finishes += 1


def _bare(step, y, times, lo, hi):
    """bare_tokens with timed_tokens' arguments: the ids go into times.ids."""
    return bare_tokens(step, y, times.ids, lo, hi)


class LaneLoop:
    """A lane of `lanes`: `tokens_fn` (timed_tokens' or bare_tokens' loop)
    advancing the shared cache; every block timed by two clock reads."""

    def __init__(self, lanes: Lanes, tokens_fn):
        self.lanes, self.tokens_fn = lanes, tokens_fn

    @property
    def segments(self):
        return self.lanes.core.segments  # one decode: the lanes' ids interleave in it

    def restart(self, tokens: int):
        self.lanes.restart(tokens)

    def run(self, k: int):
        c = self.lanes.core
        c.y = self.tokens_fn(c.step, c.y, c.times, c.n, c.n + k)
        c.n += k

    def block(self, settle: int, tokens: int) -> float:
        return two_reads(self.run, settle, tokens)

    def finish(self):
        self.lanes.finish()


class GeneratorLoop:
    """A library's generate_step, advanced a block at a time; it runs on the
    library's own stream with its own cache and prefill."""

    def __init__(self, loaded, prompt_ids: List[int], warmup: int, library: str):
        self.loaded, self.prompt_ids, self.warmup, self.library = loaded, list(prompt_ids), warmup, library
        self.segments: List[List[int]] = []
        self.gen = None

    def _generator(self, max_tokens: int):
        if self.library == "mlx-lm":
            from mlx_lm.generate import generate_step

            return generate_step(mx.array(self.prompt_ids), self.loaded.model, max_tokens=max_tokens)
        from mlx_vlm.generate.ar import generate_step

        return generate_step(mx.array([self.prompt_ids]), self.loaded.model, None, None,
                             max_tokens=max_tokens, temperature=0.0)

    def restart(self, tokens: int):
        self.ids = [0] * (self.warmup + tokens)
        self.n = 0
        self.gen = self._generator(self.warmup + tokens + 1)  # never ends inside a block
        self.run(self.warmup)

    def run(self, k: int):
        gen, ids = self.gen, self.ids
        for n in range(self.n, self.n + k):
            ids[n] = next(gen)[0]
        self.n += k

    def block(self, settle: int, tokens: int) -> float:
        return two_reads(self.run, settle, tokens)

    def finish(self):
        self.gen.close()
        mx.synchronize()  # the step it left in flight (mlx-vlm slices y on the default stream)
        if self.library == "mlx-lm":
            from mlx_lm.generate import generation_stream
        else:
            from mlx_vlm.generate.ar import generation_stream
        mx.synchronize(generation_stream)
        self.segments.append(self.ids[: self.n])


def make_loops(loaded, names: Sequence[str], prompt_ids: List[int], warmup: int,
               lanes: bool = False) -> Dict[str, object]:
    """The loops by name; with `lanes`, mlxprof and bare as lanes of one cache."""
    if lanes and {"mlxprof", "bare"} <= set(names):
        shared = Lanes(loaded, prompt_ids, warmup, 2)
        fns = {"mlxprof": dec.timed_tokens, "bare": _bare}
        return {name: LaneLoop(shared, fns[name]) if name in fns else GeneratorLoop(loaded, prompt_ids, warmup, name)
                for name in names}
    kinds = {"mlxprof": StepLoop, "bare": BareLoop}
    return {name: kinds[name](loaded, prompt_ids, warmup) if name in kinds
            else GeneratorLoop(loaded, prompt_ids, warmup, name) for name in names}


def bookkeeping_s(n: int = 200_000, repeats: int = 5) -> float:
    """Seconds per token that run_once's timing adds over the bare loop,
    timed in isolation (4 clock reads, 5 list stores, minus an empty loop):
    a noise-free bound to set beside the paired mlxprof / bare ratio. Each
    loop's fastest of `repeats` passes: a pass the OS interrupted is slower."""
    perf = time.perf_counter
    m = max(1, n // repeats)
    b, s, w, d, st = ([0.0] * m for _ in range(5))
    timed, empty = [], []
    for _ in range(repeats):
        t = perf()
        for i in range(m):
            t_a = perf()
            t_b = perf()
            t_c = perf()
            t_d = perf()
            b[i], s[i], w[i], d[i], st[i] = t_b - t_a, t_c - t_b, t_d - t_c, t_d, t_a
        timed.append(perf() - t)
        t = perf()
        for i in range(m):
            pass
        empty.append(perf() - t)
    return max(0.0, (min(timed) - min(empty)) / m)


class LoopRun(BaseModel):
    loop: str
    round: int  # paired results: the segment (fresh prefill) these ids come from
    tok_s: float
    token_ids: List[int]


def loop_runs(loops: Dict[str, object], run: paired.PairedRun) -> List[LoopRun]:
    """Each loop's finished segments: tok/s over its measured blocks, and its ids."""
    out = []
    for name, loop in loops.items():
        rates = run.segment_tok_s(name) if run.rounds else []
        out += [LoopRun(loop=name, round=k, tok_s=rate, token_ids=ids)
                for k, (rate, ids) in enumerate(zip(rates, loop.segments))]
    return out


class TokenAgreement(BaseModel):
    reference: str  # loop whose first run is the reference
    match: bool
    compared: int  # token ids compared per run
    mismatches: List[str]  # "<loop> round <k>: first differs at token <i> (a vs b)"
    distinct_ids: int  # distinct ids in the reference: 1 means a weak check
    sentence: str


def token_agreement(runs: List[LoopRun], reference: str = "mlxprof") -> TokenAgreement:
    """Every run of every loop against the reference loop's run of the same
    round (paired results: segment), or its first run where it has none."""
    refs = {}
    for r in runs:
        if r.loop == reference:
            refs.setdefault(r.round, r)
    first = next(r for r in runs if r.loop == reference)
    bad = []
    for r in runs:
        ref = refs.get(r.round, first)
        m = min(len(r.token_ids), len(ref.token_ids))  # lanes of one cache decode more than a loop alone
        if r.token_ids[:m] == ref.token_ids[:m]:
            continue
        i = next((k for k, (a, b) in enumerate(zip(ref.token_ids, r.token_ids)) if a != b),
                 min(len(ref.token_ids), len(r.token_ids)))
        a = ref.token_ids[i] if i < len(ref.token_ids) else "end"
        b = r.token_ids[i] if i < len(r.token_ids) else "end"
        bad.append(f"{r.loop} round {r.round + 1}: first differs at token {i} ({reference} {a}, {r.loop} {b})")
    ref = first
    distinct = len(set(ref.token_ids))
    loops = sorted({r.loop for r in runs})
    if bad:
        sentence = f"token ids DIFFER between loops: {bad[0]}" + (f" (+{len(bad) - 1} more)" if len(bad) > 1 else "")
        if "at token 0 " in bad[0]:
            # token 0 is the prefill's pick: the prompt was evaluated differently
            sentence += ("; token 0 comes from the prefill, so the loops evaluate the prompt differently "
                         "(the library's loop may prefill differently, e.g. mlx-vlm from "
                         "Model.get_input_embeddings, mlxprof from token ids)")
    else:
        lengths = {len(r.token_ids) for r in runs}
        sentence = (f"same greedy token ids in all {len(runs)} runs of {', '.join(loops)} "
                    f"({'' if len(lengths) == 1 else 'up to '}{max(lengths)} tokens each)")
        if distinct == 1:
            sentence += "; every id is the same token, so this is a weak check (synthetic weights?)"
    return TokenAgreement(reference=reference, match=not bad, compared=len(ref.token_ids),
                          mismatches=bad, distinct_ids=distinct, sentence=sentence)


class ParitySettings(BaseModel):
    rounds: Optional[int] = None  # interleaved results: rounds run; paired: the --rounds cap (None: none)
    warmup: int  # paired: untimed tokens after each prefill
    tokens: int  # paired: tokens each loop decodes per segment, between fresh prefills
    prompt_tokens: int
    prompt: Optional[str] = None
    dtype: str
    primed: bool = True  # interleaved results: each loop ran once, unmeasured, before round 1
    reduced: List[str] = []


class ParityResult(Result):
    """Results before the paired method hold interleaved whole runs and a
    `comparison`; paired results hold `paired` instead (comparison None)."""

    kind: str = "parity"
    model: ModelIdentity
    settings: ParitySettings
    order: List[str]  # interleaved: the run order; paired: the loops
    tok_s: Dict[str, stats.Summary]  # interleaved: per run; paired: per round
    comparison: Optional[stats.Comparison] = None  # interleaved: mlxprof vs the library's loop
    paired: Optional[PairedRun] = None
    tokens: TokenAgreement
    runs: List[LoopRun]  # paired: one per loop and segment
    notes: List[str] = []


def paired_settings(block: Optional[int], tokens: int, budget_s: Optional[float], rounds: Optional[int]):
    """Block and segment sizes from --block/--tokens: a segment holds as many
    rounds (2 blocks of SETTLE + block tokens per loop) as fit in `tokens`,
    at least one; the default block shrinks to fit a small --tokens."""
    if block is None:
        block = min(DEFAULT_BLOCK, max(1, tokens // 2 - SETTLE))
    elif 2 * (SETTLE + block) > tokens:
        raise InputError(f"--block {block} needs --tokens ≥ {2 * (SETTLE + block)} (a round decodes 2 blocks "
                         f"of {SETTLE} + {block} tokens per loop), not {tokens}")
    per_segment = max(1, tokens // (2 * (SETTLE + block)))
    return paired.PairedSettings(block=block, settle=SETTLE, rounds_per_segment=per_segment,
                                 budget_s=DEFAULT_BUDGET_S if budget_s is None else budget_s,
                                 precision=PRECISION, min_rounds=MIN_ROUNDS, max_rounds=rounds)


def prepare_parity(model, weights="auto", dtype=None, rounds=None, warmup=None, tokens=None,
                   prompt_tokens=None, prompt=None, json_path=None, block=None, budget=None):
    """Validate, open the model, plan counts: (session, settings, paired settings, ids)."""
    from .session import open_session

    if budget is not None and not budget > 0:
        raise InputError(f"--budget must be a positive number of seconds, not {budget}")
    s = open_session(model, weights, dtype, outputs=(json_path,),
                     counts=dict(rounds=rounds, warmup=warmup, tokens=tokens, prompt_tokens=prompt_tokens,
                                 block=block))
    plan = s.plan(None, warmup, tokens, prompt_tokens, prompt)
    ids = s.prompt(plan.prompt_tokens, prompt)
    settings = ParitySettings(rounds=rounds, warmup=plan.warmup, tokens=plan.tokens, prompt_tokens=len(ids),
                              prompt=prompt, dtype=plan.dtype, reduced=plan.reduced)
    return s, settings, paired_settings(block, plan.tokens, budget, rounds), ids


def run_paired_loops(loaded, ids, settings: ParitySettings, pst: paired.PairedSettings, loops: Sequence[str],
                     on_round=None, on_segment=None, lanes: bool = False):
    """The paired rounds: (PairedRun, [LoopRun])."""
    built = make_loops(loaded, loops, ids, settings.warmup, lanes)
    run = paired.run_rounds(built, comparisons_for(loops, loaded.library), pst, on_round=on_round,
                            on_segment=on_segment and (lambda k: on_segment(built, k)))
    return run, loop_runs(built, run)


def build_result(prov, session, settings, loops, run: paired.PairedRun, runs):
    tok = {name: stats.summarize(run.tok_s(name)) for name in loops if run.rounds}
    notes = list(session.notes) + [f"method: {run.method}", paired.stop_sentence(run)]
    return ParityResult(provenance=prov, model=session.identity, settings=settings, order=list(loops), tok_s=tok,
                        paired=run, tokens=token_agreement(runs), runs=runs, notes=notes)


def parity(model: str, weights: str = "auto", dtype: Optional[str] = None, rounds: Optional[int] = None,
           warmup: Optional[int] = None, tokens: Optional[int] = None, prompt_tokens: Optional[int] = None,
           prompt: Optional[str] = None, json_path: Optional[str] = None, progress: bool = False,
           command: Optional[str] = None, block: Optional[int] = None,
           budget: Optional[float] = None) -> ParityResult:
    from . import results
    from .progress import Progress

    s, settings, pst, ids = prepare_parity(model, weights, dtype, rounds, warmup, tokens, prompt_tokens, prompt,
                                           json_path, block, budget)
    prov = s.provenance(command)
    loops = loops_for(s.model)
    seen: List[paired.PairedRound] = []
    failed: List[OutputError] = []

    def on_segment(built, k):  # save what the finished segments hold; keep measuring if that fails
        if json_path and not failed:
            run = paired.partial_run(pst, loops, [r for r in seen if r.segment <= k],
                                     comparisons_for(loops, s.model.library))
            try:
                results.save(build_result(prov, s, settings, loops, run, loop_runs(built, run)), json_path)
            except OutputError as e:
                failed.append(e)

    with Progress(progress, int(pst.budget_s), "parity") as bar:
        def on_round(rnd, comps):
            done = rnd.t_s + sum(rnd.seconds) - (seen[-1].t_s + sum(seen[-1].seconds) if seen else 0.0)
            seen.append(rnd)
            c = comps[0] if comps and comps[0].half_width is not None else None
            bar.advance(f"parity round {rnd.round + 1}" + (f": {c.numerator}/{c.denominator} ×{c.ratio:.3f} "
                        f"±{c.half_width:.1%}" if c else ""), steps=max(0.0, done))

        run, runs = run_paired_loops(s.model, ids, settings, pst, loops, on_round, on_segment)
    return build_result(prov, s, settings, loops, run, runs)


def setup_lines(session, st: ParitySettings, pst: paired.PairedSettings, loops) -> str:
    """What a bench measures, on what: machine, backend, versions, model, method."""
    ident, prov = session.identity, session.provenance()
    v = prov.versions
    return "\n".join([
        f"machine: {prov.chip} ({prov.backend} backend), {prov.platform}, python {prov.python}",
        f"versions: mlx {v.get('mlx')}, mlx-lm {v.get('mlx-lm')}, mlx-vlm {v.get('mlx-vlm')}, "
        f"mlxprof {v.get('mlxprof')}" + (f"; knobs {prov.knobs}" if prov.knobs else ""),
        f"model: {ident.name} ({ident.quantization}, {ident.weights} weights, {ident.dtype})",
        f"loops: {', '.join(loops)}; blocks of {pst.settle} + {pst.block} tokens; restart from a "
        f"{st.prompt_tokens}-token prefill + {st.warmup} warm-up every {pst.rounds_per_segment} rounds; "
        f"budget {pst.budget_s:g} s, stop at ±{pst.precision:.1%}",
    ])


def median_line(name: str, xs: List[float]) -> str:
    s = stats.summarize(xs)
    return (f"{name:>8}: {s.median:8.2f} ± {s.mad:.2f} tok/s per round (median ± MAD, n={s.n}; "
            f"min {s.min:.2f}, max {s.max:.2f})")
