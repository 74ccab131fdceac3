"""The watch cache: the recent changes of each resource type, and the server-side watches.

Upstream keeps one cacher per resource (staging/src/k8s.io/apiserver/pkg/storage/cacher); here
one `History` per type holds the committed changes as bytes, each decoded only when a watcher
with a selector needs it, and a `Watch` receives its events as ready-to-send JSON lines.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Iterator

from pytest_k8sdr.sim.apimachinery.types import JSON

__all__ = ["Change", "Entry", "History", "Watch"]


class Entry:
    """One committed object version: the dict (never mutated) and its JSON bytes."""

    __slots__ = ("obj", "raw", "rv")

    def __init__(self, obj: JSON, raw: bytes, rv: int) -> None:
        self.obj = obj
        self.raw = raw
        self.rv = rv


class Change:
    """One committed change as the watch history keeps it: bytes only, decoded on demand.

    While the commit is being delivered, `live_obj`/`live_old` hold the dicts and `lines`
    the encoded events; both are dropped afterwards so the history stays small.
    """

    __slots__ = (
        "at",
        "lines",
        "live_obj",
        "live_old",
        "namespace",
        "old_raw",
        "plural",
        "raw",
        "rv",
        "type",
    )

    def __init__(
        self,
        rv: int,
        plural: str,
        event_type: str,
        namespace: str,
        entry: Entry,
        old: Entry | None,
        at: float,
    ) -> None:
        self.rv = rv
        self.plural = plural
        self.type = event_type
        self.namespace = namespace
        self.raw = entry.raw
        self.old_raw = old.raw if old is not None else None
        self.at = at
        self.live_obj: JSON | None = entry.obj
        self.live_old: JSON | None = old.obj if old is not None else None
        self.lines: dict[str, bytes] | None = {}

    def obj(self) -> JSON:
        """The object after the change."""
        if self.live_obj is not None:
            return self.live_obj
        return json.loads(self.raw)  # type: ignore[no-any-return]

    def old_obj(self) -> JSON | None:
        """The object before the change, if any."""
        if self.live_old is not None:
            return self.live_old
        return json.loads(self.old_raw) if self.old_raw is not None else None

    def settle(self) -> None:
        """Drop what only the live delivery needed."""
        self.live_obj = self.live_old = None
        self.lines = None

    def line(self, event_type: str) -> bytes:
        """The watch event line for this change as `event_type`."""
        lines = self.lines
        cached = lines.get(event_type) if lines is not None else None
        if cached is None:
            cached = b'{"type":"' + event_type.encode() + b'","object":' + self.raw + b"}\n"
            if lines is not None:
                lines[event_type] = cached
        return cached


class History:
    """The recent changes of one resource type, oldest first."""

    __slots__ = ("changes", "compacted_rv", "size")

    def __init__(self) -> None:
        self.changes: deque[Change] = deque()
        self.compacted_rv = 0  # changes up to here are forgotten
        self.size = 0  # bytes held

    def after(self, rv: int) -> Iterator[Change]:
        """The changes newer than `rv`, oldest first."""
        changes = self.changes
        if not changes or changes[-1].rv <= rv:
            return
        # Binary search: history is in rv order.
        lo, hi = 0, len(changes)
        while lo < hi:
            mid = (lo + hi) // 2
            if changes[mid].rv <= rv:
                lo = mid + 1
            else:
                hi = mid
        for i in range(lo, len(changes)):
            yield changes[i]

    def append(self, change: Change) -> None:
        """Remember one committed change."""
        self.changes.append(change)
        self.size += len(change.raw) + len(change.old_raw or b"")

    def trim(self, window: float, max_changes: int, max_bytes: int) -> None:
        """Forget changes older than `window` seconds or beyond the count and size bounds."""
        cutoff = time.monotonic() - window
        changes = self.changes
        while changes and (
            changes[0].at < cutoff or len(changes) > max_changes or self.size > max_bytes
        ):
            gone = changes.popleft()
            self.size -= len(gone.raw) + len(gone.old_raw or b"")
            self.compacted_rv = gone.rv


class Watch:
    """A server-side watch: events arrive as ready-to-send JSON lines on `queue`.

    A `None` item means the store closed the watch (it fell too far behind).
    """

    def __init__(
        self,
        on_close: Callable[[Watch], None],
        plural: str,
        namespace: str | None,
        match: Callable[[JSON], bool] | None,
        max_queue: int,
    ) -> None:
        self._on_close = on_close
        self.plural = plural
        self.namespace = namespace
        self.match = match
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.last_rv = 0
        self._max_queue = max_queue
        self.closed = False

    def offer(self, change: Change) -> None:
        """Queue the change as this watcher sees it (or not at all)."""
        if self.closed:
            return
        if self.namespace is not None and change.namespace != self.namespace:
            return
        event_type = change.type
        match = self.match
        if match is not None:
            new_ok = match(change.obj())
            if change.type == "MODIFIED":
                old = change.old_obj()
                old_ok = old is not None and match(old)
                # An object entering or leaving the selected set is ADDED / DELETED for this
                # watcher (staging/src/k8s.io/apiserver/pkg/storage/cacher/cache_watcher.go).
                if new_ok and not old_ok:
                    event_type = "ADDED"
                elif old_ok and not new_ok:
                    event_type = "DELETED"
                elif not new_ok:
                    return
            elif not new_ok:
                return
        self.last_rv = change.rv
        self.queue.put_nowait(change.line(event_type))
        if self.queue.qsize() > self._max_queue:
            # A watcher that cannot keep up is closed, as upstream's cacher does.
            self.close()
            self.queue.put_nowait(None)

    def close(self) -> None:
        """Stop receiving events."""
        if not self.closed:
            self.closed = True
            self._on_close(self)
