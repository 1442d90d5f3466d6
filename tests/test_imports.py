"""A decode of token ids imports the model's code only: never torch, even
where PyTorch is installed (transformers' image utilities import torchvision
and torch when they are: seconds per sweep point).

CI has no torch, so a fake one stands in: a `torch` (and `torchvision`)
package that records its import and raises, with a dist-info whose Version
makes transformers believe it is installed (transformers/utils/import_utils.py
`_is_package_available`: importlib.util.find_spec plus importlib.metadata).
The one-shot CLI and a sweep worker then run on it in subprocesses."""

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from mlxprof.models import lean, library_code
from mlxprof.models.registry import MODELS
from mlxprof.sweep.protocol import WorkerJob, decode_reply, encode_job

from tiny_checkpoints import CONFIGS

FAKES = {"torch": "2.9.0", "torchvision": "0.24.0"}


@pytest.fixture(scope="module")
def fake_torch(tmp_path_factory):
    """(folder to put first on PYTHONPATH, marker file a fake import writes)."""
    root = tmp_path_factory.mktemp("fake_torch")
    marker = root / "imported.txt"
    for name, version in FAKES.items():
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(textwrap.dedent(f"""
            with open({str(marker)!r}, "a") as f:
                f.write("{name}\\n")
            raise RuntimeError("mlxprof test: {name} must not be imported")
        """))
        info = root / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return root, marker


def run_with(fake_torch, args, timeout=300):
    root, marker = fake_torch
    if marker.exists():
        marker.unlink()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.getcwd()]))
    proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout)
    return proc, (marker.read_text().split() if marker.exists() else [])


def test_one_shot_decode_of_gemma3n_tiny_imports_no_torch(fake_torch, tmp_path):
    out = tmp_path / "decode.json"
    proc, imported = run_with(fake_torch, ["-X", "importtime", "-m", "mlxprof", "decode", "-m", "gemma3n-tiny",
                                           "--runs", "1", "--warmup", "1", "--tokens", "4", "--prompt-tokens", "4",
                                           "-q", "--json", str(out)])
    assert proc.returncode == 0 and not imported, (imported, proc.stderr[-2000:])
    # synthetic weights and token ids: not even transformers, nor the libraries' heavy modules
    modules = set(re.findall(r"^import time:.*\|\s*([\w.]+)\s*$", proc.stderr, re.M))
    assert "mlx_vlm.models.gemma3n.gemma3n" in modules
    assert not modules & {"transformers", "mlx_lm.utils", "mlx_vlm.utils", "mlx_lm.generate"}
    recorded = json.loads(out.read_text())["provenance"]["imports"]
    assert any("torch" in line and "hidden" in line for line in recorded)


def test_sweep_worker_loading_a_real_mlx_lm_checkpoint_imports_no_torch(fake_torch, tmp_path):
    # a real checkpoint's loader (mlx_lm.utils) imports transformers: it must take torch as absent
    from tiny_checkpoints import write

    write(tmp_path / "llama", "llama")
    job = WorkerJob(model=str(tmp_path / "llama"), weights="real", runs=1, warmup=1, tokens=4, prompt_tokens=4)
    proc, imported = run_with(fake_torch, ["-m", "mlxprof.sweep.worker", encode_job(job)])
    assert proc.returncode == 0 and not imported, (imported, proc.stderr[-2000:])
    reply = decode_reply(proc.stdout)
    assert reply.model.library == "mlx-lm" and reply.model.weights == "real" and reply.tok_s
    assert any("torch" in line for line in reply.imports)


