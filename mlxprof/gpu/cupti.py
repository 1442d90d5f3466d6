"""Recording the GPU's timeline on CUDA with CUPTI's activity API.

The only module that imports cupti-python (NVIDIA's bindings,
`pip install 'mlxprof[cuda]'`), and only when a recording starts or
availability is checked. `Recorder` enables activity kinds for one run at a
time (`start(level)` … `stop()`), copies the records CUPTI hands back in its
buffer-completed callback, and pairs CUPTI's clock with `time.perf_counter()`
at every start and stop so every record can be placed on the host clock.

Two levels (LEVELS). MLX's CUDA backend launches its kernels as CUDA graphs
(mlx/backend/cuda/device.cpp, CommandEncoder::commit → cudaGraphLaunch):
  graph   GRAPH_TRACE: one record per graph launch, first node's start to last
          node's end. With it enabled CUPTI reports no per-node records for
          graph launches (https://github.com/wolfpld/tracy/pull/1330), so the
          CONCURRENT_KERNEL enabled beside it (as NVIDIA's own cupti-python
          samples do, cupti_common.py default_activity_list) only adds kernels
          launched outside graphs. Cheap: a few records per token.
  kernel  CONCURRENT_KERNEL: one record per kernel, graph nodes included
          (~2300 per token for Gemma 3n E2B): names for the kernel table, at a
          tracing cost of its own.
`stop()` disables every kind it enabled and flushes, so the untraced runs that
follow run with no activity kind enabled. With `detach` (off by default) it
also detaches CUPTI with cuptiFinalize: it was on when `decode --gpu-timeline`
first died with SIGSEGV on MLX 0.32.4 CUDA (H200) and has not been cleared as
a cause since, so it stays a diagnostic (bench/tracing_cost.py --detach).
"""

import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import InputError
from .clock import ClockFit, fit_clock, take_pairs
from .timeline import GRAPH_NAME, GpuTimeline, Kernel, analyze, run_window

EXTRA_HINT = "pip install 'mlxprof[cuda]' (cupti-python, NVIDIA's CUPTI bindings)"
# Per CUPTI buffer. The buffer-completed callback runs Python on CUPTI's thread
# and holds the GIL while it copies records, so a buffer that fills during a
# run stalls the decode loop: make buffers hold a whole run (E2B: ~2200
# kernels/token) and flush between runs (Recorder.flush).
BUFFER_BYTES = 128 << 20
# activity kinds by our label, and the labels each level enables (first: the one it needs)
ACTIVITY_KINDS = {"graph": "GRAPH_TRACE", "kernel": "CONCURRENT_KERNEL", "memcpy": "MEMCPY", "memset": "MEMSET"}
LEVELS = {"graph": ("graph", "kernel", "memcpy", "memset"), "kernel": ("kernel", "memcpy", "memset")}


def _import_cupti():
    """cupti-python's module, imported lazily (it loads libcupti and cuda-bindings)."""
    from cupti import cupti  # noqa: WPS433 (lazy on purpose)

    return cupti


def check_available(backend: str):
    """Raise a one-line InputError unless a CUPTI timeline can be recorded here.
    Cheap: call it before any model is loaded. Detaches CUPTI again after the
    probe, so nothing of it stays attached before the first traced run."""
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


