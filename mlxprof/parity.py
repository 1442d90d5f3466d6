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

from typing import Dict, List, Optional, Sequence

from pydantic import BaseModel

from . import paired, stats
from .alternating import AlternatingSettings, run_alternating
from .errors import InputError, OutputError
from .paired import PairedRun
from .parity_loops import alternating_decode, make_loops
from .results import ModelIdentity, Result

DEFAULT_BUDGET_S = 120.0
DEFAULT_BLOCK = 8  # short blocks pair closest in time; see paired.py
SETTLE = 2  # deliveries at a block's start left out: the token in flight, and the one after it
PRECISION = 0.005  # stop when every 95% CI is within ±0.5 %
MIN_ROUNDS = 12  # a bootstrap CI of fewer pairs runs narrow (tests: simulated hosts)
MIN_TOKEN_PAIRS = 100  # per-token alternation: no stop on precision before this many pairs
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


class LoopRun(BaseModel):
    loop: str
    round: int  # paired results: the segment (fresh prefill) these ids come from
    tok_s: float
    token_ids: List[int]
    finite: Optional[bool] = None  # decode.logits_finite after the segment (None: not checked)


def loop_runs(loops: Dict[str, object], run: paired.PairedRun) -> List[LoopRun]:
    """Each loop's finished segments: tok/s over its measured blocks, and its ids."""
    out = []
    for name, loop in loops.items():
        rates = run.segment_tok_s(name) if run.rounds else []
        finite = getattr(loop, "finite", [])  # the library's generator is not checked
        out += [LoopRun(loop=name, round=k, tok_s=rate, token_ids=ids, finite=finite[k] if k < len(finite) else None)
                for k, (rate, ids) in enumerate(zip(rates, loop.segments))]
    return out


class TokenAgreement(BaseModel):
    reference: str  # loop whose first run is the reference
    match: bool
    compared: int  # token ids compared per run
    mismatches: List[str]  # "<loop> round <k>: first differs at token <i> (a vs b)"
    distinct_ids: int  # distinct ids in the reference: 1 means a weak check
    nonfinite: List[str] = []  # runs or segments whose logits went NaN or inf (then match is False too)
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
        i = first_difference(ref.token_ids, r.token_ids)  # lanes of one cache decode more than a loop alone
        if i is not None:
            bad.append(f"{r.loop} round {r.round + 1}: first differs at token {i} "
                       f"({reference} {ref.token_ids[i]}, {r.loop} {r.token_ids[i]})")
    ref = first
    distinct = len(set(ref.token_ids))
    loops = sorted({r.loop for r in runs})
    if bad:
        sentence = _differ(bad, "loops")
        if "at token 0 " in bad[0]:
            # token 0 is the prefill's pick: the prompt was evaluated differently
            sentence += ("; token 0 comes from the prefill, so the loops evaluate the prompt differently "
                         "(the library's loop may prefill differently, e.g. mlx-vlm from "
                         "Model.get_input_embeddings, mlxprof from token ids)")
    else:
        lengths = {len(r.token_ids) for r in runs}
        sentence = (f"same greedy token ids in all {len(runs)} runs of {', '.join(loops)} "
                    f"({'' if len(lengths) == 1 else 'up to '}{max(lengths)} tokens each)")
        sentence += WEAK_CHECK if distinct == 1 else ""
    broken = [f"{r.loop} round {r.round + 1}" for r in runs if r.finite is False]
    return TokenAgreement(reference=reference, match=not bad and not broken, compared=len(ref.token_ids),
                          mismatches=bad, distinct_ids=distinct, nonfinite=broken,
                          sentence=sentence + nonfinite_clause(broken))


# said when every id in the reference is the same token: agreeing says little then
WEAK_CHECK = "; every id is the same token, so this is a weak check (synthetic weights?)"


def first_difference(ref: List[int], ids: List[int]) -> Optional[int]:
    """The first position where two id lists differ, over the ids both have (None: they agree there)."""
    return next((i for i, (a, b) in enumerate(zip(ref, ids)) if a != b), None)


def _differ(bad: List[str], between: str) -> str:
    return f"token ids DIFFER between {between}: {bad[0]}" + (f" (+{len(bad) - 1} more)" if len(bad) > 1 else "")


def nonfinite_clause(where: List[str]) -> str:
    """'; WARNING: …' naming where the logits went NaN or inf, or ''."""
    if not where:
        return ""
    return (f"; WARNING: NaN or inf log-probabilities after {', '.join(where)} (the model's arithmetic broke "
            "down there: its tok/s describe that computation)")


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
                     on_round=None, on_segment=None, lanes: bool = False, backend: Optional[str] = None,
                     progress=None):
    """The paired rounds: (PairedRun, [LoopRun]). Given the `backend`, a
    discarded priming run first (coldstart.Priming), so that a cold machine
    compiles its kernels before the time budget starts, not inside it (on an
    H100 with an empty kernel cache the first round of gemma3n-e2b-4bit came
    165 s in, past the 120 s budget)."""
    prime(loaded, ids, backend, progress)
    built = make_loops(loaded, loops, ids, settings.warmup, lanes)
    run = paired.run_rounds(built, comparisons_for(loops, loaded.library), pst, on_round=on_round,
                            on_segment=on_segment and (lambda k: on_segment(built, k)))
    return run, loop_runs(built, run)