def test_torch_is_hidden_only_while_transformers_first_imports(fake_torch):
    code = textwrap.dedent("""
        import importlib.metadata, importlib.util, sys
        # installed, as transformers' _is_package_available sees it (find_spec, then the version)
        assert importlib.util.find_spec("torch") and importlib.metadata.version("torch") == "2.9.0"
        from mlxprof.models import lean
        assert lean.enable()
        import transformers.image_processing_utils  # imported torchvision, then torch, where installed
        assert not any(t in sys.modules for t in ("torch", "torchvision"))
        import scipy.stats  # reads attributes off sys.modules["torch"] when that key exists
        try:
            import torch  # visible again: the fake raises
        except RuntimeError:
            print("fake torch reached")
    """)
    proc, imported = run_with(fake_torch, ["-c", code])
    assert proc.returncode == 0 and "fake torch reached" in proc.stdout, proc.stderr[-2000:]
    assert imported == ["torch"]  # only the explicit import at the end


# -- the mechanisms, in this process


def _toy_package(root, name, init_body):
    (root / name / "models").mkdir(parents=True)
    (root / name / "__init__.py").write_text(init_body)
    (root / name / "models" / "__init__.py").write_text("")
    (root / name / "models" / "arch.py").write_text("X = 2\n")


def test_a_deferred_package_runs_its_init_on_first_use(tmp_path, monkeypatch):
    _toy_package(tmp_path, "leantoy", "import os\nos.environ['LEANTOY_INIT'] = '1'\nVALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("LEANTOY_INIT", raising=False)
    finder = lean.DeferringFinder(lambda name: lean.DeferredLoader if name == "leantoy" else None)
    sys.meta_path.insert(0, finder)
    try:
        import leantoy.models.arch as arch

        assert arch.X == 2 and "LEANTOY_INIT" not in os.environ  # the submodule alone
        import leantoy

        assert leantoy.VALUE == 1 and os.environ["LEANTOY_INIT"] == "1"  # first use runs the init
        with pytest.raises(AttributeError):
            leantoy.MISSING
    finally:
        sys.meta_path.remove(finder)
        for m in [m for m in sys.modules if m.startswith("leantoy")]:
            del sys.modules[m]


def test_definitions_compile_from_source_or_refuse(tmp_path, monkeypatch):
    _toy_package(tmp_path, "leantoy2", "")
    (tmp_path / "leantoy2" / "utils.py").write_text(textwrap.dedent("""
        import json
        from typing import Optional
        from .models import arch
        TABLE = {"a": "b"}
        def lookup(key: str) -> Optional[str]:
            return json.loads(json.dumps(TABLE)).get(key, key)
        def uses_the_package():
            return arch.X
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    ns = library_code._compile("leantoy2.utils", ("lookup",))
    assert ns["lookup"]("a") == "b" and ns["lookup"]("z") == "z"
    assert "leantoy2.utils" not in sys.modules and "arch" not in ns
    with pytest.raises(library_code.NotExtractable):
        library_code._compile("leantoy2.utils", ("uses_the_package",))
    for m in [m for m in sys.modules if m.startswith("leantoy2")]:
        del sys.modules[m]


CONFIG_LIST = [s.config for s in MODELS.values()] + list(CONFIGS.values()) + [
    {"model_type": "mistral"}, {"model_type": "qwen2_5_vl"}, {"model_type": "kimi_k2"}]


def test_helpers_compiled_from_source_match_the_libraries():
    from mlx_lm.utils import MODEL_REMAPPING, _get_classes
    from mlx_vlm.utils import get_model_and_args, get_model_type

    lm = library_code._compile(library_code.LM_UTILS, library_code.NAMES[library_code.LM_UTILS])
    vlm = library_code._compile(library_code.VLM_UTILS, library_code.NAMES[library_code.VLM_UTILS])
    assert lm["MODEL_REMAPPING"] == MODEL_REMAPPING
    for config in CONFIG_LIST:
        assert vlm["get_model_type"](config) == get_model_type(config)
        if "vision_config" in config:
            assert vlm["get_model_and_args"](config) == get_model_and_args(config)
        elif config.get("num_hidden_layers"):
            assert lm["_get_classes"](config) == _get_classes(config)
