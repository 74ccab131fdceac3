"""The simulator's storage: committed objects, one resourceVersion counter, watches.

What etcd and the cacher are upstream, in memory and synchronous: every method runs on the
server's event loop. Committed objects are never mutated: every write builds a new dict and
serialises it once, so lists, gets and watch events reuse the same bytes, and copies handed to
callers are decoded from them. Pods are indexed by namespace and `spec.nodeName`.

Callers outside `apiserver` see objects only as JSON bytes, decoded copies or read-only
shared dicts (`iter_objects`, `peek`); an `Entry` never leaves the apiserver package, so the
object representation may change (compact, lazily decoded) without touching them.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pytest_k8sdr.sim.apimachinery.errors import ApiError, expired, not_found
from pytest_k8sdr.sim.apimachinery.selectors import make_filter
from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType, WatchEvent
from pytest_k8sdr.sim.apiserver.storage.durable import (
    DurableLog,
    Record,
    read_store,
    snapshot_lines,
    write_snapshot,
)
from pytest_k8sdr.sim.apiserver.storage.pagination import Snapshots
from pytest_k8sdr.sim.apiserver.storage.watchcache import Change, Entry, History, Watch

__all__ = ["CommitObserver", "Storage"]

# observer(plural, namespace, name, new object or None when deleted, old object or None)
CommitObserver = Callable[[str, str, str, JSON | None, JSON | None], None]


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes, as every committed object is kept."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Storage:
    """Objects by (plural, namespace, name) with one global resourceVersion counter.

    Watch history is kept per resource type for `history_window` seconds, at most
    `history_max` changes and `history_max_bytes` of JSON; older resourceVersions are 410.
    """

    def __init__(
        self,
        types: Iterable[ResourceType],
        *,
        history_window: float = 300.0,
        history_max: int = 500_000,
        history_max_bytes: int = 64 * 1024 * 1024,
        watch_queue_max: int = 100_000,
    ) -> None:
        self.types: dict[str, ResourceType] = {t.key: t for t in types}
        self._rv = 1
        self._data: dict[str, dict[str, dict[str, Entry]]] = {p: {} for p in self.types}
        self._pods_by_node: dict[str, dict[tuple[str, str], Entry]] = {}
        self._uids: dict[str, tuple[str, str, str]] = {}
        # One history per resource type, as upstream keeps one watch cache per resource.
        self._history: dict[str, History] = {}
        self.history_window = history_window
        self._history_max = history_max
        self._history_max_bytes = history_max_bytes
        self._watch_queue_max = watch_queue_max
        self._watchers: dict[str, set[Watch]] = {}
        self._subs: dict[str, list[Callable[[WatchEvent], None]]] = {}
        self._observers: list[CommitObserver] = []
        self._pending: deque[tuple[str, Change]] = deque()
        self._dispatching = False
        self.snapshots = Snapshots(history_window)
        # Set by `open_durable`: the log every commit is written to, and the resourceVersion
        # the store was restored at (older ones are 410 Gone: the watch cache starts there).
        self.durable: DurableLog | None = None
        self._restored_rv = 0

    # -- durability ------------------------------------------------------------------

    def add_type(self, rtype: ResourceType) -> None:
        """Serve a new type (a custom resource), or replace the type of a served plural."""
        self.types[rtype.key] = rtype
        self._data.setdefault(rtype.key, {})

    def remove_type(self, plural: str) -> None:
        """Stop serving a type whose objects are all gone; its open watches end."""
        self.types.pop(plural, None)
        self._data.pop(plural, None)
        self._history.pop(plural, None)
        self._subs.pop(plural, None)
        for w in list(self._watchers.pop(plural, ())):
            w.close()
            w.queue.put_nowait(None)

    def open_durable(
        self,
        directory: Path,
        *,
        fsync_interval: float = 1.0,
        defined_by: tuple[str, Callable[[list[JSON]], Iterable[ResourceType]]] | None = None,
    ) -> int:
        """Restore the objects kept in `directory` and log every commit there from now on.

        Returns how many objects were restored (0 for a new directory); see `defined_by`
        below for types that stored objects define. The resourceVersion
        counter continues from the last stored commit, and the watch history starts there:
        a watch from an older resourceVersion is 410 Gone, as upstream's watch cache is
        after a kube-apiserver restart (it is filled from a list at etcd's current revision).
        """
        if self.durable is not None:
            raise RuntimeError("the storage is already durable")
        if self._rv > 1 or any(self._data.values()):
            raise RuntimeError("open_durable needs an empty storage")
        rv, objects = read_store(directory)
        if defined_by is not None:
            # The types that objects of one kind define (CustomResourceDefinitions) are
            # served before the objects are read: defined_by = (that kind's plural, types_of).
            definer, types_of = defined_by
            definers = [json.loads(raw) for (p, _, _), raw in objects.items() if p == definer]
            for rtype in types_of(definers):
                self.add_type(rtype)
        for (plural, ns, name), raw in objects.items():
            if plural not in self.types:
                continue  # a type this server no longer serves
            obj = json.loads(raw)
            entry = Entry(obj, raw, int(obj["metadata"].get("resourceVersion") or 0))
            self._data[plural].setdefault(ns, {})[name] = entry
            self._uids[obj["metadata"].get("uid", "")] = (plural, ns, name)
            if plural == "pods":
                self._index_pod(ns, name, entry, None)
        self._rv = max(self._rv, rv)
        self._restored_rv = self._rv if objects else 0
        for hist in self._history.values():
            hist.compacted_rv = max(hist.compacted_rv, self._restored_rv)
        self.durable = DurableLog(directory, fsync_interval=fsync_interval)
        if objects:
            # Start from a fresh snapshot so the log holds only this process's commits.
            self.durable.compact(self._rv, self._records())
        return len(objects)

    def _records(self) -> Iterator[Record]:
        for plural, buckets in self._data.items():
            for ns, bucket in buckets.items():
                for name, entry in bucket.items():
                    yield Record(plural, ns, name, entry.raw)

    def save_snapshot(self, path: Path) -> int:
        """Write every object at the current resourceVersion to `path`; how many objects.

        As `etcdctl snapshot save` does: `open_durable` on a directory holding the file as
        `snapshot` restores them.
        """
        records = list(self._records())
        write_snapshot(path, self._rv, records)
        return len(records)

    def snapshot_bytes(self) -> bytes:
        """Every object at the current resourceVersion, in the snapshot file's format.

        What etcd's Maintenance/Snapshot streams to `etcdctl snapshot save`: taken in one
        go on the event loop, so it is one consistent revision.
        """
        return b"".join(snapshot_lines(self._rv, self._records()))

    def close_durable(self) -> None:
        """Flush the log to disk and close it (at shutdown)."""
        if self.durable is not None:
            self.durable.close()
            self.durable = None

    # -- introspection -------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        """The last committed resourceVersion."""
        return self._rv

    def rtype(self, plural: str) -> ResourceType:
        """The served type for `plural`; 404 NotFound when the simulator does not serve it."""
        try:
            return self.types[plural]
        except KeyError:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({plural})"
            ) from None

    def count(self, plural: str, namespace: str | None = None) -> int:
        """How many objects of a type exist (in a namespace)."""
        buckets = self._data[self.rtype(plural).key]
        if namespace is not None:
            return len(buckets.get(namespace, {}))
        return sum(len(b) for b in buckets.values())

    # -- reads ---------------------------------------------------------------------

    def entry(self, plural: str, namespace: str | None, name: str) -> Entry:
        """The committed version; ApiError 404 when missing."""
        rtype = self.rtype(plural)
        ns = (namespace or "") if rtype.namespaced else ""
        entry = self._data[plural].get(ns, {}).get(name)
        if entry is None:
            raise not_found(rtype.plural, name, rtype.group)
        return entry

    def find(self, plural: str, namespace: str, name: str) -> Entry | None:
        """The committed version at exactly that key ("" namespace for cluster scope), if any."""
        return self._data[plural].get(namespace, {}).get(name)

    def names(self, plural: str, namespace: str) -> dict[str, Entry]:
        """The entries of one namespace ("" for cluster scope) by name; do not mutate."""
        return self._data[plural].get(namespace, {})

    def namespaces_of(self, plural: str) -> list[str]:
        """The namespaces holding objects of `plural` ("" for cluster scope)."""
        return list(self._data.get(plural, {}))

    def where_uid(self, uid: str) -> tuple[str, str, str] | None:
        """(plural, namespace, name) of the object with that uid, if it exists."""
        return self._uids.get(uid)

    def uids(self) -> Iterator[tuple[str, tuple[str, str, str]]]:
        """Every (uid, (plural, namespace, name)), in uid order."""
        return iter(sorted(self._uids.items()))

    def _candidates(
        self, plural: str, namespace: str | None, field_selector: str | None
    ) -> list[Entry]:
        rtype = self.rtype(plural)
        buckets = self._data[plural]
        if plural == "pods" and field_selector:
            node = _exact_node(field_selector)
            if node is not None:
                entries = self._pods_by_node.get(node, {})
                if namespace:
                    return [e for (ns, _), e in entries.items() if ns == namespace]
                return list(entries.values())
        if rtype.namespaced and namespace:
            return list(buckets.get(namespace, {}).values())
        out: list[Entry] = []
        for bucket in buckets.values():
            out.extend(bucket.values())
        return out

    def _select(
        self,
        plural: str,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
    ) -> list[Entry]:
        match = make_filter(self.rtype(plural), label_selector, field_selector)
        entries = self._candidates(plural, namespace, field_selector)
        if match is not None:
            entries = [e for e in entries if match(e.obj)]
        entries.sort(key=_entry_key)
        return entries

    def list_raw(
        self,
        plural: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> bytes:
        """The `<Kind>List` as JSON bytes, paginated by `limit` and `continue_token`."""
        rtype = self.rtype(plural)
        if continue_token:
            snap_id, start, rv, entries = self.snapshots.resume(continue_token)
        else:
            entries = self._select(plural, namespace, label_selector, field_selector)
            start, rv, snap_id = 0, self._rv, ""
        end, cont = self.snapshots.page(snap_id, entries, start, limit, rv)
        meta: JSON = {"resourceVersion": str(rv)}
        if cont:
            meta["continue"] = cont
            meta["remainingItemCount"] = len(entries) - end
        head = (
            b'{"kind":"'
            + rtype.kind.encode()
            + b'List","apiVersion":"'
            + rtype.api_version.encode()
            + b'","metadata":'
            + dumps(meta)
            + b',"items":['
        )
        return head + b",".join(e.raw for e in entries[start:end]) + b"]}"

    def iter_objects(self, plural: str, namespace: str | None = None) -> Iterator[JSON]:
        """Every object of a type, as read-only shared dicts (do not mutate them)."""
        for entry in self._candidates(plural, namespace, None):
            yield entry.obj

    def expire_snapshots(self) -> None:
        """Forget the paginated lists older than the history window."""
        self.snapshots.expire()

    # -- watch ---------------------------------------------------------------------

    def watch(
        self,
        plural: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
    ) -> Watch:
        """Start a watch; the queue is pre-filled as upstream starts it.

        RV unset or "0": a synthetic ADDED per existing object; RV=X: the changes after X,
        or 410 Expired (raised) when X is older than the history window.
        """
        rtype = self.rtype(plural)
        match = make_filter(rtype, label_selector, field_selector)
        ns = namespace if rtype.namespaced and namespace else None
        w = Watch(self._forget_watch, plural, ns, match, self._watch_queue_max)
        if resource_version in (None, "", "0"):
            for entry in self._select(plural, ns, label_selector, field_selector):
                w.queue.put_nowait(b'{"type":"ADDED","object":' + entry.raw + b"}\n")
            w.last_rv = self._rv
        else:
            try:
                since = int(str(resource_version))
            except ValueError:
                raise ApiError(
                    400, "BadRequest", f'invalid resource version "{resource_version}"'
                ) from None
            hist = self._history_of(plural)
            self._trim(hist)
            if since < hist.compacted_rv:
                raise expired(f"too old resource version: {since} ({hist.compacted_rv + 1})")
            for change in hist.after(since):
                w.offer(change)
            w.last_rv = max(since, w.last_rv)
        self._watchers.setdefault(plural, set()).add(w)
        return w

    def _forget_watch(self, w: Watch) -> None:
        self._watchers.get(w.plural, set()).discard(w)

    def _history_of(self, plural: str) -> History:
        hist = self._history.get(plural)
        if hist is None:
            hist = self._history[plural] = History()
            hist.compacted_rv = self._restored_rv
        return hist

    def _trim(self, hist: History) -> None:
        hist.trim(self.history_window, self._history_max, self._history_max_bytes)

    # -- subscriptions -------------------------------------------------------------

    def subscribe(self, plural: str, callback: Callable[[WatchEvent], None]) -> Callable[[], None]:
        """Call `callback` synchronously after every committed change; returns an unsubscribe.

        Callbacks run in commit order, never re-entrantly: a write made by a callback is
        delivered after the current event has reached every subscriber. All subscribers
        of one event share one copy of the object; do not mutate it.
        """
        self.rtype(plural)
        subs = self._subs.setdefault(plural, [])
        subs.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                subs.remove(callback)

        return unsubscribe

    def observe_commits(self, observer: CommitObserver) -> None:
        """Call `observer` inside every commit, before watchers hear of it; it must not write.

        For indexes kept beside the storage (the garbage collector's owner graph): it sees
        every change of every type with the shared objects (do not mutate them).
        """
        self._observers.append(observer)

    # -- commit --------------------------------------------------------------------

    def commit(
        self, plural: str, event_type: str, ns: str, name: str, obj: JSON, old: Entry | None
    ) -> Entry:
        """Store `obj` (ADDED or MODIFIED) or remove it (DELETED) as the next resourceVersion.

        `obj` is owned by the storage from here on and never mutated again.
        """
        self._rv += 1
        rv = self._rv
        meta = obj["metadata"]
        meta["resourceVersion"] = str(rv)
        entry = Entry(obj, dumps(obj), rv)
        bucket = self._data[plural].setdefault(ns, {})
        uid = meta.get("uid", "")
        deleted = event_type == "DELETED"
        if deleted:
            bucket.pop(name, None)
            if not bucket and plural != "namespaces":
                self._data[plural].pop(ns, None)
            self._uids.pop(uid, None)
        else:
            bucket[name] = entry
            self._uids[uid] = (plural, ns, name)
        if plural == "pods":
            self._index_pod(ns, name, None if deleted else entry, old)
        durable = self.durable
        if durable is not None:
            durable.append(rv, _OPS[event_type], plural, ns, name, entry.raw)
            if durable.wants_compaction():
                durable.compact(rv, self._records())
        old_obj = old.obj if old is not None else None
        for observer in self._observers:
            observer(plural, ns, name, None if deleted else entry.obj, old_obj)
        change = Change(rv, plural, event_type, ns, entry, old, time.monotonic())
        hist = self._history_of(plural)
        hist.append(change)
        if (
            len(hist.changes) > self._history_max
            or hist.size > self._history_max_bytes
            or (rv & 0xFF) == 0
        ):
            self._trim(hist)
        for w in list(self._watchers.get(plural, ())):
            w.offer(change)
        change.settle()
        if self._subs.get(plural):
            self._pending.append((plural, change))
            self._dispatch()
        return entry

    def _dispatch(self) -> None:
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._pending:
                plural, change = self._pending.popleft()
                subs = list(self._subs.get(plural, ()))
                if not subs:
                    continue
                event = WatchEvent(change.type, json.loads(change.raw), change.rv)
                for cb in subs:
                    cb(event)
        finally:
            self._dispatching = False

    def _index_pod(self, ns: str, name: str, entry: Entry | None, old: Entry | None) -> None:
        key = (ns, name)
        if old is not None:
            old_node = (old.obj.get("spec") or {}).get("nodeName") or ""
            bucket = self._pods_by_node.get(old_node)
            if bucket is not None:
                bucket.pop(key, None)
                if not bucket:
                    del self._pods_by_node[old_node]
        if entry is not None:
            node = (entry.obj.get("spec") or {}).get("nodeName") or ""
            self._pods_by_node.setdefault(node, {})[key] = entry


_OPS = {"ADDED": b"A", "MODIFIED": b"M", "DELETED": b"D"}


def _entry_key(entry: Entry) -> tuple[str, str]:
    meta = entry.obj["metadata"]
    return (meta.get("namespace", ""), meta["name"])


def _exact_node(field_selector: str) -> str | None:
    for part in field_selector.split(","):
        if "!=" in part:
            continue
        key, sep, value = part.partition("==") if "==" in part else part.partition("=")
        if sep and key.strip() == "spec.nodeName":
            return value.strip()
    return None
