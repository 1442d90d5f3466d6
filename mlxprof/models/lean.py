"""Import mlx-lm's and mlx-vlm's model code without the rest of those packages,
in a process mlxprof owns that decodes token ids only (a sweep worker, a CLI
`decode` without --prompt or --image).

Why: a decode of token ids needs model classes, their configs and caches, yet

- `import mlx_lm` runs mlx_lm/__init__.py, which imports mlx_lm.generate →
  mlx_lm.tokenizer_utils → transformers; `import mlx_lm.models.llama` runs it
  too (a submodule import runs its parent packages' __init__ first);
- mlx_vlm/__init__.py imports mlx_vlm.utils → transformers' image utilities;
- every mlx-vlm model package imports its processing module
  (mlx_vlm/models/gemma3n/__init__.py: `import ...processing_gemma3n`), which
  imports transformers.processing_utils;
- with PyTorch installed, transformers' image utilities import torchvision and
  torch (transformers/image_processing_utils.py: `if is_torchvision_available():
  from torchvision.transforms.v2 import functional`), seconds per fresh
  process, and transformers alone costs about a second more.

`enable()` defers those modules: the package (or processing module) is
registered under its real spec with its code not yet run, and runs on the
first use of anything it defines (a module-level `__getattr__`, PEP 562), so
code that does need it still gets the real module, only later. Submodule
imports (`mlx_lm.models.llama`) never touch the package's attributes, so the
model code imports alone. `complete()` runs every deferred module at once (a
tokenizer or processor needs the libraries' processor patches and init).

transformers decides once, while its package __init__ runs, whether torch is
installed (transformers/__init__.py calls `is_torch_available()`, an
lru_cache over importlib.util.find_spec and the installed version, in
transformers/utils/import_utils.py; transformers 5 has no USE_TORCH variable
to say no). So when a lean process does import transformers (a real
checkpoint's loader: mlx_lm.utils, mlx_vlm.utils), that __init__ runs with
torch, torchvision and torchaudio marked absent (a None entry in sys.modules:
find_spec returns None, `import torch` raises ModuleNotFoundError), and the
marks are gone when it returns: only transformers' cached answer remains, so
scipy or matplotlib, which look `sys.modules["torch"]` up and read
attributes off it, never see a None. What was done is recorded in every
result's provenance (`applied()`).

Never call `enable` in a process mlxprof does not own (a notebook): the user's
own `import torch` or `mlx_vlm.load` must behave as they expect.
"""

import importlib.abc
import os
import re
import sys
from typing import List

# the packages whose __init__ imports transformers, and mlx-vlm's per-model
# processing modules (processing_gemma3n, processing_qwen2_5_vl, …)
PACKAGES = ("mlx_lm", "mlx_vlm")
PROCESSING = re.compile(r"^mlx_vlm\.models\.[A-Za-z0-9_]+\.processing\w*$")
TORCH = ("torch", "torchvision", "torchaudio")
# what mlx_lm/__init__.py and mlx_vlm/__init__.py set before importing
# transformers; deferring them must not make transformers chattier
TRANSFORMERS_QUIET = {"TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}

_deferred: List[object] = []  # modules registered but not yet run, in import order
_applied: List[str] = []


class _Wrapping(importlib.abc.Loader):
    def __init__(self, real):
        self.real = real

    def create_module(self, spec):
        return self.real.create_module(spec)


class DeferredLoader(_Wrapping):
    """Creates the module as its real loader would, but runs its code only on
    first attribute access (or `complete()`)."""

    def exec_module(self, module):
        def __getattr__(name):
            run(module)
            return getattr(module, name)

        module.__getattr__ = __getattr__
        _deferred.append(module)


class TorchlessLoader(_Wrapping):
    """Runs transformers' package __init__ now, with torch marked absent
    while it runs (it decides there, once, whether torch is installed)."""

    def exec_module(self, module):
        hidden = [t for t in TORCH if t not in sys.modules]
        for t in hidden:
            sys.modules[t] = None
        try:
            self.real.exec_module(module)
        finally:
            for t in hidden:
                if t in sys.modules and sys.modules[t] is None:
                    del sys.modules[t]


class DeferringFinder(importlib.abc.MetaPathFinder):
    """A meta-path finder that gives the modules `loader_for(fullname)` names
    that loader class (wrapping the one the other finders would use)."""

    def __init__(self, loader_for):
        self.loader_for = loader_for

    def find_spec(self, fullname, path=None, target=None):
        wrap = self.loader_for(fullname)
        if wrap is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is None or not hasattr(spec.loader, "exec_module"):
                    return None  # namespace packages and legacy loaders: import normally
                spec.loader = wrap(spec.loader)
                return spec
        return None


def run(module) -> None:
    """Run a deferred module's own code now (once)."""
    if not any(m is module for m in _deferred):
        return
    _deferred[:] = [m for m in _deferred if m is not module]
    module.__dict__.pop("__getattr__", None)
    real = module.__spec__.loader.real
    module.__spec__.loader = module.__loader__ = real
    real.exec_module(module)


def ready(package: str) -> None:
    """Run `package`'s deferred __init__ now, before importing one of its
    submodules whose import reads the package (mlx_vlm.generate.ar does: with
    the package's __init__ still deferred, that __init__ would run inside the
    submodule's import and meet it half initialised)."""
    module = sys.modules.get(package)
    if module is not None:
        run(module)


def _loader_for(fullname: str):
    if fullname in PACKAGES or PROCESSING.match(fullname):
        return DeferredLoader
    return TorchlessLoader if fullname == "transformers" else None


_finder = DeferringFinder(_loader_for)


def enable() -> List[str]:
    """In this process, defer mlx-lm's and mlx-vlm's package __init__ and
    mlx-vlm's processing modules (those not imported yet), and let
    transformers, if it is imported later, find no torch. Returns what was
    done, one line each; calling it again adds nothing."""
    done = []
    if _finder in sys.meta_path:
        return done
    pending = [p for p in PACKAGES if p not in sys.modules]
    if pending:
        done.append(f"{', '.join(pending)}: package __init__ and mlx_vlm.models.*.processing_* deferred to "
                    "first use (model code imported alone)")
    if "transformers" not in sys.modules and not any(t in sys.modules for t in TORCH):
        done.append(f"{', '.join(TORCH)} hidden from transformers while it first imports (it then "
                    "takes torch as absent): nothing in a token-id decode uses them")
    if done:
        sys.meta_path.insert(0, _finder)
        for k, v in TRANSFORMERS_QUIET.items():
            os.environ.setdefault(k, v)
    _applied.extend(done)
    return done


def complete() -> None:
    """The process needs a real tokenizer or processor after all: stop
    deferring (transformers, if not imported yet, then finds torch as usual)
    and run every deferred module now, packages first (the libraries' init
    and processor patches)."""
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
    while _deferred:
        packages = [m for m in _deferred if m.__name__ in PACKAGES]
        run((packages or _deferred)[0])


def applied() -> List[str]:
    """What `enable` did in this process (recorded in results' provenance)."""
    return list(_applied)
