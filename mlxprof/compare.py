"""Bits side by side: one alias family at several quantizations.

For each variant: decode tok/s (best, median, spread), the pipeline split,
bytes streamed per token, the weight-streaming floor and the GB/s its GEMV
kernels reach, and the size of one step's graph. Then one sentence on why the
lower-bit model is or is not faster, built only from those numbers (the public question "why is Gemma 3n 4-bit
slower than bf16?", docs/references.md).

Variants run interleaved (A B C, B C A, …) when all of them fit in memory at
once, so drift on a shared machine hits each alike; otherwise one after the
other. The result says which.
"""

import time
from typing import Dict, List, Optional

from pydantic import BaseModel

from . import stats
from .decode import DecodeSettings, PhaseSplit, Verdict
from .errors import InputError
from .results import ModelIdentity, Result

_BITS = {"4": "4bit", "4bit": "4bit", "8": "8bit", "8bit": "8bit", "16": "bfloat16",
         "bf16": "bfloat16", "bfloat16": "bfloat16"}


class Variant(BaseModel):
    bits: str  # "4bit", "8bit", "bfloat16"
    alias: str
    model: ModelIdentity
    tok_s: stats.Summary
    prefill_tok_s: stats.Summary
    split: PhaseSplit
    verdict: Verdict
    bytes_per_token: int
    floor_ms: Optional[stats.Summary] = None
    floor_gb_s: Optional[float] = None  # GEMV kernels: bytes_per_token / median floor time
    nodes: Optional[int] = None  # one decode step's graph (mlxprof ops)
    op_classes: Dict[str, int] = {}
    peak_memory_bytes: int


class CompareResult(Result):
    kind: str = "compare"
    family: str
    order: str  # "interleaved" or "sequential"
    settings: DecodeSettings
    variants: List[Variant]
    comparisons: List[stats.Comparison]  # each lower-bit variant vs the highest-bit one
    probe_gb_s: Optional[float] = None  # device copy bandwidth (floor --probe)
    sentence: str
    notes: List[str] = []


DEFAULT_RUNS = 5


def family_of(model: str) -> str:
    from .models import MODELS, families

    if model in families():
        return model
    if model in MODELS:
        return MODELS[model].family
    raise InputError(f"--model '{model}' is not an alias family ({', '.join(families())}) "
                     "or an alias of one; compare takes aliases, not checkpoint paths")


def parse_bits(text: str, family: str) -> List[str]:
    from .models import family_members

    have = family_members(family)
    out = []
    for tok in (t.strip() for t in text.split(",")):
        label = _BITS.get(tok.lower())
        if label is None or label not in have:
            avail = ", ".join(k.replace("bit", "").replace("bfloat16", "16") for k in have)
            raise InputError(f"--bits '{tok}': {family} comes in {avail} (16 = bf16)")
        if label not in out:
            out.append(label)
    if len(out) < 2:
        raise InputError("--bits needs at least two different values to compare")
    return out


