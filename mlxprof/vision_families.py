"""One image prompt per architecture: the token layout, the inputs, and the
prefill, op for op as mlx-vlm's model code runs it.

Two families get a stage-by-stage TTFT breakdown because their stages are
known and separable in mlx-vlm's code: Gemma 3n (`mlx_vlm/models/gemma3n/
gemma3n.py`) and Gemma 3 (`mlx_vlm/models/gemma3/gemma3.py`). Every other
mlx-vlm family is prefilled through its own `get_input_embeddings` and
`language_model` as `mlx_vlm/generate/ar.py` calls them, in one fused graph,
and reports a total TTFT only.
"""

import time
from typing import Dict, List, Optional

import mlx.core as mx

from . import vision_prep as vp
from .errors import InputError

GEMMA3N_STAGES = ("preprocess", "vision", "project", "embed", "prefill", "first_token")
GEMMA3N_HELP = {
    "preprocess": "image → pixel values (resize, rescale/normalise, to an MLX array)",
    "vision": "MobileNetV5 vision tower",
    "project": "soft tokens: reshape, scale, embed_vision (RMSNorm, projection to text width)",
    "embed": "text embeddings, per-layer inputs, scatter of the image features",
    "prefill": "text model forward over the whole prompt (fills the KV cache)",
    "first_token": "log-softmax, argmax and .item() of the first token",
}
GEMMA3_HELP = {
    **GEMMA3N_HELP,
    "vision": "SigLIP vision tower (patch embedding, encoder, post-layernorm)",
    "project": "multi_modal_projector: average pool to mm_tokens_per_image, RMSNorm, projection to text width",
    "embed": "text embeddings, scatter of the scaled image features over the image tokens",
}
# MobileNetV5's multi-scale fusion adapter (MSFA) average-pools the stride-16
# feature map to a fixed 16×16 grid (256 soft tokens) and RMS-normalises it;
# at 768 that is a 3×3 pool. mlx-vlm takes that path only when the grid
# divides the map and differs from it (sizes 512, 768, 1024 …): at 256 it
# skips pool and norm and returns channels-first features, and its bicubic
# path for other sizes fails on a layout mismatch. Tiny test inputs (below
# 512) therefore get a grid of size/32, i.e. the same 2×2 pool + norm path
# with (size/32)² soft tokens.
MSFA_GRID = 16


def first_token(logits):
    """log-softmax, argmax and .item(), as mlx-lm's sampler ends a step."""
    logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    return mx.argmax(logprobs, axis=-1).item()


def image_prompt(text_ids: List[int], ids: Dict[str, int], soft_tokens: int, bos: Optional[int] = None):
    """[bos] <start> <image>×n <end> text — the processor's expansion of one
    image placeholder, put before the text."""
    head, rest = ([text_ids[0]], text_ids[1:]) if bos is not None and text_ids[:1] == [bos] else ([], text_ids)
    return head + [ids["boi"]] + [ids["image"]] * soft_tokens + [ids["eoi"]] + rest


def clean_text_ids(text_ids: List[int], vision_offset: int) -> List[int]:
    """Keep synthetic prompt ids out of the multimodal id range (a test vocabulary
    holds the vision/audio ids in its last 256 rows)."""
    span = vision_offset - 256
    return [i if 0 <= i < vision_offset else 256 + i % span for i in text_ids]


def avoid_ids(text_ids: List[int], special) -> List[int]:
    """Prompt ids with every special id (image, start/end, pad) replaced by the
    smallest id that is none of them: only the image's own tokens may be special."""
    special = set(special)
    spare = next(i for i in range(1, 1 << 20) if i not in special)
    return [spare if i in special else i for i in text_ids]


def _bos(loaded):
    return getattr(getattr(loaded.processor, "tokenizer", None), "bos_token_id", None)


# ---------------------------------------------------------------- Gemma 3n


def token_ids(loaded) -> Dict[str, int]:
    """Gemma 3n's <start_of_image>, <image>, <end_of_image> ids for this model."""
    from .models.synthetic import multimodal_layout

    cfg = (loaded.target.config or {}) if loaded.target.weights == "real" else {}
    lay = multimodal_layout(loaded.vocab_size)
    return dict(boi=int(cfg.get("boi_token_id", lay["boi"])), image=int(loaded.model.config.image_token_id),
                eoi=int(cfg.get("eoi_token_id", lay["eoi"])))


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
    e = model.get_input_embeddings(input_ids=ids, pixel_values=True, cached_image_features=image_features)
    return e.inputs_embeds, e.per_layer_inputs


