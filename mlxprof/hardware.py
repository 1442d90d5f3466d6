"""Chip detection from mx.device_info(), and MLX's built-in per-chip defaults.

A `Chip` is identified from what MLX itself reports: the Metal GPU
architecture name (`applegpu_g13d`), the CUDA compute capability (`sm_90`),
or the CPU model. Its `family` ("apple-m1", "cuda-sm90", "cpu", ...) is the
key of the knob gating table (gating.py).

MLX reads its scheduler variables once, when it creates its device, and on
Metal that happens as soon as `mlx.core` is imported (the import creates the
default PRNG key array, which allocates through the Metal allocator, which
creates the device). `mlx_device_created()` is therefore a conservative
heuristic: "mlx.core is in sys.modules". `probe()` identifies the chip in a
fresh subprocess so that this process can still set variables before its own
device exists.
"""

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from pydantic import BaseModel

# Metal chip classes: last letter of the architecture name. MLX's source comments
# say g = "base, pro" and s = "max", but Metal reports applegpu_g16s on M4 Pro and
# applegpu_g13s on M1 Max (public device reports), so 's' is named "Pro/Max" here.
# MLX's defaults key on the letter itself, so they are right either way.
METAL_CLASSES = {"p": "phone", "g": "base", "s": "Pro/Max", "d": "Ultra"}
FIRST_M_GENERATION = 13  # applegpu_g13* = M1, g14 = M2, ... g17 = M5
LAST_NAMED_FAMILY = 17  # generations after M5 share the family "apple-m6+"

# Compute capability → NVIDIA architecture name.
CUDA_ARCHS = {
    (7, 0): "Volta", (7, 2): "Volta", (7, 5): "Turing",
    (8, 0): "Ampere", (8, 6): "Ampere", (8, 7): "Ampere", (8, 9): "Ada Lovelace",
    (9, 0): "Hopper",
    (10, 0): "Blackwell", (10, 3): "Blackwell", (11, 0): "Blackwell",
    (12, 0): "Blackwell", (12, 1): "Blackwell",
}
CUDA_MAJOR_ARCHS = {7: "Volta/Turing", 8: "Ampere", 9: "Hopper", 10: "Blackwell", 11: "Blackwell", 12: "Blackwell"}

_METAL_ARCH = re.compile(r"applegpu_g(\d+)([a-z]*)$")
_SM = re.compile(r"sm_?(\d+)(\d)[a-z]*$")


