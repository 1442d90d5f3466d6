"""Image prompts, before the model: reading the image and turning it into
pixel values, with the checkpoint's own processor or built-in steps taken
from each family's published preprocessor_config.json."""

import math
from pathlib import Path
from typing import List, Optional

import mlx.core as mx
from pydantic import BaseModel

from .errors import InputError

MIN_IMAGE_SIZE = 14
# 2048² already takes MobileNetV5 ~7× the activations of the checkpoints' 768²
MAX_IMAGE_SIZE = 2048
MAX_IMAGE_PIXELS = 64 * 10**6  # a header claiming more is refused before decoding

# Gemma 3n's preprocessor_config.json (google/gemma-3n-E2B-it, E4B-it):
# SiglipImageProcessorFast, 768×768, bilinear (resample 2), rescale 1/255 and
# do_normalize false: the mean/std of 0.5 are listed but not applied, pixels
# reach the tower in [0, 1].
GEMMA3N_IMAGE_SIZE = 768
GEMMA3N_PREP = dict(resample="bilinear", rescale_factor=1 / 255, do_normalize=False,
                    image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
# Gemma 3's preprocessor_config.json (google/gemma-3-4b-it): Gemma3ImageProcessor,
# 896×896, bilinear (resample 2), rescale 1/255, do_normalize true with mean and
# std 0.5 (pixels reach SigLIP in [-1, 1]); pan-and-scan off.
GEMMA3_PREP = dict(resample="bilinear", rescale_factor=1 / 255, do_normalize=True,
                   image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
# Qwen2-VL / Qwen2.5-VL's preprocessor_config.json (Qwen/Qwen2.5-VL-7B-Instruct):
# Qwen2VLImageProcessor, bicubic (resample 3), rescale 1/255, normalise with
# the CLIP mean/std, 14-pixel patches, 2 frames per temporal patch, 2×2 merge,
# min_pixels 3136, max_pixels 12845056.
QWEN2VL_PREP = dict(resample="bicubic", rescale_factor=1 / 255, do_normalize=True,
                    image_mean=[0.48145466, 0.4578275, 0.40821073],
                    image_std=[0.26862954, 0.26130258, 0.27577711])
QWEN2VL_PIXELS = (3136, 12845056)


class ImagePrep(BaseModel):
    source: str  # "checkpoint image processor (…)" or "built-in (<family> preprocessor_config.json)"
    size: int  # side of the resized image (the height where it is not square)
    resample: str
    rescale_factor: float
    do_normalize: bool
    image_mean: List[float]
    image_std: List[float]
    width: Optional[int] = None  # set where the resized image is not square


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
    """Bounds every family shares; each family adds its own rules
    (`vision_families.check_target`)."""
    if size is None:
        return
    if size > MAX_IMAGE_SIZE:
        raise InputError(f"--image-size {size}: at most {MAX_IMAGE_SIZE} (the vision tower's activations grow "
                         "with the square of the size)")
    if size < MIN_IMAGE_SIZE:
        raise InputError(f"--image-size must be at least {MIN_IMAGE_SIZE}, not {size}")


def builtin_prep(size: int, family: str = "Gemma 3n", values=None) -> ImagePrep:
    return ImagePrep(source=f"built-in ({family} preprocessor_config.json)", size=size,
                     **(values or GEMMA3N_PREP))


def resized_array(image, prep: ImagePrep):
    """The checkpoint processor's steps without transformers: RGB, resize,
    rescale, optional normalise; HWC float32 numpy."""
    import numpy as np
    from PIL import Image

    resample = getattr(Image.Resampling, prep.resample.upper())
    im = image.resize((prep.width or prep.size, prep.size), resample)
    x = np.asarray(im, dtype=np.float32) * prep.rescale_factor
    if prep.do_normalize:
        x = (x - np.asarray(prep.image_mean, np.float32)) / np.asarray(prep.image_std, np.float32)
    return x


def preprocess_builtin(image, prep: ImagePrep) -> mx.array:
    """NCHW float32 pixel values (Gemma 3n, Gemma 3)."""
    return mx.array(resized_array(image, prep).transpose(2, 0, 1)[None])


def smart_resize(height: int, width: int, factor: int = 28, pixels=QWEN2VL_PIXELS):
    """Qwen2-VL's resize target: each side a multiple of `factor`, the area
    kept within min/max pixels (transformers' qwen2_vl image_processing_qwen2_vl.py)."""
    h, w = max(factor, round(height / factor) * factor), max(factor, round(width / factor) * factor)
    if h * w > pixels[1]:
        beta = math.sqrt(height * width / pixels[1])
        h, w = math.floor(height / beta / factor) * factor, math.floor(width / beta / factor) * factor
    elif h * w < pixels[0]:
        beta = math.sqrt(pixels[0] / (height * width))
        h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h, w


def qwen_patches(image, prep: ImagePrep, patch: int, temporal: int, merge: int):
    """Qwen2-VL's flattened patches and grid: the image repeated to `temporal`
    frames, cut into patch×patch squares ordered merge-window by merge-window,
    one row of C·T·P·P values per patch (transformers' Qwen2VLImageProcessor._preprocess)."""
    import numpy as np

    x = resized_array(image, prep).transpose(2, 0, 1)[None]  # (1, C, H, W)
    x = np.repeat(x, temporal, axis=0)
    c, h, w = x.shape[1:]
    gh, gw = h // patch, w // patch
    x = x.reshape(1, temporal, c, gh // merge, merge, patch, gw // merge, merge, patch)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8).reshape(gh * gw, c * temporal * patch * patch)
    return mx.array(x), mx.array([[1, gh, gw]])


def _resample_name(r) -> str:
    from PIL import Image

    try:
        return Image.Resampling(int(r)).name.lower()
    except (TypeError, ValueError):
        return str(r)


def checkpoint_prep(ip, size: Optional[int], native_default: int):
    """(image → pixel_values, ImagePrep) from a checkpoint's image processor,
    resized to `size`×`size` when given, else to the processor's own size."""
    native = getattr(ip, "size", None) or {}
    native = native.get("height", native_default) if isinstance(native, dict) else native_default
    s = size or native
    kw = {} if size is None else dict(size={"height": s, "width": s})
    mean, std = getattr(ip, "image_mean", None) or [0.5] * 3, getattr(ip, "image_std", None) or [0.5] * 3
    prep = ImagePrep(
        source=f"checkpoint image processor ({type(ip).__name__})", size=s,
        resample=_resample_name(getattr(ip, "resample", None)),
        rescale_factor=float(getattr(ip, "rescale_factor", 1 / 255)),
        do_normalize=bool(getattr(ip, "do_normalize", False)), image_mean=list(mean), image_std=list(std),
    )

    def run(im):
        px = ip(images=[im], return_tensors="np", **kw)["pixel_values"]
        return mx.array(px)

    return run, prep


def make_preprocessor(loaded, size: Optional[int], family: str = "Gemma 3n", native: int = GEMMA3N_IMAGE_SIZE,
                      values=None):
    """(callable image → pixel_values, ImagePrep). The checkpoint's own image
    processor when it has one, else the family's built-in steps."""
    ip = getattr(loaded.processor, "image_processor", None) if loaded.processor is not None else None
    if ip is None:
        prep = builtin_prep(size or native, family, values)
        return (lambda im: preprocess_builtin(im, prep)), prep
    return checkpoint_prep(ip, size, native)
