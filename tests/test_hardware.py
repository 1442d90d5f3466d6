import subprocess
import sys

import pytest

from mlxprof import hardware
from mlxprof.hardware import MB, OPS, Chip, detect, mlx_defaults

from recorded_chips import CHIPS


def chip(key):
    backend, info = CHIPS[key]
    return detect(device_info=info, backend=backend)


# key: family, generation, class, (MLX default ops, mb)
METAL = {
    "m1-ultra": ("apple-m1", 13, "d", "M1", "Ultra", (50, 50)),
    "m3-max": ("apple-m3", 15, "s", "M3", "Pro/Max", (50, 50)),
    "m4": ("apple-m4", 16, "g", "M4", "base", (40, 40)),
    "m4-pro": ("apple-m4", 16, "s", "M4", "Pro/Max", (50, 50)),
    "m5-max": ("apple-m5", 17, "s", "M5", "Pro/Max", (50, 50)),
    "future-g18": ("apple-m6+", 18, "s", "M6", "Pro/Max", (50, 50)),
    "iphone": ("apple-phone", 16, "p", "M4", "phone", (20, 40)),
}


@pytest.mark.parametrize("key", sorted(METAL))
def test_metal_chips(key):
    family, gen, cls, gname, cname, (ops, mb) = METAL[key]
    c = chip(key)
    assert (c.backend, c.family, c.generation, c.chip_class) == ("metal", family, gen, cls)
    assert c.generation_name == gname and c.class_name == cname
    assert c.name == CHIPS[key][1]["device_name"]
    assert c.architecture in c.label and c.name in c.label
    d = mlx_defaults(c)
    assert (d[OPS].value, d[MB].value) == (ops, mb) and d[OPS].read and d[MB].read
    assert d[OPS].source == "mlx/backend/metal/device.cpp"
    assert not d["MLX_USE_CUDA_GRAPHS"].read and d["MLX_USE_CUDA_GRAPHS"].value is None


# key: family, compute capability, arch name, (ops, mb)
CUDA = {
    "h100": ("cuda-sm90", (9, 0), "Hopper", (100, 1000)),
    "h200": ("cuda-sm90", (9, 0), "Hopper", (100, 1000)),
    "a100": ("cuda-sm80", (8, 0), "Ampere", (20, 400)),
    "l4": ("cuda-sm89", (8, 9), "Ada Lovelace", (20, 100)),
    "dgx-spark": ("cuda-sm121", (12, 1), "Blackwell", (20, 25)),
}


@pytest.mark.parametrize("key", sorted(CUDA))
def test_cuda_chips(key):
    family, cc, arch, (ops, mb) = CUDA[key]
    c = chip(key)
    assert (c.backend, c.family, c.compute_capability, c.cuda_arch) == ("cuda", family, cc, arch)
    assert f"sm_{cc[0]}{cc[1]}" in c.label and arch in c.label
    d = mlx_defaults(c)
    assert (d[OPS].value, d[MB].value) == (ops, mb)
    assert d["MLX_USE_CUDA_GRAPHS"].value == 1 and d["MLX_CUDA_GRAPH_CACHE_SIZE"].value == 400
    assert all(x.read and x.source == "mlx/backend/cuda/device.cpp" for x in d.values())


def test_cuda_architecture_string_alone():
    # Without the compute_capability_* keys, 'sm_121' still parses (two-digit major).
    c = detect(device_info={"device_name": "NVIDIA GB10", "architecture": "sm_121"}, backend="cuda")
    assert c.compute_capability == (12, 1) and c.family == "cuda-sm121"
    c = detect(device_info={"device_name": "NVIDIA H100", "architecture": "sm_90a"}, backend="cuda")
    assert c.compute_capability == (9, 0)
    c = detect(device_info={"device_name": "mystery"}, backend="cuda")
    assert c.family == "cuda-unknown" and mlx_defaults(c)[OPS].value == 20


def test_cpu_record_reads_no_knob():
    c = chip("cpu")
    assert (c.backend, c.family, c.name, c.architecture) == ("cpu", "cpu", "Intel(R) Xeon(R) Processor", "x86_64")
    d = mlx_defaults(c)
    assert set(d) == set(hardware.KNOBS)
    assert all(not x.read and x.value is None for x in d.values())
    st = hardware.knob_states(c, {OPS: "1000"})
    assert st[OPS].env == "1000" and st[OPS].in_force is None  # set, but nothing reads it


def test_metal_odd_names():
    assert hardware.parse_metal_architecture("applegpu_g13d") == (13, "d")
    assert hardware.parse_metal_architecture("applegpu_g21x") == (21, "x")
    assert hardware.parse_metal_architecture("amd_gfx90a") is None
    c = detect(device_info={"device_name": "Apple M9", "architecture": "applegpu_g21x"}, backend="metal")
    assert (c.family, c.generation_name, c.class_name) == ("apple-m6+", "M9", "unknown class 'x'")
    assert (mlx_defaults(c)[OPS].value, mlx_defaults(c)[MB].value) == (40, 40)  # MLX's fallback
    c = detect(device_info={"device_name": "Apple GPU", "architecture": "something"}, backend="metal")
    assert c.family == "apple-unknown" and mlx_defaults(c)[OPS].value == 40


def test_knob_states_env_overrides_default():
    c = chip("m1-ultra")
    st = hardware.knob_states(c, {OPS: "1000"})
    assert (st[OPS].default, st[OPS].env, st[OPS].in_force) == (50, "1000", "1000")
    assert (st[MB].default, st[MB].env, st[MB].in_force) == (50, None, "50")


def test_chip_constructed_directly_derives_family():
    # Existing callers build Chip(backend, name, device_info): derived fields still appear.
    c = Chip(backend="metal", name="Apple M3 Max", device_info=CHIPS["m3-max"][1])
    assert c.family == "apple-m3" and c.record().generation == 15


def test_detect_this_machine_and_available_memory():
    c = detect()
    assert c.backend in ("metal", "cuda", "cpu") and c.family
    have, what = hardware.available_memory(c)
    assert have is None or have > 0
    assert hardware.available_memory(chip("m1-ultra")) == (int(128 * (1 << 30) * 0.75),
                                                           "Metal max_recommended_working_set_size")
    assert hardware.available_memory(chip("h200"))[0] == 150101032960


def test_probe_and_device_created_in_fresh_process():
    # probe() answers from a subprocess and leaves this process's MLX alone;
    # mlx_device_created() turns True once mlx.core is imported.
    code = ("import sys; from mlxprof import hardware as h; a = h.mlx_device_created(); c = h.probe(); "
            "b = h.mlx_device_created(); import mlx.core; print(a, b, h.mlx_device_created(), c.family)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    a, b, after, family = out.stdout.split()
    assert (a, b, after) == ("False", "False", "True")
    assert family == detect().family


def test_backend_inferred_from_recorded_keys():
    for key, (backend, info) in CHIPS.items():
        assert hardware.infer_backend(info) == backend, key
        assert detect(device_info=info).family == chip(key).family
