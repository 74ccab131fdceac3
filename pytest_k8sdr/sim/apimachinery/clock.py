"""metav1.Time and metav1.MicroTime: the one place the simulator writes and reads them."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

__all__ = ["Clock", "microtime", "now_rfc3339", "parse_rfc3339", "rfc3339"]


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


class Clock:
    """The controller manager's clock: wall time plus an offset that only moves forward.

    Time-driven controllers (CronJob schedules) read it, so a test can jump over a schedule
    with `advance` instead of waiting; everything else keeps the wall clock.
    """

    def __init__(self) -> None:
        self.offset = 0.0
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        """Seconds since the epoch on this clock."""
        return time.time() + self.offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward (ValueError for a negative step); returns the offset."""
        if seconds < 0:
            raise ValueError(f"the clock only moves forward; got {seconds}s")
        self.offset += seconds
        for listener in list(self._listeners):
            listener()
        return self.offset

    def on_advance(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` after every advance; returns its removal."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)