class Gemma3n:
    """MobileNetV5 → embed_vision → scatter → prefill (mlx_vlm/models/gemma3n)."""

    stages, help = GEMMA3N_STAGES, GEMMA3N_HELP

    def __init__(self, loaded, image, size: Optional[int], text_ids: List[int]):
        self.loaded, self.model, self.image = loaded, loaded.model, image
        self.preprocess, self.prep = vp.make_preprocessor(loaded, size)
        grid = set_grid(self.model, self.prep.size)
        # MLX infers shapes while building the graph: the token count is free.
        _, h, w, _ = vision_features(self.model, mx.zeros((1, 3, self.prep.size, self.prep.size))).shape
        self.token_ids = token_ids(loaded)
        self.text_ids = clean_text_ids(list(text_ids), self.model.embed_vision.vocab_offset)
        self.ids = image_prompt(self.text_ids, self.token_ids, h * w, _bos(loaded))
        self.soft_tokens, self.grid = h * w, [h, w]
        self.deviation = None if grid == MSFA_GRID else (
            f"tiny vision input {self.prep.size}×{self.prep.size}: fusion grid {grid}×{grid} ({h * w} soft "
            f"tokens) instead of the checkpoint's {MSFA_GRID}×{MSFA_GRID} (256)")

    def prefill(self, cache):
        """Raw image → logits in one lazy graph, evaluated once by the caller."""
        model, ids = self.model, mx.array([self.ids])
        emb, pli = embed(model, ids, project(model, vision_features(model, self.preprocess(self.image))))
        return model.language_model(inputs_embeds=emb, per_layer_inputs=pli, cache=cache).logits

    def text_prefill(self, cache):
        """The same text without the image, through the same embedding path."""
        e = self.model.get_input_embeddings(input_ids=mx.array([self.text_ids]))
        return self.model.language_model(inputs_embeds=e.inputs_embeds, per_layer_inputs=e.per_layer_inputs,
                                         cache=cache).logits

    def steps(self, cache):
        """The stages as functions of the previous stage's output, in order."""
        model, lm, ids = self.model, self.model.language_model, mx.array([self.ids])
        return [
            lambda _: self.preprocess(self.image),
            lambda px: vision_features(model, px),
            lambda f: project(model, f),
            lambda feats: embed(model, ids, feats),
            lambda e: lm(inputs_embeds=e[0], per_layer_inputs=e[1], cache=cache).logits[:, -1, :],
            first_token,
        ]


# ------------------------------------------------------------------ Gemma 3


class Gemma3:
    """SigLIP → multi_modal_projector → scatter → prefill, as
    `mlx_vlm/models/gemma3/gemma3.py` `get_input_embeddings` does it; the
    language model then runs without the 4-D mask, as `mlx_vlm/generate/ar.py`
    calls it (its own causal and sliding-window masks)."""

    stages, help = GEMMA3N_STAGES, GEMMA3_HELP

    def __init__(self, loaded, image, size: Optional[int], text_ids: List[int]):
        self.loaded, self.model, self.image = loaded, loaded.model, image
        vc = self.model.config.vision_config
        self.preprocess, self.prep = vp.make_preprocessor(loaded, size, "Gemma 3", vc.image_size, vp.GEMMA3_PREP)
        cfg = self.model.config
        raw = loaded.target.config or {}
        self.token_ids = dict(boi=int(raw.get("boi_token_index", 255999)), image=int(cfg.image_token_index),
                              eoi=int(raw.get("eoi_token_index", 256000)))
        pad = cfg.pad_token_id if cfg.pad_token_id is not None else 0
        self.text_ids = avoid_ids(list(text_ids), list(self.token_ids.values()) + [pad])
        # the embedding's dtype, from the lazy graph (quantized tables give their scales' dtype)
        self.dtype = self.model.language_model.model.embed_tokens(mx.array([[1]])).dtype
        px = mx.zeros((1, 3, self.prep.size, self.prep.size))
        n = self.model.multi_modal_projector(self.tower(px)).shape[1]
        side = int(round(n**0.5))
        self.soft_tokens, self.grid, self.deviation = n, [side, side], None
        self.ids = image_prompt(self.text_ids, self.token_ids, n, _bos(loaded))

    def tower(self, px):
        return self.model.vision_tower(px.transpose(0, 2, 3, 1).astype(self.dtype), output_hidden_states=True)[0]

    def embed(self, ids, feats):
        return self.model.get_input_embeddings(ids, pixel_values=True, mask=mx.ones(ids.shape),
                                               cached_image_features=feats).inputs_embeds

    def prefill(self, cache):
        ids = mx.array([self.ids])
        emb = self.embed(ids, self.model.multi_modal_projector(self.tower(self.preprocess(self.image))))
        return self.model.language_model(inputs=ids, inputs_embeds=emb, cache=cache).logits

    def text_prefill(self, cache):
        ids = mx.array([self.text_ids])
        e = self.model.get_input_embeddings(input_ids=ids)
        return self.model.language_model(inputs=ids, inputs_embeds=e.inputs_embeds, cache=cache).logits

    def steps(self, cache):
        model, ids = self.model, mx.array([self.ids])
        return [
            lambda _: self.preprocess(self.image),
            self.tower,
            model.multi_modal_projector,
            lambda feats: self.embed(ids, feats),
            lambda emb: model.language_model(inputs=ids, inputs_embeds=emb, cache=cache).logits[:, -1, :],
            first_token,
        ]