@dataclass
class Chip:
    backend: str  # "metal", "cuda" or "cpu"
    name: str  # device_name as MLX reports it ("Apple M1 Ultra", "NVIDIA H200", CPU model)
    device_info: Dict[str, object] = field(default_factory=dict)
    # Derived from device_info in __post_init__ when not given.
    family: str = ""  # gating key: "apple-m1".."apple-m5", "apple-m6+", "apple-phone", "cuda-sm90", "cpu" …
    architecture: Optional[str] = None  # "applegpu_g13d", "sm_90", "x86_64"
    generation: Optional[int] = None  # Metal GPU generation (13 = M1)
    chip_class: Optional[str] = None  # Metal class letter: p, g, s, d (or another letter)
    compute_capability: Optional[Tuple[int, int]] = None  # CUDA (major, minor)

    def __post_init__(self):
        self.architecture = self.architecture or _opt_str(self.device_info.get("architecture"))
        if self.backend == "metal":
            parsed = parse_metal_architecture(self.architecture or "")
            if parsed and self.generation is None:
                self.generation, self.chip_class = parsed
        elif self.backend == "cuda" and self.compute_capability is None:
            self.compute_capability = _compute_capability(self.device_info)
        if not self.family:
            self.family = _family(self)

    @property
    def generation_name(self) -> Optional[str]:
        """'M1' for generation 13, ... 'M6' for 18 (Apple's Mac naming)."""
        if self.generation is None or self.generation < FIRST_M_GENERATION:
            return None
        return f"M{self.generation - FIRST_M_GENERATION + 1}"

    @property
    def class_name(self) -> Optional[str]:
        if self.chip_class is None:
            return None
        return METAL_CLASSES.get(self.chip_class, f"unknown class '{self.chip_class}'")

    @property
    def cuda_arch(self) -> Optional[str]:
        cc = self.compute_capability
        if cc is None:
            return None
        return CUDA_ARCHS.get(cc) or CUDA_MAJOR_ARCHS.get(cc[0], "unknown architecture")

    @property
    def detail(self) -> str:
        """What the chip is, beyond its name: generation/class or compute capability."""
        if self.backend == "metal":
            if self.generation is None:
                return f"unparsed Metal architecture {self.architecture!r}"
            gen = self.generation_name or "pre-M1"
            return f"{self.architecture}: GPU generation {self.generation} ({gen} generation), class '{self.chip_class}' ({self.class_name})"
        if self.backend == "cuda":
            if self.compute_capability is None:
                return f"unknown compute capability ({self.architecture})"
            ma, mi = self.compute_capability
            return f"compute capability {ma}.{mi} (sm_{ma}{mi}, {self.cuda_arch})"
        return f"CPU, {self.architecture or 'unknown architecture'}"

    @property
    def label(self) -> str:
        """A one-line name for provenance and tables: name plus what identifies it."""
        if self.backend == "cuda" and self.compute_capability:
            ma, mi = self.compute_capability
            return f"{self.name} [sm_{ma}{mi}, {self.cuda_arch}]"
        if self.architecture and self.architecture != self.name:
            return f"{self.name} [{self.architecture}]"
        return self.name

    def record(self) -> "ChipRecord":
        return ChipRecord(
            backend=self.backend, name=self.name, label=self.label, family=self.family,
            architecture=self.architecture, generation=self.generation,
            generation_name=self.generation_name, chip_class=self.chip_class, class_name=self.class_name,
            compute_capability=(f"{self.compute_capability[0]}.{self.compute_capability[1]}"
                                if self.compute_capability else None),
            cuda_arch=self.cuda_arch, detail=self.detail,
        )


class ChipRecord(BaseModel):
    """A Chip as JSON (for results)."""

    model_config = {"extra": "forbid"}
    backend: str
    name: str
    label: str
    family: str
    architecture: Optional[str] = None
    generation: Optional[int] = None
    generation_name: Optional[str] = None
    chip_class: Optional[str] = None
    class_name: Optional[str] = None
    compute_capability: Optional[str] = None  # "9.0"
    cuda_arch: Optional[str] = None
    detail: str


def _opt_str(x):
    return None if x is None else str(x)


def parse_metal_architecture(arch: str) -> Optional[Tuple[int, str]]:
    """'applegpu_g13d' → (13, 'd'); None when the name does not parse."""
    m = _METAL_ARCH.match(arch.strip().lower())
    if not m:
        return None
    return int(m.group(1)), (m.group(2)[-1:] if m.group(2) else "")


def _compute_capability(info) -> Optional[Tuple[int, int]]:
    ma, mi = info.get("compute_capability_major"), info.get("compute_capability_minor")
    if ma is not None and mi is not None:
        try:
            return int(ma), int(mi)
        except (TypeError, ValueError):
            pass
    m = _SM.match(str(info.get("architecture") or "").strip().lower())
    if m:
        return int(m.group(1)), int(m.group(2))
    return None


def _family(chip: Chip) -> str:
    if chip.backend == "metal":
        if chip.generation is None:
            return "apple-unknown"
        if chip.chip_class == "p":
            return "apple-phone"
        if chip.generation < FIRST_M_GENERATION:
            return "apple-unknown"
        if chip.generation > LAST_NAMED_FAMILY:
            return f"apple-m{LAST_NAMED_FAMILY - FIRST_M_GENERATION + 2}+"
        return f"apple-{chip.generation_name.lower()}"
    if chip.backend == "cuda":
        if chip.compute_capability is None:
            return "cuda-unknown"
        return "cuda-sm{}{}".format(*chip.compute_capability)
    return "cpu"


def backend_name() -> str:
    import mlx.core as mx

    if mx.metal.is_available():
        return "metal"
    if mx.cuda.is_available():
        return "cuda"
    return "cpu"


def _jsonable(info):
    return {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v)) for k, v in info.items()}


