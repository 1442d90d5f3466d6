"""Decode at depth: tok/s, the split and the floor with the KV cache filled to D tokens.

Decode slows as the conversation grows: every token reads the whole KV cache
(or a sliding window of it) besides the weights. llama-bench measures
generation at a depth (`-d`, github.com/ggml-org/llama.cpp, tools/llama-bench);
here, for each depth D, every run fills a fresh cache with D prompt tokens in
chunks of 2048, evaluating only the cache as mlx-lm's `generate_step` does
(mlx_lm/generate.py, prefill_step_size), then decodes `warmup` + `tokens`
tokens from there with decode.py's loop. The fill is not part of any decode
figure; its time is recorded as fill tok/s.

The floor per depth is the measured weight-streaming floor (floor.py: the
token's matrix-vector products alone) plus the KV bytes a token reads at that
context (Session.kv_bytes: sliding-window and KV-shared layers accounted)
moved at the device copy probe's measured bandwidth, both measured in the
same run.
"""

from typing import Callable, List, Optional

from . import decode as dec
from . import results, stats
from .errors import InputError, OutputError
from .results import ModelIdentity, Record, Result

DEFAULT_DEPTHS = (0, 1024, 4096, 16384)
CPU_DEPTHS = (0, 256, 1024)  # MLX's CPU backend prefills a real-size model at tens of tok/s
PREFILL_STEP = 2048  # mlx-lm's generate_step prefill_step_size
KV_BLOCK = 256  # mlx-lm's KVCache grows in blocks of this many positions (mlx_lm/models/cache.py, step)

FLOOR_METHOD = (
    "floor ms at a depth = the measured weight-streaming floor (median) + the KV cache bytes one token "
    "reads at that context / the copy probe's measured bandwidth; floor tok/s = 1000 / floor ms"
)


class DepthSettings(Record):
    depths: List[int]
    runs: int
    warmup: int
    tokens: int
    prefill_step: int
    dtype: str
    reduced: List[str] = []  # what slow-backend defaults cut, in words


class DepthFloor(Record):
    weights_ms: stats.Summary  # the weight-streaming floor per token, lower is better
    weight_bytes: int
    weights_gb_s: float
    probe_gb_s: float  # device copy bandwidth (read + write), the rate KV bytes are counted at
    probe_bytes: int
    method: str = FLOOR_METHOD


class DepthPoint(Record):
    depth: int  # tokens in the KV cache before decoding starts
    fill_tokens: int  # prompt tokens prefilled: the depth, at least one (decode starts from a token)
    kv_context: int  # the middle measured token's context: fill + warmup + tokens // 2
    kv_bytes_per_token: int  # K and V one token reads at kv_context
    tok_s: stats.Summary
    fill_tok_s: stats.Summary  # fill_tokens / fill seconds (first token included), per run
    fill_s: float  # median seconds to fill the cache
    split: dec.PhaseSplit
    verdict: dec.Verdict
    peak_memory_bytes: int  # over a whole run, the fill included
    floor_ms: Optional[float] = None
    floor_tok_s: Optional[float] = None
    floor_share: Optional[float] = None  # median decode tok/s / floor tok/s
    runs: List[dec.RunRecord]


class DepthResult(Result):
    kind: str = "depth"
    model: ModelIdentity
    settings: DepthSettings
    floor: Optional[DepthFloor] = None
    points: List[DepthPoint]
    sentence: str
    notes: List[str] = []


def parse_depths(text) -> List[int]:
    """'0,1024,4096' (or a list of ints) → sorted depths; bad input is one line."""
    items = text.split(",") if isinstance(text, str) else [str(x) for x in text]
    items = [x.strip() for x in items]
    if not items or all(not x for x in items):
        raise InputError("--depth is empty: give comma-separated token counts, e.g. 0,1024,4096")
    out = []
    for x in items:
        try:
            d = int(x)
        except ValueError:
            raise InputError(f"--depth '{x}' is not a whole number of tokens (e.g. 0,1024,4096)") from None
        if d < 0:
            raise InputError(f"--depth {d} is negative: a depth counts the tokens already in the KV cache")
        if d > dec.MAX_COUNT:
            raise InputError(f"--depth {d} is too large: at most {dec.MAX_COUNT:,}")
        if d in out:
            raise InputError(f"--depth {d} is given twice")
        out.append(d)
    return sorted(out)


