"""How the report writes durations and counts, and the percentiles it draws."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(ordered: Sequence[int | float], p: float) -> float:
    """The ``p``-th percentile of sorted values, interpolated between the nearest ranks."""
    if not ordered:
        return 0.0
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return float(ordered[lo]) + (float(ordered[hi]) - float(ordered[lo])) * (k - lo)


def duration(seconds: float) -> str:
    """``850 ms``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``."""
    if seconds < 0:
        seconds = 0.0
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s".replace(".0 s", " s")
    if seconds < 3600:
        m, s = divmod(round(seconds), 60)
        return f"{m} min {s:02d} s" if s else f"{m} min"
    h, rest = divmod(round(seconds), 3600)
    return f"{h} h {rest // 60:02d} min"


def ms_text(ms: float) -> str:
    """A step's time, given in milliseconds."""
    return duration(ms / 1000)


def tick_ms(ms: float) -> str:
    """A log axis' tick: ``20 ms``, ``5 s``, ``100 s``."""
    return f"{ms:g} ms" if ms < 1000 else f"{ms / 1000:g} s"
