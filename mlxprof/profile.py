"""The glue the CLI and notebooks call: validate, build, measure, save."""

from typing import Optional

from . import decode as dec
from . import results
from .errors import InputError, OutputError
from .progress import Progress, decode_ticker
from .session import open_session


def decode(
    model: str,
    weights: str = "auto",
    dtype: Optional[str] = None,
    runs: Optional[int] = None,
    warmup: Optional[int] = None,
    tokens: Optional[int] = None,
    prompt_tokens: Optional[int] = None,
    prompt: Optional[str] = None,
    json_path: Optional[str] = None,
    progress: bool = False,
    command: Optional[str] = None,
    gpu_timeline: bool = False,
    trace_path: Optional[str] = None,
    image: Optional[str] = None,
    image_size: Optional[int] = None,
) -> dec.DecodeResult:
    if image is not None:
        from . import vlm

        vlm.open_image(image)
        vlm.check_image_size(image_size)
    elif image_size is not None:
        raise InputError("--image-size needs --image")
    if gpu_timeline:
        from . import hardware
        from .gpu.cupti import check_available

        check_available(hardware.detect().backend)
    s = open_session(model, weights, dtype, outputs=(json_path, trace_path),
                     counts=dict(runs=runs, warmup=warmup, tokens=tokens, prompt_tokens=prompt_tokens),
                     check=None if image is None else lambda t: vlm.check_target(t, image_size))
    settings = s.plan(runs, warmup, tokens, prompt_tokens, prompt)
    ids = s.prompt(settings.prompt_tokens, prompt)
    hook, notes = None, list(s.notes)
    if image is not None:
        vision = vlm.Vision(s.model, image, image_size, ids)
        ids, hook = vision.ids, vision.prefill
        settings.image, settings.image_size = image, vision.prompt.image_size
        notes.append(vlm.prompt_note(vision.prompt))
    settings.prompt_tokens = len(ids)
    kv_context = settings.prompt_tokens + settings.warmup + settings.tokens // 2
    prov = s.provenance(command)
    done, traced, failed = [], [], []
    timeline = None

    def build_result(partial: bool):
        if timeline is not None:
            _tracing_cost(timeline, traced, done)
        busy = timeline.busy_fraction if timeline is not None and timeline.records_in_windows else None
        tok, pre, split, verdict = dec.summarize_runs(done, s.backend, busy)
        extra = [f"partial: {len(done)} of {settings.runs} runs finished"] if partial else []
        if timeline is not None and busy is None:
            extra.append("GPU timeline: no kernel records inside the measured tokens; the verdict "
                         "falls back to the host split")
        return dec.DecodeResult(
            provenance=prov, model=s.identity, settings=settings, tok_s=tok, prefill_tok_s=pre,
            split=split, verdict=verdict, peak_memory_bytes=max(r.peak_memory_bytes for r in done),
            runs=done, notes=notes + extra, gpu=timeline, gpu_runs=traced,
            kv_bytes_per_token=s.kv_bytes(kv_context), kv_context=kv_context,
        )

    def on_run(rec):
        done.append(rec)
        if (json_path or trace_path) and not failed:
            try:
                _save_partial(build_result(partial=len(done) < settings.runs), json_path, trace_path,
                              timeline, traced)
            except OutputError as e:  # keep measuring; the final save says where the result went
                failed.append(e)

    sets = 2 if gpu_timeline else 1
    with Progress(progress, sets * settings.runs * (settings.warmup + settings.tokens), "decoding") as bar:
        if gpu_timeline:
            timeline = _traced_set(s.model, ids, settings, traced,
                                   decode_ticker(bar, settings.runs, settings.warmup, "traced "), hook)
        dec.measure(s.model, ids, settings.runs, settings.warmup, settings.tokens,
                    on_token=decode_ticker(bar, settings.runs, settings.warmup), on_run=on_run,
                    prefill=hook)
    return build_result(partial=False)


def _save_partial(res, json_path, trace_path, timeline, traced):
    """Rewrite the result (and trace) after every run, so a failure keeps what was measured."""
    if json_path:
        results.save(res, json_path)
    if trace_path:
        from . import trace

        if timeline is not None:  # GPU kernels exist for the traced runs: trace those
            trace.write(trace_path, res.model_copy(update={"runs": traced}),
                        gpu_spans=timeline.spans(), label="traced runs + GPU kernels")
        else:
            trace.write(trace_path, res)


