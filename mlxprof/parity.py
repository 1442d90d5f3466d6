"""Parity: mlxprof's instrumented loop against the library's own generation loop.

A profiler that slows what it measures, or measures a loop nobody runs, is
wrong. `mlxprof parity` runs, interleaved (A B A B …) on one model and prompt:

  mlxprof   decode.run_once: the lookahead loop with per-token timing
  mlx-lm    mlx_lm.generate.generate_step, greedy (models mlx-lm builds)
  mlx-vlm   mlx_vlm.generate.ar.generate_step, greedy (models mlx-vlm builds)

and `bench/parity.py` adds

  bare      the same lookahead loop as mlxprof's with no per-token timing

Every loop's tok/s is computed the same way: (T - 1) / (t_last - t_first)
over the T measured tokens after the same W warm-up tokens, each run from a
fresh cache and prefill, the clock read when the token is delivered (after
`.item()`, or when generate_step yields it). Both loops must produce the
same greedy token ids; a mismatch is reported, not raised.
"""

import time
from typing import Callable, Dict, List, Optional, Sequence

import mlx.core as mx
from pydantic import BaseModel

from . import decode as dec
from . import stats
from .errors import OutputError
from .results import ModelIdentity, Result

DEFAULT_ROUNDS = 5


def loops_for(loaded, bench: bool = False) -> tuple:
    """mlxprof against the loop of the library that built the model (`bare`,
    the loop without per-token timing, for bench/parity.py)."""
    return ("mlxprof", "bare", loaded.library) if bench else ("mlxprof", loaded.library)


def _window(t_first: float, t_last: float, tokens: int) -> float:
    span = t_last - t_first
    return (tokens - 1) / span if span > 0 else float("nan")


def run_mlxprof(loaded, prompt_ids, warmup, tokens, stream):
    """mlxprof's instrumented loop (the one `mlxprof decode` measures)."""
    rec = dec.run_once(loaded, prompt_ids, warmup, tokens, stream=stream)
    return rec.tok_s, rec.token_ids


def run_bare(loaded, prompt_ids, warmup, tokens, stream):
    """decode.run_once's lookahead loop with the per-token clock reads and
    bookkeeping removed: the clock is read at two deliveries only."""
    step = dec.make_step(loaded, loaded.make_cache(), stream or mx.new_stream(mx.default_device()))
    total = warmup + tokens
    last = total - 1
    ids = [0] * total
    perf = time.perf_counter
    t_first = t_last = 0.0
    y, logprobs = step(mx.array([prompt_ids]))
    mx.eval(y)
    for n in range(total):
        next_y, next_lp = step(y[:, None])
        mx.async_eval(next_y, next_lp)
        ids[n] = y.item()
        if n == warmup:
            t_first = perf()
        elif n == last:
            t_last = perf()
        y, logprobs = next_y, next_lp
    mx.eval(y)
    return _window(t_first, t_last, tokens), ids


def _timed_generator(gen, warmup: int, tokens: int):
    """tok/s and ids of a library's generator, clock read as each token is yielded."""
    total = warmup + tokens
    last = total - 1
    ids = [0] * total
    perf = time.perf_counter
    t_first = t_last = 0.0
    for n, (tok, _) in enumerate(gen):
        ids[n] = int(tok)
        if n == warmup:
            t_first = perf()
        elif n == last:
            t_last = perf()
    mx.synchronize()  # generate_step leaves its last lookahead step in flight
    return _window(t_first, t_last, tokens), ids


def run_mlx_vlm(loaded, prompt_ids, warmup, tokens, stream=None):
    """mlx-vlm's own loop, greedy, timed at yield. It runs on mlx-vlm's
    generation stream (stream is ignored) with its own cache and prefill."""
    from mlx_vlm.generate.ar import generate_step

    gen = generate_step(mx.array([prompt_ids]), loaded.model, None, None,
                        max_tokens=warmup + tokens, temperature=0.0)
    return _timed_generator(gen, warmup, tokens)


def run_mlx_lm(loaded, prompt_ids, warmup, tokens, stream=None):
    """mlx-lm's own loop, greedy (its default sampler), timed at yield, on
    mlx-lm's generation stream with its own cache and chunked prefill."""
    from mlx_lm.generate import generate_step

    return _timed_generator(generate_step(mx.array(prompt_ids), loaded.model, max_tokens=warmup + tokens),
                            warmup, tokens)


