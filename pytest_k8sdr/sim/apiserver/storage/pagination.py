"""Paginated lists: a snapshot per first page, resumed by an opaque continue token.

Upstream encodes the etcd key and revision in the token (apiserver/pkg/storage/etcd3); here a
token names a snapshot of the selected entries, kept for the history window, so every page of
one list is consistent. An expired snapshot is 410 Expired, as upstream answers a compacted one.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections.abc import Sequence

from pytest_k8sdr.sim.apimachinery.errors import ApiError, expired
from pytest_k8sdr.sim.apiserver.storage.watchcache import Entry

__all__ = ["Snapshots"]

_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted between "
    "the time the first chunk was returned and now may show up in the list."
)


class Snapshots:
    """The open paginated lists of one store."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._snapshots: dict[str, tuple[float, int, Sequence[Entry]]] = {}
        self._ids = itertools.count(1)

    def resume(self, token: str) -> tuple[str, int, int, Sequence[Entry]]:
        """(snapshot id, start, resourceVersion, entries) of a continue token; 410 when expired."""
        snap_id, start, rv = _decode(token)
        snap = self._snapshots.get(snap_id)
        if snap is None:
            raise expired(_EXPIRED)
        return snap_id, start, rv, snap[2]

    def page(
        self, snap_id: str, entries: Sequence[Entry], start: int, limit: int | None, rv: int
    ) -> tuple[int, str]:
        """Where this page ends and the continue token for the rest ("" when it is the last)."""
        end = len(entries)
        if limit and limit > 0 and start + limit < len(entries):
            end = start + limit
            if not snap_id:
                self.expire()
                snap_id = str(next(self._ids))
                self._snapshots[snap_id] = (time.monotonic(), rv, entries)
            return end, _encode(snap_id, end, rv)
        if snap_id:
            self._snapshots.pop(snap_id, None)
        return end, ""

    def expire(self) -> None:
        """Forget snapshots older than the window."""
        cutoff = time.monotonic() - self.window
        for key in [k for k, v in self._snapshots.items() if v[0] < cutoff]:
            del self._snapshots[key]


def _encode(snap_id: str, start: int, rv: int) -> str:
    raw = json.dumps({"v": "sim/v1", "id": snap_id, "start": start, "rv": rv}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode(token: str) -> tuple[str, int, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(data["id"]), int(data["start"]), int(data["rv"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, "BadRequest", f"invalid continue token: {token!r}") from None
