"""The pipelined decode loop with per-token timing, and the best-of-N runner.

The loop is mlx-lm's / mlx-vlm's `generate_step` lookahead: for token n+1 it
(1) builds the lazy graph from token n's unevaluated output, (2) calls
`mx.async_eval` on it, (3) blocks on token n with `.item()`. Per token:

  build   Python forward + sampling: graph construction only
  submit  time inside mx.async_eval (host encode/launch; on Metal it also
          stalls on back-pressure when the GPU queue is full)
  wait    time blocked in .item(): GPU time not hidden behind the host
  token   wall time between consecutive token deliveries

tok/s for a run = (T - 1) / (t_last - t_first) over the T measured tokens,
after W warm-up tokens in the same run; each run starts from a fresh cache
and a prefill.
"""

import statistics
import time
from typing import Callable, List, Optional

import mlx.core as mx
from pydantic import BaseModel

from . import stats
from .coldstart import ColdStart
from .gpu.timeline import GpuTimeline
from .results import ModelIdentity, Result

PHASES = ("build", "submit", "wait")


class RunRecord(BaseModel):
    prompt_tokens: int
    warmup: int
    tokens: int
    prefill_s: float  # prompt evaluation, first token included
    tok_s: float
    # per measured token, milliseconds (index 0 is the first measured token)
    build_ms: List[float]
    submit_ms: List[float]
    wait_ms: List[float]
    token_ms: List[float]  # delivery(n) - delivery(n-1); first entry vs last warm-up
    t0: float  # perf_counter() of the first measured delivery, seconds
    deliveries_s: List[float]  # measured deliveries relative to t0
    # start of each measured token's build relative to t0 (negative for the
    # first: it precedes its delivery); submit starts at build_start + build,
    # wait at submit start + submit. Empty in results saved before it existed.
    build_start_s: List[float] = []
    peak_memory_bytes: int
    token_ids: List[int]
    # the step after the run gave finite log-probabilities (logits_finite); None in results before the check
    finite: Optional[bool] = None


class PhaseSplit(BaseModel):
    build_ms: float
    submit_ms: float
    wait_ms: float
    token_ms: float
    unattributed_ms: float  # median of token - (build + submit + wait): loop bookkeeping

    def share(self, phase: str) -> float:
        return getattr(self, f"{phase}_ms") / self.token_ms if self.token_ms else 0.0


class Verdict(BaseModel):
    label: str  # "host-bound", "GPU-bound", "mixed", "CPU backend"
    gpu_share: Optional[float]  # fraction of the token the device is taken to be the limit
    basis: str  # what the share was computed from
    sentence: str


class DecodeSettings(BaseModel):
    runs: int
    warmup: int
    tokens: int
    prompt_tokens: int
    prompt: Optional[str] = None
    image: Optional[str] = None  # image prompt: path of the image (see vlm.py)
    image_size: Optional[int] = None
    dtype: str
    reduced: List[str] = []  # what slow-backend defaults cut, in words


class DecodeResult(Result):
    kind: str = "decode"
    model: ModelIdentity
    settings: DecodeSettings
    tok_s: stats.Summary
    prefill_tok_s: stats.Summary
    split: PhaseSplit
    verdict: Verdict
    peak_memory_bytes: int
    runs: List[RunRecord]
    notes: List[str] = []
    # --gpu-timeline (CUDA): the CUPTI timeline, from traced runs interleaved with
    # the untraced ones; their host records are `gpu_runs` (not part of tok_s)
    gpu: Optional[GpuTimeline] = None
    gpu_runs: List[RunRecord] = []
    # K and V one token reads at kv_context (the middle measured token), beside
    # the weights in model.bytes_per_token; None in results saved before it existed
    kv_bytes_per_token: Optional[int] = None
    kv_context: Optional[int] = None
    # model open and the discarded priming run (first-run compilation), kept out
    # of every figure; None in results saved before it existed
    cold_start: Optional[ColdStart] = None


