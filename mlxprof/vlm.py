"""Image prompts: a time-to-first-token breakdown and text vs image decode.

An image prompt goes the way mlx-vlm's Gemma 3n sends it: the image is
resized and rescaled, MobileNetV5 (the vision tower) turns it into a 16×16
grid of 2048-wide features, `embed_vision` projects them to the text width,
and `get_input_embeddings` scatters them over the image placeholder tokens
(<start_of_image>, 256 × <image>, <end_of_image>) before the text prefill.

The TTFT breakdown times those stages one after another with `mx.eval`
between them, so it is sequential by construction: in a real generate call
MLX evaluates the whole prefill graph at once and may overlap or fuse work
across stage boundaries, so the stages add up to a little more than the
fused TTFT that the text-vs-image table reports (there, preprocessing →
first token is one graph and one eval, as in mlx-vlm).
"""

import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import mlx.core as mx
from pydantic import BaseModel

from . import decode as dec
from . import stats
from .errors import InputError
from .results import ModelIdentity, Result

STAGES = ("preprocess", "vision", "project", "embed", "prefill", "first_token")
STAGE_HELP = {
    "preprocess": "image → pixel values (resize, rescale/normalise, to an MLX array)",
    "vision": "MobileNetV5 vision tower",
    "project": "soft tokens: reshape, scale, embed_vision (RMSNorm, projection to text width)",
    "embed": "text embeddings, per-layer inputs, scatter of the image features",
    "prefill": "text model forward over the whole prompt (fills the KV cache)",
    "first_token": "log-softmax, argmax and .item() of the first token",
}

