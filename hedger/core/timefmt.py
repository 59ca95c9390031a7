"""Times for people: UTC date-times and ages in text output (``--json`` keeps raw Unix seconds)."""

from __future__ import annotations

import time


def utc(ts: int | float) -> str:
    """``2026-11-29 18:20:05 UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(ts)))


def duration(seconds: int | float) -> str:
    """``45s``, ``12m 05s``, ``3h 20m``, ``2d 4h`` (two units at most; rounded down)."""
    s = int(abs(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86_400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86_400}d {s % 86_400 // 3600}h"


def when(ts: int | float, now: int | float | None = None) -> str:
    """``2026-11-29 18:20:05 UTC (3m 20s ago)``, or ``(in 1m 40s)`` for a time after ``now``
    (default: the wall clock; pass the block's timestamp for chain time)."""
    now = time.time() if now is None else now
    delta = now - ts
    if abs(delta) < 1:
        rel = "now"
    elif delta > 0:
        rel = f"{duration(delta)} ago"
    else:
        rel = f"in {duration(delta)}"
    return f"{utc(ts)} ({rel})"