def infer_backend(device_info: dict) -> str:
    """The backend a recorded device_info came from, by its keys."""
    arch = str(device_info.get("architecture") or "").lower()
    if "compute_capability_major" in device_info or "total_memory" in device_info or arch.startswith("sm_"):
        return "cuda"
    if arch.startswith("applegpu") or "max_recommended_working_set_size" in device_info:
        return "metal"
    return "cpu"


def detect(device_info: Optional[dict] = None, backend: Optional[str] = None) -> Chip:
    """This process's chip, or the chip that a recorded device_info describes.

    Without device_info this imports mlx.core, which creates MLX's device (and
    fixes its scheduler variables); use probe() to identify the chip without that.
    With device_info and no backend, the backend is inferred from its keys.
    """
    if device_info is None:
        import mlx.core as mx

        backend = backend or backend_name()
        device_info = mx.device_info()
    backend = backend or infer_backend(device_info)
    if backend not in ("metal", "cuda", "cpu"):
        raise ValueError(f"unknown backend {backend!r}")
    info = _jsonable(device_info)
    name = str(info.get("device_name") or info.get("architecture") or backend)
    return Chip(backend=backend, name=name, device_info=info)


_PROBE = (
    "import json, mlx.core as mx\n"
    "b = 'metal' if mx.metal.is_available() else 'cuda' if mx.cuda.is_available() else 'cpu'\n"
    "print(json.dumps({'backend': b, 'device_info': {k: (v if isinstance(v, (int, float, str, bool)) "
    "or v is None else str(v)) for k, v in mx.device_info().items()}}))\n"
)


