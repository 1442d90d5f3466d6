"""The glue the CLI and notebooks call: validate, build, measure, save."""

import time
from typing import Optional

from . import decode as dec
from . import results
from .errors import InputError, OutputError
from .gpu import interleave
from .progress import Progress, schedule_ticker
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
    with Progress(progress, None, "opening the model (load or build)") as bar:
        t_open = time.perf_counter()
        s = open_session(model, weights, dtype, outputs=(json_path, trace_path),
                         counts=dict(runs=runs, warmup=warmup, tokens=tokens, prompt_tokens=prompt_tokens),
                         check=None if image is None else lambda t: vlm.check_target(t, image_size))
        open_s = time.perf_counter() - t_open
        settings = s.plan(runs, warmup, tokens, prompt_tokens, prompt)
        ids = s.prompt(settings.prompt_tokens, prompt)
        hook, notes = None, list(s.notes)
        if image is not None:
            vision = vlm.Vision(s.model, image, image_size, ids)
            ids, hook = vision.ids, vision.prefill
            settings.image, settings.image_size = image, vision.prompt.image_size
            notes.append(vlm.prompt_note(vision.prompt))
        settings.prompt_tokens = len(ids)
        run = _DecodeRun(s, settings, ids, hook, notes, command, json_path, trace_path, open_s)
        run.measure(bar, gpu_timeline)
    return run.result(partial=False)


class _DecodeRun:
    """One decode's measuring, from the priming run on, and its result (also
    partial, rewritten after every untraced run)."""

    def __init__(self, s, settings, ids, hook, notes, command, json_path, trace_path, open_s):
        self.s, self.settings, self.ids, self.hook, self.notes = s, settings, ids, hook, notes
        self.json_path, self.trace_path, self.open_s = json_path, trace_path, open_s
        self.kv_context = settings.prompt_tokens + settings.warmup + settings.tokens // 2
        self.prov = s.provenance(command)
        self.done, self.traced, self.failed = [], [], []
        self.timeline = None
        self.priming = None

    def measure(self, bar, gpu_timeline: bool):
        from .coldstart import Priming

        st = self.settings
        order, reading, no_nvml = (interleave.open_plan(st.runs) if gpu_timeline
                                   else ([interleave.UNTRACED] * st.runs, None, None))
        bar.reset(len(order) * (st.warmup + st.tokens) + 1, "priming run")
        self.priming = Priming(self.s.backend, bar)
        self.priming.run(self.s.model, self.ids, self.hook)
        bar.advance()

        tick = schedule_ticker(bar, order, st.warmup)

        def measure(n, on_run):  # one stream per call (see interleave.run_schedule)
            first = len(self.done) + len(self.traced)
            return dec.measure(self.s.model, self.ids, n, st.warmup, st.tokens,
                               on_token=lambda r, k: tick(first + r, k), on_run=on_run, prefill=self.hook)

        if not gpu_timeline:
            measure(len(order), self.on_untraced)
            return
        import mlx.core as mx

        from .gpu.cupti import Recorder, RecorderError

        rec = Recorder(sync=mx.synchronize)
        try:
            by, kinds = interleave.run_schedule(measure, order, rec, on_run=self.on_run, reading=reading)
        except RecorderError as e:  # CUPTI refused (e.g. another profiler holds it): one line
            raise InputError(f"--gpu-timeline: {e}") from e
        self.timeline = interleave.timeline_of(rec, by, kinds, self.traced, reading, no_nvml)
        self.save()  # now with the timeline (and the trace with its GPU spans)

    def on_run(self, label, rec):
        if label == interleave.UNTRACED:
            self.on_untraced(rec)
        else:
            self.traced.append(rec)

    def on_untraced(self, rec):
        self.done.append(rec)
        self.save()

    def save(self):
        if (self.json_path or self.trace_path) and not self.failed and self.done:
            try:
                _save_partial(self.result(partial=len(self.done) < self.settings.runs), self.json_path,
                              self.trace_path, self.timeline, self.traced)
            except OutputError as e:  # keep measuring; the final save says where the result went
                self.failed.append(e)

    def result(self, partial: bool) -> dec.DecodeResult:
        s, done, tl = self.s, self.done, self.timeline
        busy, basis = tl.verdict_busy() if tl is not None else (None, None)
        tok, pre, split, verdict = dec.summarize_runs(done, s.backend, busy, basis)
        extra = [f"partial: {len(done)} of {self.settings.runs} runs finished"] if partial else []
        if tl is not None and busy is None:
            extra.append(f"GPU timeline: {basis}; the verdict falls back to the host split")
        broken = dec.nonfinite_note(done)
        extra += [broken] if broken else []
        return dec.DecodeResult(
            provenance=self.prov, model=s.identity, settings=self.settings, tok_s=tok, prefill_tok_s=pre,
            split=split, verdict=verdict, peak_memory_bytes=max(r.peak_memory_bytes for r in done),
            runs=done, notes=self.notes + extra, gpu=tl, gpu_runs=self.traced,
            kv_bytes_per_token=s.kv_bytes(self.kv_context), kv_context=self.kv_context,
            cold_start=self.priming.record(done, self.open_s) if self.priming is not None else None,
        )


def _save_partial(res, json_path, trace_path, timeline, traced):
    """Rewrite the result (and trace) after every run, so a failure keeps what was measured."""
    if json_path:
        results.save(res, json_path)
    if trace_path:
        from . import trace

        if timeline is not None:  # GPU records exist for the traced runs: trace those
            trace.write(trace_path, res.model_copy(update={"runs": traced}),
                        gpu_spans=timeline.spans(), label="traced runs + GPU graphs and kernels")
        else:
            trace.write(trace_path, res)


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

        v.compile_kernels(vision, s.backend, bar)
        bd = v.breakdown(vision, settings.ttft_runs, settings.ttft_warmup, on_run=tick_ttft)
        text, img = v.compare_prompts(vision, settings.runs, settings.warmup, settings.tokens,
                                      on_token=tick_tok)
    notes = [v.prompt_note(vision.prompt)]
    if s.synthetic:
        notes.append(s.notes[0] + ", vision tower included")
    notes.append(bd.note or "TTFT breakdown: stages run one after another with mx.eval between them "
                 "(sequential by construction); the table's TTFT is one fused graph and eval")
    notes += [n for n in (dec.nonfinite_note(text, "text prompt"), dec.nonfinite_note(img, "image prompt")) if n]
    return v.VLMResult(
        provenance=prov, model=s.identity, settings=settings, vision=vision.prompt, breakdown=bd,
        text=v.prompt_row("text", text), image=v.prompt_row("image", img),
        decode_comparison=stats.compare([r.tok_s for r in text], [r.tok_s for r in img],
                                        names=("text", "image")),
        text_runs=text, image_runs=img, notes=notes,
    )
