"""The watch cache: the recent changes of each resource type, and the server-side watches.

Upstream keeps one cacher per resource (staging/src/k8s.io/apiserver/pkg/storage/cacher); here
one `History` per type holds the committed changes as compact entries (JSON bytes and the
few values selectors read, never a decoded object), and a `Watch` receives its events as
ready-to-send JSON lines.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping

from pytest_k8sdr.sim.apimachinery.selectors import Selectable
from pytest_k8sdr.sim.apimachinery.types import JSON

__all__ = ["Change", "Entry", "History", "Watch"]


class Entry:
    """One committed object version, kept compact: its JSON bytes and what selectors read.

    The object is not kept decoded (a decoded pod takes several times its JSON): `decode()`
    makes a fresh copy when a caller needs one. `labels` is the object's labels mapping and
    `fields` its `selectable_values`, so lists and watches with selectors decode nothing.
    """

    __slots__ = ("fields", "labels", "name", "namespace", "raw", "rv")

    def __init__(
        self,
        raw: bytes,
        rv: int,
        namespace: str,
        name: str,
        labels: Mapping[str, str] | None,
        fields: tuple[str, ...],
    ) -> None:
        self.raw = raw
        self.rv = rv
        self.namespace = namespace
        self.name = name
        self.labels = labels
        self.fields = fields

    def decode(self) -> JSON:
        """A fresh decoded copy of the object (the caller may mutate it)."""
        return json.loads(self.raw)  # type: ignore[no-any-return]


class Change:
    """One committed change as the watch history keeps it: the entries before and after.

    `lines` holds the encoded events while the commit is being delivered, and is dropped
    afterwards so the history stays small.
    """

    __slots__ = ("at", "entry", "lines", "namespace", "old", "plural", "rv", "type")

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
        self.entry = entry
        self.old = old
        self.at = at
        self.lines: dict[str, bytes] | None = {}

    @property
    def raw(self) -> bytes:
        """The object after the change, as JSON."""
        return self.entry.raw

    @property
    def size(self) -> int:
        """Bytes of JSON this change holds."""
        return len(self.entry.raw) + (len(self.old.raw) if self.old is not None else 0)

    def settle(self) -> None:
        """Drop what only the live delivery needed."""
        self.lines = None

    def line(self, event_type: str) -> bytes:
        """The watch event line for this change as `event_type`."""
        lines = self.lines
        cached = lines.get(event_type) if lines is not None else None
        if cached is None:
            cached = b'{"type":"' + event_type.encode() + b'","object":' + self.entry.raw + b"}\n"
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
        self.size += change.size

    def trim(self, window: float, max_changes: int, max_bytes: int) -> None:
        """Forget changes older than `window` seconds or beyond the count and size bounds."""
        cutoff = time.monotonic() - window
        changes = self.changes
        while changes and (
            changes[0].at < cutoff or len(changes) > max_changes or self.size > max_bytes
        ):
            gone = changes.popleft()
            self.size -= gone.size
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
        match: Callable[[Selectable], bool] | None,
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
            new_ok = match(change.entry)
            if change.type == "MODIFIED":
                old = change.old
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