def make_step(model, cache, stream):
    """One decode step as mlx-lm's generate_step does it: forward, log-softmax,
    greedy pick. `model` is a `models.Loaded` (anything with `logits(ids,
    cache)`). `step(ids)` takes a (1, L) prompt or the (1,) token the last
    step picked; every op, the token's reshape to (1, 1) included, runs on
    `stream`.

    Why the reshape belongs inside: an op on another stream (`y[:, None]`
    written outside `with mx.stream(...)` lands on the default stream) makes
    MLX fence the two streams inside the eval (mlx/transforms.cpp, eval_impl),
    and on CUDA that fence waits on the host (mlx/backend/cuda/fence.cpp,
    Fence::wait calls Event::wait()): mx.async_eval then blocks until the
    previous token is computed, so graph building no longer overlaps the GPU.
    mlx-lm reshapes inside its stream (`input_tokens[None]` in
    mlx_lm/generate.py, generate_step._step); mlx-vlm 0.7.10 calls
    `_step(y[None])` outside it (mlx_vlm/generate/ar.py)."""

    def step(ids):
        with mx.stream(stream):
            if ids.ndim == 1:
                ids = ids[None]
            logits = model.logits(ids, cache)[:, -1, :]
            logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
            return mx.argmax(logprobs, axis=-1), logprobs

    return step


class TokenTimes:
    """The loop's per-token clock readings (perf_counter seconds) and ids,
    preallocated so the loop only stores."""

    def __init__(self, total: int):
        self.build = [0.0] * total
        self.submit = [0.0] * total
        self.wait = [0.0] * total
        self.deliver = [0.0] * total
        self.start = [0.0] * total
        self.ids = [0] * total


def timed_tokens(step, y, times: TokenTimes, lo: int, hi: int, on_token=None):
    """Tokens lo … hi-1 of the lookahead loop, each timed into `times`. `y`
    is the token in flight; returns the next one, still in flight (its step
    submitted). run_once runs every token through it; parity's paired
    blocks run the same loop a block at a time."""
    build, submit, wait, deliver, start, ids = (times.build, times.submit, times.wait, times.deliver,
                                                times.start, times.ids)
    perf = time.perf_counter
    for n in range(lo, hi):
        t_a = perf()
        next_y, next_lp = step(y)
        t_b = perf()
        mx.async_eval(next_y, next_lp)
        t_c = perf()
        ids[n] = y.item()
        t_d = perf()
        build[n], submit[n], wait[n], deliver[n], start[n] = t_b - t_a, t_c - t_b, t_d - t_c, t_d, t_a
        y, logprobs = next_y, next_lp
        if on_token is not None:
            on_token(n)
    return y


def logits_finite(step, y) -> bool:
    """One more step from the token in flight, after a run and untimed: are
    all its log-probabilities finite? A NaN that reached the KV cache (or
    the weights) carries into every later step, so this catches a run that
    computed garbage anywhere in it. On CUDA we saw it happen intermittently
    (synthetic gemma3n-e2b-4bit on an H100 and an H200, MLX 0.32.4), and
    greedy ids then fall to 0: the run's figures describe a broken decode."""
    _, lp = step(y)
    return bool(mx.all(mx.isfinite(lp)).item())


def nonfinite_note(runs, where: str = "") -> Optional[str]:
    """A note naming the runs whose logits went NaN or inf, or None;
    `where` says which runs these are (a variant, a depth, a prompt)."""
    bad = [str(k) for k, r in enumerate(runs, 1) if getattr(r, "finite", None) is False]
    if not bad:
        return None
    return (f"WARNING: {where + ', ' if where else ''}run{'s' if len(bad) > 1 else ''} {', '.join(bad)} of "
            f"{len(runs)} computed NaN or inf "
            "log-probabilities (checked with one more step after each run): the model's arithmetic broke "
            "down, and the figures describe that computation, not a healthy decode")