def probe(timeout: float = 120) -> Chip:
    """Identify the chip in a fresh Python process, leaving this one's MLX untouched."""
    try:
        p = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"chip probe did not answer within {timeout:.0f} s")
    if p.returncode != 0:
        raise RuntimeError(f"chip probe failed: {p.stderr.strip().splitlines()[-1:] or p.returncode}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    return detect(device_info=out["device_info"], backend=out["backend"])


def mlx_device_created() -> bool:
    """Best-effort: has MLX already created its device (and read its variables)?

    MLX has no query for this. On Metal, importing mlx.core allocates the
    default PRNG key, and the first allocation creates the Metal device, which
    reads MLX_MAX_OPS_PER_BUFFER / MLX_MAX_MB_PER_BUFFER. So "mlx.core has been
    imported" is treated as "too late" on every backend (conservative on CUDA
    and CPU, where creation may come later).
    """
    return "mlx.core" in sys.modules


def current_chip() -> Chip:
    """This process's chip without creating MLX's device if it does not exist yet."""
    return detect() if mlx_device_created() else probe()


# --- MLX's built-in defaults -------------------------------------------------------------

OPS = "MLX_MAX_OPS_PER_BUFFER"
MB = "MLX_MAX_MB_PER_BUFFER"
CUDA_GRAPHS = "MLX_USE_CUDA_GRAPHS"
GRAPH_CACHE = "MLX_CUDA_GRAPH_CACHE_SIZE"
KNOBS = (OPS, MB, CUDA_GRAPHS, GRAPH_CACHE)

# Source: MLX 0.32, mlx/backend/metal/device.cpp (Device::Device: switch on the last
# letter of the architecture name, then env::max_ops_per_buffer / max_mb_per_buffer
# override). "MB" there sums element counts, not bytes (docs/references.md).
METAL_DEFAULTS = {"p": (20, 40), "g": (40, 40), "s": (50, 50), "d": (50, 50)}
METAL_OTHER = (40, 40)
METAL_SOURCE = "mlx/backend/metal/device.cpp"

# Source: MLX 0.32, mlx/backend/cuda/device.cpp (per CUDA graph, by compute capability).
CUDA_DEFAULTS = {(8, 0): (20, 400), (9, 0): (100, 1000), (10, 0): (100, 1000), (12, 0): (100, 1000),
                 (12, 1): (20, 25)}
CUDA_OTHER = (20, 100)
CUDA_GRAPHS_DEFAULT = 1
GRAPH_CACHE_DEFAULT = 400
CUDA_SOURCE = "mlx/backend/cuda/device.cpp"


class KnobDefault(BaseModel):
    """MLX's own value for one variable on one chip."""

    model_config = {"extra": "forbid"}
    knob: str
    read: bool  # does this backend read the variable at all?
    value: Optional[int] = None  # MLX's built-in default (None when not read)
    basis: str  # why this default: "Metal class 'd' (Ultra)", "compute capability 9.0" …
    source: Optional[str] = None  # MLX source file that sets it


def mlx_defaults(chip: Chip) -> Dict[str, KnobDefault]:
    """knob → MLX's built-in default on this chip (or a record saying it is not read)."""
    if chip.backend == "metal":
        known = chip.chip_class in METAL_DEFAULTS
        ops, mb = METAL_DEFAULTS.get(chip.chip_class, METAL_OTHER)
        basis = (f"Metal class '{chip.chip_class}' ({chip.class_name})" if known
                 else f"Metal class {chip.chip_class!r} not in MLX's table: its fallback")
        out = {OPS: KnobDefault(knob=OPS, read=True, value=ops, basis=basis, source=METAL_SOURCE),
               MB: KnobDefault(knob=MB, read=True, value=mb, basis=basis + "; counts elements, not bytes",
                               source=METAL_SOURCE)}
        for k in (CUDA_GRAPHS, GRAPH_CACHE):
            out[k] = KnobDefault(knob=k, read=False, basis="CUDA only: not read by the Metal backend")
        return out
    if chip.backend == "cuda":
        cc = chip.compute_capability
        ops, mb = CUDA_DEFAULTS.get(cc, CUDA_OTHER)
        basis = (f"compute capability {cc[0]}.{cc[1]}" if cc in CUDA_DEFAULTS
                 else f"compute capability {cc[0]}.{cc[1]}: MLX's general default" if cc
                 else "unknown compute capability: MLX's general default")
        return {
            OPS: KnobDefault(knob=OPS, read=True, value=ops, basis=basis + " (ops per CUDA graph)", source=CUDA_SOURCE),
            MB: KnobDefault(knob=MB, read=True, value=mb, basis=basis + " (per CUDA graph)", source=CUDA_SOURCE),
            CUDA_GRAPHS: KnobDefault(knob=CUDA_GRAPHS, read=True, value=CUDA_GRAPHS_DEFAULT,
                                     basis="all CUDA devices", source=CUDA_SOURCE),
            GRAPH_CACHE: KnobDefault(knob=GRAPH_CACHE, read=True, value=GRAPH_CACHE_DEFAULT,
                                     basis="all CUDA devices", source=CUDA_SOURCE),
        }
    return {k: KnobDefault(knob=k, read=False, basis="not read by the CPU backend") for k in KNOBS}


class KnobState(BaseModel):
    """One variable as it stands for this process: default, environment, value in force."""

    model_config = {"extra": "forbid"}
    knob: str
    read: bool
    default: Optional[int] = None
    env: Optional[str] = None  # the environment's value, if set
    in_force: Optional[str] = None  # what MLX uses: env when set and read, else the default
    basis: str
    source: Optional[str] = None


def knob_states(chip: Chip, environ=None) -> Dict[str, KnobState]:
    environ = os.environ if environ is None else environ
    out = {}
    for k, d in mlx_defaults(chip).items():
        env = environ.get(k)
        in_force = None
        if d.read:
            in_force = env if env is not None else str(d.value)
        out[k] = KnobState(knob=k, read=d.read, default=d.value, env=env, in_force=in_force,
                           basis=d.basis, source=d.source)
    return out


# --- memory ------------------------------------------------------------------------------


def _meminfo_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def available_memory(chip: Chip):
    """(bytes, what) the device offers a model, or (None, why) if unknown."""
    info = chip.device_info
    if chip.backend == "metal" and info.get("max_recommended_working_set_size"):
        return int(info["max_recommended_working_set_size"]), "Metal max_recommended_working_set_size"
    if chip.backend == "cuda" and info.get("free_memory"):
        return int(info["free_memory"]), "CUDA free_memory"
    avail = _meminfo_available()
    return avail, "available RAM"