def explain(variants: List[Variant], comparisons: List[stats.Comparison]) -> str:
    """One sentence on lowest- vs highest-bit, from the measurements only."""
    lo = min(variants, key=lambda v: v.bytes_per_token)
    hi = max(variants, key=lambda v: v.bytes_per_token)
    c = next(c for c in comparisons if c.candidate == lo.bits)
    fewer = hi.bytes_per_token / lo.bytes_per_token
    if c.verdict == "significant gain":
        s = (f"{lo.bits} decodes ×{c.ratio:.2f} as fast as {hi.bits}: it streams {fewer:.1f}× fewer bytes")
        if lo.floor_ms and hi.floor_ms:
            s += f" and its streaming floor is {lo.floor_ms.median:.2f} vs {hi.floor_ms.median:.2f} ms/token"
        return s + "."
    head = (f"{lo.bits} is {'slower than' if c.verdict == 'regression' else 'not measurably faster than'} "
            f"{hi.bits} (×{c.ratio:.2f}, p={c.p_value:.2g}) although it streams {fewer:.1f}× fewer bytes")
    lt, ht = lo.split.token_ms, hi.split.token_ms
    if lo.floor_ms and hi.floor_ms:
        lf, hf = lo.floor_ms.median, hi.floor_ms.median
        if lf >= 0.8 * hf:
            return (f"{head}: its weight-streaming floor ({lf:.2f} ms/token) is no shorter than "
                    f"{hi.bits}'s ({hf:.2f} ms) because its GEMV kernels reach only "
                    f"{lo.floor_gb_s:.1f} GB/s against {hi.floor_gb_s:.1f} GB/s, so per-kernel cost, "
                    "not bytes, sets the pace.")
        if max(lf / lt, hf / ht) < 0.5:
            where = lo.verdict.label
            return (f"{head}: weight streaming is only {lf / lt:.0%} of a {lo.bits} token and "
                    f"{hf / ht:.0%} of a {hi.bits} token ({lf:.2f} vs {hf:.2f} ms of {lt:.2f} vs "
                    f"{ht:.2f} ms), so the time goes elsewhere ({where}: build "
                    f"{lo.split.build_ms:.2f} ms, submit {lo.split.submit_ms:.2f} ms per token) "
                    "and fewer bytes cannot show.")
        return (f"{head}: the floors differ by {hf - lf:.2f} ms/token but the tokens by "
                f"{ht - lt:+.2f} ms, so something other than streaming differs between them.")
    return f"{head} (no floor measured)."


def side_measures(session, context: int, floor: bool) -> dict:
    """A variant's identity, streaming floor and one step's graph size."""
    import mlx.core as mx

    from . import floor as fl
    from . import ops
    from .models.weights import streamed_matvecs

    ident = session.identity
    e = dict(model=ident, alias=session.model.target.name)
    if floor:
        d = fl._defaults(session.backend, ident.bytes_per_token)
        ev, _ = fl.time_floor(streamed_matvecs(session.model.text), getattr(mx, session.model.dtype),
                              d["iterations"], d["warmup"])
        fm = stats.summarize(ev, higher_is_better=False)
        e.update(floor_ms=fm, floor_gb_s=ident.bytes_per_token / (fm.median / 1e3) / 1e9)
    o = ops.step_histogram(session, context)
    e.update(nodes=o.nodes, op_classes=o.classes)
    return e


def run(model, bits="4,8,16", weights="auto", dtype=None, runs=None, warmup=None, tokens=None,
        prompt_tokens=None, floor=True, json_path=None, progress=False, command=None) -> CompareResult:
    from . import decode as dec
    from . import hardware, results
    from .models import family_members, resolve
    from .progress import Progress
    from .session import check_outputs

    dec.validate_counts(runs=runs, warmup=warmup, tokens=tokens, prompt_tokens=prompt_tokens)
    family = family_of(model)
    labels = parse_bits(bits, family)
    members = family_members(family)
    aliases = dict(zip(labels, (members[b].alias for b in labels)))
    targets = [resolve(a, weights) for a in aliases.values()]
    check_outputs(json_path)
    chip = hardware.detect()
    interleaved = _all_fit(targets, dtype, chip)
    bar, notes = Progress(progress), []
    recs, extra, settings = _measure(aliases, weights, dtype, chip, interleaved, runs, warmup, tokens,
                                     prompt_tokens, floor, bar, notes)
    r = _summarize(recs, extra, settings, chip, floor, notes)
    r = CompareResult(provenance=results.provenance(command, chip=chip), family=family,
                      order="interleaved" if interleaved else "sequential", **r)
    return r  # json_path is checked before any work; the caller saves it after printing


def _all_fit(targets, dtype, chip) -> bool:
    """Interleave the variants when all of them fit in memory at once."""
    from .hardware import available_memory
    from .models import estimate_bytes

    need = sum(estimate_bytes(t, dtype) for t in targets)
    have, _ = available_memory(chip)
    return have is None or need * 1.3 + (512 << 20) < have


