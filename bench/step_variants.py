"""Which difference between mlxprof's decode step and the library's explains a speed gap?

In one process, in paired palindromic blocks (mlxprof/paired.py; the method
of bench/parity.py), mlxprof's loop (decode.timed_tokens with decode.make_step)
against loops that each change ONE thing towards mlx-lm's generate_step
(mlx_lm/generate.py), and against the library's generate_step itself:

  y-outside-stream    the token expanded to (1, 1) outside `with mx.stream`,
                      i.e. on the default stream: mlxprof's loop before the
                      fix, and what mlx-vlm 0.7.10's loop does (`_step(y[None])`
                      in mlx_vlm/generate/ar.py). The cross-stream input makes
                      MLX fence the streams; on CUDA that fence waits on the
                      host (mlx/backend/cuda/fence.cpp, Fence::wait)
  stream-per-segment  a fresh mx.new_stream at every prefill (run_once without
                      a stream argument does this per run)
  library-stream      the library's module-level generation_stream (a
                      thread-local stream) instead of one from mx.new_stream
  lse-all-axes        mlx-lm's sampling ops: logsumexp over all axes with
                      keepdims, logprobs.squeeze(0)
  clear-cache-256     mx.clear_cache() after every 256th token, as generate_step
                      (only token 0 of each segment unless --tokens > 256)
  direct-call         the model called directly (mlx-lm: model(ids, cache=…);
                      mlx-vlm: model.language_model(…).logits) instead of
                      models.Loaded.logits
  bare                the same loop without per-token timing
  mlx-lm / mlx-vlm    the library's own generate_step

Reading the output: each line is `variant / mlxprof: ×r (95% CI, pairs, p)`,
the variant's tok/s over mlxprof's. A variant whose CI lies wholly away from
×1 changes the speed by that factor; one covering ×1 does not matter here.
If mlx-lm / mlxprof is ×1.18 and y-outside-stream / mlxprof ×1.00, the
token's stream is not the cause; if the library's loop ≈ ×1 and
y-outside-stream ≈ ×0.85, the fixed loop now matches it and the old one was
15 % slow. All loops must produce the same greedy token ids.

  python bench/step_variants.py                                  # gemma3n-tiny (CPU)
  python bench/step_variants.py --model llama3.2-1b-4bit         # on a GPU
"""

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/paired_options.py

import mlx.core as mx  # noqa: E402

from mlxprof import decode as dec  # noqa: E402
from mlxprof import paired, parity, parity_loops  # noqa: E402
from paired_options import add_paired_options  # noqa: E402
from mlxprof.coldstart import Priming  # noqa: E402
from mlxprof.errors import InputError  # noqa: E402


class OutsideStream(parity_loops.StepLoop):
    def make_step(self, cache):
        step = dec.make_step(self.loaded, cache, self.stream)
        return lambda y: step(y[:, None] if y.ndim == 1 else y)  # the slice on the default stream


class StreamPerSegment(parity_loops.StepLoop):
    def restart(self, tokens):
        self.stream = mx.new_stream(mx.default_device())
        super().restart(tokens)


class LibraryStream(parity_loops.StepLoop):
    def __init__(self, *args):
        super().__init__(*args)
        if self.loaded.library == "mlx-lm":
            from mlx_lm.generate import generation_stream
        else:
            from mlx_vlm.generate.ar import generation_stream
        self.stream = generation_stream


class AllAxesLogsumexp(parity_loops.StepLoop):
    def make_step(self, cache):
        model, stream = self.loaded, self.stream

        def step(ids):
            with mx.stream(stream):
                if ids.ndim == 1:
                    ids = ids[None]
                logits = model.logits(ids, cache)[:, -1, :]
                logprobs = logits - mx.logsumexp(logits, keepdims=True)
                return mx.argmax(logprobs, axis=-1), logprobs.squeeze(0)

        return step


class ClearCache256(parity_loops.StepLoop):
    def run(self, k):
        lo, hi = self.n, self.n + k
        for n in range(lo, hi):  # deliver token n, then clear after every 256th, as generate_step
            self.y = dec.timed_tokens(self.step, self.y, self.times, n, n + 1)
            if n % 256 == 0:
                mx.clear_cache()
        self.n = hi


class DirectCall(parity_loops.StepLoop):
    def make_step(self, cache):
        m, stream = self.loaded.model, self.stream
        lm = getattr(m, "language_model", None)
        call = (lambda ids: lm(ids, cache=cache).logits) if lm is not None else (lambda ids: m(ids, cache=cache))

        def step(ids):
            with mx.stream(stream):
                if ids.ndim == 1:
                    ids = ids[None]
                logits = call(ids)[:, -1, :]
                logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
                return mx.argmax(logprobs, axis=-1), logprobs

        return step


VARIANTS = {"y-outside-stream": OutsideStream, "stream-per-segment": StreamPerSegment,
            "library-stream": LibraryStream, "lse-all-axes": AllAxesLogsumexp, "clear-cache-256": ClearCache256,
            "direct-call": DirectCall, "bare": parity_loops.BareLoop}


def build(loaded, ids, warmup, names):
    loops = parity_loops.make_loops(loaded, ("mlxprof", loaded.library), ids, warmup)
    loops.update({name: VARIANTS[name](loaded, ids, warmup) for name in names})
    return loops


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_paired_options(ap)
    ap.add_argument("--only", default=None, help=f"comma-separated variants [all: {','.join(VARIANTS)}]")
    a = ap.parse_args(argv)
    names = a.only.split(",") if a.only else list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    try:
        if unknown:
            raise InputError(f"unknown variant {unknown[0]!r}; pick from {', '.join(VARIANTS)}")
        session, st, pst, ids = parity.prepare_parity(a.model, a.weights, a.dtype, a.rounds, a.warmup, a.tokens,
                                                      a.prompt_tokens, block=a.block, budget=a.budget)
    except InputError as e:
        print(f"bench/step_variants.py: error: {e}", file=sys.stderr)
        return 2
    Priming(session.backend).run(session.model, ids)  # a cold machine compiles here, not in the budget
    loops = build(session.model, ids, st.warmup, names)
    print(parity.setup_lines(session, st, pst, list(loops)))
    comparisons = [(name, "mlxprof", None) for name in loops if name != "mlxprof"]
    run = paired.run_rounds(loops, comparisons, pst,
                            on_round=lambda r, c: print(f"  round {r.round + 1:3d} @{r.t_s:6.1f}s", flush=True))
    runs = parity.loop_runs(loops, run)
    print()
    for name in loops:
        print(f"{name:>18}: {statistics.median(run.tok_s(name)):8.2f} tok/s (median per round)")
    print()
    for c in run.comparisons:
        print(c.sentence())
    print(paired.stop_sentence(run))
    print(parity.token_agreement(runs).sentence)
    return 0


if __name__ == "__main__":
    sys.exit(main())
