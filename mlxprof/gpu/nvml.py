"""The GPU's busy fraction from the driver's own utilization samples (NVML).

NVIDIA's driver keeps, per GPU, a ring of utilization samples: each is "the
percent of time over the past sample period during which one or more kernels
was executing on the GPU", stamped with the CPU time (µs since the epoch) at
which the period ended (nvmlDeviceGetSamples with NVML_GPU_UTILIZATION_SAMPLES,
https://docs.nvidia.com/deploy/nvml-api/group__nvmlDeviceQueries.html). The
samples are taken whether or not anyone reads them, so reading the ring after
a run, for the run's measured window, gives that run's busy fraction with
nothing enabled in the process while it ran: no CUPTI, no callbacks, no
instrumented launches. That is what `decode --gpu-timeline` uses for the busy
fraction and the verdict's GPU share (gpu/interleave.py); CUPTI's per-kernel
records, which slow the decode they record, give the kernel table only.

What it cannot do: the periods are coarse (on the order of 10-200 ms, the
driver's choice), so only samples whose whole period lies inside a measured
window count (`window_busy`), and a run shorter than a period or two gives
none; the figure counts every process's kernels on that GPU, not only ours.

libnvidia-ml ships with the driver; it is loaded with ctypes (no Python
package needed) and only when a reading starts. Pure arithmetic below the
ctypes part, so tests feed it recorded samples.
"""

import ctypes
import os
import time
from typing import List, NamedTuple, Optional, Sequence, Tuple

from .timeline import NvmlBusy

GPU_UTILIZATION_SAMPLES = 1  # nvmlSamplingType_t NVML_GPU_UTILIZATION_SAMPLES
VALUE_UINT, VALUE_ULONG, VALUE_ULONGLONG = 1, 2, 3  # nvmlValueType_t members the utilization samples use
SUCCESS, NOT_FOUND = 0, 6  # nvmlReturn_t: NVML_ERROR_NOT_FOUND = no samples since the timestamp
LIBRARY = "libnvidia-ml.so.1"


class Sample(NamedTuple):
    t_us: int  # end of the sample's period, CPU µs since the epoch
    percent: float  # of that period, some kernel was running


class _Value(ctypes.Union):
    _fields_ = [("dVal", ctypes.c_double), ("uiVal", ctypes.c_uint), ("ulVal", ctypes.c_ulong),
                ("ullVal", ctypes.c_ulonglong), ("sllVal", ctypes.c_longlong)]


class _Sample(ctypes.Structure):
    _fields_ = [("timeStamp", ctypes.c_ulonglong), ("sampleValue", _Value)]


class NvmlError(RuntimeError):
    """NVML is missing, refused, or cannot tell which GPU MLX uses."""


class Sampler:
    """Reads one GPU's utilization samples.

        s = Sampler()              # raises NvmlError when NVML cannot be used
        samples = s.read()         # the samples newer than the last read
    """

    def __init__(self, index: Optional[int] = None, lib=None):
        self.lib = lib or _load()
        self.handle = ctypes.c_void_p()
        index = visible_index() if index is None else index
        _check(self.lib, self.lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(index), ctypes.byref(self.handle)),
               f"GPU {index}")
        self.last_us = 0

    def read(self) -> List[Sample]:
        """Every sample the driver holds that is newer than the last one read."""
        kind, count = ctypes.c_int(0), ctypes.c_uint(0)
        get = self.lib.nvmlDeviceGetSamples
        ret = get(self.handle, GPU_UTILIZATION_SAMPLES, ctypes.c_ulonglong(self.last_us), ctypes.byref(kind),
                  ctypes.byref(count), None)
        if ret == NOT_FOUND:
            return []
        _check(self.lib, ret, "utilization samples")
        buf = (_Sample * max(count.value, 1))()
        ret = get(self.handle, GPU_UTILIZATION_SAMPLES, ctypes.c_ulonglong(self.last_us), ctypes.byref(kind),
                  ctypes.byref(count), buf)
        if ret == NOT_FOUND:
            return []
        _check(self.lib, ret, "utilization samples")
        out = sorted(Sample(int(s.timeStamp), _value(s.sampleValue, kind.value)) for s in buf[:count.value])
        out = [s for s in out if s.t_us > self.last_us]
        if out:
            self.last_us = out[-1].t_us
        return out


def _value(v: _Value, kind: int) -> float:
    return float({VALUE_UINT: v.uiVal, VALUE_ULONG: v.ulVal, VALUE_ULONGLONG: v.ullVal}.get(kind, v.uiVal))


def _load():
    try:
        lib = ctypes.CDLL(LIBRARY)
    except OSError as e:
        raise NvmlError(f"{LIBRARY} did not load ({e}); it comes with NVIDIA's driver")
    _check(lib, lib.nvmlInit_v2(), "nvmlInit")
    return lib


def _check(lib, ret: int, what: str):
    if ret != SUCCESS:
        try:
            lib.nvmlErrorString.restype = ctypes.c_char_p
            msg = lib.nvmlErrorString(ret).decode()
        except Exception:
            msg = f"error {ret}"
        raise NvmlError(f"NVML {what}: {msg}")


