"""Recording the GPU's kernel timeline on CUDA with CUPTI's activity API.

The only module that imports cupti-python (NVIDIA's bindings,
`pip install 'mlxprof[cuda]'`), and only when a recording starts or
availability is checked. `Recorder` enables CONCURRENT_KERNEL (plus MEMCPY /
MEMSET when CUPTI allows), copies the records CUPTI hands back in its
buffer-completed callback, and pairs CUPTI's clock with
`time.perf_counter()` before and after so every kernel can be placed on the
host clock. MLX launches its kernels through CUDA graphs; graph kernel nodes
still come back as one CONCURRENT_KERNEL record each.
"""

import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import InputError
from .clock import ClockFit, fit_clock, take_pairs
from .timeline import GpuTimeline, Kernel, analyze, run_window

EXTRA_HINT = "pip install 'mlxprof[cuda]' (cupti-python, NVIDIA's CUPTI bindings)"
# Per CUPTI buffer. The buffer-completed callback runs Python on CUPTI's thread
# and holds the GIL while it copies records, so a buffer that fills during a
# run stalls the decode loop: make buffers hold a whole run (E2B: ~2200
# kernels/token) and flush between runs (Recorder.flush).
BUFFER_BYTES = 128 << 20


def _import_cupti():
    """cupti-python's module, imported lazily (it loads libcupti and cuda-bindings)."""
    from cupti import cupti  # noqa: WPS433 (lazy on purpose)

    return cupti


def check_available(backend: str):
    """Raise a one-line InputError unless a CUPTI timeline can be recorded here.
    Cheap: call it before any model is loaded."""
    if backend == "metal":
        raise InputError(
            "--gpu-timeline records the CUDA kernel timeline through CUPTI and is not available on "
            "the Metal backend; for a Metal GPU trace use mx.metal.start_capture(path) around the "
            "work and open the .gputrace in Xcode"
        )
    if backend != "cuda":
        raise InputError(
            f"--gpu-timeline needs MLX's CUDA backend; this is the {backend.upper()} backend, "
            "which has no GPU kernels to trace"
        )
    try:
        cupti = _import_cupti()
        cupti.get_timestamp()
    except ImportError as e:
        raise InputError(f"--gpu-timeline needs cupti-python: {EXTRA_HINT}; import failed: {_one_line(e)}")
    except Exception as e:  # libcupti missing or too old for the driver
        raise InputError(f"--gpu-timeline: CUPTI did not load ({_one_line(e)}); {EXTRA_HINT}")


def _one_line(e) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())


# --------------------------------------------------------------------------
# activity buffers


def parse_activities(activities: Iterable, kinds: Dict[int, str], out: List[Kernel],
                     names: Optional[Dict[str, str]] = None) -> int:
    """Copy what we need out of CUPTI activity objects (they may point into a
    buffer CUPTI reuses once the callback returns). `kinds` maps the
    ActivityKind ints to keep onto our labels. Returns records skipped as
    invalid (no timestamps, or end before start)."""
    names = {} if names is None else names
    bad = 0
    for a in activities:
        label = kinds.get(int(a.kind))
        if label is None:
            continue
        s, e = int(a.start), int(a.end)
        if e < s or (s == 0 and e == 0):
            bad += 1
            continue
        if label == "kernel":
            name = a.name
            if isinstance(name, bytes):
                name = name.decode("utf-8", "replace")
            name = name or "?"
        else:
            name = f"[{label}]"
        name = names.setdefault(name, name)  # one string object per kernel name
        out.append(Kernel(s, e, name, label, int(getattr(a, "graph_id", 0) or 0)))
    return bad


class RecorderError(RuntimeError):
    """CUPTI would not start recording (kernel activity refused, or a Recorder already active)."""


_callbacks_registered = False
_sink = None  # the Recorder that buffer-completed callbacks feed


def _buffer_requested():
    return BUFFER_BYTES, 0  # (bytes, max records: 0 = as many as fit)


def _buffer_completed(activities):
    t0 = time.perf_counter()
    sink = _sink
    if sink is None:
        return
    try:
        n = len(sink.kernels)
        sink.invalid += parse_activities(activities, sink._kind_labels, sink.kernels, sink._names)
        sink.deliveries.append((t0, time.perf_counter(), len(sink.kernels) - n))
    except Exception as e:  # never raise into CUPTI's thread
        sink.errors.append(_one_line(e))


def _dropped_records(cupti) -> Optional[int]:
    """CUPTI's count of records lost for want of buffer space (global queue), if it says."""
    try:
        import numpy as np

        n = np.zeros(1, dtype=np.uint64)
        cupti.activity_get_num_dropped_records(0, 0, n.ctypes.data)
        return int(n[0])
    except Exception:
        return None


