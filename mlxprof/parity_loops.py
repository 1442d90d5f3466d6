"""The loops `mlxprof parity` and bench/parity.py run side by side, each able
to continue its own decode in timed blocks (paired.py's `BlockLoop`):
mlxprof's own loop (decode.run_once's), the same loop with no per-token timing
(bare), both as lanes of one cache, and the library's generator (mlx-lm or
mlx-vlm). Split from parity.py, which compares them."""

import time
from typing import Dict, List, Sequence

import mlx.core as mx

from . import decode as dec


class StepLoop:
    """decode.run_once's loop, a block at a time: the same step and the same
    per-token timing (decode.timed_tokens), continuing one cache."""

    def __init__(self, loaded, prompt_ids: List[int], warmup: int, stream=None):
        self.loaded, self.prompt_ids, self.warmup = loaded, list(prompt_ids), warmup
        self.stream = stream or mx.new_stream(mx.default_device())
        self.segments: List[List[int]] = []  # the greedy ids of each finished segment
        self.finite: List[bool] = []  # each finished segment: decode.logits_finite after it
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
        self.finite.append(dec.logits_finite(self.step, self.y))


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

    @property
    def finite(self):
        return self.lanes.core.finite

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
        from .models import lean

        lean.ready(self.library.replace("-", "_"))
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


def alternating_decode(loaded, prompt_ids: List[int], warmup: int):
    """One decode and the two arms that take turns on it token by token
    (alternating.py): mlxprof's loop and the bare one."""
    return StepLoop(loaded, prompt_ids, warmup), {"mlxprof": dec.timed_tokens, "bare": _bare}


def bookkeeping_s(n: int = 200_000, repeats: int = 5, probe: bool = False) -> float:
    """Seconds per token that run_once's timing adds over the bare loop,
    timed in isolation (4 clock reads, 5 list stores, minus an empty loop):
    a noise-free bound to set beside the paired mlxprof / bare ratio. With
    `probe`, the per-token alternation's probe instead (1 clock read, 1
    store), which both arms carry. Each loop's fastest of `repeats` passes:
    a pass the OS interrupted is slower."""
    perf = time.perf_counter
    m = max(1, n // repeats)
    b, s, w, d, st = ([0.0] * m for _ in range(5))
    timed, empty = [], []
    for _ in range(repeats):
        t = perf()
        if probe:
            for i in range(m):
                b[i] = perf()
        else:
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
