"""`mlxprof decode --metal-capture FILE.gputrace --capture-tokens N`: N decode
tokens inside a Metal GPU capture, for Xcode's Metal debugger.

On Apple silicon the GPU's own timeline is only visible through a Metal
capture: `mx.metal.start_capture(path)` / `mx.metal.stop_capture()` record the
GPU work committed in between into a `.gputrace` document. Metal allows a
capture only in a process started with MTL_CAPTURE_ENABLED=1, and refuses a
path that already exists (MLX docs, "Metal Debugger":
https://ml-explore.github.io/mlx/build/html/dev/metal_debugger.html; MLX source
mlx/backend/metal/metal.cpp, `start_capture`). So the command checks
everything first, then re-runs itself in a fresh process with the variable set
(subproc.rerun, as `--env` does); that process opens the model, decodes the
warm-up outside the capture and exactly N tokens inside it, with decode.py's
own loop.
"""

import os
from typing import Callable, List, Optional, Protocol

from .errors import InputError, OutputError
from .results import ModelIdentity, Record, Result

ENV = "MTL_CAPTURE_ENABLED"
SUFFIX = ".gputrace"
DOCS = "https://ml-explore.github.io/mlx/build/html/dev/metal_debugger.html"

# `decode` options a capture uses; any other decode option given with
# --metal-capture is refused (it would be silently ignored otherwise)
USES = {"model", "weights", "dtype", "warmup", "prompt_tokens", "prompt", "json_path", "quiet", "env",
        "metal_capture", "capture_tokens"}


class CaptureAPI(Protocol):
    """What the capture needs from Metal; tests pass a fake that records calls."""

    def start(self, path: str) -> None: ...

    def stop(self) -> None: ...


class MetalCapture:
    """MLX's capture calls (mlx/backend/metal/metal.h: the path is absolute)."""

    def start(self, path: str) -> None:
        import mlx.core as mx

        mx.metal.start_capture(path)

    def stop(self) -> None:
        import mlx.core as mx

        mx.metal.stop_capture()


def metal_api() -> CaptureAPI:
    return MetalCapture()


class CaptureSettings(Record):
    warmup: int  # decode tokens after the prefill, before the capture starts
    tokens: int  # decode tokens inside the capture
    prompt_tokens: int
    prompt: Optional[str] = None
    dtype: str


class CaptureResult(Result):
    kind: str = "capture"
    model: ModelIdentity
    settings: CaptureSettings
    path: str  # the .gputrace document, absolute
    # the ids delivered while the capture ran, one per captured loop body (each
    # body delivers a token and submits the forward pass of the next)
    token_ids: List[int]
    notes: List[str] = []


# ------------------------------------------------------------------ checks, before any work

def check_flags(params: dict, options) -> None:
    """--capture-tokens needs --metal-capture and the reverse; decode options a
    capture does not use (--runs, --tokens, --trace, --gpu-timeline, --image …)
    are refused rather than ignored. `options` are the command's click params."""
    if params.get("metal_capture") is None:
        raise InputError("--capture-tokens needs --metal-capture FILE.gputrace")
    if params.get("capture_tokens") is None:
        raise InputError("--metal-capture needs --capture-tokens N (the decode tokens to capture)")
    for p in options:
        value = params.get(p.name)
        if p.name in USES or value in (None, False, (), []) or value == p.default:
            continue
        flag = next((o for o in p.opts if o.startswith("--")), p.opts[0])
        raise InputError(f"{flag} does not apply to --metal-capture (one capture of --capture-tokens "
                         "decode tokens after --warmup); drop one of them")


def check_backend(backend: str) -> None:
    if backend != "metal":
        hint = "; on CUDA, --gpu-timeline records the kernel timeline" if backend == "cuda" else ""
        raise InputError(f"--metal-capture needs MLX's Metal backend (Apple silicon); this is the "
                         f"{backend.upper()} backend{hint}")


def check_path(path: str) -> str:
    """The capture's absolute path: a .gputrace that does not exist yet (Metal
    will not replace one, and a user's capture is never overwritten), in a
    folder that can be written."""
    from . import results

    if not str(path).strip():
        raise InputError("--metal-capture '': name a FILE.gputrace")
    if not str(path).endswith(SUFFIX):
        raise InputError(f"--metal-capture {path}: the file must end in {SUFFIX} (Metal's capture document)")
    if os.path.lexists(path):
        raise InputError(f"--metal-capture {path} already exists; Metal will not replace it: "
                         "name a new file or move the old capture away")
    results.check_writable(path)
    return os.path.abspath(path)


def check_counts(tokens: int, warmup: Optional[int], prompt_tokens: Optional[int]) -> Callable:
    """Refuse counts of 0 or 10²³ now; the check that prompt + warm-up +
    captured tokens fit the model's positions, for `open_session(check=)`."""
    from .decode import validate_counts
    from .session import check_positions

    validate_counts(capture_tokens=tokens, warmup=warmup, prompt_tokens=prompt_tokens)
    counts = dict(prompt_tokens=prompt_tokens, warmup=warmup, tokens=tokens)

    def positions(target):
        try:
            check_positions(target, counts)
        except InputError as e:  # its message names decode's --tokens; here they are --capture-tokens
            raise InputError(str(e).replace("--tokens", "--capture-tokens")) from None

    return positions


def require_trace(path: str) -> None:
    """After the capture: Metal wrote the document, or one line says it did not."""
    if not os.path.exists(path):
        raise OutputError(f"the capture ended but Metal wrote no {path}: was the process started with "
                          f"{ENV}=1, and is the folder writable? (see {DOCS})")