def bookkeeping_s(n: int = 200_000) -> float:
    """Seconds per token that run_once's timing adds over the bare loop,
    timed in isolation (4 clock reads, 5 list stores, minus an empty loop):
    a noise-free bound to set beside the interleaved mlxprof / bare ratio."""
    perf = time.perf_counter
    b, s, w, d, st = ([0.0] * n for _ in range(5))
    t = perf()
    for i in range(n):
        t_a = perf()
        t_b = perf()
        t_c = perf()
        t_d = perf()
        b[i], s[i], w[i], d[i], st[i] = t_b - t_a, t_c - t_b, t_d - t_c, t_d, t_a
    timed = perf() - t
    t = perf()
    for i in range(n):
        pass
    return max(0.0, (timed - (perf() - t)) / n)


RUNNERS: Dict[str, Callable] = {"mlxprof": run_mlxprof, "bare": run_bare, "mlx-lm": run_mlx_lm,
                                 "mlx-vlm": run_mlx_vlm}


class LoopRun(BaseModel):
    loop: str
    round: int
    tok_s: float
    token_ids: List[int]


def interleaved_runs(loaded, prompt_ids: List[int], rounds: int, warmup: int, tokens: int,
            loops: Sequence[str] = ("mlxprof", "mlx-vlm"),
            on_run: Optional[Callable[[LoopRun], None]] = None, prime: bool = True) -> List[LoopRun]:
    """rounds × loops runs in interleaved, rotated order (stats.interleave).
    With `prime`, each loop first runs once unmeasured (2 warm-up + 2 tokens):
    the first run in a process pays one-time costs (kernel compilation,
    allocator growth) that would otherwise land on whichever loop runs first."""
    stream = mx.new_stream(mx.default_device())
    if prime:
        for name in loops:
            RUNNERS[name](loaded, prompt_ids, min(warmup, 2), 2, stream)
    seen: Dict[str, int] = {}
    out = []
    for name in stats.interleave(list(loops), rounds):
        tok_s, ids = RUNNERS[name](loaded, prompt_ids, warmup, tokens, stream)
        run = LoopRun(loop=name, round=seen.get(name, 0), tok_s=tok_s, token_ids=ids)
        seen[name] = run.round + 1
        out.append(run)
        if on_run:
            on_run(run)
    return out


def samples(runs: List[LoopRun]) -> Dict[str, List[float]]:
    out: Dict[str, List[float]] = {}
    for r in runs:
        out.setdefault(r.loop, []).append(r.tok_s)
    return out


class TokenAgreement(BaseModel):
    reference: str  # loop whose first run is the reference
    match: bool
    compared: int  # token ids compared per run
    mismatches: List[str]  # "<loop> round <k>: first differs at token <i> (a vs b)"
    distinct_ids: int  # distinct ids in the reference: 1 means a weak check
    sentence: str


def token_agreement(runs: List[LoopRun], reference: str = "mlxprof") -> TokenAgreement:
    """Every run of every loop against the reference loop's first run."""
    ref = next(r for r in runs if r.loop == reference)
    bad = []
    for r in runs:
        if r.token_ids == ref.token_ids:
            continue
        i = next((k for k, (a, b) in enumerate(zip(ref.token_ids, r.token_ids)) if a != b),
                 min(len(ref.token_ids), len(r.token_ids)))
        a = ref.token_ids[i] if i < len(ref.token_ids) else "end"
        b = r.token_ids[i] if i < len(r.token_ids) else "end"
        bad.append(f"{r.loop} round {r.round + 1}: first differs at token {i} ({reference} {a}, {r.loop} {b})")
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
        sentence = (f"same greedy token ids in all {len(runs)} runs of {', '.join(loops)} "
                    f"({len(ref.token_ids)} tokens each)")
        if distinct == 1:
            sentence += "; every id is the same token, so this is a weak check (synthetic weights?)"
    return TokenAgreement(reference=reference, match=not bad, compared=len(ref.token_ids),
                          mismatches=bad, distinct_ids=distinct, sentence=sentence)


class ParitySettings(BaseModel):
    rounds: int
    warmup: int
    tokens: int
    prompt_tokens: int
    prompt: Optional[str] = None
    dtype: str
    primed: bool = True  # each loop ran once, unmeasured, before round 1
    reduced: List[str] = []


