"""The weight-streaming floor: one decode token's matrix-vector products and nothing else.

The floor graph multiplies an activation vector by exactly the weights one
decode token streams (`models.weights.streamed_matvecs`: every Linear it
reaches, KV-shared layers without k/v, the tied LM head; lookup embeddings
are gathers, not streams), each weight distinct, with the model's own modules
(so its quantization bits, group size and dtypes), evaluated once per token.
Its time is what decode would take if nothing but weight streaming cost
anything. A large device-to-device copy gives the device's own bandwidth to
hold it against.
"""

import statistics
import time
from typing import List, Optional

from pydantic import BaseModel

from . import stats
from .errors import InputError
from .results import ModelIdentity, Result


class Probe(BaseModel):
    """A large elementwise copy (read N bytes, write N bytes)."""

    bytes_moved: int  # read + write per repetition
    ms: stats.Summary  # per repetition, lower is better
    gb_s: float  # bytes_moved / best time


class FloorDecode(BaseModel):
    source: str  # "measured" or the decode JSON it came from
    tok_s_best: float
    tok_s_median: float
    token_ms: float  # median interval between tokens
    runs: int
    tokens: int


class FloorGroup(BaseModel):
    kind: str  # "4bit g64", "float32" …: one line per weight format
    matvecs: int
    bytes: int


class FloorResult(Result):
    kind: str = "floor"
    model: ModelIdentity
    matvecs: int
    groups: List[FloorGroup]
    bytes_per_token: int
    iterations: int
    warmup: int
    floor_ms: stats.Summary  # eval time of the floor graph per token, lower is better
    build_ms: float  # median Python time to build the floor graph (not in floor_ms)
    gb_s: float  # bytes_per_token / median floor time
    gb_s_best: float  # bytes_per_token / best floor time
    floor_tok_s: float  # 1 / median floor time
    probe: Optional[Probe] = None
    decode: Optional[FloorDecode] = None
    decode_share: Optional[float] = None  # floor time / decode token time (decode tok/s / floor tok/s)
    probe_share: Optional[float] = None  # floor GB/s / copy GB/s
    sentence: str
    notes: List[str] = []


def _format(mv) -> str:
    m = mv.module
    if mv.quantized:
        mode = getattr(m, "mode", "affine")
        return f"{m.bits}bit g{m.group_size}" + ("" if mode == "affine" else f" {mode}")
    return str(m.weight.dtype).replace("mlx.core.", "")


