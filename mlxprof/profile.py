"""The glue the CLI and notebooks call: validate, build, measure, save."""

from typing import Optional

from . import decode as dec
from . import hardware, results
from .errors import InputError
from .models import identity, prepare


def prompt_ids(loaded, prompt: Optional[str], n: int):
    if prompt is None:
        return dec.default_prompt(n, loaded.language_model.config.vocab_size)
    tok = getattr(loaded.processor, "tokenizer", loaded.processor)
    if tok is None:
        raise InputError("--prompt needs a checkpoint with a tokenizer; synthetic weights have none "
                         "(use --prompt-tokens)")
    return list(tok.encode(prompt))


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
    dec.validate_counts(runs=runs, warmup=warmup, tokens=tokens, prompt_tokens=prompt_tokens)
    for path in (json_path, trace_path):
        if path:
            results.check_writable(path)
    if image is not None:
        from . import vlm

        vlm.open_image(image)
        vlm.check_image_size(image_size)
    elif image_size is not None:
        raise InputError("--image-size needs --image")
    chip = hardware.detect()
    if gpu_timeline:
        from .gpu.cupti import check_available

        check_available(chip.backend)
    loaded, dtype_reason = prepare(model, weights, dtype, chip)
    ident = identity(loaded)
    settings = dec.plan_settings(
        chip.backend, ident.bytes_per_token, runs, warmup, tokens, prompt_tokens, prompt,
        dtype=loaded.dtype, dtype_reason=dtype_reason,
    )
    ids = prompt_ids(loaded, prompt, settings.prompt_tokens)
    hook, vision_note = None, []
    if image is not None:
        vision = vlm.Vision(loaded, image, image_size, ids)
        ids, hook = vision.ids, vision.prefill
        settings.image, settings.image_size = image, vision.prompt.image_size
        vision_note = [vlm.prompt_note(vision.prompt)]
    settings.prompt_tokens = len(ids)
    prov = results.provenance(command)
    done = []
    traced = []
    timeline = None

    def build_result(partial: bool):
        if timeline is not None:
            _tracing_cost(timeline, traced, done)
        busy = timeline.busy_fraction if timeline is not None and timeline.records_in_windows else None
        tok, pre, split, verdict = dec.summarize_runs(done, chip.backend, busy)
        notes = []
        if ident.weights == "synthetic":
            notes.append("weights: synthetic (published architecture, random values)")
        notes += vision_note
        if partial:
            notes.append(f"partial: {len(done)} of {settings.runs} runs finished")
        if timeline is not None and busy is None:
            notes.append("GPU timeline: no kernel records inside the measured tokens; the verdict "
                         "falls back to the host split")
        return dec.DecodeResult(
            provenance=prov, model=ident, settings=settings, tok_s=tok, prefill_tok_s=pre,
            split=split, verdict=verdict, peak_memory_bytes=max(r.peak_memory_bytes for r in done),
            runs=done, notes=notes, gpu=timeline, gpu_runs=traced,
        )

    def on_run(rec):
        done.append(rec)
        if json_path or trace_path:
            res = build_result(partial=len(done) < settings.runs)
        if json_path:
            results.save(res, json_path)
        if trace_path:
            from . import trace

            if timeline is not None:  # GPU kernels exist for the traced runs: trace those
                trace.write(trace_path, res.model_copy(update={"runs": traced}),
                            gpu_spans=timeline.spans(), label="traced runs + GPU kernels")
            else:
                trace.write(trace_path, res)

    with _progress(progress, settings, sets=2 if gpu_timeline else 1) as tick:
        if gpu_timeline:
            timeline = _traced_set(loaded.language_model, ids, settings, traced,
                                   (lambda r, n: tick(r, n, "traced ")) if tick else None, hook)
        dec.measure(loaded.language_model, ids, settings.runs, settings.warmup, settings.tokens,
                    on_token=tick, on_run=on_run, prefill=hook)
    return build_result(partial=False)


TIMELINE_METHOD = (
    "A separate set of traced runs comes first, with CUPTI kernel activity enabled over the whole "
    "set (prefill and warm-up included, so every CUDA graph is built under tracing); kernels are "
    "placed on the perf_counter clock by a CUPTI/host clock fit and attributed to the measured "
    "tokens only. The normal untraced runs follow and alone give tok/s and the split. Tracing cost "
    "= traced vs untraced tok/s (two sequential sets, not interleaved). The verdict's GPU share is "
    "the busy fraction of the traced runs."
)


