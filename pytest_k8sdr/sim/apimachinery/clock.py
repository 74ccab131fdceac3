"""metav1.Time and metav1.MicroTime: the one place the simulator writes and reads them."""

from __future__ import annotations

import time
from datetime import datetime

__all__ = ["microtime", "now_rfc3339", "parse_rfc3339", "rfc3339"]


def rfc3339(ts: float | None = None) -> str:
    """A Time (second precision, UTC) as Kubernetes writes it: `2026-11-24T21:00:00Z`."""
    ts = time.time() if ts is None else ts
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def now_rfc3339(offset: float = 0.0) -> str:
    """The Time `offset` seconds from now."""
    return rfc3339(time.time() + offset)


def microtime(ts: float | None = None) -> str:
    """A MicroTime: `2026-11-24T21:00:00.123456Z`."""
    ts = time.time() if ts is None else ts
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
    return f"{whole}.{int((ts % 1) * 1_000_000):06d}Z"


def parse_rfc3339(value: str | None) -> float | None:
    """Seconds since the epoch of a Time or MicroTime, None when absent or unreadable."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