def plan_depths(text, backend: str, limit: Optional[int], after: int):
    """(depths, notes). Given depths must fit the model's positions with the
    `after` decoded tokens; default ones that do not are left out, and say so.
    A sliding window caps what a token reads, not how deep the cache may go,
    so only max_position_embeddings limits a depth."""
    if text is not None:
        depths = parse_depths(text)
        for d in depths:
            if limit is not None and max(d, 1) + after > limit:
                raise InputError(f"--depth {d} does not fit: the model holds {limit} positions "
                                 f"(max_position_embeddings) and decoding adds {after} (--warmup + --tokens); "
                                 f"use at most {limit - after}")
        return depths, []
    notes = []
    depths = list(DEFAULT_DEPTHS)
    if backend == "cpu":
        depths = list(CPU_DEPTHS)
        notes.append(f"CPU backend: depths {','.join(map(str, DEFAULT_DEPTHS))}→{','.join(map(str, depths))}")
    over = [d for d in depths if limit is not None and max(d, 1) + after > limit]
    if over:
        notes.append(f"depth {','.join(map(str, over))} left out: the model holds {limit} positions")
    return [d for d in depths if d not in over], notes


def _text_args(model):
    text = model.text
    return getattr(text, "args", None) or getattr(text, "config", None)


def memory_need(session, depth: int, warmup: int, tokens: int, prefill_step: int = PREFILL_STEP):
    """(bytes needed, weight bytes, what was counted): the weights as loaded
    (mx.get_active_memory() once the session is open: parts built but never
    evaluated hold nothing) + the KV cache at the last decoded position (in
    mlx-lm's 256-position blocks) + one fill chunk's attention scores and their
    softmax, which MLX's unfused attention materializes (always on the CPU; on
    CUDA for any query longer than one token: `use_fallback` in MLX's
    mlx/backend/cuda/scaled_dot_product_attention.cpp; a fused kernel needs
    less, so this errs on the side of refusing), + the model preflight's
    headroom (15% + 256 MiB, models.preflight)."""
    import mlx.core as mx

    from .models.weights import kv_cache_bytes
    from .render import fmt_bytes

    m = session.model
    item = getattr(mx, m.dtype).size
    fill = max(depth, 1)
    last = -(-(fill + warmup + tokens) // KV_BLOCK) * KV_BLOCK
    weights = mx.get_active_memory()
    kv = kv_cache_bytes(m, last, item)
    scores = 2 * _text_args(m).num_attention_heads * min(prefill_step, fill) * fill * item
    need = int((weights + kv + scores) * 1.15) + (256 << 20)
    what = (f"weights {fmt_bytes(weights)} + KV cache {fmt_bytes(kv)} + a fill chunk's attention scores "
            f"{fmt_bytes(scores)}, +15% + 256 MiB")
    return need, weights, what


def preflight_depths(session, depths, warmup: int, tokens: int, prefill_step: int = PREFILL_STEP) -> None:
    """Refuse, before any fill, a depth whose memory (memory_need) exceeds what
    the device offers (hardware.available_memory)."""
    from . import hardware

    have, where = hardware.available_memory(session.chip)
    if have is None:
        return
    depths = sorted(depths)
    for d in depths:
        need, weights, what = memory_need(session, d, warmup, tokens, prefill_step)
        # available RAM is read now, after the load: the weights are already out of it
        offered = have + weights if where == "available RAM" else have
        if need > offered:
            fit = [x for x in depths if x < d]
            raise InputError(f"--depth {d} needs ~{need / 1e9:.2f} GB ({what}) but the device offers "
                             f"{offered / 1e9:.2f} GB ({where})"
                             + (f"; depths up to {fit[-1]} fit" if fit else "; pick a smaller model"))


def fill_hook(model, ids: List[int], step: int = PREFILL_STEP, on_chunk=None):
    """A `prefill(cache)` for decode.run_once: all but the last token in chunks
    of `step`, evaluating only the cache and clearing MLX's buffer cache after
    each (mlx-lm's generate_step), then the last token's lazy logits."""
    import mlx.core as mx

    def prefill(cache):
        head = ids[:-1]
        for i in range(0, len(head), step):
            model.logits(mx.array([head[i:i + step]]), cache)
            mx.eval([c.state for c in cache])
            mx.clear_cache()
            if on_chunk:
                on_chunk(min(i + step, len(head)), len(ids))
        return model.logits(mx.array([ids[-1:]]), cache)

    return prefill


def floor_of(session, probe_mb=None) -> DepthFloor:
    from . import floor as fl

    r = fl.measure_floor(session, probe_mb=probe_mb)
    return DepthFloor(weights_ms=r.floor_ms, weight_bytes=r.bytes_per_token, weights_gb_s=r.gb_s,
                      probe_gb_s=r.probe.gb_s, probe_bytes=r.probe.bytes_moved)


def floor_at(floor: Optional[DepthFloor], kv_bytes: int):
    """(floor ms, floor tok/s) at a context whose token reads kv_bytes of KV cache."""
    if floor is None:
        return None, None
    ms = floor.weights_ms.median + kv_bytes / (floor.probe_gb_s * 1e9) * 1e3
    return ms, 1e3 / ms


def measure_depth(session, depth: int, settings: DepthSettings, floor, bar=None,
                  on_partial: Optional[Callable[["DepthPoint"], None]] = None) -> DepthPoint:
    """Every run of one depth: fresh cache, fill, warm-up, measured tokens.
    `on_partial` sees the point of the runs so far after each run but the last
    (so a caller can save them: Ctrl-C mid-depth keeps the finished runs)."""
    import mlx.core as mx

    from .progress import schedule_ticker

    fill = max(depth, 1)
    ids = session.prompt(fill)
    label = f"depth {depth}: "

    def on_chunk(done, total):
        if bar is not None:
            bar.describe(f"{label}filling {done}/{total}")

    done: List[dec.RunRecord] = []

    def on_run(rec):
        done.append(rec)
        if on_partial is not None and len(done) < settings.runs:
            on_partial(point_of(session, depth, settings, floor, done))

    ticker = schedule_ticker(bar, ["untraced"] * settings.runs, settings.warmup, label) if bar is not None else None
    dec.measure(session.model, ids, settings.runs, settings.warmup, settings.tokens, on_token=ticker,
                on_run=on_run, prefill=fill_hook(session.model, ids, settings.prefill_step, on_chunk))
    mx.clear_cache()  # the next depth allocates other sizes
    return point_of(session, depth, settings, floor, done)


def point_of(session, depth: int, settings: DepthSettings, floor, runs: List[dec.RunRecord]) -> DepthPoint:
    """One depth's figures from its runs (all of them, or those finished so far)."""
    fill = max(depth, 1)
    tok, pre, split, verdict = dec.summarize_runs(runs, session.backend)
    kv_context = fill + settings.warmup + settings.tokens // 2
    kv = session.kv_bytes(kv_context)
    floor_ms, floor_tok_s = floor_at(floor, kv)
    return DepthPoint(
        depth=depth, fill_tokens=fill, kv_context=kv_context, kv_bytes_per_token=kv, tok_s=tok,
        fill_tok_s=pre, fill_s=stats.summarize([r.prefill_s for r in runs], higher_is_better=False).median,
        split=split, verdict=verdict, peak_memory_bytes=max(r.peak_memory_bytes for r in runs),
        floor_ms=floor_ms, floor_tok_s=floor_tok_s,
        floor_share=tok.median / floor_tok_s if floor_tok_s else None, runs=list(runs),
    )


def depth_sentence(points: List[DepthPoint]) -> str:
    from .render import fmt_bytes

    if not points:
        return "No depth was measured."
    a, b = points[0], points[-1]
    floor = (f"; the floor {a.floor_tok_s:.1f} → {b.floor_tok_s:.1f} tok/s" if a.floor_tok_s and b.floor_tok_s
             else "")
    if a is b:
        return f"At depth {a.depth} decode runs at {a.tok_s.median:.2f} tok/s median{floor.replace(';', ',')}."
    return (f"From depth {a.depth} to {b.depth} (KV read per token {fmt_bytes(a.kv_bytes_per_token)} → "
            f"{fmt_bytes(b.kv_bytes_per_token)}) decode goes {a.tok_s.median:.2f} → {b.tok_s.median:.2f} tok/s "
            f"median (×{b.tok_s.median / a.tok_s.median:.2f}){floor}.")


def refuse_options(**given) -> None:
    """--depth measures its own prompts: options that shape another run are refused in one line."""
    bad = [k.replace("_", "-") for k, v in given.items() if v not in (None, False, ())]
    if bad:
        raise InputError(f"--depth does not combine with --{', --'.join(bad)}: the depth is the prompt")


def decode_at_depth(model: str, depths=None, weights: str = "auto", dtype: Optional[str] = None,
                    runs: Optional[int] = None, warmup: Optional[int] = None, tokens: Optional[int] = None,
                    prefill_step: int = PREFILL_STEP, floor: bool = True, probe_mb: Optional[int] = None,
                    json_path: Optional[str] = None, progress: bool = False,
                    command: Optional[str] = None) -> DepthResult:
    """Open one session; measure the floor, then decode at each depth (smallest
    first), rewriting `json_path` after each depth. `depths`: '0,1024,…', a
    list of ints, or None (or 'default') for the defaults, smaller on the CPU backend."""
    from . import hardware
    from .ops import max_context
    from .progress import Progress
    from .session import open_session

    depths = None if depths == "default" else depths
    if depths is not None:
        parse_depths(depths)  # bad syntax: one line before anything is resolved
    if prefill_step <= 0:
        raise InputError(f"the prefill step must be a positive number of tokens, not {prefill_step}")
    chip = hardware.detect()
    after = (warmup if warmup is not None else dec.DEFAULTS["warmup"]) + \
        (tokens if tokens is not None else dec.DEFAULTS["tokens"])
    planned = {}

    def check(target):
        planned["depths"], planned["notes"] = plan_depths(depths, chip.backend, max_context(target), after)

    s = open_session(model, weights, dtype, outputs=(json_path,), chip=chip, check=check,
                     counts=dict(runs=runs, warmup=warmup, tokens=tokens, probe_mb=probe_mb))
    ds = s.plan(runs, warmup, tokens, prompt_tokens=1)
    settings = DepthSettings(depths=planned["depths"], runs=ds.runs, warmup=ds.warmup, tokens=ds.tokens,
                             prefill_step=prefill_step, dtype=ds.dtype, reduced=planned["notes"] + ds.reduced)
    preflight_depths(s, settings.depths, settings.warmup, settings.tokens, prefill_step)
    prov = s.provenance(command)
    notes = list(s.notes) + ["peak memory covers whole runs, the fill included",
                             "depth 0 prefills one token: decode starts from a token"]
    if s.backend == "cpu" and floor:
        notes.append("CPU backend: the floor is CPU compute over the weights, not a GPU's memory stream")
    points, failed = [], []
    fl = None

    def build(partial: bool, current: Optional[DepthPoint] = None) -> DepthResult:
        shown = points + ([current] if current is not None else [])
        extra = [f"partial: {len(points)} of {len(settings.depths)} depths measured"
                 + (f", depth {current.depth} has {len(current.runs)} of {settings.runs} runs" if current else "")
                 ] if partial else []
        broken = [dec.nonfinite_note(p.runs, f"depth {p.depth}") for p in shown]
        return DepthResult(provenance=prov, model=s.identity, settings=settings, floor=fl, points=shown,
                           sentence=depth_sentence(shown), notes=notes + extra + [b for b in broken if b])

    def save(partial: bool, current: Optional[DepthPoint] = None):
        if json_path and not failed:
            try:
                results.save(build(partial, current), json_path)
            except OutputError as e:  # keep measuring; the final save says where the result went
                failed.append(e)

    total = len(settings.depths) * settings.runs * (settings.warmup + settings.tokens)
    with Progress(progress, total, "floor") as bar:
        if floor:
            fl = floor_of(s, probe_mb)
        for d in settings.depths:
            points.append(measure_depth(s, d, settings, fl, bar,
                                        on_partial=(lambda p: save(True, p)) if json_path else None))
            save(partial=len(points) < len(settings.depths))
    return build(partial=False)


def depth_table(r: DepthResult, console=None):
    from rich.table import Table

    from .render import fmt_bytes, fmt_params, stdout_console

    console = console or stdout_console()
    m, p, st = r.model, r.provenance, r.settings
    t = Table(title=f"mlxprof decode --depth — {m.name} ({m.quantization}, {m.num_layers} layers, "
                    f"{fmt_params(m.parameters)} params, {m.weights} weights, {m.dtype}) on {p.backend} / {p.chip}",
              title_justify="left")
    for col in ("depth", "KV ctx", "KV/token", "tok/s median ± MAD", "best", "token ms",
                "build / submit / wait", "floor tok/s", "of floor", "fill tok/s", "peak memory", "verdict"):
        t.add_column(col, justify="left" if col == "verdict" else "right")
    for x in r.points:
        s = x.split
        t.add_row(str(x.depth), str(x.kv_context), fmt_bytes(x.kv_bytes_per_token), x.tok_s.fmt(2),
                  f"{x.tok_s.best:.2f}", f"{s.token_ms:.2f}",
                  f"{s.build_ms:.2f} / {s.submit_ms:.2f} / {s.wait_ms:.2f}",
                  f"{x.floor_tok_s:.1f}" if x.floor_tok_s else "–",
                  f"{x.floor_share:.0%}" if x.floor_share else "–", f"{x.fill_tok_s.median:.1f}",
                  fmt_bytes(x.peak_memory_bytes), x.verdict.label)
    console.print(t)
    s = Table(show_header=False, box=None)
    s.add_column(style="bold")
    s.add_column()
    s.add_row("runs", f"{st.runs} per depth × ({st.warmup} warm-up, {st.tokens} measured) after a fresh fill "
                      f"in chunks of {st.prefill_step}")
    if r.floor:
        f = r.floor
        s.add_row("floor", f"weights {f.weights_ms.median:.3f} ms/token ({fmt_bytes(f.weight_bytes)}, "
                           f"{f.weights_gb_s:.1f} GB/s); copy probe {f.probe_gb_s:.1f} GB/s; {f.method}")
    s.add_row("summary", r.sentence)
    for n in st.reduced + r.notes:
        s.add_row("note", n)
    console.print(s)
