"""mx.device_info() records for chips we cannot run here (plus this CPU box), with
realistic numbers. Keys follow MLX 0.32: Metal device_name, architecture,
max_buffer_length, max_recommended_working_set_size, memory_size, resource_limit;
CUDA device_name, uuid, architecture, pci_bus_id, compute_capability_major/minor,
free_memory, total_memory; CPU device_name, architecture.

Class letters: Metal reports applegpu_g16s on M4 Pro and applegpu_g13s on M1 Max
(public device reports), so the M4 Pro record is class 's'; the base M4 is 'g'.
"""

GiB = 1 << 30


def metal(name, arch, mem_gib):
    mem = mem_gib * GiB
    return ("metal", {
        "device_name": name, "architecture": arch, "memory_size": mem,
        "max_recommended_working_set_size": int(mem * 0.75) if mem_gib > 36 else int(mem * 0.67),
        "max_buffer_length": mem // 2,
        "resource_limit": 499000,
    })


def cuda(name, cc, total, free, bus):
    return ("cuda", {
        "device_name": name, "uuid": "GPU-3f2c9a1e-7b4d-4e8a-9c61-0d5e2f7a8b90", "architecture": f"sm_{cc[0]}{cc[1]}",
        "pci_bus_id": bus, "compute_capability_major": cc[0], "compute_capability_minor": cc[1],
        "free_memory": free, "total_memory": total,
    })


CHIPS = {
    "m1-ultra": metal("Apple M1 Ultra", "applegpu_g13d", 128),
    "m3-max": metal("Apple M3 Max", "applegpu_g15s", 64),
    "m4": metal("Apple M4", "applegpu_g16g", 16),
    "m4-pro": metal("Apple M4 Pro", "applegpu_g16s", 48),
    "m5-max": metal("Apple M5 Max", "applegpu_g17s", 128),
    "future-g18": metal("Apple M6 Max", "applegpu_g18s", 128),
    "iphone": metal("Apple A17 Pro GPU", "applegpu_g16p", 8),
    "h100": cuda("NVIDIA H100 80GB HBM3", (9, 0), 85029158912, 84439875584, "00000000:18:00.0"),
    "h200": cuda("NVIDIA H200", (9, 0), 150754820096, 150101032960, "00000000:9A:00.0"),
    "a100": cuda("NVIDIA A100-SXM4-80GB", (8, 0), 85097971712, 84520992768, "00000000:07:00.0"),
    "l4": cuda("NVIDIA L4", (8, 9), 23580639232, 23290052608, "00000000:00:03.0"),
    "dgx-spark": cuda("NVIDIA GB10", (12, 1), 128526278656, 119271260160, "0000000F:01:00.0"),
    "cpu": ("cpu", {"architecture": "x86_64", "device_name": "Intel(R) Xeon(R) Processor"}),
}
