"""Synthetic, architecture-exact weights with random values, for any
architecture mlx-lm or mlx-vlm builds from a config.json.

Quantized tensors are generated directly in packed form (uint32 words plus
scales and biases) instead of materialising float32 weights and quantizing
them: that naive way took 104 s and 9.2 GB peak for E2B on a 2-core box.
Random words come from one random block per tensor tiled to the full shape,
which is ~4x cheaper than drawing every word and makes no difference to decode
timing (timing does not depend on weight values).
"""

import math

import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten

_BLOCK_WORDS = 1 << 22  # 16 MB of random uint32 words per tensor at most


def _random_words(shape):
    """Random uint32 words for a packed weight of any rank (experts lead)."""
    cols = shape[-1]
    rows = math.prod(shape[:-1])
    block_rows = max(1, min(rows, _BLOCK_WORDS // max(cols, 1)))
    block = mx.random.randint(0, 2**31 - 1, (block_rows, cols), dtype=mx.int32)
    block = block.view(mx.uint32)
    full, rest = divmod(rows, block_rows)
    if full > 1 or rest:
        # whole blocks plus the remainder, concatenated into an exact-size
        # buffer: slicing an over-long tile keeps the whole tile alive (a view),
        # ~0.9 GB of dead rows across Qwen3-8B's MLPs
        parts = [mx.tile(block, (full, 1))] + ([block[:rest]] if rest else [])
        block = mx.concatenate(parts) if len(parts) > 1 else parts[0]
    return block.reshape(shape)


def _random_float(shape, dtype, scale):
    return (mx.random.normal(shape) * scale).astype(dtype)


def quant_predicate(group_size):
    """Which modules the mlx-community conversions quantize: every Linear or
    Embedding whose input width splits into whole groups."""

    def predicate(path, module):
        if not hasattr(module, "to_quantized"):
            return False
        return module.weight.shape[-1] % group_size == 0

    return predicate


def text_module(model, library: str):
    """The part of the model one decode token runs: mlx-vlm's language model,
    or the mlx-lm model itself."""
    return model.language_model if library == "mlx-vlm" else model


def build_model(spec, dtype=None, seed: int = 0, materialize: bool = True, library=None):
    """The library's own model for `spec` (a ModelSpec or a config.json dict),
    quantized as its `quantization` block says, with random weights.

    Only the text model's weights are materialised; an mlx-vlm model's vision
    and audio towers stay lazy (unevaluated) until a command needs them
    (`materialize_vision` for image prompts). With `materialize=False` nothing
    is evaluated: shapes and dtypes are exact, so byte counts are free.
    """
    from .adapters import build, library_for, quantize
    from .registry import quantization_of

    config = spec if isinstance(spec, dict) else spec.config
    where = config.get("model_type") if isinstance(spec, dict) else spec.alias
    library = library or library_for(config, where)
    mx.random.seed(seed)
    dtype = dtype or getattr(mx, quantization_of(config).dtype)
    model = build(config, library, where)
    lm = text_module(model, library)
    quantize(lm, config, prefix="language_model." if lm is not model else "")
    params = _random_params(lm, dtype)
    if materialize:
        # one tensor at a time: only that tensor's random block and float
        # temporaries are alive beside the finished weights (one eval of the
        # whole tree holds every tensor's temporaries at once)
        for _, v in params:
            mx.eval(v)
    lm.update(tree_unflatten(params))
    if materialize:
        mx.eval(lm.parameters())  # parameters the generator left as initialised (integer buffers)
    return model


def _quant_scales(m, shape, dtype):
    """Scales (and affine biases) for a quantized module: weights ≈ scale · q
    centred, with the init's spread 1/sqrt(in_dims)."""
    in_dims = shape[-1] * m.group_size
    if m.mode == "affine":
        s = 1.0 / math.sqrt(in_dims) / (1 << (m.bits - 1))
        scales = (mx.random.uniform(0.5, 1.5, shape) * s).astype(dtype)
        return scales, (-(1 << (m.bits - 1)) * s * mx.ones(shape)).astype(dtype)
    # mxfp4/mxfp8/nvfp4 scales are uint8 exponents (E8M0: 2^(e-127)); fp4 values
    # reach ±6, so 2^(e-127) · 6 ≈ 3/sqrt(in_dims) keeps the init's spread
    e = 127 + round(math.log2(3.0 / math.sqrt(in_dims) / 6.0))
    return (e + mx.random.randint(-1, 2, shape)).astype(mx.uint8), None


def _random_params(lm, dtype):
    """(name, array) for every parameter: packed words for quantized weights,
    their scales/biases, ones for norms, N(0, 1/fan_in) for the rest. Integer
    parameters other than packed words keep their initial values."""
    quantized = {path: m for path, m in lm.named_modules() if hasattr(m, "bits") and "scales" in m}
    out = []
    for name, p in tree_flatten(lm.parameters()):
        base, _, leaf = name.rpartition(".")
        q = quantized.get(base)
        if q is not None and leaf == "weight":
            out.append((name, _random_words(p.shape)))
        elif q is not None and leaf in ("scales", "biases"):
            scales, biases = _quant_scales(q, p.shape, dtype)
            out.append((name, scales if leaf == "scales" else biases))
        elif not mx.issubdtype(p.dtype, mx.floating):
            continue
        elif "norm" in base and leaf == "weight":
            out.append((name, mx.ones(p.shape, dtype=dtype)))
        else:
            scale = 1.0 / math.sqrt(p.shape[-1]) if p.ndim else 1.0
            out.append((name, _random_float(p.shape, dtype, scale)))
    return out


# Gemma 3n's multimodal token layout (google/gemma-3n-*/config.json): the text
# vocabulary (262400) ends with 128 vision ids from 262144 and 128 audio ids
# from 262272; the image soft token is 262145, <end_of_image> is 262144 and
# <start_of_image> 255999.
GEMMA3N_VOCAB = 262400
GEMMA3N_TOKENS = dict(boi=255999, image=262145, eoi=262144)


def multimodal_layout(vocab_size: int) -> dict:
    """Vision/audio vocab offsets and special ids for a text vocabulary.

    The published layout when the vocabulary is Gemma 3n's; a smaller test
    vocabulary gets the same layout shifted into its last 256 ids, so every
    special id is still a valid row of `embed_tokens` (mlx-vlm embeds all ids,
    image placeholders included, before merging the image features).
    """
    if vocab_size >= GEMMA3N_VOCAB:
        return dict(vision_offset=262144, audio_offset=262272, **GEMMA3N_TOKENS,
                    audio=262273)
    v = vocab_size - 256
    return dict(vision_offset=v, audio_offset=v + 128, boi=v - 1, image=v + 1, eoi=v,
                audio=v + 129)


_BLOCK_FLOATS = 65521  # prime: tiles do not line up with power-of-two widths


def _tiled_float(block, shape, dtype, scale):
    """N(0, scale²) values for `shape`: a shared block of random normals,
    scaled, cast, then tiled to the full size (drawing all ~295M vision values
    one by one took ~13 s on a 2-core CPU)."""
    size = math.prod(shape)
    n = min(size, block.size)
    b = (block[:n] * scale).astype(dtype)
    reps = -(-size // n)
    flat = mx.tile(b, (reps,))[:size] if reps > 1 else b
    return flat.reshape(shape)


def vision_modules(model):
    """(name, module) for the top-level modules of an mlx-vlm model that an
    image prompt runs besides the language model: vision tower, projectors,
    embedders. Audio encoders are left out (not on the image path), but
    Gemma 3n's `embed_audio` stays in: mlx-vlm's `get_input_embeddings` runs
    it over every position of a prompt with an image."""
    return [(name, m) for name, m in model.children().items()
            if name != "language_model" and hasattr(m, "parameters")
            and not ("audio" in name and not name.startswith("embed_"))]


def _float_dtype(module):
    for _, p in tree_flatten(module.parameters()):
        if mx.issubdtype(p.dtype, mx.floating):
            return p.dtype
    return mx.float32


def materialize_vision(model, dtype=None, seed: int = 1):
    """Give every module of `vision_modules(model)` (Gemma 3n: MobileNetV5,
    `embed_vision`, `embed_audio`; Gemma 3: SigLIP, `multi_modal_projector`;
    Qwen2.5-VL: its vision tower and merger) random weights in `dtype`,
    generated directly and evaluated.

    Convolutions, linears and embeddings get N(0, 1/fan_in) (fan_in = kernel
    area × input channels, the last axes in MLX's layout), norms ones, biases
    zeros and layer scales a small init value, so activations stay finite
    through deep towers (NaN or denormal values could change CPU timing).
    Integer parameters keep their values. Returns the number of parameters written.
    """
    dtype = dtype or _float_dtype(model.language_model)
    mx.random.seed(seed)
    block = mx.random.normal((_BLOCK_FLOATS,))
    count = 0
    for _, module in vision_modules(model):
        new = []
        for name, p in tree_flatten(module.parameters()):
            leaf = name.rsplit(".", 1)[-1]
            if not mx.issubdtype(p.dtype, mx.floating):
                continue
            if leaf == "gamma":  # LayerScale2d
                v = mx.full(p.shape, 1e-5, dtype=dtype)
            elif p.ndim <= 1 and "bias" in leaf:
                v = mx.zeros(p.shape, dtype=dtype)
            elif p.ndim <= 1:  # norms (vision: "bn", "norm", layer norms; embedder norms)
                v = mx.ones(p.shape, dtype=dtype)
            else:
                fan_in = math.prod(p.shape[1:])
                v = _tiled_float(block, p.shape, dtype, 1.0 / math.sqrt(fan_in))
            new.append((name, v))
            count += p.size
        module.update(tree_unflatten(new))
        mx.eval(module.parameters())
    return count
