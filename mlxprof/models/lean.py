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

transformers decides once, at its first import, whether torch is installed
(transformers/utils/import_utils.py `is_torch_available`: importlib.util.find_spec
plus the installed version; transformers 5 has no USE_TORCH variable to say
no). `enable(hide_torch=True)` therefore also marks torch, torchvision and
torchaudio absent in sys.modules (a None entry: `import torch` raises
ModuleNotFoundError and find_spec returns None), only while none of them and
not transformers is imported yet. Real-weight loads then import transformers
(mlx_lm.utils, mlx_vlm.utils) without torch. What was done is recorded in
every result's provenance (`applied()`).

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
_hidden: List[str] = []


class _DeferredLoader(importlib.abc.Loader):
    """Creates the module as its real loader would, but runs its code only on
    first attribute access (or `complete()`)."""

    def __init__(self, real):
        self.real = real

    def create_module(self, spec):
        return self.real.create_module(spec) if hasattr(self.real, "create_module") else None

    def exec_module(self, module):
        def __getattr__(name):
            run(module)
            return getattr(module, name)

        module.__getattr__ = __getattr__
        _deferred.append(module)


class DeferringFinder(importlib.abc.MetaPathFinder):
    """A meta-path finder that defers the modules `wanted(fullname)` names."""

    def __init__(self, wanted):
        self.wanted = wanted

    def find_spec(self, fullname, path=None, target=None):
        if not self.wanted(fullname):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is None or not hasattr(spec.loader, "exec_module"):
                    return None  # namespace packages and legacy loaders: import normally
                spec.loader = _DeferredLoader(spec.loader)
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


def _wanted(fullname: str) -> bool:
    return fullname in PACKAGES or bool(PROCESSING.match(fullname))


_finder = DeferringFinder(_wanted)


def enable(hide_torch: bool = True) -> List[str]:
    """Defer mlx-lm's and mlx-vlm's package __init__ and mlx-vlm's processing
    modules (those not imported yet), and hide torch from transformers (when
    neither is imported yet). Returns what was done, one line each; calling it
    again adds nothing."""
    done = []
    if _finder not in sys.meta_path:
        pending = [p for p in PACKAGES if p not in sys.modules]
        if pending:
            sys.meta_path.insert(0, _finder)
            for k, v in TRANSFORMERS_QUIET.items():
                os.environ.setdefault(k, v)
            done.append(f"{', '.join(pending)}: package __init__ and mlx_vlm.models.*.processing_* "
                        "deferred to first use (model code imported alone)")
    if hide_torch and "transformers" not in sys.modules and not any(t in sys.modules for t in TORCH):
        for t in TORCH:
            sys.modules[t] = None
            _hidden.append(t)
        done.append(f"{', '.join(TORCH)} hidden from transformers (sys.modules entry None): "
                    "nothing in a token-id decode uses them")
    _applied.extend(done)
    return done


def complete() -> None:
    """Run every deferred module now, stop deferring, and stop hiding torch
    where transformers has not decided yet: the process needs a real
    tokenizer or processor (the libraries' processor patches, their init)."""
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
    while _deferred:
        packages = [m for m in _deferred if m.__name__ in PACKAGES]
        run((packages or _deferred)[0])
    for t in _hidden:
        if t in sys.modules and sys.modules[t] is None:
            del sys.modules[t]
    _hidden.clear()


def applied() -> List[str]:
    """What `enable` did in this process (recorded in results' provenance)."""
    return list(_applied)