class ParityResult(Result):
    kind: str = "parity"
    model: ModelIdentity
    settings: ParitySettings
    order: List[str]
    tok_s: Dict[str, stats.Summary]
    comparison: stats.Comparison  # candidate mlxprof vs baseline: the library's loop (mlx-lm or mlx-vlm)
    tokens: TokenAgreement
    runs: List[LoopRun]
    notes: List[str] = []


def summarize(runs: List[LoopRun], library: str):
    by = samples(runs)
    return ({k: stats.summarize(v) for k, v in by.items()},
            stats.compare(by[library], by["mlxprof"], names=(library, "mlxprof")),
            token_agreement(runs))


def prepare_parity(model, weights="auto", dtype=None, rounds=None, warmup=None, tokens=None,
                   prompt_tokens=None, prompt=None, json_path=None):
    """Validate, open the model, plan counts: (session, settings, ids)."""
    from .session import open_session

    s = open_session(model, weights, dtype, outputs=(json_path,),
                     counts=dict(rounds=rounds, warmup=warmup, tokens=tokens, prompt_tokens=prompt_tokens))
    plan = s.plan(rounds or DEFAULT_ROUNDS, warmup, tokens, prompt_tokens, prompt)
    ids = s.prompt(plan.prompt_tokens, prompt)
    settings = ParitySettings(rounds=plan.runs, warmup=plan.warmup, tokens=plan.tokens, prompt_tokens=len(ids),
                              prompt=prompt, dtype=plan.dtype, reduced=plan.reduced)
    return s, settings, ids


def parity(model: str, weights: str = "auto", dtype: Optional[str] = None, rounds: Optional[int] = None,
           warmup: Optional[int] = None, tokens: Optional[int] = None, prompt_tokens: Optional[int] = None,
           prompt: Optional[str] = None, json_path: Optional[str] = None, progress: bool = False,
           command: Optional[str] = None) -> ParityResult:
    from . import results
    from .progress import Progress

    s, settings, ids = prepare_parity(model, weights, dtype, rounds, warmup, tokens, prompt_tokens, prompt,
                                      json_path)
    prov = s.provenance(command)
    loops = loops_for(s.model)
    order = stats.interleave(list(loops), settings.rounds)
    done: List[LoopRun] = []
    failed: List[Exception] = []

    def build_result(partial):
        tok, cmp, agree = summarize(done, s.model.library)
        notes = list(s.notes)
        if partial:
            notes.append(f"partial: {len(done)} of {len(order)} runs finished")
        return ParityResult(provenance=prov, model=s.identity, settings=settings, order=order, tok_s=tok,
                            comparison=cmp, tokens=agree, runs=list(done), notes=notes)

    def on_run(run):
        done.append(run)
        if json_path and len(done) % len(loops) == 0 and not failed:
            try:
                results.save(build_result(partial=len(done) < len(order)), json_path)
            except OutputError as e:  # keep measuring; the caller's final save says where it went
                failed.append(e)

    with Progress(progress, len(order), "parity") as bar:
        interleaved_runs(s.model, ids, settings.rounds, settings.warmup, settings.tokens, loops,
                on_run=lambda r: (on_run(r), bar.advance(f"{r.loop} {r.tok_s:.1f} tok/s")))
    return build_result(partial=False)


def ratio_line(num: str, den: str, by: Dict[str, List[float]], target: Optional[float] = None) -> str:
    """`num / den: ×r (95% CI lo–hi, p)` and, with a target, whether it is met."""
    c = stats.compare(by[den], by[num], names=(den, num))
    line = f"{num} / {den}: ×{c.ratio:.3f} (95% CI {c.ci_low:.3f}–{c.ci_high:.3f}, p={c.p_value:.2g})"
    if target is not None:
        if c.ci_low >= target:
            met = "met (95% CI above the target)"
        elif c.ci_high < target:
            met = "NOT met (95% CI below the target)"
        else:
            side = "above" if c.ratio >= target else "below"
            met = (f"unresolved: the 95% CI spans the target (median ratio {side} it); "
                   "needs more rounds or a quieter machine")
        line += f"   target ≥ {target:.2f}: {met}"
    return line


def median_line(name: str, xs: List[float]) -> str:
    s = stats.summarize(xs)
    return f"{name:>8}: {s.median:8.2f} ± {s.mad:.2f} tok/s (median ± MAD, n={s.n}; min {s.min:.2f}, max {s.max:.2f})"
