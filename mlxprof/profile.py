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
    trace_path: Optional[str] = None,
) -> dec.DecodeResult:
    dec.validate_counts(runs=runs, warmup=warmup, tokens=tokens, prompt_tokens=prompt_tokens)
    for path in (json_path, trace_path):
        if path:
            results.check_writable(path)
    chip = hardware.detect()
    loaded, dtype_reason = prepare(model, weights, dtype, chip)
    ident = identity(loaded)
    settings = dec.plan_settings(
        chip.backend, ident.bytes_per_token, runs, warmup, tokens, prompt_tokens, prompt,
        dtype=loaded.dtype, dtype_reason=dtype_reason,
    )
    ids = prompt_ids(loaded, prompt, settings.prompt_tokens)
    settings.prompt_tokens = len(ids)
    prov = results.provenance(command)
    done = []

    def build_result(partial: bool):
        tok, pre, split, verdict = dec.summarize_runs(done, chip.backend)
        notes = []
        if ident.weights == "synthetic":
            notes.append("weights: synthetic (published architecture, random values)")
        if partial:
            notes.append(f"partial: {len(done)} of {settings.runs} runs finished")
        return dec.DecodeResult(
            provenance=prov, model=ident, settings=settings, tok_s=tok, prefill_tok_s=pre,
            split=split, verdict=verdict, peak_memory_bytes=max(r.peak_memory_bytes for r in done),
            runs=done, notes=notes,
        )

    def on_run(rec):
        done.append(rec)
        if json_path or trace_path:
            res = build_result(partial=len(done) < settings.runs)
        if json_path:
            results.save(res, json_path)
        if trace_path:
            from . import trace

            trace.write(trace_path, res)

    with _progress(progress, settings) as tick:
        dec.measure(loaded.language_model, ids, settings.runs, settings.warmup, settings.tokens,
                    on_token=tick, on_run=on_run)
    return build_result(partial=False)


class _progress:
    """A rich progress bar over runs × tokens on stderr (a no-op when off)."""

    def __init__(self, enabled, settings):
        self.enabled = enabled
        self.s = settings

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self.p.__enter__()
        per = self.s.warmup + self.s.tokens
        self.task = self.p.add_task("decoding", total=self.s.runs * per)

        def tick(run, n):
            phase = "warm-up" if n < self.s.warmup else "measuring"
            self.p.update(self.task, advance=1, description=f"run {run + 1}/{self.s.runs} {phase}")

        return tick

    def __exit__(self, *exc):
        if self.enabled:
            self.p.__exit__(*exc)
        return False