# ------------------------------------------------------------ other families

QWEN2VL_TYPES = ("qwen2_vl", "qwen2_5_vl")
BUILTIN = ("gemma3n", "gemma3") + QWEN2VL_TYPES  # families with built-in preprocessing


def generic_logits(model, ids, cache, pixel_values=None, mask=None, **kw):
    """The prompt's logits the way mlx-vlm's generate prefills it
    (`mlx_vlm/generate/ar.py`): `get_input_embeddings` with the pixel values
    and the processor's extra inputs, then the language model with those
    inputs and whatever the embedding step returned besides the embeddings."""
    e = model.get_input_embeddings(ids, pixel_values, mask=mask, **kw)
    extra = {k: v for k, v in e.to_dict().items() if k != "inputs_embeds" and v is not None}
    out = model.language_model(inputs=ids, inputs_embeds=e.inputs_embeds, cache=cache, **{**kw, **extra})
    return getattr(out, "logits", out)


class Generic:
    """Any other mlx-vlm family: total TTFT only (one fused graph). Inputs
    from the checkpoint's processor (`mlx_vlm.utils.prepare_inputs`), or for
    synthetic Qwen2-VL / Qwen2.5-VL from the built-in patching."""

    stages, help = (), {}

    def __init__(self, loaded, image, size: Optional[int], text_ids: List[int]):
        self.loaded, self.model, self.image = loaded, loaded.model, image
        self.model_type = loaded.target.config["model_type"]
        self.processor = loaded.processor if getattr(loaded.processor, "image_processor", None) else None
        self.deviation = None
        if self.processor is not None:
            self._from_processor(text_ids)
        else:
            self._qwen_builtin(size, text_ids)

    def _qwen_builtin(self, size, text_ids):
        cfg, vc = self.model.config, self.model.config.vision_config
        self.patch, self.temporal, self.merge = vc.patch_size, vc.temporal_patch_size, vc.spatial_merge_size
        f = self.patch * self.merge
        h, w = (size, size) if size else vp.smart_resize(self.image.height, self.image.width, f)
        self.prep = vp.builtin_prep(h, "Qwen2.5-VL", vp.QWEN2VL_PREP)
        self.prep.width = None if w == h else w
        self.token_ids = dict(boi=int(cfg.vision_start_token_id), image=int(cfg.image_token_id),
                              eoi=int(cfg.vision_end_token_id))
        special = list(self.token_ids.values()) + [int(cfg.video_token_id), int(cfg.vision_token_id)]
        self.text_ids = avoid_ids(list(text_ids), special)
        gh, gw = h // self.patch, w // self.patch
        self.soft_tokens, self.grid = gh * gw // self.merge**2, [gh // self.merge, gw // self.merge]
        self.ids = image_prompt(self.text_ids, self.token_ids, self.soft_tokens)

    def _from_processor(self, text_ids):
        from mlx_vlm.prompt_utils import apply_chat_template

        tok = self.processor.tokenizer
        self.text = tok.decode(list(text_ids))
        self.prompt_text = apply_chat_template(self.processor, self.model.config, self.text, num_images=1)
        inputs = self.inputs()
        self.ids = inputs["input_ids"][0].tolist()
        self.text_ids = list(tok.encode(apply_chat_template(self.processor, self.model.config, self.text)))
        image_id = _image_token(self.model.config)
        self.token_ids = {"image": image_id}
        self.soft_tokens = sum(1 for i in self.ids if i == image_id)
        thw = inputs.get("image_grid_thw")
        self.grid = [int(x) for x in thw[0].tolist()[1:]] if thw is not None else []
        self.prep = vp.checkpoint_prep(self.processor.image_processor, None, 0)[1]

    def inputs(self) -> dict:
        """Pixel values and the family's extra inputs (image → MLX arrays), every call."""
        if self.processor is not None:
            from mlx_vlm.utils import prepare_inputs

            out = prepare_inputs(self.processor, images=[self.image], prompts=[self.prompt_text],
                                 image_token_index=_image_token(self.model.config))
            out = dict(out)
            out["mask"] = out.pop("attention_mask", None)
            return out
        px, thw = vp.qwen_patches(self.image, self.prep, self.patch, self.temporal, self.merge)
        return dict(input_ids=mx.array([self.ids]), pixel_values=px, image_grid_thw=thw)

    def prefill(self, cache):
        kw = self.inputs()
        return generic_logits(self.model, kw.pop("input_ids"), cache, **kw)

    def text_prefill(self, cache):
        return generic_logits(self.model, mx.array([self.text_ids]), cache)