def _measure(aliases, weights, dtype, chip, interleaved, runs, warmup, tokens, prompt_tokens, floor,
             bar, notes):
    """Decode runs of every variant (interleaved, or one after another when they
    do not fit together), then each variant's floor and graph size."""
    import mlx.core as mx

    from . import decode as dec
    from .models import estimate_bytes, resolve
    from .session import open_session

    labels = list(aliases)
    sessions = {}

    def open_variant(b):
        bar.note(f"building {aliases[b]}")
        sessions[b] = open_session(aliases[b], weights, dtype, chip=chip)
        if sessions[b].dtype_reason:
            notes.append(f"{aliases[b]}: {sessions[b].dtype_reason}")
        return sessions[b]

    if interleaved:
        for b in labels:
            open_variant(b)
        biggest = max(s.identity.bytes_per_token for s in sessions.values())
    else:
        biggest = max(estimate_bytes(resolve(a, weights), dtype) for a in aliases.values())
    slow = chip.backend == "cpu" and biggest > dec.CPU_BIG_BYTES
    if runs is None and not slow:
        runs = DEFAULT_RUNS  # the rank test needs >= 4 runs a side to call anything
    settings = dec.plan_settings(chip.backend, biggest, runs, warmup, tokens, prompt_tokens,
                                 dtype="per variant")
    stream = mx.new_stream(mx.default_device())
    recs: Dict[str, list] = {b: [] for b in labels}
    extra: Dict[str, dict] = {}

    def one_run(b, s):
        t0 = time.perf_counter()
        ids = s.prompt(settings.prompt_tokens)
        recs[b].append(dec.run_once(s.model, ids, settings.warmup, settings.tokens, stream=stream))
        bar.note(f"  {b} run {len(recs[b])}/{settings.runs}: "
                 f"{recs[b][-1].tok_s:.2f} tok/s ({time.perf_counter() - t0:.1f} s)")

    if interleaved:
        for b in stats.interleave(labels, settings.runs):
            one_run(b, sessions[b])
        for b in labels:
            extra[b] = side_measures(sessions[b], settings.prompt_tokens, floor)
    else:
        for b in labels:
            s = open_variant(b)
            for _ in range(settings.runs):
                one_run(b, s)
            extra[b] = side_measures(s, settings.prompt_tokens, floor)
            del sessions[b], s
            mx.clear_cache()
    return recs, extra, settings


def _summarize(recs, extra, settings, chip, floor, notes) -> dict:
    """Variants, their comparisons against the highest-bit one, the sentence."""
    from . import decode as dec
    from . import floor as fl

    variants = []
    for b, runs in recs.items():
        broken = dec.nonfinite_note(runs, b)
        notes += [broken] if broken else []
        tok, pre, split, verdict = dec.summarize_runs(runs, chip.backend)
        e = extra[b]
        variants.append(Variant(
            bits=b, alias=e["alias"], model=e["model"], tok_s=tok, prefill_tok_s=pre, split=split,
            verdict=verdict, bytes_per_token=e["model"].bytes_per_token,
            floor_ms=e.get("floor_ms"), floor_gb_s=e.get("floor_gb_s"), nodes=e["nodes"],
            op_classes=e["op_classes"], peak_memory_bytes=max(r.peak_memory_bytes for r in runs),
        ))
    base = max(variants, key=lambda v: v.bytes_per_token)
    comparisons = [stats.compare(base.tok_s.samples, v.tok_s.samples, names=(base.bits, v.bits))
                   for v in variants if v is not base]
    d = fl._defaults(chip.backend, 0)
    probe = fl.copy_probe(d["probe_mb"] << 20, d["probe_reps"]).gb_s if floor else None
    if any(v.model.weights == "synthetic" for v in variants):
        from .session import SYNTHETIC_NOTE

        notes.append(SYNTHETIC_NOTE)
    n = settings.runs
    if stats.min_p_value(n, n) >= 0.05:
        notes.append(f"{n} runs per variant: the rank test cannot reach p < 0.05 with so few, so "
                     "no difference can be called significant; use --runs 5 or more")
    notes = settings.reduced + notes
    settings.reduced = []
    return dict(settings=settings, variants=variants, comparisons=comparisons, probe_gb_s=probe,
                sentence=explain(variants, comparisons), notes=notes)