def _traced_set(lm, ids, settings, traced, on_token, prefill=None):
    """Run the traced set under one CUPTI session; return its GpuTimeline."""
    import mlx.core as mx

    from .gpu.cupti import Recorder, RecorderError

    try:
        with Recorder(sync=mx.synchronize) as rec:
            traced.extend(dec.measure(lm, ids, settings.runs, settings.warmup, settings.tokens,
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


def vlm(
    model: str,
    image: str,
    weights: str = "auto",
    dtype: Optional[str] = None,
    image_size: Optional[int] = None,
    runs: Optional[int] = None,
    warmup: Optional[int] = None,
    tokens: Optional[int] = None,
    ttft_runs: Optional[int] = None,
    ttft_warmup: Optional[int] = None,
    prompt_tokens: Optional[int] = None,
    prompt: Optional[str] = None,
    json_path: Optional[str] = None,
    progress: bool = False,
    command: Optional[str] = None,
):
    """TTFT breakdown of an image prompt, then text vs image decode."""
    from . import stats
    from . import vlm as v

    dec.validate_counts(runs=runs, warmup=warmup, tokens=tokens, prompt_tokens=prompt_tokens,
                        ttft_runs=ttft_runs)
    if ttft_warmup is not None and ttft_warmup < 0:
        raise InputError(f"--ttft-warmup must be 0 or more, not {ttft_warmup}")
    if json_path:
        results.check_writable(json_path)
    v.open_image(image)
    v.check_image_size(image_size)
    chip = hardware.detect()
    loaded, dtype_reason = prepare(model, weights, dtype, chip)
    ident = identity(loaded)
    tt, tt_reduced = v.plan(chip.backend, ttft_runs, ttft_warmup, runs)
    ds = dec.plan_settings(chip.backend, ident.bytes_per_token, tt.pop("runs"), warmup, tokens,
                           prompt_tokens, prompt, dtype=loaded.dtype, dtype_reason=dtype_reason)
    settings = v.VLMSettings(runs=ds.runs, warmup=ds.warmup, tokens=ds.tokens, dtype=loaded.dtype,
                             reduced=tt_reduced + ds.reduced, **tt)
    vision = v.Vision(loaded, image, image_size, prompt_ids(loaded, prompt, ds.prompt_tokens))
    prov = results.provenance(command)

    with _vlm_progress(progress, settings) as (tick_ttft, tick_tok):
        bd = v.breakdown(vision, settings.ttft_runs, settings.ttft_warmup, on_run=tick_ttft)
        text, img = v.compare_prompts(vision, settings.runs, settings.warmup, settings.tokens,
                                      on_token=tick_tok)
    notes = [v.prompt_note(vision.prompt)]
    if ident.weights == "synthetic":
        notes.append("weights: synthetic (published architecture, random values), vision tower included")
    notes.append("TTFT breakdown: stages run one after another with mx.eval between them "
                 "(sequential by construction); the table's TTFT is one fused graph and eval")
    return v.VLMResult(
        provenance=prov, model=ident, settings=settings, vision=vision.prompt, breakdown=bd,
        text=v.prompt_row("text", text), image=v.prompt_row("image", img),
        decode_comparison=stats.compare([r.tok_s for r in text], [r.tok_s for r in img],
                                        names=("text", "image")),
        text_runs=text, image_runs=img, notes=notes,
    )


class _vlm_progress:
    """Progress over TTFT runs then decode tokens on stderr (no-op when off)."""

    def __init__(self, enabled, s):
        self.enabled, self.s = enabled, s

    def __enter__(self):
        if not self.enabled:
            return None, None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        s = self.s
        self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self.p.__enter__()
        total = s.ttft_warmup + s.ttft_runs + 2 * s.runs * (s.warmup + s.tokens)
        task = self.p.add_task("TTFT", total=total)

        def tick_ttft(i):
            phase = "warm-up" if i < s.ttft_warmup else "measuring"
            self.p.update(task, advance=1, description=f"TTFT breakdown {phase}")

        def tick_tok(name, run, n):
            self.p.update(task, advance=1, description=f"{name} prompt, run {run + 1}/{s.runs}")

        return tick_ttft, tick_tok

    def __exit__(self, *exc):
        if self.enabled:
            self.p.__exit__(*exc)
        return False


class _progress:
    """A rich progress bar over runs × tokens on stderr (a no-op when off)."""

    def __init__(self, enabled, settings, sets=1):
        self.enabled = enabled
        self.s = settings
        self.sets = sets  # 2 with --gpu-timeline: a traced set, then the normal one

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self.p.__enter__()
        per = self.s.warmup + self.s.tokens
        self.task = self.p.add_task("decoding", total=self.sets * self.s.runs * per)

        def tick(run, n, label=""):
            phase = "warm-up" if n < self.s.warmup else "measuring"
            self.p.update(self.task, advance=1, description=f"{label}run {run + 1}/{self.s.runs} {phase}")

        return tick

    def __exit__(self, *exc):
        if self.enabled:
            self.p.__exit__(*exc)
        return False