def _image_token(config) -> Optional[int]:
    v = getattr(config, "image_token_index", None)
    return int(v) if v is not None else getattr(config, "image_token_id", None)


def family_for(model_type: str):
    return {"gemma3n": Gemma3n, "gemma3": Gemma3}.get(model_type, Generic)


def _has_processor(target) -> bool:
    p = target.path
    return target.weights == "real" and p is not None and p.is_dir() and any(
        (p / f).exists() for f in ("preprocessor_config.json", "processor_config.json"))


def check_target(target, size: Optional[int]):
    """Refuse, before anything is built, an image prompt this model cannot take."""
    cfg = target.config or {}
    mt = cfg.get("model_type")
    if target.library != "mlx-vlm":
        raise InputError(f"--image: {target.name} has no vision tower ({mt}, a text model built by mlx-lm)")
    vc = cfg.get("vision_config") or {}
    if mt == "gemma3n":
        if size is not None and (size < 32 or size % 32):
            raise InputError(f"--image-size must be a multiple of 32 and at least 32, not {size}")
        if size is not None and size >= 512 and size % 256:
            raise InputError(f"--image-size {size}: from 512 up it must be a multiple of 256 (MobileNetV5's "
                             "fusion adapter pools the stride-16 map to 16×16; mlx-vlm's path for other sizes fails)")
        return
    if mt == "gemma3":
        native = vc.get("image_size", 224)  # mlx_vlm/models/gemma3/config.py VisionConfig default
        if size is not None and size != native:
            raise InputError(f"--image-size {size}: Gemma 3's SigLIP tower takes {native}×{native} only (its "
                             "position embeddings and the projector's pooling are fixed by vision_config.image_size)")
        return
    from mlx_vlm.utils import get_model_and_args

    arch, _ = get_model_and_args(cfg)
    if not hasattr(arch.Model, "get_input_embeddings"):
        raise InputError(f"--image: mlx-vlm's {mt} model has no get_input_embeddings; mlxprof cannot prefill "
                         "an image prompt for it")
    if _has_processor(target):
        if size is not None:
            raise InputError(f"--image-size: not supported for {mt} (its checkpoint processor decides the size)")
        return
    if mt not in QWEN2VL_TYPES:
        raise InputError(f"--image: {mt} needs its checkpoint's processor files for an image prompt (built-in "
                         f"preprocessing exists for {', '.join(BUILTIN)} only)")
    f = vc.get("patch_size", 14) * vc.get("spatial_merge_size", 2)
    if size is not None and size % f:
        raise InputError(f"--image-size {size}: {mt} needs a multiple of {f} (patches of "
                         f"{vc.get('patch_size', 14)} pixels merged {vc.get('spatial_merge_size', 2)}×"
                         f"{vc.get('spatial_merge_size', 2)})")
