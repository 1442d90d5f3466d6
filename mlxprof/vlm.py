"""Image prompts: a time-to-first-token breakdown and text vs image decode.

An image prompt goes the way mlx-vlm sends it. For Gemma 3n the image is
resized and rescaled, MobileNetV5 (the vision tower) turns it into a 16×16
grid of 2048-wide features, `embed_vision` projects them to the text width,
and `get_input_embeddings` scatters them over the image placeholder tokens
(<start_of_image>, 256 × <image>, <end_of_image>) before the text prefill.
Gemma 3 does the same with SigLIP and `multi_modal_projector`; every other
mlx-vlm family runs through its own `get_input_embeddings` in one graph
(`vision_families.py` has the per-family code, `vision_prep.py` the image).

The TTFT breakdown (Gemma 3n, Gemma 3) times those stages one after another
with `mx.eval` between them, so it is sequential by construction: in a real
generate call MLX evaluates the whole prefill graph at once and may overlap
or fuse work across stage boundaries, so the stages add up to a little more
than the fused TTFT that the text-vs-image table reports (there,
preprocessing → first token is one graph and one eval, as in mlx-vlm). Other
families get that fused TTFT only.
"""

import statistics
import time
from typing import Callable, Dict, List, Optional

import mlx.core as mx
from pydantic import BaseModel

from . import decode as dec
from . import stats
from . import vision_families as vf
from .results import ModelIdentity, Result
from .vision_families import (  # noqa: F401  (the image-prompt API, re-exported)
    GEMMA3N_HELP as STAGE_HELP, GEMMA3N_STAGES as STAGES, MSFA_GRID, check_target, clean_text_ids, image_prompt,
    project, set_grid, token_ids, vision_features,
)
from .vision_prep import (  # noqa: F401
    GEMMA3N_IMAGE_SIZE, MAX_IMAGE_PIXELS, MAX_IMAGE_SIZE, ImagePrep, builtin_prep, check_image_size,
    make_preprocessor, open_image, preprocess_builtin,
)

# 10 measured runs after 10 warm-ups, as the public Gemma TTFT breakdown does
# (docs/references.md). On the CPU backend one
# 768×768 MobileNetV5 pass took ~10 min on a shared 2-core box (float32,
# synthetic weights), so far fewer there; every flag overrides.
TTFT_DEFAULTS = dict(ttft_runs=10, ttft_warmup=10, runs=None)
CPU_TTFT_DEFAULTS = dict(ttft_runs=2, ttft_warmup=1, runs=2)


class VisionPrompt(BaseModel):
    image: str
    image_size: int
    image_original: List[int]  # width, height of the file
    soft_tokens: int  # image placeholder tokens = vision features per image
    grid: List[int]  # vision feature grid (h, w); empty where the family does not say
    text_tokens: int
    prompt_tokens: int  # boi + soft tokens + eoi + text
    token_ids: Dict[str, int]  # boi, image, eoi
    prep: ImagePrep
    vision_weights: str  # "real", or "synthetic" with the build time in vision_build_s
    vision_parameters: int  # every module outside the language model on the image path (materialize_vision)
    vision_build_s: Optional[float] = None
    deviation: Optional[str] = None  # set when the tiny-input grid differs from the checkpoint's


class StageStats(BaseModel):
    """One TTFT cell: median, standard deviation and the largest deviation
    from the median, over the measured runs (seconds)."""

    median_s: float
    stdev_s: float
    max_dev_s: float
    share: float  # median / median TTFT
    samples_s: List[float]


class TTFTBreakdown(BaseModel):
    runs: int
    warmup: int
    sequential: bool = True  # mx.eval between stages: see the module docstring
    stages: Dict[str, StageStats]  # empty where the architecture has no breakdown
    ttft: StageStats  # sum of the stages, run by run (else one fused eval per run)
    help: Dict[str, str] = STAGE_HELP
    note: Optional[str] = None  # "TTFT breakdown not available for <model_type>"


class PromptRow(BaseModel):
    prompt: str  # "text" or "image"
    prompt_tokens: int
    prefill_tok_s: stats.Summary
    ttft_s: stats.Summary  # fused: one eval from raw input to first token
    tok_s: stats.Summary  # decode


