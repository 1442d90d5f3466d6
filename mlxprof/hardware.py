"""Chip detection from mx.device_info().

(Minimal first version: backend and a readable chip name. Per-chip MLX
defaults and Metal architecture parsing come with the gating work.)
"""

from dataclasses import dataclass, field
from typing import Dict


@dataclass
class Chip:
    backend: str  # "metal", "cuda" or "cpu"
    name: str
    device_info: Dict[str, object] = field(default_factory=dict)


def backend_name() -> str:
    import mlx.core as mx

    if mx.metal.is_available():
        return "metal"
    if mx.cuda.is_available():
        return "cuda"
    return "cpu"


def _jsonable(info):
    return {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v)) for k, v in info.items()}


def detect() -> Chip:
    import mlx.core as mx

    backend = backend_name()
    info = _jsonable(mx.device_info())
    name = str(info.get("device_name") or info.get("architecture") or backend)
    return Chip(backend=backend, name=name, device_info=info)


def _meminfo_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os

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