TIMELINE_METHOD = (
    "A separate set of traced runs comes first, with CUPTI kernel activity enabled over the whole "
    "set (prefill and warm-up included, so every CUDA graph is built under tracing); kernels are "
    "placed on the perf_counter clock by a CUPTI/host clock fit and attributed to the measured "
    "tokens only. The normal untraced runs follow and alone give tok/s and the split. Tracing cost "
    "= traced vs untraced tok/s (two sequential sets, not interleaved). The verdict's GPU share is "
    "the busy fraction of the traced runs."
)


def _traced_set(model, ids, settings, traced, on_token, prefill=None):
    """Run the traced set under one CUPTI session; return its GpuTimeline."""
    import mlx.core as mx

    from .gpu.cupti import Recorder, RecorderError

    try:
        with Recorder(sync=mx.synchronize) as rec:
            traced.extend(dec.measure(model, ids, settings.runs, settings.warmup, settings.tokens,
                                      on_token=on_token, on_run=rec.flush, prefill=prefill))
    except RecorderError as e:  # CUPTI refused (e.g. another profiler holds it): one line
        raise InputError(f"--gpu-timeline: {e}") from e
    timeline = rec.analyze(traced)
    timeline.method = TIMELINE_METHOD
    return timeline


def _tracing_cost(timeline, traced, untraced):
    from . import stats

    timeline.traced_tok_s = stats.summarize([r.tok_s for r in traced])
    timeline.overhead = stats.compare([r.tok_s for r in untraced], [r.tok_s for r in traced],
                                      names=("untraced", "traced"))


def vlm(model: str, image: str, weights: str = "auto", dtype: Optional[str] = None,
        image_size: Optional[int] = None, runs: Optional[int] = None, warmup: Optional[int] = None,
        tokens: Optional[int] = None, ttft_runs: Optional[int] = None, ttft_warmup: Optional[int] = None,
        prompt_tokens: Optional[int] = None, prompt: Optional[str] = None, json_path: Optional[str] = None,
        progress: bool = False, command: Optional[str] = None):
    """TTFT breakdown of an image prompt, then text vs image decode."""
    from . import stats
    from . import vlm as v

    if ttft_warmup is not None and ttft_warmup < 0:
        raise InputError(f"--ttft-warmup must be 0 or more, not {ttft_warmup}")
    v.open_image(image)
    v.check_image_size(image_size)
    s = open_session(model, weights, dtype, outputs=(json_path,),
                     counts=dict(runs=runs, warmup=warmup, tokens=tokens, prompt_tokens=prompt_tokens,
                                 ttft_runs=ttft_runs),
                     check=lambda t: v.check_target(t, image_size))
    tt, tt_reduced = v.plan(s.backend, ttft_runs, ttft_warmup, runs)
    ds = s.plan(tt.pop("runs"), warmup, tokens, prompt_tokens, prompt)
    settings = v.VLMSettings(runs=ds.runs, warmup=ds.warmup, tokens=ds.tokens, dtype=s.model.dtype,
                             reduced=tt_reduced + ds.reduced, **tt)
    vision = v.Vision(s.model, image, image_size, s.prompt(ds.prompt_tokens, prompt))
    prov = s.provenance(command)

    total = settings.ttft_warmup + settings.ttft_runs + 2 * settings.runs * (settings.warmup + settings.tokens)
    with Progress(progress, total, "TTFT") as bar:
        def tick_ttft(i):
            bar.advance(f"TTFT breakdown {'warm-up' if i < settings.ttft_warmup else 'measuring'}")

        def tick_tok(name, run, n):
            bar.advance(f"{name} prompt, run {run + 1}/{settings.runs}")

        bd = v.breakdown(vision, settings.ttft_runs, settings.ttft_warmup, on_run=tick_ttft)
        text, img = v.compare_prompts(vision, settings.runs, settings.warmup, settings.tokens,
                                      on_token=tick_tok)
    notes = [v.prompt_note(vision.prompt)]
    if s.synthetic:
        notes.append(s.notes[0] + ", vision tower included")
    notes.append(bd.note or "TTFT breakdown: stages run one after another with mx.eval between them "
                 "(sequential by construction); the table's TTFT is one fused graph and eval")
    return v.VLMResult(
        provenance=prov, model=s.identity, settings=settings, vision=vision.prompt, breakdown=bd,
        text=v.prompt_row("text", text), image=v.prompt_row("image", img),
        decode_comparison=stats.compare([r.tok_s for r in text], [r.tok_s for r in img],
                                        names=("text", "image")),
        text_runs=text, image_runs=img, notes=notes,
    )