# Gemma 3n's preprocessor_config.json (google/gemma-3n-E2B-it, E4B-it):
# SiglipImageProcessorFast, 768×768, bilinear (resample 2), rescale 1/255 and
# do_normalize false: the mean/std of 0.5 are listed but not applied, pixels
# reach the tower in [0, 1].
GEMMA3N_IMAGE_SIZE = 768
GEMMA3N_PREP = dict(resample="bilinear", rescale_factor=1 / 255, do_normalize=False,
                    image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
# MobileNetV5's multi-scale fusion adapter (MSFA) average-pools the stride-16
# feature map to a fixed 16×16 grid (256 soft tokens) and RMS-normalises it;
# at 768 that is a 3×3 pool. mlx-vlm takes that path only when the grid
# divides the map and differs from it (sizes 512, 768, 1024 …): at 256 it
# skips pool and norm and returns channels-first features, and its bicubic
# path for other sizes fails on a layout mismatch. Tiny test inputs (below
# 512) therefore get a grid of size/32, i.e. the same 2×2 pool + norm path
# with (size/32)² soft tokens.
MSFA_GRID = 16
MIN_IMAGE_SIZE = 32
# 2048² already takes MobileNetV5 ~7× the activations of the checkpoints' 768²
MAX_IMAGE_SIZE = 2048
MAX_IMAGE_PIXELS = 64 * 10**6  # a header claiming more is refused before decoding

# 10 measured runs after 10 warm-ups, as the public Gemma TTFT breakdown does
# (docs/references.md). On the CPU backend one
# 768×768 MobileNetV5 pass took ~10 min on a shared 2-core box (float32,
# synthetic weights), so far fewer there; every flag overrides.
TTFT_DEFAULTS = dict(ttft_runs=10, ttft_warmup=10, runs=None)
CPU_TTFT_DEFAULTS = dict(ttft_runs=2, ttft_warmup=1, runs=2)


class ImagePrep(BaseModel):
    source: str  # "checkpoint image processor" or "built-in (Gemma 3n preprocessor_config)"
    size: int
    resample: str
    rescale_factor: float
    do_normalize: bool
    image_mean: List[float]
    image_std: List[float]


class VisionPrompt(BaseModel):
    image: str
    image_size: int
    image_original: List[int]  # width, height of the file
    soft_tokens: int  # image placeholder tokens = vision features per image
    grid: List[int]  # vision feature grid (h, w)
    text_tokens: int
    prompt_tokens: int  # boi + soft tokens + eoi + text
    token_ids: Dict[str, int]  # boi, image, eoi
    prep: ImagePrep
    vision_weights: str  # "real", or "synthetic" with the build time in vision_build_s
    vision_parameters: int  # vision tower + embed_vision + embed_audio (see materialize_vision)
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
    stages: Dict[str, StageStats]
    ttft: StageStats  # sum of the stages, run by run
    help: Dict[str, str] = STAGE_HELP


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


# ---------------------------------------------------------------- validation


def open_image(path):
    """Decode the file now (a bad path fails before any model is built)."""
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

    p = Path(path)
    if not p.exists():
        raise InputError(f"--image {path}: no such file")
    if not p.is_file():
        raise InputError(f"--image {path}: not a file")
    try:
        with Image.open(p) as im:
            im.load()
            return im.convert("RGB")
    except UnidentifiedImageError:
        raise InputError(f"--image {path}: not an image PIL can read")
    except Image.DecompressionBombError:
        raise InputError(f"--image {path}: its header claims more than {MAX_IMAGE_PIXELS // 10**6} M pixels; "
                         "refusing to decode it (resize it first)")
    except (OSError, ValueError) as e:
        raise InputError(f"--image {path}: unreadable image ({e})")


def check_image_size(size: Optional[int]):
    if size is None:
        return
    if size > MAX_IMAGE_SIZE:
        raise InputError(f"--image-size {size}: at most {MAX_IMAGE_SIZE} (the vision tower's activations grow "
                         "with the square of the size; the published checkpoints use 768)")
    if size < MIN_IMAGE_SIZE or size % 32:
        raise InputError(f"--image-size must be a multiple of 32 and at least {MIN_IMAGE_SIZE}, not {size}")
    if size >= 512 and size % 256:
        raise InputError(
            f"--image-size {size}: from 512 up it must be a multiple of 256 (MobileNetV5's fusion "
            "adapter pools the stride-16 map to 16×16; mlx-vlm's path for other sizes fails)"
        )


# ------------------------------------------------------------- preprocessing


def builtin_prep(size: int) -> ImagePrep:
    return ImagePrep(source="built-in (Gemma 3n preprocessor_config.json)", size=size, **GEMMA3N_PREP)


def preprocess_builtin(image, prep: ImagePrep) -> mx.array:
    """The checkpoint processor's steps without transformers: RGB, bilinear
    resize to size×size, rescale, optional normalise, NCHW float32."""
    import numpy as np
    from PIL import Image

    im = image.resize((prep.size, prep.size), Image.Resampling.BILINEAR)
    x = np.asarray(im, dtype=np.float32) * prep.rescale_factor
    if prep.do_normalize:
        x = (x - np.asarray(prep.image_mean, np.float32)) / np.asarray(prep.image_std, np.float32)
    return mx.array(x.transpose(2, 0, 1)[None])


def _resample_name(r) -> str:
    from PIL import Image

    try:
        return Image.Resampling(int(r)).name.lower()
    except (TypeError, ValueError):
        return str(r)


def make_preprocessor(loaded, size: Optional[int]):
    """(callable image → pixel_values, ImagePrep). The checkpoint's own image
    processor when it has one, else the built-in Gemma 3n steps."""
    ip = getattr(loaded.processor, "image_processor", None) if loaded.processor is not None else None
    if ip is None:
        prep = builtin_prep(size or GEMMA3N_IMAGE_SIZE)
        return (lambda im: preprocess_builtin(im, prep)), prep
    native = getattr(ip, "size", None) or {}
    native = native.get("height", GEMMA3N_IMAGE_SIZE) if isinstance(native, dict) else GEMMA3N_IMAGE_SIZE
    s = size or native
    kw = {} if size is None else dict(size={"height": s, "width": s})
    mean, std = getattr(ip, "image_mean", None) or [0.5] * 3, getattr(ip, "image_std", None) or [0.5] * 3
    prep = ImagePrep(
        source=f"checkpoint image processor ({type(ip).__name__})", size=s,
        resample=_resample_name(getattr(ip, "resample", None)), rescale_factor=float(getattr(ip, "rescale_factor", 1 / 255)),
        do_normalize=bool(getattr(ip, "do_normalize", False)), image_mean=list(mean), image_std=list(std),
    )

    def run(im):
        px = ip(images=[im], return_tensors="np", **kw)["pixel_values"]
        return mx.array(px)

    return run, prep


# ------------------------------------------------------------------- vision


def token_ids(loaded) -> Dict[str, int]:
    """<start_of_image>, <image>, <end_of_image> ids for this model."""
    from .models.synthetic import multimodal_layout

    cfg = (loaded.target.config or {}) if loaded.target.weights == "real" else {}
    lay = multimodal_layout(loaded.vocab_size)
    return dict(
        boi=int(cfg.get("boi_token_id", lay["boi"])),
        image=int(loaded.model.config.image_token_id),
        eoi=int(cfg.get("eoi_token_id", lay["eoi"])),
    )


def set_grid(model, size: int):
    """The fusion adapter's output grid for this input size (see MSFA_GRID)."""
    g = MSFA_GRID if size >= 512 else size // 32
    model.vision_tower.timm_model.msfa.output_resolution = (g, g)
    return g


def vision_features(model, pixel_values):
    """Vision tower → (B, H, W, 2048) lazy features."""
    return model.vision_tower(pixel_values, output_hidden_states=True)


def project(model, features):
    """mlx-vlm's `get_image_features` after the tower, op for op, with the
    soft-token count taken from the features instead of the config's 256."""
    b, h, w, c = features.shape
    x = features.transpose(0, 3, 1, 2).reshape(b, c, h * w).transpose(0, 2, 1)
    x = x * (c**0.5)
    return model.embed_vision(inputs_embeds=x)


def embed(model, ids, image_features):
    """Text embeddings with the image features scattered over the image tokens
    (mlx-vlm's path; pixel_values only has to be non-None when the features
    are passed in as cached_image_features)."""
    e = model.get_input_embeddings(
        input_ids=ids, pixel_values=True, cached_image_features=image_features,
    )
    return e.inputs_embeds, e.per_layer_inputs


def image_prompt(text_ids: List[int], ids: Dict[str, int], soft_tokens: int, bos: Optional[int] = None):
    """[bos] <start_of_image> <image>×n <end_of_image> text — the processor's
    expansion of one image placeholder, put before the text."""
    head, rest = ([text_ids[0]], text_ids[1:]) if bos is not None and text_ids[:1] == [bos] else ([], text_ids)
    return head + [ids["boi"]] + [ids["image"]] * soft_tokens + [ids["eoi"]] + rest


def clean_text_ids(text_ids: List[int], vision_offset: int) -> List[int]:
    """Keep synthetic prompt ids out of the multimodal id range (a test vocabulary
    holds the vision/audio ids in its last 256 rows)."""
    span = vision_offset - 256
    return [i if 0 <= i < vision_offset else 256 + i % span for i in text_ids]


class Vision:
    """Everything an image prompt needs, prepared (and validated) once."""

    def __init__(self, loaded, image_path: str, image_size: Optional[int], text_ids: List[int]):
        from .models.synthetic import materialize_vision

        self.image = open_image(image_path)
        check_image_size(image_size)
        self.loaded = loaded
        model = loaded.model
        self.model = model
        build_s = None
        if loaded.target.weights == "synthetic":
            t = time.perf_counter()
            nparams = materialize_vision(model, getattr(mx, loaded.dtype))
            build_s = time.perf_counter() - t
        else:
            from mlx.utils import tree_flatten

            nparams = sum(p.size for m in (model.vision_tower, model.embed_vision, model.embed_audio)
                          for _, p in tree_flatten(m.parameters()))
        self.preprocess, prep = make_preprocessor(loaded, image_size)
        grid = set_grid(model, prep.size)
        # MLX infers shapes while building the graph: the token count is free.
        px = mx.zeros((1, 3, prep.size, prep.size))
        _, h, w, _ = vision_features(model, px).shape
        ids = token_ids(loaded)
        tok = getattr(loaded.processor, "tokenizer", None)
        self.text_ids = clean_text_ids(list(text_ids), model.embed_vision.vocab_offset)
        self.ids = image_prompt(self.text_ids, ids, h * w, getattr(tok, "bos_token_id", None))
        self.prompt = VisionPrompt(
            image=str(image_path), image_size=prep.size, image_original=list(self.image.size),
            soft_tokens=h * w, grid=[h, w], text_tokens=len(self.text_ids), prompt_tokens=len(self.ids),
            token_ids=ids, prep=prep, vision_weights=loaded.target.weights, vision_parameters=nparams,
            vision_build_s=build_s,
            deviation=None if grid == MSFA_GRID else (
                f"tiny vision input {prep.size}×{prep.size}: fusion grid {grid}×{grid} ({h * w} soft tokens) "
                f"instead of the checkpoint's {MSFA_GRID}×{MSFA_GRID} (256)"),
        )

    def prefill(self, cache):
        """The fused image prefill for `decode.run_once`: raw image → logits
        in one lazy graph, evaluated once by the caller (as mlx-vlm does)."""
        model = self.model
        ids = mx.array([self.ids])
        feats = project(model, vision_features(model, self.preprocess(self.image)))
        emb, pli = embed(model, ids, feats)
        return model.language_model(inputs_embeds=emb, per_layer_inputs=pli, cache=cache).logits

    def text_prefill(self, cache):
        """The same text without the image, through the same embedding path."""
        model = self.model
        e = model.get_input_embeddings(input_ids=mx.array([self.text_ids]))
        return model.language_model(inputs_embeds=e.inputs_embeds, per_layer_inputs=e.per_layer_inputs,
                                    cache=cache).logits

    def staged(self, stream) -> Dict[str, float]:
        """One TTFT, stage by stage with mx.eval between stages (seconds)."""
        model, lm = self.model, self.model.language_model
        cache = lm.make_cache()
        ids = mx.array([self.ids])
        perf = time.perf_counter
        t = [perf()]
        with mx.stream(stream):
            px = self.preprocess(self.image)
            mx.eval(px)
            t.append(perf())
            f = vision_features(model, px)
            mx.eval(f)
            t.append(perf())
            feats = project(model, f)
            mx.eval(feats)
            t.append(perf())
            emb, pli = embed(model, ids, feats)
            mx.eval(emb, pli)
            t.append(perf())
            logits = lm(inputs_embeds=emb, per_layer_inputs=pli, cache=cache).logits[:, -1, :]
            mx.eval(logits)
            t.append(perf())
            logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
            mx.argmax(logprobs, axis=-1).item()
            t.append(perf())
        return {s: t[i + 1] - t[i] for i, s in enumerate(STAGES)}


# --------------------------------------------------------------- measuring


def stage_stats(samples: List[float], ttft_median: float) -> StageStats:
    m = statistics.median(samples)
    return StageStats(
        median_s=m, stdev_s=statistics.stdev(samples) if len(samples) > 1 else 0.0,
        max_dev_s=max(abs(x - m) for x in samples), share=m / ttft_median if ttft_median else 0.0,
        samples_s=list(samples),
    )


def breakdown(vision: Vision, runs: int, warmup: int, on_run: Optional[Callable[[int], None]] = None):
    stream = mx.new_stream(mx.default_device())
    rows = []
    for i in range(warmup + runs):
        r = vision.staged(stream)
        if i >= warmup:
            rows.append(r)
        if on_run:
            on_run(i)
    ttft = [sum(r.values()) for r in rows]
    tm = statistics.median(ttft)
    return TTFTBreakdown(
        runs=runs, warmup=warmup,
        stages={s: stage_stats([r[s] for r in rows], tm) for s in STAGES},
        ttft=stage_stats(ttft, tm),
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
        s += f" ({p.vision_parameters / 1e6:.0f} M parameters generated in {p.vision_build_s:.1f} s)"
    if p.deviation:
        s += f"; {p.deviation}"
    return s