def prime(loaded, ids, backend: Optional[str], progress=None):
    """A discarded priming run on `backend` (None: none), before a time budget starts."""
    if backend is not None:
        from .coldstart import Priming

        Priming(backend, progress).run(loaded, ids)


def alternating_settings(tokens: int, warmup: int, budget_s: Optional[float],
                         segments: Optional[int] = None) -> AlternatingSettings:
    if tokens < 2 or tokens % 2:
        raise InputError(f"--tokens must be an even number, at least 2, for per-token pairs, not {tokens}")
    if segments is not None and segments < 1:
        raise InputError(f"--segments must be at least 1, not {segments}")
    return AlternatingSettings(tokens=tokens, warmup=warmup,
                               budget_s=DEFAULT_BUDGET_S if budget_s is None else budget_s,
                               precision=PRECISION, min_pairs=MIN_TOKEN_PAIRS, max_segments=segments)


def run_alternating_loops(loaded, ids, st: AlternatingSettings, backend: Optional[str] = None, progress=None,
                          on_segment=None):
    """mlxprof's loop against the bare one, token by token on one decode
    (alternating.py), primed first: (AlternatingRun, TokenAgreement over
    the segments, which all decode the same prompt)."""
    prime(loaded, ids, backend, progress)
    decode, arms = alternating_decode(loaded, ids, st.warmup)
    run = run_alternating(decode, arms, TARGETS["bare"], st, on_segment=on_segment)
    return run, segment_agreement(decode.segments, decode.finite)


def segment_agreement(segments: List[List[int]], finite: Sequence[bool] = ()) -> TokenAgreement:
    """Every segment's greedy ids against the first's (over the ids both
    have), and the segments whose logits went NaN or inf (`finite`: per
    segment, decode.logits_finite after it)."""
    ref = segments[0] if segments else []
    bad = []
    for k, ids in enumerate(segments[1:], 2):
        i = first_difference(ref, ids)
        if i is not None:
            bad.append(f"segment {k}: first differs at token {i} (segment 1 {ref[i]}, segment {k} {ids[i]})")
    distinct = len(set(ref))
    if bad:
        sentence = _differ(bad, "segments")
    else:
        sentence = (f"same greedy token ids in all {len(segments)} segments "
                    f"(up to {max(map(len, segments), default=0)} tokens each)")
        sentence += WEAK_CHECK if distinct == 1 else ""
    broken = [f"segment {k}" for k, ok in enumerate(finite, 1) if not ok]
    sentence += nonfinite_clause(broken)
    return TokenAgreement(reference="segment 1", match=not bad and not broken, compared=len(ref), mismatches=bad,
                          distinct_ids=distinct, nonfinite=broken, sentence=sentence)


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

        run, runs = run_paired_loops(s.model, ids, settings, pst, loops, on_round, on_segment,
                                     backend=s.backend, progress=bar)
    return build_result(prov, s, settings, loops, run, runs)


def setup_lines(session, st: ParitySettings, pst, loops) -> str:
    """What a bench measures, on what: machine, backend, versions, model,
    method (`pst`: paired blocks' or per-token alternation's settings)."""
    ident, prov = session.identity, session.provenance()
    v = prov.versions
    return "\n".join([
        f"machine: {prov.chip} ({prov.backend} backend), {prov.platform}, python {prov.python}",
        f"versions: mlx {v.get('mlx')}, mlx-lm {v.get('mlx-lm')}, mlx-vlm {v.get('mlx-vlm')}, "
        f"mlxprof {v.get('mlxprof')}" + (f"; knobs {prov.knobs}" if prov.knobs else ""),
        f"model: {ident.name} ({ident.quantization}, {ident.weights} weights, {ident.dtype})",
        (f"loops: {', '.join(loops)}, taking turns token by token on one decode, in pairs of random order; "
         f"restart from a {st.prompt_tokens}-token prefill + {st.warmup} warm-up every {pst.tokens} tokens"
         if isinstance(pst, AlternatingSettings) else
         f"loops: {', '.join(loops)}; blocks of {pst.settle} + {pst.block} tokens; restart from a "
         f"{st.prompt_tokens}-token prefill + {st.warmup} warm-up every {pst.rounds_per_segment} rounds")
        + f"; budget {pst.budget_s:g} s, stop at ±{pst.precision:.1%}",
    ])


def median_line(name: str, xs: List[float]) -> str:
    s = stats.summarize(xs)
    return (f"{name:>8}: {s.median:8.2f} ± {s.mad:.2f} tok/s per round (median ± MAD, n={s.n}; "
            f"min {s.min:.2f}, max {s.max:.2f})")