# --------------------------------------------------------------------------
# the recorder


class Recorder:
    """Record kernel activity between __enter__ and __exit__.

        with Recorder(sync=mx.synchronize) as rec:
            ...GPU work...
        rec.kernels, rec.clock  # raw records (CUPTI ns) and the clock fit

    CUPTI's callbacks are registered once per process (CUPTI keeps one pair);
    each Recorder enables the activity kinds on entry and disables them on
    exit, after a forced flush. `sync` (e.g. mx.synchronize) runs before the
    flush so the last kernels have finished."""

    KINDS = (("CONCURRENT_KERNEL", "kernel"), ("MEMCPY", "memcpy"), ("MEMSET", "memset"))

    def __init__(self, sync: Optional[Callable[[], None]] = None, kinds=("kernel", "memcpy", "memset")):
        self.sync = sync
        self.want = set(kinds)
        self.kernels: List[Kernel] = []
        self.invalid = 0
        self.errors: List[str] = []
        self.deliveries: List[Tuple[float, float, int]] = []  # (start, end, records) of each callback
        self.kinds: List[str] = []
        self.dropped: Optional[int] = None
        self.clock: Optional[ClockFit] = None
        self._kind_labels: Dict[int, str] = {}
        self._names: Dict[str, str] = {}
        self._enabled = []
        self._pairs = []

    def __enter__(self):
        global _callbacks_registered, _sink
        cupti = self._cupti = _import_cupti()
        if _sink is not None:
            raise RecorderError("a GPU timeline Recorder is already active")
        if not _callbacks_registered:
            cupti.activity_register_callbacks(_buffer_requested, _buffer_completed)
            _callbacks_registered = True
        _dropped_records(cupti)  # the count is "since the last call": start from zero
        self._pairs = take_pairs(cupti.get_timestamp)
        _sink = self
        try:
            for enum_name, label in self.KINDS:
                if label not in self.want:
                    continue
                kind = getattr(cupti.ActivityKind, enum_name)
                try:
                    cupti.activity_enable(kind)
                except Exception as e:
                    if label == "kernel":
                        raise RecorderError(f"CUPTI could not enable kernel activity: {_one_line(e)}") from e
                    self.errors.append(f"{enum_name} not enabled: {_one_line(e)}")
                    continue
                self._enabled.append(kind)
                self._kind_labels[int(kind)] = label
                self.kinds.append(label)
            # KERNEL records are the serialized variant; treat them as kernels if they come
            self._kind_labels.setdefault(int(cupti.ActivityKind.KERNEL), "kernel")
        except BaseException:
            self._stop()
            raise
        return self

    def flush(self, *_):
        """Have CUPTI hand over what it holds now (call between runs, with the
        GPU idle, so the callback's Python work falls outside measured tokens)."""
        if self.sync is not None:
            self.sync()
        self._cupti.activity_flush_all(1)

    def _stop(self):
        global _sink
        cupti = self._cupti
        try:
            if self.sync is not None:
                self.sync()
            cupti.activity_flush_all(1)  # CUPTI_ACTIVITY_FLAG_FLUSH_FORCED: partly filled buffers too
        finally:
            for kind in self._enabled:
                try:
                    cupti.activity_disable(kind)
                except Exception as e:
                    self.errors.append(f"disable {kind}: {_one_line(e)}")
            self._enabled = []
            try:
                cupti.activity_flush_all(1)
            except Exception as e:
                self.errors.append(f"final flush: {_one_line(e)}")
            _sink = None
            self.dropped = _dropped_records(cupti)
            self._pairs += take_pairs(cupti.get_timestamp)
            self.clock = fit_clock(self._pairs)

    def __exit__(self, *exc):
        self._stop()
        return False

    def analyze(self, runs: Sequence, top: int = 15) -> GpuTimeline:
        tl = analyze(self.kernels, self.clock, runs, self.kinds, invalid=self.invalid,
                     dropped=self.dropped, top=top)
        tl.notes.extend(f"CUPTI: {e}" for e in self.errors)
        wins = [run_window(r) for r in runs]
        inside = [(a, b) for a, b, _ in self.deliveries if any(a < hi and b > lo for lo, hi in wins)]
        if inside:
            tl.notes.append(f"{len(inside)} CUPTI buffer deliveries ({sum(b - a for a, b in inside) * 1e3:.0f} ms "
                            "of Python on CUPTI's thread) overlapped measured tokens: the traced runs' host "
                            "times include them")
        return tl