def _detach(cupti) -> Optional[str]:
    """cuptiFinalize: detach CUPTI from the process (it attaches again on the
    next CUPTI call, with no callbacks registered). Returns the error, if any."""
    global _callbacks_registered
    try:
        cupti.finalize()
    except Exception as e:
        return _one_line(e)
    _callbacks_registered = False
    return None


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
        elif label == "graph":
            name = GRAPH_NAME
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
    """Record GPU activity, run by run or over a whole block.

        rec = Recorder(sync=mx.synchronize)
        rec.start("graph"); ...one run...; rec.stop()   # as often as needed
        rec.close()
        rec.kernels, rec.clock  # raw records (CUPTI ns) and the clock fit

        with Recorder(sync=mx.synchronize) as rec:  # kernel level over the block
            ...GPU work...

    CUPTI keeps one pair of buffer callbacks per process: they are registered
    at the first start after an attach. `sync` (e.g. mx.synchronize) runs before
    each flush so the last kernels have finished. With `detach` every stop
    detaches CUPTI (cuptiFinalize; see the module docstring for why it is off)."""

    def __init__(self, sync: Optional[Callable[[], None]] = None,
                 kinds: Sequence[str] = LEVELS["kernel"], detach: bool = False):
        self.sync = sync
        self.want = tuple(kinds)
        self.detach = detach
        self.kernels: List[Kernel] = []
        self.invalid = 0
        self.errors: List[str] = []
        self.deliveries: List[Tuple[float, float, int]] = []  # (start, end, records) of each callback
        self.kinds: List[str] = []  # every label enabled at some start
        self.dropped: Optional[int] = None
        self.clock: Optional[ClockFit] = None
        self.starts = 0
        self._kind_labels: Dict[int, str] = {}
        self._names: Dict[str, str] = {}
        self._enabled = []
        self._pairs = []
        self._cupti = None

    @property
    def active(self) -> bool:
        return bool(self._enabled)

    def start(self, kinds="kernel") -> List[str]:
        """Enable a level ("graph", "kernel") or a tuple of labels; returns the
        labels CUPTI accepted. Raises RecorderError when another Recorder is
        active or when neither graph nor kernel activity could be enabled."""
        global _callbacks_registered, _sink
        labels = LEVELS[kinds] if isinstance(kinds, str) else tuple(kinds)
        cupti = self._cupti = self._cupti or _import_cupti()
        if _sink is not None:
            raise RecorderError("a GPU timeline Recorder is already active")
        if not _callbacks_registered:
            cupti.activity_register_callbacks(_buffer_requested, _buffer_completed)
            _callbacks_registered = True
        _dropped_records(cupti)  # the count is "since the last call": start from zero
        self._pairs += take_pairs(cupti.get_timestamp)
        _sink = self
        got = []
        try:
            for label in labels:
                try:  # an older cupti-python may not know the kind at all
                    kind = getattr(cupti.ActivityKind, ACTIVITY_KINDS[label])
                    cupti.activity_enable(kind)
                except Exception as e:
                    self._note(f"{ACTIVITY_KINDS[label]} not enabled: {_one_line(e)}")
                    continue
                self._enabled.append(kind)
                self._kind_labels[int(kind)] = label
                got.append(label)
                if label not in self.kinds:
                    self.kinds.append(label)
            if not {"graph", "kernel"} & set(got):
                raise RecorderError("CUPTI could not enable graph or kernel activity: " + "; ".join(self.errors))
            # KERNEL records are the serialized variant; treat them as kernels if they come
            self._kind_labels.setdefault(int(cupti.ActivityKind.KERNEL), "kernel")
        except BaseException:
            self.stop()
            raise
        self.starts += 1
        return got

    def _note(self, msg: str):
        if msg not in self.errors:
            self.errors.append(msg)

    def flush(self, *_):
        """Have CUPTI hand over what it holds now (call between runs, with the
        GPU idle, so the callback's Python work falls outside measured tokens)."""
        if self.sync is not None:
            self.sync()
        self._cupti.activity_flush_all(1)

    def stop(self):
        """Flush (after `sync`), disable every kind enabled, flush again, read the
        dropped count and clock pairs; with `detach`, detach CUPTI."""
        global _sink
        cupti = self._cupti
        if cupti is None or not (self._enabled or _sink is self):
            return  # not recording: touching CUPTI now would only attach it again
        try:
            if self.sync is not None:
                self.sync()
            cupti.activity_flush_all(1)  # CUPTI_ACTIVITY_FLAG_FLUSH_FORCED: partly filled buffers too
        finally:
            for kind in self._enabled:
                try:
                    cupti.activity_disable(kind)
                except Exception as e:
                    self._note(f"disable {kind}: {_one_line(e)}")
            self._enabled = []
            try:
                cupti.activity_flush_all(1)
            except Exception as e:
                self._note(f"final flush: {_one_line(e)}")
            _sink = None
            n = _dropped_records(cupti)
            if n is not None:
                self.dropped = (self.dropped or 0) + n
            self._pairs += take_pairs(cupti.get_timestamp)
            if self.detach:
                self._finalize()

    def _finalize(self):
        err = _detach(self._cupti)
        if err:
            self._note(f"cuptiFinalize failed ({err}): CUPTI stayed attached after the traced runs")
            self.detach = False

    def close(self):
        """Stop if a run is being recorded, fit the clock."""
        if self._cupti is None:
            return
        self.stop()
        if self._pairs:
            self.clock = fit_clock(self._pairs)

    def __enter__(self):
        self.start(self.want)
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def analyze(self, runs: Sequence, kinds: Optional[Sequence[str]] = None, top: int = 15) -> GpuTimeline:
        """The records inside `runs` (RunRecords traced with `kinds`, default
        every kind enabled) attributed to their measured tokens."""
        tl = analyze(self.kernels, self.clock, runs, list(kinds or self.kinds), invalid=self.invalid,
                     dropped=self.dropped, top=top)
        tl.notes.extend(f"CUPTI: {e}" for e in self.errors)
        wins = [run_window(r) for r in runs]
        inside = [(a, b) for a, b, _ in self.deliveries if any(a < hi and b > lo for lo, hi in wins)]
        if inside:
            tl.notes.append(f"{len(inside)} CUPTI buffer deliveries ({sum(b - a for a, b in inside) * 1e3:.0f} ms "
                            "of Python on CUPTI's thread) overlapped measured tokens: the traced runs' host "
                            "times include them")
        return tl