def visible_index(env=None) -> int:
    """NVML's index of the GPU that MLX's CUDA device 0 is: the first entry
    of CUDA_VISIBLE_DEVICES (NVML ignores that variable), else 0. NVML numbers
    GPUs by PCI bus id; CUDA's default order puts the fastest first, ties in
    PCI bus order (https://docs.nvidia.com/cuda/cuda-c-programming-guide/#env-vars),
    so on hosts of one GPU model the two agree. A UUID or MIG entry is not
    resolved: a busy figure read from the wrong GPU is worse than none."""
    env = os.environ if env is None else env
    first = (env.get("CUDA_VISIBLE_DEVICES") or "").split(",")[0].strip()
    if not first:
        return 0
    if first.isdigit():
        return int(first)
    raise NvmlError(f"CUDA_VISIBLE_DEVICES={first!r} names a GPU by UUID or MIG instance; NVML's busy "
                    "fraction is read only for GPUs named by index")


def epoch_offset_us(pairs: int = 5) -> float:
    """time.time() − time.perf_counter() in µs, from the closest of a few
    paired reads: NVML stamps samples on the epoch clock, runs are timed on
    perf_counter."""
    best = None
    for _ in range(pairs):
        a = time.perf_counter()
        w = time.time()
        b = time.perf_counter()
        if best is None or b - a < best[0]:
            best = (b - a, w - (a + b) / 2)
    return best[1] * 1e6


# --------------------------------------------------------------------------
# arithmetic on samples


def periods(samples: Sequence[Sample]) -> List[Tuple[float, float, float]]:
    """(start_us, end_us, percent) of every sample after the first (the
    first's start is unknown: its period ended where the ring begins)."""
    s = sorted(samples)
    return [(a.t_us, b.t_us, b.percent) for a, b in zip(s, s[1:]) if b.t_us > a.t_us]


def window_busy(samples: Sequence[Sample], lo_us: float, hi_us: float) -> Tuple[float, float]:
    """(busy µs, covered µs) inside [lo_us, hi_us] from the samples whose whole
    period lies inside it. Periods straddling an edge are left out: part of
    them is prefill, warm-up or the next run, whose busy share differs."""
    return _whole(periods(samples), lo_us, hi_us)[:2]


def _whole(ps, lo_us: float, hi_us: float) -> Tuple[float, float, int]:
    """window_busy over periods already paired, with the count of whole periods."""
    busy = covered = 0.0
    n = 0
    for a, b, pct in ps:
        if a >= lo_us and b <= hi_us:
            busy += (b - a) * pct / 100.0
            covered += b - a
            n += 1
    return busy, covered, n


def busy_over(windows: Sequence[Tuple[float, float]], samples: Sequence[Sample], offset_us: float) -> NvmlBusy:
    """NVML's busy fraction over `windows` (perf_counter seconds), with
    `offset_us` from epoch_offset_us()."""
    per, tot_b, tot_c, wall, n = [], 0.0, 0.0, 0.0, 0
    ps = periods(samples)
    for lo, hi in windows:
        b, c, k = _whole(ps, lo * 1e6 + offset_us, hi * 1e6 + offset_us)
        per.append(b / c if c > 0 else None)
        tot_b, tot_c, wall, n = tot_b + b, tot_c + c, wall + (hi - lo) * 1e6, n + k
    lengths = sorted(e - a for a, e, _ in ps)
    period = lengths[len(lengths) // 2] / 1e3 if lengths else None
    notes = []
    if n == 0:
        notes.append("no NVML sample period lay wholly inside a measured window"
                     + (f" (periods ~{period:.0f} ms)" if period else "")
                     + ": decode more --tokens per run for a busy fraction")
    elif tot_c < 0.5 * wall:
        notes.append(f"NVML's whole sample periods cover {tot_c / wall:.0%} of the measured time")
    return NvmlBusy(runs=len(windows), busy_fraction=tot_b / tot_c if tot_c > 0 else None,
                    busy_fraction_runs=per, samples=n, coverage=tot_c / wall if wall > 0 else 0.0,
                    period_ms=period, notes=notes)


class Reading:
    """A decode's NVML samples, read between runs (never inside one): the
    driver's ring holds only the last few seconds (71 samples of 200 ms on an
    H200 with MLX 0.32.4, measured), so every run's finish reads what is new."""

    def __init__(self, sampler: Optional[Sampler] = None):
        self.sampler = sampler or Sampler()
        self.offset_us = epoch_offset_us()
        self.samples: List[Sample] = []
        self.sampler.read()  # drop what came before this decode

    def read(self):
        self.samples += self.sampler.read()

    def busy(self, windows: Sequence[Tuple[float, float]]) -> NvmlBusy:
        return busy_over(windows, self.samples, self.offset_us)


def open_reading() -> Tuple[Optional[Reading], Optional[str]]:
    """(a Reading, None), or (None, why NVML cannot be read here)."""
    try:
        return Reading(), None
    except NvmlError as e:
        return None, str(e)
    except Exception as e:  # an odd driver: never let the busy figure stop a decode
        return None, f"NVML failed: {type(e).__name__}: {e}"
