"""One adapter per library: which of mlx-lm / mlx-vlm implements a config, and
building, quantizing and loading a model the way that library's loader does.

The choice is read from the config, never from a list of model types:
a `vision_config` means a multimodal checkpoint (mlx-vlm), anything else goes
to mlx-lm when it has a module for the (remapped) model_type, then to mlx-vlm.
Both loaders resolve a model_type to a module by name
(`mlx_lm/utils.py` `_get_classes`, `mlx_vlm/utils.py` `get_model_and_args`,
run from their source by library_code.py so transformers is not imported);
`importlib.util.find_spec` asks the same question without importing anything.
"""

import fnmatch
import importlib
import importlib.util
from pathlib import Path
from typing import Optional

import mlx.nn as nn

from ..errors import InputError
from . import lean, library_code

LM, VLM = "mlx-lm", "mlx-vlm"
VLM_MODULES = ["text", "vision", "perceiver", "projector", "audio"]  # mlx_vlm.utils.load_model


def _has_module(package: str, name: str) -> bool:
    try:
        return importlib.util.find_spec(f"{package}.{name}") is not None
    except (ImportError, ValueError):
        return False


def library_for(config: dict, where: str = "") -> str:
    """'mlx-lm' or 'mlx-vlm' for a config dict; InputError when neither implements it."""
    mt = config.get("model_type")
    if not isinstance(mt, str) or not mt:
        raise InputError(f"{where or 'config'}: no model_type in config.json")
    lm = _has_module("mlx_lm.models", library_code.lm_model_type(config))
    if lm and config.get("vision_config") is None:
        return LM  # decided without importing mlx_vlm (which pulls in transformers' image stack)
    vlm = _has_module("mlx_vlm.models", library_code.vlm_model_type(config) or mt)
    if vlm and (config.get("vision_config") is not None or not lm):
        return VLM
    if lm:
        return LM
    raise InputError(f"{where + ': ' if where else ''}model_type '{mt}' is not supported: neither "
                     "mlx-lm nor mlx-vlm implements it (`mlxprof models` lists the known families)")


def check_config(config: dict, where: str = "") -> str:
    """The library for `config`, after checking (without building) that it
    names every field mlx-lm's ModelArgs requires; mlx-vlm's configs default
    their fields, so what they reject shows when `build` runs."""
    import dataclasses

    library = library_for(config, where)
    if library == LM:
        try:
            _, args_class = library_code.lm_classes(config)
        except Exception as e:
            raise InputError(f"{where or 'config'}: {_one_line(e)}")
        missing = [f.name for f in dataclasses.fields(args_class)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   and f.name not in config]
        if missing:
            raise InputError(f"{where or 'config'}: config.json lacks fields {config['model_type']} "
                             f"requires: {', '.join(missing)}")
    return library


def import_model_code(config: dict, library: str):
    """Import the module that implements `config` (nothing is built): what a
    caller timing imports apart from building imports first."""
    if library == LM:
        return importlib.import_module(library_code.lm_classes(config)[0].__module__)
    return library_code.vlm_model_and_args(config)[0]


def _one_line(e: Exception) -> str:
    """An exception as one line; "Missing 3 parameters: \\n a,\\n b" keeps its first name."""
    lines = [x.strip() for x in str(e).strip().splitlines() if x.strip()]
    msg = lines[0] if lines else ""
    if msg.endswith(":") and len(lines) > 1:
        msg += " " + lines[1].rstrip(",.") + (", …" if len(lines) > 2 else "")
    return f"{type(e).__name__}: {msg}".rstrip(": ")


def build(config: dict, library: str, where: str = "") -> nn.Module:
    """The library's top-level Model for `config`, lazily initialized (nothing
    evaluated), unquantized: what each loader builds before loading weights."""
    config = dict(config)
    try:
        if library == LM:
            model_class, args_class = library_code.lm_classes(config)
            return model_class(args_class.from_dict(config))
        arch, _ = library_code.vlm_model_and_args(config)
        config.setdefault("text_config", config.pop("llm_config", {}))
        config.setdefault("vision_config", {})
        config.setdefault("audio_config", {})
        model_config = library_code.vlm_module_configs(arch.ModelConfig.from_dict(config), arch, config,
                                                       VLM_MODULES)
        return arch.Model(model_config)
    except Exception as e:  # the architecture rejects the config: its own words, one line
        raise InputError(f"{where or 'config'}: {config.get('model_type')} ({library}) rejects this "
                         f"config: {_one_line(e)}")


def _not_converted(config: dict):
    """HF `quantization_config.modules_to_not_convert` globs (gpt-oss: attention,
    router, embeddings and head stay bf16 in openai's mxfp4 checkpoint)."""
    qc = config.get("quantization_config") or {}
    return list(qc.get("modules_to_not_convert") or [])


def quantize(module: nn.Module, config: dict, prefix: str = ""):
    """Quantize `module` as a conversion with this config's `quantization`
    block would have (mlx_lm/utils.py `quantize_model`): per-layer entries win
    (a dict of settings, or False), then the model's own `quant_predicate`,
    and only layers whose input width splits into whole groups. `prefix` is
    the module's path inside the checkpoint (mlx-vlm: 'language_model.')."""
    from .registry import quantization_of

    q = quantization_of(config)
    if not q.bits:
        return
    block = config.get("quantization") or {}
    skip = _not_converted(config)
    own = getattr(module, "quant_predicate", None)

    def predicate(path, m):
        full = prefix + path
        for key in (full, path):
            if key in block and isinstance(block[key], (bool, dict)):
                return block[key]
        if not hasattr(m, "to_quantized") or not hasattr(m, "weight"):
            return False
        if any(fnmatch.fnmatch(full, p) or fnmatch.fnmatch(full, p + ".*") for p in skip):
            return False
        if m.weight.shape[-1] % q.group_size:
            return False
        return own(path, m) if own is not None else True

    nn.quantize(module, group_size=q.group_size, bits=q.bits, mode=q.mode, class_predicate=predicate)


def load_real(path: Path, library: str, config: Optional[dict] = None):
    """The model of a checkpoint directory, through the library's own loader.
    When the loader fails, building the config alone tells a config the
    architecture rejects from weights that do not fit it; either is one line."""
    try:
        if library == LM:
            from mlx_lm.utils import load_model

            model, _ = load_model(Path(path))
        else:
            from mlx_vlm.utils import load_model

            model = load_model(Path(path))
    except InputError:
        raise
    except Exception as e:
        if config is not None:
            build(config, library, str(path))  # raises when the config is the problem
        raise InputError(f"{path}: the weights do not fit the config ({_one_line(e)})")
    return model


def load_tokenizer(path: Path, library: str):
    """The checkpoint's tokenizer (mlx-lm) or processor (mlx-vlm), loaded only
    when a text prompt or an image needs it."""
    lean.complete()  # the libraries' own init and processor patches, if they were deferred
    try:
        if library == LM:
            from mlx_lm.utils import load_tokenizer as lm_tok

            return lm_tok(Path(path))
        from mlx_vlm.utils import load_processor

        return load_processor(Path(path))
    except Exception as e:
        raise InputError(f"{path}: no usable tokenizer/processor files ({_one_line(e)}); "
                         "use --prompt-tokens instead of --prompt")
