"""The simulator's in-memory object store.

Synchronous, single event loop, JSON dicts in and deep copies out. See INTERFACE.md.

Committed objects are never mutated: every write builds a new dict and serialises it
once, so lists, gets and watch events reuse the same bytes, and copies handed to callers
are decoded from them. Pods are indexed by namespace and `spec.nodeName`.

Not modelled: resourceVersionMatch, server-side apply, dry runs, field managers,
admission webhooks and quotas.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import itertools
import json
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pytest_k8sdr.sim.apierrors import (
    ApiError,
    already_exists,
    conflict,
    expired,
    invalid,
    not_found,
)

JSON = dict[str, Any]


@dataclass(frozen=True)
class ResourceType:
    """One served resource: `pods`, `deployments.apps`, ..."""

    group: str  # "" for core
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()  # "status", "scale", "eviction", "binding"

    @property
    def api_version(self) -> str:
        """`v1` for core, `group/version` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version


@dataclass(frozen=True)
class WatchEvent:
    """One change: ADDED, MODIFIED or DELETED, with the object after it (deep copy)."""

    type: str
    object: JSON
    resource_version: int


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def now_rfc3339(offset: float = 0.0) -> str:
    """UTC time as Kubernetes writes it: `2024-01-02T03:04:05Z`."""
    t = datetime.now(UTC) + timedelta(seconds=offset)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Entry:
    """One committed object version: the dict (never mutated) and its JSON bytes."""

    __slots__ = ("obj", "raw", "rv")

    def __init__(self, obj: JSON, raw: bytes, rv: int) -> None:
        self.obj = obj
        self.raw = raw
        self.rv = rv


class _Change:
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
        entry: _Entry,
        old: _Entry | None,
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


class _History:
    """The recent changes of one resource type, oldest first."""

    __slots__ = ("changes", "compacted_rv", "size")

    def __init__(self) -> None:
        self.changes: deque[_Change] = deque()
        self.compacted_rv = 0  # changes up to here are forgotten
        self.size = 0  # bytes held


class Watch:
    """A server-side watch: events arrive as ready-to-send JSON lines on `queue`.

    A `None` item means the store closed the watch (it fell too far behind).
    """

    def __init__(
        self,
        store: Store,
        plural: str,
        namespace: str | None,
        match: Callable[[JSON], bool] | None,
        max_queue: int,
    ) -> None:
        self._store = store
        self.plural = plural
        self.namespace = namespace
        self.match = match
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.last_rv = 0
        self._max_queue = max_queue
        self.closed = False

    def _offer(self, change: _Change) -> None:
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
            self._store._watchers.get(self.plural, set()).discard(self)


_GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_KINDS_WITHOUT_GENERATION = frozenset(
    {"events", "endpoints", "configmaps", "secrets", "serviceaccounts", "leases", "endpointslices"}
)
# Types whose create resets status (pkg/registry/*/strategy.go PrepareForCreate).
_RESET_STATUS_ON_CREATE = frozenset(
    {"deployments", "replicasets", "statefulsets", "daemonsets", "poddisruptionbudgets", "services"}
)
# Status fields without omitempty upstream, so a fresh object shows them as 0
# (k8s.io/api apps/v1 and policy/v1 types.go).
_EMPTY_STATUS: dict[str, JSON] = {
    "services": {"loadBalancer": {}},
    "replicasets": {"replicas": 0},
    "statefulsets": {"replicas": 0, "availableReplicas": 0},
    "daemonsets": {
        "currentNumberScheduled": 0,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": 0,
        "numberReady": 0,
    },
    "poddisruptionbudgets": {
        "disruptionsAllowed": 0,
        "currentHealthy": 0,
        "desiredHealthy": 0,
        "expectedPods": 0,
    },
}
_BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class Store:
    """Objects by (plural, namespace, name) with one global resourceVersion counter.

    Watch history is kept per resource type for `history_window` seconds, at most
    `history_max` changes and `history_max_bytes` of JSON; older resourceVersions are 410.
    """

    def __init__(
        self,
        *,
        history_window: float = 300.0,
        history_max: int = 500_000,
        history_max_bytes: int = 64 * 1024 * 1024,
        watch_queue_max: int = 100_000,
        bootstrap: bool = True,
    ) -> None:
        from pytest_k8sdr.sim import resources

        self._types = resources.BY_PLURAL
        self._rv = 1
        self._data: dict[str, dict[str, dict[str, _Entry]]] = {p: {} for p in self._types}
        self._pods_by_node: dict[str, dict[tuple[str, str], _Entry]] = {}
        self._uids: dict[str, tuple[str, str, str]] = {}
        self._dependents: dict[str, set[tuple[str, str, str]]] = {}
        # Ownership GC (kube-controller-manager's "garbagecollector"): switchable at runtime.
        self._ownership_gc = True
        # One history per resource type, as upstream keeps one watch cache per resource.
        self._history: dict[str, _History] = {}
        self.history_window = history_window
        self._history_max = history_max
        self._history_max_bytes = history_max_bytes
        self._watch_queue_max = watch_queue_max
        self._watchers: dict[str, set[Watch]] = {}
        self._subs: dict[str, list[Callable[[WatchEvent], None]]] = {}
        self._pending: deque[tuple[str, _Change]] = deque()
        self._dispatching = False
        self._admission: dict[str, list[Callable[[str, JSON, JSON | None], None]]] = {}
        self._subresources: dict[tuple[str, str], Callable[[str | None, str, JSON], JSON]] = {}
        self._snapshots: dict[str, tuple[float, int, list[_Entry]]] = {}
        self._snapshot_ids = itertools.count(1)
        self._cluster_ips: set[str] = set()
        self._node_ports: set[int] = set()
        self._rng = random.Random()
        if bootstrap:
            for ns in _BOOTSTRAP_NAMESPACES:
                self.create("namespaces", None, {"metadata": {"name": ns}})
            self.create(
                "services",
                "default",
                {
                    "metadata": {"name": "kubernetes", "labels": {"component": "apiserver"}},
                    "spec": {
                        "clusterIP": "10.96.0.1",
                        "ports": [{"name": "https", "port": 443, "targetPort": 6443}],
                    },
                },
            )

    # -- introspection -------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        """The last committed resourceVersion."""
        return self._rv

    def rtype(self, plural: str) -> ResourceType:
        """The served type for `plural`; 404 NotFound when the simulator does not serve it."""
        try:
            return self._types[plural]
        except KeyError:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({plural})"
            ) from None

    def count(self, plural: str, namespace: str | None = None) -> int:
        """How many objects of a type exist (in a namespace)."""
        buckets = self._data[self.rtype(plural).plural]
        if namespace is not None:
            return len(buckets.get(namespace, {}))
        return sum(len(b) for b in buckets.values())

    # -- reads ---------------------------------------------------------------------

    def _entry(self, plural: str, namespace: str | None, name: str) -> _Entry:
        rtype = self.rtype(plural)
        ns = (namespace or "") if rtype.namespaced else ""
        entry = self._data[plural].get(ns, {}).get(name)
        if entry is None:
            raise not_found(plural, name, rtype.group)
        return entry

    def get(self, plural: str, namespace: str | None, name: str) -> JSON:
        """The object; ApiError 404 when missing."""
        return json.loads(self._entry(plural, namespace, name).raw)  # type: ignore[no-any-return]

    def get_raw(self, plural: str, namespace: str | None, name: str) -> bytes:
        """The object's JSON bytes (shared, immutable)."""
        return self._entry(plural, namespace, name).raw

    def _candidates(
        self, plural: str, namespace: str | None, field_selector: str | None
    ) -> list[_Entry]:
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
        out: list[_Entry] = []
        for bucket in buckets.values():
            out.extend(bucket.values())
        return out

    def _select(
        self,
        plural: str,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
    ) -> list[_Entry]:
        from pytest_k8sdr.sim.selectors import make_filter

        match = make_filter(plural, label_selector, field_selector)
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
        """The `<Kind>List` as JSON bytes (see `list`)."""
        rtype = self.rtype(plural)
        if continue_token:
            snap_id, start, rv = _decode_continue(continue_token)
            snap = self._snapshots.get(snap_id)
            if snap is None:
                raise expired(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter, or use "
                    "the continue token in this response to retrieve the remainder of the "
                    "results. Continuing with the provided token results in an inconsistent "
                    "list - objects that were created, modified, or deleted between the time "
                    "the first chunk was returned and now may show up in the list."
                )
            entries = snap[2]
        else:
            entries = self._select(plural, namespace, label_selector, field_selector)
            start, rv, snap_id = 0, self._rv, ""
        cont = ""
        end = len(entries)
        if limit and limit > 0 and start + limit < len(entries):
            end = start + limit
            if not snap_id:
                self._expire_snapshots()
                snap_id = str(next(self._snapshot_ids))
                self._snapshots[snap_id] = (time.monotonic(), rv, entries)
            cont = _encode_continue(snap_id, end, rv)
        elif snap_id:
            self._snapshots.pop(snap_id, None)
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
            + _dumps(meta)
            + b',"items":['
        )
        return head + b",".join(e.raw for e in entries[start:end]) + b"]}"

    def list(
        self,
        plural: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> JSON:
        """A `<Kind>List` with `metadata.resourceVersion` (and `continue` when paginated)."""
        raw = self.list_raw(
            plural,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            limit=limit,
            continue_token=continue_token,
        )
        return json.loads(raw)  # type: ignore[no-any-return]

    def iter_objects(self, plural: str, namespace: str | None = None) -> Iterator[JSON]:
        """Every object of a type, as read-only shared dicts (do not mutate them)."""
        for entry in self._candidates(plural, namespace, None):
            yield entry.obj

    def _expire_snapshots(self) -> None:
        cutoff = time.monotonic() - self.history_window
        for key in [k for k, v in self._snapshots.items() if v[0] < cutoff]:
            del self._snapshots[key]

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
        """Start a watch; the queue is pre-filled as upstream starts it (see module doc).

        RV unset or "0": a synthetic ADDED per existing object; RV=X: the changes after X,
        or 410 Expired (raised) when X is older than the history window.
        """
        from pytest_k8sdr.sim.selectors import make_filter

        rtype = self.rtype(plural)
        match = make_filter(plural, label_selector, field_selector)
        ns = namespace if rtype.namespaced and namespace else None
        w = Watch(self, plural, ns, match, self._watch_queue_max)
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
            self._trim_history(hist)
            if since < hist.compacted_rv:
                raise expired(f"too old resource version: {since} ({hist.compacted_rv + 1})")
            for change in self._history_after(hist.changes, since):
                w._offer(change)
            w.last_rv = max(since, w.last_rv)
        self._watchers.setdefault(plural, set()).add(w)
        return w

    def _history_of(self, plural: str) -> _History:
        hist = self._history.get(plural)
        if hist is None:
            hist = self._history[plural] = _History()
        return hist

    @staticmethod
    def _history_after(hist: deque[_Change], rv: int) -> Iterator[_Change]:
        if not hist or hist[-1].rv <= rv:
            return
        # Binary search: history is in rv order.
        lo, hi = 0, len(hist)
        while lo < hi:
            mid = (lo + hi) // 2
            if hist[mid].rv <= rv:
                lo = mid + 1
            else:
                hi = mid
        for i in range(lo, len(hist)):
            yield hist[i]

    def _trim_history(self, hist: _History) -> None:
        cutoff = time.monotonic() - self.history_window
        changes = hist.changes
        while changes and (
            changes[0].at < cutoff
            or len(changes) > self._history_max
            or hist.size > self._history_max_bytes
        ):
            gone = changes.popleft()
            hist.size -= len(gone.raw) + len(gone.old_raw or b"")
            hist.compacted_rv = gone.rv

    # -- subscriptions and hooks ---------------------------------------------------

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

    def add_admission(
        self, plural: str, hook: Callable[[str, JSON, JSON | None], None]
    ) -> Callable[[], None]:
        """Mutating admission: hook("CREATE"|"UPDATE", new_obj, old_obj) may edit new_obj.

        Returns a function that removes the hook (an admission plugin switched off).
        """
        hooks = self._admission.setdefault(plural, [])
        hooks.append(hook)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                hooks.remove(hook)

        return remove

    def register_subresource(
        self, plural: str, subresource: str, handler: Callable[[str | None, str, JSON], JSON]
    ) -> None:
        """POST handler for a subresource, e.g. pods/eviction: handler(namespace, name, body)."""
        self._subresources[(plural, subresource)] = handler

    def subresource_handler(
        self, plural: str, subresource: str
    ) -> Callable[[str | None, str, JSON], JSON] | None:
        """The POST handler registered for `plural/subresource`, if any."""
        return self._subresources.get((plural, subresource))

    # -- commit --------------------------------------------------------------------

    def _commit(
        self, plural: str, event_type: str, ns: str, name: str, obj: JSON, old: _Entry | None
    ) -> _Entry:
        self._rv += 1
        rv = self._rv
        meta = obj["metadata"]
        meta["resourceVersion"] = str(rv)
        entry = _Entry(obj, _dumps(obj), rv)
        bucket = self._data[plural].setdefault(ns, {})
        uid = meta.get("uid", "")
        if event_type == "DELETED":
            bucket.pop(name, None)
            if not bucket and plural != "namespaces":
                self._data[plural].pop(ns, None)
            self._uids.pop(uid, None)
        else:
            bucket[name] = entry
            self._uids[uid] = (plural, ns, name)
        if plural == "pods":
            self._index_pod(ns, name, entry if event_type != "DELETED" else None, old)
        self._index_owners(plural, ns, name, entry.obj if event_type != "DELETED" else None, old)
        change = _Change(rv, plural, event_type, ns, entry, old, time.monotonic())
        hist = self._history_of(plural)
        hist.changes.append(change)
        hist.size += len(change.raw) + len(change.old_raw or b"")
        if (
            len(hist.changes) > self._history_max
            or hist.size > self._history_max_bytes
            or (rv & 0xFF) == 0
        ):
            self._trim_history(hist)
        for w in list(self._watchers.get(plural, ())):
            w._offer(change)
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

    def _index_pod(self, ns: str, name: str, entry: _Entry | None, old: _Entry | None) -> None:
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

    def _index_owners(
        self, plural: str, ns: str, name: str, obj: JSON | None, old: _Entry | None
    ) -> None:
        key = (plural, ns, name)
        if old is not None:
            for ref in old.obj["metadata"].get("ownerReferences") or ():
                deps = self._dependents.get(ref.get("uid", ""))
                if deps is not None:
                    deps.discard(key)
                    if not deps:
                        del self._dependents[ref.get("uid", "")]
        if obj is not None:
            for ref in obj["metadata"].get("ownerReferences") or ():
                self._dependents.setdefault(ref.get("uid", ""), set()).add(key)

    # -- writes --------------------------------------------------------------------

    def _namespace_of(self, rtype: ResourceType, namespace: str | None, obj: JSON) -> str:
        if not rtype.namespaced:
            return ""
        body_ns = (obj.get("metadata") or {}).get("namespace")
        ns = namespace or body_ns or ""
        if body_ns and namespace and body_ns != namespace:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the "
                "request",
            )
        if not ns:
            raise ApiError(400, "BadRequest", "an empty namespace may not be set during creation")
        return ns

    def create(self, plural: str, namespace: str | None, obj: JSON) -> JSON:
        """Create (admission, defaulting, validation, generateName); 409 AlreadyExists."""
        return json.loads(self._create(plural, namespace, _copy(obj)).raw)  # type: ignore[no-any-return]

    def _create(self, plural: str, namespace: str | None, obj: JSON) -> _Entry:
        from pytest_k8sdr.sim.defaults import apply_defaults, validate

        rtype = self.rtype(plural)
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        ns = self._namespace_of(rtype, namespace, obj)
        if rtype.namespaced:
            ns_entry = self._data["namespaces"].get("", {}).get(ns)
            if ns_entry is None:
                raise not_found("namespaces", ns)
            if ns_entry.obj["metadata"].get("deletionTimestamp"):
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{plural} "{(obj.get("metadata") or {}).get("name", "")}" is forbidden: '
                    f"unable to create new content in namespace {ns} because it is being "
                    "terminated",
                    details={
                        "name": (obj.get("metadata") or {}).get("name", ""),
                        "kind": plural,
                        "causes": [
                            {
                                "type": "NamespaceTerminating",
                                "message": f"namespace {ns} is being terminated",
                                "field": "metadata.namespace",
                            }
                        ],
                    },
                )
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
        obj["metadata"] = meta
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(plural, ns, str(meta["generateName"]))
        name = str(meta.get("name") or "")
        obj["kind"] = rtype.kind
        obj["apiVersion"] = rtype.api_version
        if rtype.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if plural not in _KINDS_WITHOUT_GENERATION:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if plural in _RESET_STATUS_ON_CREATE:
            obj["status"] = copy.deepcopy(_EMPTY_STATUS.get(plural, {}))
        elif plural == "pods":
            obj["status"] = {"phase": "Pending", "qosClass": _qos_class(obj)}
        elif plural == "namespaces":
            obj["status"] = {"phase": "Active"}
        apply_defaults(rtype, obj)
        for hook in self._admission.get(plural, ()):
            hook("CREATE", obj, None)
        validate(rtype, obj, None)
        if name in self._data[plural].get(ns, {}):
            raise already_exists(plural, name, rtype.group)
        if plural == "services":
            self._allocate_service(obj, None)
        entry = self._commit(plural, "ADDED", ns, name, obj, None)
        refs = meta.get("ownerReferences") or []
        if refs and not any(self._owner_exists(r) for r in refs):
            self._collect_dangling(plural, ns, name, meta["uid"])
        return entry

    def _generate_name(self, plural: str, ns: str, prefix: str) -> str:
        bucket = self._data[plural].get(ns, {})
        for _ in range(100):
            name = prefix + "".join(self._rng.choice(_GENERATE_CHARS) for _ in range(5))
            if name not in bucket:
                return name
        raise ApiError(500, "AlreadyExists", f"could not generate a unique name from {prefix!r}")

    def update(
        self,
        plural: str,
        namespace: str | None,
        name: str,
        obj: JSON,
        *,
        subresource: str | None = None,
    ) -> JSON:
        """Replace; stale metadata.resourceVersion is 409 Conflict; `status` updates only status."""
        entry = self._update(plural, namespace, name, _copy(obj), subresource=subresource)
        return json.loads(entry.raw)  # type: ignore[no-any-return]

    def _update(
        self,
        plural: str,
        namespace: str | None,
        name: str,
        obj: JSON,
        *,
        subresource: str | None = None,
        check_rv: bool = True,
    ) -> _Entry:
        rtype = self.rtype(plural)
        old = self._entry(plural, namespace, name)
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
            obj["metadata"] = meta
        body_name = meta.get("name")
        if body_name and body_name != name:
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({body_name}) does not match the name on the URL ({name})",
            )
        if check_rv:
            want = meta.get("resourceVersion")
            if want and str(want) != old.obj["metadata"]["resourceVersion"]:
                raise conflict(
                    plural,
                    name,
                    "the object has been modified; please apply your changes to the latest "
                    "version and try again",
                    rtype.group,
                )
        return self._write(rtype, old, obj, subresource)

    def _write(
        self, rtype: ResourceType, old: _Entry, obj: JSON, subresource: str | None
    ) -> _Entry:
        from pytest_k8sdr.sim.defaults import apply_defaults, validate

        plural = rtype.plural
        old_obj = old.obj
        old_meta = old_obj["metadata"]
        if subresource == "status":
            # Committed objects are never mutated, so the new version may share everything
            # but the metadata (resourceVersion changes) and the status it replaces.
            new = {**old_obj, "metadata": dict(old_meta), "status": obj.get("status", {})}
            meta = new["metadata"]
        else:
            new = obj
            new["kind"] = rtype.kind
            new["apiVersion"] = rtype.api_version
            meta = new.setdefault("metadata", {})
            for key in (
                "uid",
                "creationTimestamp",
                "name",
                "namespace",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ):
                if key in old_meta:
                    meta[key] = old_meta[key]
                else:
                    meta.pop(key, None)
            if "status" in rtype.subresources or "status" in old_obj:
                if "status" in old_obj:
                    new["status"] = _copy(old_obj["status"])
                else:
                    new.pop("status", None)
            apply_defaults(rtype, new)
            for hook in self._admission.get(plural, ()):
                hook("UPDATE", new, old_obj)
            validate(rtype, new, old_obj)
            if plural == "services":
                self._allocate_service(new, old_obj)
            if "generation" in old_meta and _spec_of(new) != _spec_of(old_obj):
                meta["generation"] = int(old_meta["generation"]) + 1
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if new == old_obj:
            return old  # a no-op write commits nothing, as upstream
        ns = old_meta.get("namespace", "") if rtype.namespaced else ""
        name = old_meta["name"]
        # An object being deleted goes once its finalizers are gone and its grace is over
        # (apiserver/pkg/registry/generic/registry/store.go ShouldDeleteDuringUpdate).
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and meta.get("deletionGracePeriodSeconds", 0) == 0
        ):
            return self._remove(plural, ns, name, new, old)
        return self._commit(plural, "MODIFIED", ns, name, new, old)

    def patch(
        self,
        plural: str,
        namespace: str | None,
        name: str,
        patch: Any,
        content_type: str,
        *,
        subresource: str | None = None,
    ) -> JSON:
        """Patch in json-patch, merge-patch or strategic-merge-patch."""
        entry = self._patch(
            plural, namespace, name, _copy(patch), content_type, subresource=subresource
        )
        return json.loads(entry.raw)  # type: ignore[no-any-return]

    def _patch(
        self,
        plural: str,
        namespace: str | None,
        name: str,
        patch: Any,
        content_type: str,
        *,
        subresource: str | None = None,
    ) -> _Entry:
        from pytest_k8sdr.sim.patch import apply_patch

        rtype = self.rtype(plural)
        old = self._entry(plural, namespace, name)
        base = json.loads(old.raw)
        new = apply_patch(base, patch, content_type)
        want = (new.get("metadata") or {}).get("resourceVersion")
        if want and str(want) != old.obj["metadata"]["resourceVersion"]:
            raise conflict(
                plural,
                name,
                "the object has been modified; please apply your changes to the latest version "
                "and try again",
                rtype.group,
            )
        return self._write(rtype, old, new, subresource)

    def bind(self, namespace: str, name: str, binding: JSON) -> JSON:
        """pods/binding: set spec.nodeName and PodScheduled=True; 409 if already bound."""
        target = (binding.get("target") or {}).get("name")
        if not target:
            raise ApiError(
                422,
                "Invalid",
                "binding target name is required",
                details={
                    "name": name,
                    "kind": "Binding",
                    "causes": [
                        {
                            "type": "FieldValueRequired",
                            "message": "Required value",
                            "field": "target.name",
                        }
                    ],
                },
            )
        old = self._entry("pods", namespace, name)
        bmeta = binding.get("metadata") or {}
        if bmeta.get("uid") and bmeta["uid"] != old.obj["metadata"]["uid"]:
            raise conflict("pods", name, "Precondition failed: UID in precondition does not match")
        # pkg/registry/core/pod/storage/storage.go assignPod: already bound or deleting is 409.
        if (old.obj.get("spec") or {}).get("nodeName"):
            node = old.obj["spec"]["nodeName"]
            raise conflict("pods", name, f'pod {name} is already assigned to node "{node}"')
        if old.obj["metadata"].get("deletionTimestamp"):
            raise conflict(
                "pods", name, f"pod {name} is being deleted, cannot be assigned to a host"
            )
        new = json.loads(old.raw)
        new["spec"]["nodeName"] = target
        status = new.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": now_rfc3339(),
            }
        )
        status["conditions"] = conditions
        ns = old.obj["metadata"]["namespace"]
        entry = self._commit("pods", "MODIFIED", ns, name, new, old)
        return json.loads(entry.raw)  # type: ignore[no-any-return]

    def get_scale(self, plural: str, namespace: str | None, name: str) -> JSON:
        """The autoscaling/v1 Scale of a deployment, replicaset or statefulset."""
        entry = self._entry(plural, namespace, name)
        return _scale_of(entry.obj)

    def update_scale(
        self,
        plural: str,
        namespace: str | None,
        name: str,
        scale: JSON,
        *,
        patch_type: str | None = None,
    ) -> JSON:
        """Set spec.replicas through the scale subresource (a Scale body or a patch of one)."""
        from pytest_k8sdr.sim.patch import apply_patch

        rtype = self.rtype(plural)
        if "scale" not in rtype.subresources:
            raise ApiError(
                404,
                "NotFound",
                f"the server could not find the requested resource ({plural}/scale)",
            )
        old = self._entry(plural, namespace, name)
        current = _scale_of(old.obj)
        if patch_type is not None:
            scale = apply_patch(current, scale, patch_type)
        want = (scale.get("metadata") or {}).get("resourceVersion")
        if want and str(want) != old.obj["metadata"]["resourceVersion"]:
            raise conflict(
                plural,
                name,
                "the object has been modified; please apply your changes "
                "to the latest version and try again",
                rtype.group,
            )
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(
                422,
                "Invalid",
                f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: '
                f"{replicas}: must be greater than or equal to 0",
                details={
                    "name": name,
                    "group": "autoscaling",
                    "kind": "Scale",
                    "causes": [
                        {
                            "type": "FieldValueInvalid",
                            "message": "must be greater than or equal to 0",
                            "field": "spec.replicas",
                        }
                    ],
                },
            )
        new = json.loads(old.raw)
        new["spec"]["replicas"] = replicas
        entry = self._write(rtype, old, new, None)
        return _scale_of(entry.obj)

    # -- delete --------------------------------------------------------------------

    def delete(
        self,
        plural: str,
        namespace: str | None,
        name: str,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        preconditions: JSON | None = None,
    ) -> JSON:
        """Delete with upstream's graceful-deletion and finalizer rules; returns the object."""
        entry, _ = self._delete(
            plural,
            namespace,
            name,
            grace_period_seconds=grace_period_seconds,
            propagation_policy=propagation_policy,
            preconditions=preconditions,
        )
        return json.loads(entry.raw)  # type: ignore[no-any-return]

    def _delete(
        self,
        plural: str,
        namespace: str | None,
        name: str,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        preconditions: JSON | None = None,
    ) -> tuple[_Entry, bool]:
        """Returns the entry and whether the object is gone."""
        rtype = self.rtype(plural)
        old = self._entry(plural, namespace, name)
        old_meta = old.obj["metadata"]
        if preconditions:
            if preconditions.get("uid") and preconditions["uid"] != old_meta.get("uid"):
                raise conflict(
                    plural,
                    name,
                    f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                    f"UID in object meta: {old_meta.get('uid')}",
                    rtype.group,
                )
            want = preconditions.get("resourceVersion")
            if want and str(want) != old_meta.get("resourceVersion"):
                raise conflict(
                    plural,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: {want}, "
                    f"ResourceVersion in object meta: {old_meta.get('resourceVersion')}",
                    rtype.group,
                )
        if propagation_policy not in (None, "", "Orphan", "Background", "Foreground"):
            raise ApiError(
                422,
                "Invalid",
                f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: '
                f'Unsupported value: "{propagation_policy}": supported values: "Foreground", '
                '"Background", "Orphan", "nil"',
                details={
                    "kind": "DeleteOptions",
                    "causes": [
                        {
                            "type": "FieldValueNotSupported",
                            "message": f'Unsupported value: "{propagation_policy}"',
                            "field": "propagationPolicy",
                        }
                    ],
                },
            )
        ns = old_meta.get("namespace", "") if rtype.namespaced else ""
        if plural == "namespaces":
            # pkg/registry/core/namespace/storage/storage.go: mark Terminating; the namespace
            # controller empties it and calls finalize_namespace.
            if old_meta.get("deletionTimestamp"):
                return old, False
            new = json.loads(old.raw)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["status"] = {"phase": "Terminating"}
            new.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            return self._commit(plural, "MODIFIED", ns, name, new, old), False
        if propagation_policy == "Orphan":
            self._orphan_dependents(old_meta.get("uid", ""))
        grace = 0
        if plural == "pods":
            grace = self._pod_grace(old.obj, grace_period_seconds)
        new = json.loads(old.raw)
        meta = new["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if (
            propagation_policy == "Foreground"
            and self._dependents.get(old_meta.get("uid", ""))
            and "foregroundDeletion" not in finalizers
        ):
            finalizers.append("foregroundDeletion")
            meta["finalizers"] = finalizers
        if old_meta.get("deletionTimestamp"):
            current = int(old_meta.get("deletionGracePeriodSeconds", 0))
            # A second delete may only shorten the grace period (rest/delete.go BeforeDelete).
            if grace >= current and not (
                propagation_policy == "Foreground" and finalizers != old_meta.get("finalizers")
            ):
                return old, False
            if grace < current:
                meta["deletionTimestamp"] = now_rfc3339(grace)
                meta["deletionGracePeriodSeconds"] = grace
        if grace > 0 or finalizers:
            if not old_meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = now_rfc3339(grace)
                meta["deletionGracePeriodSeconds"] = grace
                if "generation" in meta:
                    meta["generation"] = int(meta["generation"]) + 1
            if not finalizers and meta.get("deletionGracePeriodSeconds") == 0:
                return self._remove(plural, ns, name, new, old), True
            entry = self._commit(plural, "MODIFIED", ns, name, new, old)
            if "foregroundDeletion" in finalizers:
                self._collect_dependents(old_meta.get("uid", ""), force=True)
                self._maybe_finish_foreground(old_meta.get("uid", ""))
                try:
                    entry = self._entry(plural, ns or None, name)
                except ApiError:
                    return entry, True
            return entry, False
        return self._remove(plural, ns, name, new, old), True

    @staticmethod
    def _pod_grace(pod: JSON, requested: int | None) -> int:
        # pkg/registry/core/pod/strategy.go CheckGracefulDelete.
        spec = pod.get("spec") or {}
        phase = (pod.get("status") or {}).get("phase")
        if requested is None:
            grace = spec.get("terminationGracePeriodSeconds")
            grace = 30 if grace is None else int(grace)
        else:
            grace = int(requested)
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            grace = 0
        if grace < 0:
            grace = 1
        return grace

    def _remove(self, plural: str, ns: str, name: str, last: JSON, old: _Entry) -> _Entry:
        entry = self._commit(plural, "DELETED", ns, name, last, old)
        if plural == "services":
            self._release_service(last)
        uid = last["metadata"].get("uid", "")
        self._collect_dependents(uid)
        for ref in last["metadata"].get("ownerReferences") or ():
            self._maybe_finish_foreground(ref.get("uid", ""))
        return entry

    def finalize_namespace(self, name: str) -> None:
        """Remove a Terminating namespace (the namespace controller calls this once it is empty).

        Anything still in it is removed with it, without graceful deletion.
        """
        old = self._entry("namespaces", None, name)
        for plural, buckets in self._data.items():
            if plural == "namespaces" or not self._types[plural].namespaced:
                continue
            for obj_name, entry in list(buckets.get(name, {}).items()):
                self._remove(plural, name, obj_name, json.loads(entry.raw), entry)
        last = json.loads(old.raw)
        last.setdefault("spec", {})["finalizers"] = []
        self._remove("namespaces", "", name, last, old)

    # -- garbage collection (ownerReferences) --------------------------------------

    @property
    def ownership_gc(self) -> bool:
        """Whether dependents of deleted owners are collected (the "garbagecollector")."""
        return self._ownership_gc

    def set_ownership_gc(self, enabled: bool) -> None:
        """Switch ownership GC; switched on, it catches up as upstream's does on start.

        Off: dependents of deleted owners stay, objects created with absent owners stay and
        foreground deletions stay pending (their owners keep the foregroundDeletion
        finalizer), as with kube-controller-manager's `--controllers=-garbagecollector`.
        On: the garbage collector's first sync collects every dependent whose owners are all
        absent and finishes the foreground deletions whose dependents are gone
        (pkg/controller/garbagecollector/garbagecollector.go: the graph is built from a full
        list, then every node with absent owners is queued).
        """
        was, self._ownership_gc = self._ownership_gc, enabled
        if was or not enabled:
            return
        for uid in sorted(u for u in self._dependents if u not in self._uids):
            self._collect_dependents(uid)
        for uid, (plural, ns, name) in sorted(self._uids.items()):
            entry = self._data[plural].get(ns, {}).get(name)
            if entry is not None and "foregroundDeletion" in (
                entry.obj["metadata"].get("finalizers") or []
            ):
                self._collect_dependents(uid, force=True)
                self._maybe_finish_foreground(uid)

    def _owner_exists(self, ref: JSON) -> bool:
        return ref.get("uid", "") in self._uids

    def _collect_dependents(self, uid: str, *, force: bool = False) -> None:
        """Background GC: delete dependents whose owners are all gone (or `force`)."""
        if not self._ownership_gc:
            return
        for plural, ns, name in sorted(self._dependents.get(uid, ())):
            entry = self._data[plural].get(ns, {}).get(name)
            if entry is None:
                continue
            refs = entry.obj["metadata"].get("ownerReferences") or []
            if not force and any(self._owner_exists(r) for r in refs):
                continue
            if entry.obj["metadata"].get("deletionTimestamp") and plural != "pods":
                continue
            with contextlib.suppress(ApiError):
                self._delete(plural, ns or None, name, propagation_policy="Background")

    def _collect_dangling(self, plural: str, ns: str, name: str, uid: str) -> None:
        """Delete an object created with only absent owners, as the garbage collector would.

        (pkg/controller/garbagecollector: an owner that does not exist by uid is absent.)
        Deferred to the next loop iteration when a loop runs, so the create answers first.
        """

        def collect() -> None:
            if not self._ownership_gc:
                return
            entry = self._data[plural].get(ns, {}).get(name)
            if entry is None or entry.obj["metadata"].get("uid") != uid:
                return
            refs = entry.obj["metadata"].get("ownerReferences") or []
            if refs and not any(self._owner_exists(r) for r in refs):
                with contextlib.suppress(ApiError):
                    self._delete(plural, ns or None, name, propagation_policy="Background")

        try:
            asyncio.get_running_loop().call_soon(collect)
        except RuntimeError:
            collect()

    def _orphan_dependents(self, uid: str) -> None:
        for plural, ns, name in sorted(self._dependents.get(uid, ())):
            entry = self._data[plural].get(ns, {}).get(name)
            if entry is None:
                continue
            new = json.loads(entry.raw)
            refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            self._commit(plural, "MODIFIED", ns, name, new, entry)

    def _maybe_finish_foreground(self, owner_uid: str) -> None:
        if not self._ownership_gc:
            return
        where = self._uids.get(owner_uid)
        if where is None or self._dependents.get(owner_uid):
            return
        plural, ns, name = where
        entry = self._data[plural].get(ns, {}).get(name)
        if entry is None or "foregroundDeletion" not in (
            entry.obj["metadata"].get("finalizers") or []
        ):
            return
        new = json.loads(entry.raw)
        fins = [f for f in new["metadata"]["finalizers"] if f != "foregroundDeletion"]
        if fins:
            new["metadata"]["finalizers"] = fins
        else:
            new["metadata"].pop("finalizers", None)
        self._write(self._types[plural], entry, new, None)

    # -- services ------------------------------------------------------------------

    def _allocate_service(self, obj: JSON, old: JSON | None) -> None:
        """Give a Service its clusterIP and nodePorts; 422 when a requested one is taken.

        Nothing is reserved until every check passed; ports an update drops are released.
        """
        spec = obj.setdefault("spec", {})
        old_spec = (old or {}).get("spec") or {}
        name = obj["metadata"].get("name", "")
        if spec.get("clusterIP") in (None, "") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
        if spec.get("clusterIP") in (None, ""):
            # Addresses are strings only: nobody connects to a ClusterIP in the simulator.
            ip = ""
            while not ip or ip in self._cluster_ips:
                n = self._rng.randrange(10, 65000)
                ip = f"10.96.{n // 256}.{n % 256}"
            spec["clusterIP"] = ip
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        mine = {p.get("nodePort") for p in old_spec.get("ports") or [] if p.get("nodePort")}
        by_port = {p.get("port"): p.get("nodePort") for p in old_spec.get("ports") or []}
        taken = self._node_ports - mine
        wanted: set[int] = set()
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            for n, port in enumerate(spec.get("ports") or []):
                want = port.get("nodePort") or by_port.get(port.get("port"))
                if not want:
                    continue
                field_path = f"spec.ports[{n}].nodePort"
                if not 30000 <= int(want) <= 32767:
                    raise invalid(
                        "Service",
                        name,
                        [
                            {
                                "type": "FieldValueInvalid",
                                "field": field_path,
                                "message": f"Invalid value: {want}: provided port is not in "
                                "the valid range. The range of valid ports is 30000-32767",
                            }
                        ],
                    )
                if int(want) in taken or int(want) in wanted:
                    raise invalid(
                        "Service",
                        name,
                        [
                            {
                                "type": "FieldValueInvalid",
                                "field": field_path,
                                "message": f"Invalid value: {want}: provided port is "
                                "already allocated",
                            }
                        ],
                    )
                port["nodePort"] = int(want)
                wanted.add(int(want))
            for port in spec.get("ports") or []:
                if not port.get("nodePort"):
                    free = [p for p in range(30000, 32768) if p not in taken and p not in wanted]
                    if not free:
                        raise ApiError(500, "InternalError", "range is full: no NodePort left")
                    port["nodePort"] = self._rng.choice(free)
                    wanted.add(port["nodePort"])
        else:
            for port in spec.get("ports") or []:
                port.pop("nodePort", None)
        self._node_ports = taken | wanted
        if old_spec.get("clusterIP") and old_spec["clusterIP"] != spec["clusterIP"]:
            self._cluster_ips.discard(old_spec["clusterIP"])
        if spec["clusterIP"] != "None":
            self._cluster_ips.add(spec["clusterIP"])

    def _release_service(self, obj: JSON) -> None:
        spec = obj.get("spec") or {}
        self._cluster_ips.discard(spec.get("clusterIP", ""))
        for port in spec.get("ports") or []:
            self._node_ports.discard(port.get("nodePort", 0))