class VLMSettings(BaseModel):
    runs: int
    warmup: int
    tokens: int
    ttft_runs: int
    ttft_warmup: int
    dtype: str
    reduced: List[str] = []


class VLMResult(Result):
    kind: str = "vlm"
    model: ModelIdentity
    settings: VLMSettings
    vision: VisionPrompt
    breakdown: TTFTBreakdown
    text: PromptRow
    image: PromptRow
    decode_comparison: stats.Comparison  # image decode tok/s vs text, interleaved runs
    text_runs: List[dec.RunRecord]
    image_runs: List[dec.RunRecord]
    notes: List[str] = []


# -------------------------------------------------------------- the prompt


class Vision:
    """Everything an image prompt needs, prepared (and validated) once: the
    image, vision weights (generated when synthetic), and the family's token
    layout and prefill (`vision_families`)."""

    def __init__(self, loaded, image_path: str, image_size: Optional[int], text_ids: List[int]):
        from .models.synthetic import materialize_vision, vision_modules

        self.image = open_image(image_path)
        check_image_size(image_size)
        vf.check_target(loaded.target, image_size)
        self.loaded = loaded
        model = loaded.model
        build_s = None
        if loaded.target.weights == "synthetic":
            t = time.perf_counter()
            nparams = materialize_vision(model, getattr(mx, loaded.dtype))
            build_s = time.perf_counter() - t
        else:
            from mlx.utils import tree_flatten

            nparams = sum(p.size for _, m in vision_modules(model) for _, p in tree_flatten(m.parameters()))
        self.model_type = loaded.target.config["model_type"]
        fam = vf.family_for(self.model_type)(loaded, self.image, image_size, list(text_ids))
        self.family, self.ids, self.text_ids = fam, fam.ids, fam.text_ids
        p = fam.prep
        self.prompt = VisionPrompt(
            image=str(image_path), image_size=p.size, image_original=list(self.image.size),
            soft_tokens=fam.soft_tokens, grid=fam.grid, text_tokens=len(self.text_ids), prompt_tokens=len(self.ids),
            token_ids=fam.token_ids, prep=p, vision_weights=loaded.target.weights, vision_parameters=nparams,
            vision_build_s=build_s, deviation=fam.deviation,
        )

    @property
    def has_breakdown(self) -> bool:
        return bool(self.family.stages)

    def prefill(self, cache):
        """The fused image prefill for `decode.run_once`: raw image → logits
        in one lazy graph, evaluated once by the caller (as mlx-vlm does)."""
        return self.family.prefill(cache)

    def text_prefill(self, cache):
        """The same text without the image, through the same embedding path."""
        return self.family.text_prefill(cache)

    def staged(self, stream) -> Dict[str, float]:
        """One TTFT, stage by stage with mx.eval between stages (seconds)."""
        cache = self.loaded.make_cache()
        perf = time.perf_counter
        t, x = [perf()], None
        with mx.stream(stream):
            for step in self.family.steps(cache):
                x = step(x)
                if not isinstance(x, int):
                    mx.eval(x)
                t.append(perf())
        return {s: t[i + 1] - t[i] for i, s in enumerate(self.family.stages)}

    def fused(self, stream) -> float:
        """One TTFT as one graph and one eval: raw image → first token (seconds)."""
        cache = self.loaded.make_cache()
        t = time.perf_counter()
        with mx.stream(stream):
            vf.first_token(self.prefill(cache)[:, -1, :])
        return time.perf_counter() - t


# --------------------------------------------------------------- measuring


def compile_kernels(vision: Vision, backend: str, progress=None, ms=(), passes=()):
    """CUDA, on a machine missing some of them: the image and text prompts'
    kernels (and those of `passes` at token counts `ms`) compiled before the
    first run, several at once (precompile.py)."""
    from . import precompile

    stream = mx.new_stream(mx.default_device())
    return precompile.prepare(
        vision.loaded, backend, [len(vision.ids), len(vision.text_ids), 1, *ms], progress=progress,
        passes=[lambda: vision.fused(stream),
                lambda: dec.run_once(vision.loaded, vision.text_ids, 0, 2, stream=stream,
                                     prefill=vision.text_prefill), *passes])