def _routed(n: int, k: int):
    """k distinct expert indices spread over n, shaped as a MoE block routes one
    token (batch, length, k): which experts does not change the bytes."""
    import mlx.core as mx

    return mx.array([[[i * (n // k) for i in range(k)]]], dtype=mx.uint32)


def floor_graph(matvecs, dtype):
    """A function that builds the floor graph once: every product, its own weight;
    a MoE switch layer multiplies its k routed experts through the module's own
    gather_qmm / gather_mm, as decode does."""
    import mlx.core as mx

    xs = {}
    for mv in matvecs:
        if mv.in_dims not in xs:
            xs[mv.in_dims] = mx.random.normal((1, mv.in_dims)).astype(dtype)
    mx.eval(list(xs.values()))
    calls = []
    for mv in matvecs:
        x = xs[mv.in_dims]
        if mv.experts:  # x as SwitchGLU expands it: (batch, length, 1, 1, dims)
            calls.append((mv.module, (mx.expand_dims(x[None], (-2, -3)), _routed(mv.experts, mv.routed))))
        else:
            calls.append((getattr(mv.module, "as_linear", None) or mv.module, (x,)))

    def build():
        return [f(*args) for f, args in calls]

    return build


def time_floor(matvecs, dtype, iterations: int, warmup: int):
    """(eval ms per token list, build ms list)."""
    import mlx.core as mx

    build = floor_graph(matvecs, dtype)
    ev, bl = [], []
    for i in range(warmup + iterations):
        mx.synchronize()
        t0 = time.perf_counter()
        outs = build()
        t1 = time.perf_counter()
        mx.eval(outs)
        t2 = time.perf_counter()
        if i >= warmup:
            bl.append((t1 - t0) * 1e3)
            ev.append((t2 - t1) * 1e3)
    return ev, bl


def copy_probe(nbytes: int, reps: int) -> Probe:
    """Time `-a` over an nbytes float32 array: one read and one write per element,
    the shape of a device-to-device copy. `a` stays referenced so MLX cannot
    donate its buffer and work in place."""
    import mlx.core as mx

    n = max(1, nbytes // 4)
    a = mx.random.uniform(shape=(n,))
    mx.eval(a)
    mx.eval(-a)  # warm-up: allocation, kernel load
    ts = []
    for _ in range(reps):
        mx.synchronize()
        t0 = time.perf_counter()
        mx.eval(-a)
        ts.append((time.perf_counter() - t0) * 1e3)
    moved = 2 * n * 4
    s = stats.summarize(ts, higher_is_better=False)
    return Probe(bytes_moved=moved, ms=s, gb_s=moved / (s.best / 1e3) / 1e9)


def check_probe(probe_mb: Optional[int], chip) -> None:
    """The probe holds its array and the negated copy: refuse a size whose two
    arrays do not fit the memory the device offers."""
    from . import hardware

    if probe_mb is None or probe_mb <= 0:
        return
    avail, what = hardware.available_memory(chip)
    need = 2 * (probe_mb << 20)
    if avail is not None and need > avail:
        raise InputError(f"--probe-mb {probe_mb} needs ~{need / 2**30:.1f} GiB (the array and its copy) but the "
                         f"device offers {avail / 2**30:.1f} GiB ({what}); use at most "
                         f"{avail // 2 >> 20} MB")


def _defaults(backend: str, bytes_per_token: int):
    from . import decode as dec

    slow = backend == "cpu" and bytes_per_token > dec.CPU_BIG_BYTES
    return dict(
        iterations=5 if slow else 30,
        warmup=1 if slow else 5,
        probe_mb=256 if backend == "cpu" else 1024,
        probe_reps=5 if backend == "cpu" else 10,
        short=dict(runs=1, warmup=2, tokens=8, prompt_tokens=4) if slow
        else dict(runs=1, warmup=10, tokens=50, prompt_tokens=16),
    )


def _load_decode(path, ident: ModelIdentity) -> FloorDecode:
    from . import decode as dec
    from . import results

    r = results.load(path, dec.DecodeResult)
    m = r.model
    if (m.quantization, m.num_layers, m.bytes_per_token) != (ident.quantization, ident.num_layers,
                                                              ident.bytes_per_token):
        raise InputError(
            f"--decode {path} was measured on {m.name} ({m.quantization}, {m.num_layers} layers), "
            f"not on {ident.name} ({ident.quantization}, {ident.num_layers} layers)"
        )
    return FloorDecode(source=str(path), tok_s_best=r.tok_s.best, tok_s_median=r.tok_s.median,
                       token_ms=r.split.token_ms, runs=r.settings.runs, tokens=r.settings.tokens)


def short_decode(loaded, backend, bytes_per_token, runs=None, warmup=None, tokens=None) -> FloorDecode:
    from . import decode as dec

    d = _defaults(backend, bytes_per_token)["short"]
    runs = d["runs"] if runs is None else runs
    warmup = d["warmup"] if warmup is None else warmup
    tokens = d["tokens"] if tokens is None else tokens
    ids = dec.default_prompt(d["prompt_tokens"], loaded.vocab_size)
    recs = dec.measure(loaded, ids, runs, warmup, tokens)
    tok = stats.summarize([r.tok_s for r in recs])
    return FloorDecode(source="measured", tok_s_best=tok.best, tok_s_median=tok.median,
                       token_ms=dec.split_of(recs).token_ms, runs=runs, tokens=tokens)


def sentence_of(r: FloorResult) -> str:
    parts = []
    if r.decode_share is not None:
        parts.append(f"decode runs at {r.decode_share:.0%} of the streaming floor "
                     f"({r.decode.tok_s_median:.1f} of {r.floor_tok_s:.1f} tok/s)")
    else:
        parts.append(f"the streaming floor is {r.floor_ms.median:.2f} ms/token "
                     f"({r.floor_tok_s:.1f} tok/s)")
    if r.probe_share is not None:
        parts.append(f"the floor reaches {r.probe_share:.0%} of the device's copy bandwidth "
                     f"({r.gb_s:.1f} of {r.probe.gb_s:.1f} GB/s)")
    s = ", and ".join(parts)
    return s[0].upper() + s[1:] + "."


def measure_floor(session, iterations=None, warmup=None, probe_mb=None,
                  probe=True, decode=None, command=None, notes=()) -> FloorResult:
    """Floor (and probe) of an open session's model; `decode` is a FloorDecode or None."""
    import mlx.core as mx

    from .models.weights import streamed_matvecs

    ident, loaded, backend = session.identity, session.model, session.backend
    mvs = streamed_matvecs(loaded.text)
    d = _defaults(backend, ident.bytes_per_token)
    iterations = iterations or d["iterations"]
    warmup = d["warmup"] if warmup is None else warmup
    ev, bl = time_floor(mvs, getattr(mx, loaded.dtype), iterations, warmup)
    fm = stats.summarize(ev, higher_is_better=False)
    nbytes = sum(mv.nbytes for mv in mvs)
    groups = {}
    for mv in mvs:
        g = groups.setdefault(_format(mv), [0, 0])
        g[0] += 1
        g[1] += mv.nbytes
    pr = copy_probe((probe_mb or d["probe_mb"]) << 20, d["probe_reps"]) if probe else None
    gb_s = nbytes / (fm.median / 1e3) / 1e9
    r = FloorResult(
        provenance=session.provenance(command), model=ident, matvecs=len(mvs),
        groups=[FloorGroup(kind=k, matvecs=v[0], bytes=v[1])
                for k, v in sorted(groups.items(), key=lambda kv: -kv[1][1])],
        bytes_per_token=nbytes, iterations=iterations, warmup=warmup, floor_ms=fm,
        build_ms=statistics.median(bl), gb_s=gb_s, gb_s_best=nbytes / (fm.best / 1e3) / 1e9,
        floor_tok_s=1e3 / fm.median, probe=pr, decode=decode,
        decode_share=(decode.tok_s_median / (1e3 / fm.median)) if decode else None,
        probe_share=(gb_s / pr.gb_s) if pr else None, sentence="", notes=list(notes) + session.notes,
    )
    if backend == "cpu":
        r.notes.append("CPU backend: the floor is CPU compute over the weights, not a GPU's "
                       "memory stream")
    r.sentence = sentence_of(r)
    return r


def run(model, weights="auto", dtype=None, iterations=None, warmup=None, probe_mb=None,
        probe=True, decode_path=None, no_decode=False, runs=None, decode_warmup=None,
        tokens=None, json_path=None, command=None) -> FloorResult:
    from . import decode as dec
    from . import results
    from .session import open_session

    if warmup is not None and warmup < 0:
        raise InputError(f"--floor-warmup must be >= 0, not {warmup}")
    if decode_warmup is not None and decode_warmup < 0:
        raise InputError(f"--warmup must be >= 0, not {decode_warmup}")
    if decode_path and no_decode:
        raise InputError("--decode and --no-decode exclude each other")
    if decode_path:
        results.load(decode_path, dec.DecodeResult)  # fail on a bad file before building
    from . import hardware

    chip = hardware.detect()
    check_probe(probe_mb, chip)
    s = open_session(model, weights, dtype, outputs=(json_path,), chip=chip,
                     counts=dict(iterations=iterations, runs=runs, tokens=tokens, probe_mb=probe_mb))
    notes = [s.dtype_reason] if s.dtype_reason else []
    if decode_path:
        ref = _load_decode(decode_path, s.identity)
    elif no_decode:
        ref = None
    else:
        ref = short_decode(s.model, s.backend, s.identity.bytes_per_token, runs, decode_warmup, tokens)
    r = measure_floor(s, iterations, warmup, probe_mb, True, ref, command, notes)
    return r  # json_path is checked before any work; the caller saves it after printing