def run_once(
    model,
    prompt_ids: List[int],
    warmup: int,
    tokens: int,
    on_token: Optional[Callable[[int], None]] = None,
    stream=None,
    prefill: Optional[Callable] = None,
) -> RunRecord:
    """One run: fresh cache, prefill, `warmup` + `tokens` decoded tokens.

    `prefill(cache)`, when given, replaces the token-id prefill: it returns the
    prompt's lazy logits (1, L, V) having filled `cache` (an image prompt's
    vision tower + embeddings, see vlm.py); `prompt_ids` then only gives the
    prompt length. prefill_s covers it all, up to the first token."""
    stream = stream or mx.new_stream(mx.default_device())
    cache = model.make_cache()
    step = make_step(model, cache, stream)
    total = warmup + tokens
    times = TokenTimes(total)
    mx.reset_peak_memory()

    t_pre = time.perf_counter()
    if prefill is None:
        y, logprobs = step(mx.array([prompt_ids]))
    else:
        with mx.stream(stream):
            logits = prefill(cache)[:, -1, :]
            logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
            y = mx.argmax(logprobs, axis=-1)
    mx.eval(y)
    prefill_s = time.perf_counter() - t_pre

    y = timed_tokens(step, y, times, 0, total, on_token)
    mx.eval(y)  # drain the last lookahead step so the next run starts clean
    peak = mx.get_peak_memory()
    finite = logits_finite(step, y)

    build, submit, wait, deliver, start, ids = (times.build, times.submit, times.wait, times.deliver,
                                                times.start, times.ids)
    m = slice(warmup, total)
    d = deliver[m]
    t0 = d[0]
    span = d[-1] - d[0]
    tok_token = [(deliver[i] - deliver[i - 1]) * 1e3 if i > 0 else float("nan") for i in range(total)][m]
    return RunRecord(
        prompt_tokens=len(prompt_ids),
        warmup=warmup,
        tokens=tokens,
        prefill_s=prefill_s,
        tok_s=(tokens - 1) / span if span > 0 else float("nan"),
        build_ms=[x * 1e3 for x in build[m]],
        submit_ms=[x * 1e3 for x in submit[m]],
        wait_ms=[x * 1e3 for x in wait[m]],
        token_ms=tok_token,
        t0=t0,
        deliveries_s=[x - t0 for x in d],
        build_start_s=[x - t0 for x in start[m]],
        peak_memory_bytes=peak,
        token_ids=ids,
        finite=finite,
    )


def split_of(runs: List[RunRecord]) -> PhaseSplit:
    """Median per phase over every measured token of every run. Medians of
    separate phases need not add up, so the unattributed rest is the median of
    each token's own residual token - (build + submit + wait)."""

    def med(xs):
        xs = [x for x in xs if x == x]
        return statistics.median(xs) if xs else 0.0

    def every(field):
        return [x for r in runs for x in getattr(r, field)]

    rest = [
        t - (b + s + w)
        for r in runs
        for b, s, w, t in zip(r.build_ms, r.submit_ms, r.wait_ms, r.token_ms)
    ]
    return PhaseSplit(
        build_ms=med(every("build_ms")), submit_ms=med(every("submit_ms")),
        wait_ms=med(every("wait_ms")), token_ms=med(every("token_ms")), unattributed_ms=med(rest),
    )


def verdict(split: PhaseSplit, backend: str, gpu_busy: Optional[float] = None,
            busy_basis: Optional[str] = None) -> Verdict:
    """The device's share of a token: wait/token on CUDA (async_eval only
    encodes and launches there), (submit + wait)/token on Metal (async_eval
    blocks on back-pressure once the GPU queue is full, so its time stands in
    for GPU time), or the GPU busy fraction of a kernel timeline when there is
    one. From the split: >= 0.6 GPU-bound, <= 0.3 host-bound; from the busy
    fraction, which sees idle gaps directly: >= 0.8 GPU-bound, <= 0.6
    host-bound; otherwise mixed. The CPU backend gets no GPU verdict."""
    if backend == "cpu":
        return Verdict(
            label="CPU backend", gpu_share=None, basis="none",
            sentence=(
                "CPU backend: mx.async_eval computes the token before it returns, so 'submit' "
                f"({split.share('submit'):.0%} of the token) is CPU compute, not GPU time; "
                "there is no separate device to be bound by."
            ),
        )
    if gpu_busy is not None:
        share, basis = gpu_busy, busy_basis or "GPU busy fraction from the CUPTI timeline"
    elif backend == "metal":
        share, basis = split.share("submit") + split.share("wait"), "(submit + wait) / token"
    else:
        share, basis = split.share("wait"), "wait / token"
    host = split.share("build") + (split.share("submit") if backend != "metal" else 0.0)
    gpu_hi, host_lo = (0.8, 0.6) if gpu_busy is not None else (0.6, 0.3)
    if share >= gpu_hi:
        label = "GPU-bound"
        sentence = f"GPU-bound: the device accounts for ~{share:.0%} of each token ({basis})."
    elif share <= host_lo:
        label = "host-bound"
        gpu_part = (f"the GPU is busy only ~{share:.0%} of the wall time" if gpu_busy is not None
                    else f"the GPU accounts for ~{share:.0%} ({basis})")
        sentence = (
            f"Host-bound: graph build and submit take ~{host:.0%} of each token on the host while "
            f"{gpu_part}; a faster host or fewer ops per token would help, a faster GPU would not."
        )
    else:
        label = "mixed"
        sentence = f"Mixed: the device accounts for ~{share:.0%} of each token ({basis}), the host for the rest."
    return Verdict(label=label, gpu_share=share, basis=basis, sentence=sentence)