def stage_stats(samples: List[float], ttft_median: float) -> StageStats:
    m = statistics.median(samples)
    return StageStats(
        median_s=m, stdev_s=statistics.stdev(samples) if len(samples) > 1 else 0.0,
        max_dev_s=max(abs(x - m) for x in samples), share=m / ttft_median if ttft_median else 0.0,
        samples_s=list(samples),
    )


def breakdown(vision: Vision, runs: int, warmup: int, on_run: Optional[Callable[[int], None]] = None):
    """Stage-by-stage TTFT where the family has stages, else the fused TTFT alone."""
    stream = mx.new_stream(mx.default_device())
    fam = vision.family
    rows = []
    for i in range(warmup + runs):
        r = vision.staged(stream) if fam.stages else {"ttft": vision.fused(stream)}
        if i >= warmup:
            rows.append(r)
        if on_run:
            on_run(i)
    ttft = [sum(r.values()) for r in rows]
    tm = statistics.median(ttft)
    note = None if fam.stages else f"TTFT breakdown not available for {vision.model_type}"
    return TTFTBreakdown(
        runs=runs, warmup=warmup, sequential=bool(fam.stages),
        stages={s: stage_stats([r[s] for r in rows], tm) for s in fam.stages},
        ttft=stage_stats(ttft, tm), help=fam.help, note=note,
    )


def compare_prompts(vision: Vision, runs: int, warmup: int, tokens: int, on_token=None, on_run=None):
    """Interleaved runs (text, image, text, image …), each from a fresh cache.
    prefill_s of a run is its fused TTFT: raw input → first token."""
    stream = mx.new_stream(mx.default_device())
    text, image = [], []
    for r in range(runs):
        for name, ids, hook, out in (("text", vision.text_ids, vision.text_prefill, text),
                                     ("image", vision.ids, vision.prefill, image)):
            cb = (lambda n, r=r, name=name: on_token(name, r, n)) if on_token else None
            rec = dec.run_once(vision.loaded, ids, warmup, tokens, on_token=cb, stream=stream, prefill=hook)
            out.append(rec)
            if on_run:
                on_run(name, rec)
    return text, image


def prompt_row(name: str, recs: List[dec.RunRecord]) -> PromptRow:
    return PromptRow(
        prompt=name, prompt_tokens=recs[0].prompt_tokens,
        prefill_tok_s=stats.summarize([r.prompt_tokens / r.prefill_s for r in recs]),
        ttft_s=stats.summarize([r.prefill_s for r in recs], higher_is_better=False),
        tok_s=stats.summarize([r.tok_s for r in recs]),
    )


def plan(backend: str, ttft_runs=None, ttft_warmup=None, runs=None):
    """TTFT counts and (on the CPU backend) the decode run count, with what
    the slow-backend defaults cut, in words."""
    base = CPU_TTFT_DEFAULTS if backend == "cpu" else TTFT_DEFAULTS
    given = dict(ttft_runs=ttft_runs, ttft_warmup=ttft_warmup, runs=runs)
    chosen = {k: (v if v is not None else base[k]) for k, v in given.items()}
    reduced = [f"{k.replace('_', '-')} {TTFT_DEFAULTS[k] or dec.DEFAULTS[k]}→{base[k]}" for k, v in given.items()
               if v is None and base[k] != TTFT_DEFAULTS[k]]
    if reduced:
        reduced = ["CPU backend (one 768×768 MobileNetV5 pass takes minutes; --image-size 256 is ~9× "
                   "cheaper): " + ", ".join(reduced)]
    return chosen, reduced


def prompt_note(p: VisionPrompt) -> str:
    s = (f"prompt: image {p.image} ({p.image_original[0]}×{p.image_original[1]} → {p.image_size}×{p.image_size}, "
         f"{p.soft_tokens} soft tokens) + {p.text_tokens} text tokens = {p.prompt_tokens}; "
         f"vision weights {p.vision_weights}")
    if p.vision_build_s is not None:
        s += f" ({p.vision_parameters / 1e6:.3g} M parameters generated in {p.vision_build_s:.2g} s)"
    if p.deviation:
        s += f"; {p.deviation}"
    return s