def in_capture_process() -> bool:
    """This process started with MTL_CAPTURE_ENABLED=1 (the fresh process the
    command starts, or a user who set it): capture here."""
    return os.environ.get(ENV) == "1"


# ------------------------------------------------------------------ the capture window

class Window:
    """An `on_token(n)` for decode.run_once that starts the capture after the
    last warm-up token and stops it after the N-th captured one.

    decode.run_once's loop is pipelined: when on_token(n) runs, token n has
    been delivered and the forward pass of token n + 1 is already submitted. So
    at n = warmup - 1 the submitted work is waited for (sync) before start: the
    warm-up stays outside. The loop bodies n = warmup … warmup + N - 1 then
    submit exactly N forward passes inside the capture, and at
    n = warmup + N - 1 the last of them is waited for before stop."""

    def __init__(self, api: CaptureAPI, path: str, warmup: int, tokens: int,
                 sync: Optional[Callable[[], None]] = None):
        if warmup < 1:
            raise InputError("--warmup must be at least 1 with --metal-capture")
        self.api, self.path, self.warmup, self.tokens = api, path, warmup, tokens
        self.sync = sync
        self.started = self.stopped = False

    def _sync(self):
        if self.sync is not None:
            self.sync()
        else:
            import mlx.core as mx

            mx.synchronize()

    def on_token(self, n: int) -> None:
        if n == self.warmup - 1:
            self._sync()
            self.api.start(self.path)
            self.started = True
        if n == self.warmup + self.tokens - 1:
            self._sync()
            self.api.stop()
            self.stopped = True

    def close(self) -> None:
        """Stop a capture an error left open, so Metal is not left capturing."""
        if self.started and not self.stopped:
            self.stopped = True
            self.api.stop()


def run(model: str, path: str, tokens: int, weights: str = "auto", dtype: Optional[str] = None,
        warmup: Optional[int] = None, prompt_tokens: Optional[int] = None, prompt: Optional[str] = None,
        progress: bool = False, command: Optional[str] = None, api: Optional[CaptureAPI] = None,
        chip=None) -> CaptureResult:
    """In a process started with MTL_CAPTURE_ENABLED=1: one fresh cache and
    prefill, `warmup` tokens, then `tokens` decode tokens inside the capture."""
    from . import decode as dec
    from . import hardware
    from .progress import Progress
    from .session import open_session

    chip = chip or hardware.detect()
    check_backend(chip.backend)
    path = check_path(path)
    positions = check_counts(tokens, warmup, prompt_tokens)
    s = open_session(model, weights, dtype, chip=chip, check=positions)
    plan = s.plan(1, warmup, None, prompt_tokens, prompt)
    ids = s.prompt(plan.prompt_tokens, prompt)
    window = Window(api or metal_api(), path, plan.warmup, tokens)
    with Progress(progress, plan.warmup + tokens, "capture") as bar:
        def on_token(n):
            window.on_token(n)
            bar.advance("warm-up" if n < plan.warmup else "inside the capture")

        try:
            rec = dec.run_once(s.model, ids, plan.warmup, tokens, on_token=on_token)
        finally:
            window.close()
    require_trace(path)
    settings = CaptureSettings(warmup=plan.warmup, tokens=tokens, prompt_tokens=len(ids), prompt=prompt,
                               dtype=s.model.dtype)
    notes = list(s.notes) + [f"labelled command queues and kernel sources in the trace need MLX built "
                             f"with -DMLX_METAL_DEBUG=ON ({DOCS})"]
    return CaptureResult(provenance=s.provenance(command), model=s.identity, settings=settings, path=path,
                         token_ids=rec.token_ids[plan.warmup:], notes=notes)


# ------------------------------------------------------------------ the command

def decode(ctx, command: Optional[str] = None) -> CaptureResult:
    """`mlxprof decode --metal-capture …` from its click context: check
    everything, then capture here (this process started with
    MTL_CAPTURE_ENABLED=1 and no --env is asked for) or in a fresh process
    with it set (and --env's variables)."""
    from . import hardware, models
    from .cli_options import in_subprocess
    from .subproc import parse_env

    p = ctx.params
    check_flags(p, ctx.command.params)
    chip = hardware.detect()
    check_backend(chip.backend)
    path = check_path(p["metal_capture"])
    positions = check_counts(p["capture_tokens"], p["warmup"], p["prompt_tokens"])
    if in_capture_process() and not p["env"]:
        return run(p["model"], path, p["capture_tokens"], weights=p["weights"], dtype=p["dtype"],
                   warmup=p["warmup"], prompt_tokens=p["prompt_tokens"], prompt=p["prompt"],
                   progress=not p["quiet"], command=command, api=metal_api(), chip=chip)
    positions(models.resolve(p["model"], p["weights"]))
    result = in_subprocess(ctx, {**parse_env(p["env"]), ENV: "1"}, CaptureResult)
    require_trace(path)
    return result


def print_result(r: CaptureResult) -> None:
    import click

    click.echo(f"Metal GPU capture: {r.settings.tokens} decode tokens of {r.model.name} "
               f"({r.model.weights} weights, {r.settings.dtype}), after {r.settings.warmup} warm-up tokens "
               "outside the capture")
    click.echo(f"capture: {r.path}")
    click.echo(f"open it in Xcode (File > Open, or `open {r.path}`); Xcode's Metal debugger shows the GPU "
               "timeline")
    for n in r.notes:
        click.echo(f"note: {n}")