def measure(
    model,
    prompt_ids: List[int],
    runs: int,
    warmup: int,
    tokens: int,
    on_token: Optional[Callable[[int, int], None]] = None,
    on_run: Optional[Callable[[RunRecord], None]] = None,
    prefill: Optional[Callable] = None,
) -> List[RunRecord]:
    """N independent runs on one stream; `on_run` sees each finished run (so a
    caller can save partial results)."""
    stream = mx.new_stream(mx.default_device())
    out = []
    for r in range(runs):
        cb = (lambda n, r=r: on_token(r, n)) if on_token else None
        rec = run_once(model, prompt_ids, warmup, tokens, on_token=cb, stream=stream, prefill=prefill)
        out.append(rec)
        if on_run:
            on_run(rec)
    return out


def summarize_runs(runs: List[RunRecord], backend: str, gpu_busy=None, busy_basis: Optional[str] = None):
    split = split_of(runs)
    return (
        stats.summarize([r.tok_s for r in runs]),
        stats.summarize([r.prompt_tokens / r.prefill_s for r in runs]),
        split,
        verdict(split, backend, gpu_busy, busy_basis),
    )


def default_prompt(n: int, vocab: int) -> List[int]:
    """A deterministic prompt of n token ids, spread over the vocabulary and
    clear of the low special ids."""
    return [(1009 * (i + 1) + 7) % (vocab - 300) + 256 for i in range(n)]


# Slow-backend defaults: explicit --runs/--warmup/--tokens/--prompt-tokens win.
DEFAULTS = dict(runs=3, warmup=20, tokens=100, prompt_tokens=16)
# A multi-GB model on MLX's CPU backend decodes at ~1-2 s/token (docs/references.md):
# keep `mlxprof decode --model gemma3n-e2b-4bit` within ~3 minutes there.
CPU_BIG_DEFAULTS = dict(runs=3, warmup=2, tokens=8, prompt_tokens=4)
CPU_BIG_BYTES = 200 << 20


def plan_settings(backend, bytes_per_token, runs=None, warmup=None, tokens=None,
                  prompt_tokens=None, prompt=None, dtype="bfloat16", dtype_reason=None):
    slow = backend == "cpu" and bytes_per_token > CPU_BIG_BYTES
    base = CPU_BIG_DEFAULTS if slow else DEFAULTS
    given = dict(runs=runs, warmup=warmup, tokens=tokens, prompt_tokens=prompt_tokens)
    chosen, reduced = {}, []
    for k, v in given.items():
        if v is not None:
            chosen[k] = v
        else:
            chosen[k] = base[k]
            if base[k] != DEFAULTS[k]:
                reduced.append(f"{k.replace('_', '-')} {DEFAULTS[k]}→{base[k]}")
    if reduced:
        reduced = [f"CPU backend with a {bytes_per_token / 1e9:.1f} GB/token model: " + ", ".join(reduced)]
    if dtype_reason:
        reduced.append(dtype_reason)
    return DecodeSettings(dtype=dtype, prompt=prompt, reduced=reduced, **chosen)


# Far beyond any model's positions or any sane measurement, and small enough
# that a Python list or an MLX array of that many entries can be made: a larger
# count is a typo, refused before the model is built (not an OverflowError after).
MAX_COUNT = 10**7


def validate_counts(**counts):
    from .errors import InputError

    for k, v in counts.items():
        if v is not None and v <= 0:
            raise InputError(f"--{k.replace('_', '-')} must be a positive integer, not {v}")
        if v is not None and v > MAX_COUNT:
            raise InputError(f"--{k.replace('_', '-')} {v} is too large: at most {MAX_COUNT:,}")
    if counts.get("tokens") is not None and counts["tokens"] < 2:
        raise InputError("--tokens must be at least 2 (tok/s needs two deliveries)")