def _copy(obj: Any) -> Any:
    """A deep copy; JSON round-trips are faster than copy.deepcopy for JSON data."""
    try:
        return json.loads(json.dumps(obj))
    except (TypeError, ValueError):
        return copy.deepcopy(obj)


def _entry_key(entry: _Entry) -> tuple[str, str]:
    meta = entry.obj["metadata"]
    return (meta.get("namespace", ""), meta["name"])


def _spec_of(obj: JSON) -> JSON:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}


def _exact_node(field_selector: str) -> str | None:
    for part in field_selector.split(","):
        if "!=" in part:
            continue
        key, sep, value = part.partition("==") if "==" in part else part.partition("=")
        if sep and key.strip() == "spec.nodeName":
            return value.strip()
    return None


def _qos_class(pod: JSON) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    requests = limits = False
    guaranteed = bool(containers)
    for c in containers:
        res = (c.get("resources") or {}) if isinstance(c, dict) else {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        requests = requests or bool(req)
        limits = limits or bool(lim)
        missing = not lim or any(k not in lim for k in ("cpu", "memory"))
        if missing or (req and any(req.get(k, lim[k]) != lim[k] for k in lim)):
            guaranteed = False
    if guaranteed:
        return "Guaranteed"
    return "Burstable" if requests or limits else "BestEffort"


def _scale_of(obj: JSON) -> JSON:
    from pytest_k8sdr.sim.selectors import selector_from_label_selector

    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    reqs = selector_from_label_selector(spec.get("selector"))
    parts = []
    for r in reqs:
        if r.op == "=":
            parts.append(f"{r.key}={next(iter(r.values))}")
        elif r.op in ("in", "notin"):
            parts.append(f"{r.key} {r.op} ({','.join(sorted(r.values))})")
        else:
            parts.append(r.key if r.op == "exists" else f"!{r.key}")
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace", ""),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": spec.get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(parts),
        },
    }


def _encode_continue(snap_id: str, start: int, rv: int) -> str:
    raw = json.dumps({"v": "sim/v1", "id": snap_id, "start": start, "rv": rv}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_continue(token: str) -> tuple[str, int, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(data["id"]), int(data["start"]), int(data["rv"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, "BadRequest", f"invalid continue token: {token!r}") from None
