"""Pairing CUPTI's clock with the host's: CUPTI ns → `time.perf_counter()` seconds.

Readings of both clocks taken before and after a recording give an offset,
and a drift when they span long enough to separate it from jitter.
"""

import statistics
import time
from typing import Callable, List, Optional, Sequence, Tuple

from pydantic import BaseModel

MAX_DRIFT = 1e-3  # 1000 ppm: beyond this the pairs are not to be trusted for a slope
MIN_SPAN_S = 0.5  # too short a span cannot separate drift from jitter


class ClockFit(BaseModel):
    """host_s = offset_s + slope * (cupti_ns - ref_ns) * 1e-9"""

    ref_ns: int
    offset_s: float
    slope: float
    pairs: int
    span_s: float  # CUPTI time covered by the pairs
    residual_us: float  # worst pair's distance from the fit
    uncertainty_us: float  # worst kept pair's perf_counter bracket
    note: Optional[str] = None

    @property
    def drift_ppm(self) -> float:
        return (self.slope - 1.0) * 1e6

    def to_host(self, ns: int) -> float:
        return self.offset_s + self.slope * (ns - self.ref_ns) * 1e-9


def take_pairs(gpu_ns: Callable[[], int], host_s: Callable[[], float] = time.perf_counter,
               n: int = 32, keep: int = 8) -> List[Tuple[int, float, float]]:
    """(cupti_ns, host_s, bracket_s) readings; the host time is the midpoint of
    perf_counter() read just before and after, and only the `keep` tightest
    brackets are kept."""
    out = []
    for _ in range(n):
        h0 = host_s()
        c = gpu_ns()
        h1 = host_s()
        out.append((int(c), (h0 + h1) / 2, h1 - h0))
    out.sort(key=lambda p: p[2])
    return out[:keep]


def fit_clock(pairs: Sequence[Tuple[int, float, float]]) -> ClockFit:
    """Offset, and drift when the pairs span enough time to measure it (pairs
    taken before and after a recording do). Integers are kept until ref_ns is
    subtracted: CUPTI timestamps (~1e18 ns) do not fit a double exactly."""
    if not pairs:
        raise ValueError("no clock pairs")
    ref = min(p[0] for p in pairs)
    xs = [(p[0] - ref) * 1e-9 for p in pairs]
    ys = [p[1] for p in pairs]
    span = max(xs) - min(xs)
    note = None
    slope = 1.0
    if span >= MIN_SPAN_S and len(pairs) >= 2:
        mx_, my = statistics.fmean(xs), statistics.fmean(ys)
        sxx = sum((x - mx_) ** 2 for x in xs)
        fitted = sum((x - mx_) * (y - my) for x, y in zip(xs, ys)) / sxx
        if abs(fitted - 1.0) <= MAX_DRIFT:
            slope = fitted
        else:
            note = f"drift fit {(fitted - 1) * 1e6:.0f} ppm rejected; offset only"
    offset = statistics.median([y - slope * x for x, y in zip(xs, ys)])
    resid = max(abs(y - (offset + slope * x)) for x, y in zip(xs, ys))
    return ClockFit(ref_ns=ref, offset_s=offset, slope=slope, pairs=len(pairs), span_s=span,
                    residual_us=resid * 1e6, uncertainty_us=max(p[2] for p in pairs) * 1e6, note=note)
