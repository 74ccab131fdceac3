"""Shared machinery of the simulated controllers: informers, work queues, events, helpers.

Controllers never write from inside a watch callback: callbacks only update caches and enqueue
keys; a queue's worker task does the writes, as upstream's informer + workqueue split does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from pytest_k8sdr.sim.apierrors import ApiError
from pytest_k8sdr.sim.profiles import Profile
from pytest_k8sdr.sim.store import JSON as JSON
from pytest_k8sdr.sim.store import Store, WatchEvent

log = logging.getLogger("pytest_k8sdr.sim.controllers")

K = TypeVar("K", bound=Hashable)
Key = tuple[str, str]  # (namespace or "", name)

MERGE = "application/merge-patch+json"

# Taint keys (staging/src/k8s.io/api/core/v1/well_known_taints.go).
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"
TAINT_OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"

LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_REGION = "topology.kubernetes.io/region"
LABEL_HOSTNAME = "kubernetes.io/hostname"


# --- time -----------------------------------------------------------------------------------


def now_rfc3339() -> str:
    """Wall-clock time as Kubernetes serialises metav1.Time (seconds, Z)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp, None when absent or unreadable."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# --- object helpers -------------------------------------------------------------------------


def meta(obj: JSON) -> JSON:
    """The object's metadata (empty dict when missing)."""
    m: JSON = obj.get("metadata") or {}
    return m


def key_of(obj: JSON) -> Key:
    """(namespace, name) of an object."""
    m = meta(obj)
    return (m.get("namespace") or "", m.get("name") or "")


def is_terminating(obj: JSON) -> bool:
    """The object has a deletionTimestamp."""
    return bool(meta(obj).get("deletionTimestamp"))


def pod_phase(pod: JSON) -> str:
    """status.phase, Pending when unset."""
    return str((pod.get("status") or {}).get("phase") or "Pending")


def pod_is_terminal(pod: JSON) -> bool:
    """Succeeded or Failed."""
    return pod_phase(pod) in ("Succeeded", "Failed")


def pod_is_active(pod: JSON) -> bool:
    """Not terminal and not being deleted (pkg/controller/controller_utils.go IsPodActive)."""
    return not pod_is_terminal(pod) and not is_terminating(pod)


def get_condition(conditions: Iterable[JSON] | None, ctype: str) -> JSON | None:
    """The condition of that type, or None."""
    for cond in conditions or ():
        if cond.get("type") == ctype:
            return cond
    return None


def pod_is_ready(pod: JSON) -> bool:
    """The pod's Ready condition is True (pkg/api/v1/pod/util.go IsPodReady)."""
    cond = get_condition((pod.get("status") or {}).get("conditions"), "Ready")
    return bool(cond and cond.get("status") == "True")


def node_ready_status(node: JSON) -> str | None:
    """Status of the node's Ready condition ("True", "False", "Unknown") or None when absent."""
    cond = get_condition((node.get("status") or {}).get("conditions"), "Ready")
    return None if cond is None else str(cond.get("status"))


def set_pod_condition(status: JSON, cond: JSON) -> bool:
    """Upsert a pod condition as pkg/api/v1/pod/util.go UpdatePodCondition; True if changed.

    lastTransitionTime moves only when the status changes.
    """
    now = now_rfc3339()
    conditions: list[JSON] = status.setdefault("conditions", [])
    new = dict(cond)
    new.setdefault("lastProbeTime", None)
    for i, old in enumerate(conditions):
        if old.get("type") != cond["type"]:
            continue
        if old.get("status") != new.get("status"):
            new["lastTransitionTime"] = now
        else:
            new["lastTransitionTime"] = old.get("lastTransitionTime") or now
        same = all(old.get(f) == new.get(f) for f in ("status", "reason", "message"))
        if same:
            return False
        conditions[i] = new
        return True
    new["lastTransitionTime"] = now
    conditions.append(new)
    return True


def controller_ref(obj: JSON) -> JSON | None:
    """The ownerReference with controller=true, or None."""
    for ref in meta(obj).get("ownerReferences") or ():
        if ref.get("controller"):
            return dict(ref)
    return None


def owner_reference(owner: JSON, api_version: str, kind: str) -> JSON:
    """A controller ownerReference to `owner`."""
    m = meta(owner)
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": m["name"],
        "uid": m["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def scaled_value(value: int | str | None, total: int, *, round_up: bool, default: int = 0) -> int:
    """An IntOrString against a total (apimachinery intstr GetScaledValueFromIntOrPercent)."""
    if value is None:
        return default
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        pct = int(text[:-1])
        exact = pct * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(text)


# --- label selectors (apimachinery/pkg/apis/meta/v1/helpers.go) ------------------------------


def selector_matches(
    selector: JSON | None, labels: dict[str, str] | None, *, nil_matches: bool = False
) -> bool:
    """Whether a metav1.LabelSelector matches labels; an empty selector matches everything."""
    if selector is None:
        return nil_matches
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or ():
        k, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(k) not in values:
            return False
        if op == "NotIn" and k in labels and labels[k] in values:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def selector_is_empty(selector: JSON | None) -> bool:
    """No matchLabels and no matchExpressions."""
    return not selector or (
        not selector.get("matchLabels") and not selector.get("matchExpressions")
    )


def map_selector_matches(selector: dict[str, str] | None, labels: dict[str, str] | None) -> bool:
    """A Service-style map selector (empty or None never selects)."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


# --- taints and tolerations (staging/src/k8s.io/api/core/v1/toleration.go) --------------------


def toleration_tolerates(tol: JSON, taint: JSON) -> bool:
    """Toleration.ToleratesTaint."""
    effect = tol.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = tol.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = tol.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return (tol.get("value") or "") == (taint.get("value") or "")
    return False


def tolerates(tolerations: Iterable[JSON] | None, taint: JSON) -> bool:
    """Any toleration tolerates the taint."""
    return any(toleration_tolerates(t, taint) for t in tolerations or ())


def pod_tolerations(pod: JSON) -> list[JSON]:
    """spec.tolerations."""
    return list((pod.get("spec") or {}).get("tolerations") or [])


def node_taints(node: JSON) -> list[JSON]:
    """spec.taints."""
    return list((node.get("spec") or {}).get("taints") or [])


def taint_key(taint: JSON) -> tuple[str, str]:
    """Identity of a taint: key and effect (pkg/util/taints MatchTaint)."""
    return (str(taint.get("key")), str(taint.get("effect")))


# --- node selection (component-helpers/scheduling/corev1/nodeaffinity) -----------------------


def _requirement_matches(expr: JSON, values_of: Callable[[str], str | None]) -> bool:
    value = values_of(str(expr.get("key")))
    op = expr.get("operator")
    vals = expr.get("values") or []
    if op == "In":
        return value is not None and value in vals
    if op == "NotIn":
        return value is None or value not in vals
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and vals:
        try:
            left, right = int(value), int(vals[0])
        except ValueError:
            return False
        return left > right if op == "Gt" else left < right
    return False


def node_selector_term_matches(term: JSON, node: JSON) -> bool:
    """One NodeSelectorTerm: all matchExpressions (labels) and matchFields (metadata.name)."""
    labels = meta(node).get("labels") or {}
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches nothing
    name = meta(node).get("name")
    if not all(_requirement_matches(e, labels.get) for e in exprs):
        return False
    return all(
        _requirement_matches(f, lambda k: name if k == "metadata.name" else None) for f in fields
    )


def pod_matches_node_selection(pod: JSON, node: JSON) -> bool:
    """NodeSelector and required node affinity (scheduler NodeAffinity filter)."""
    spec = pod.get("spec") or {}
    labels = meta(node).get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or None
    if required is None:
        return True
    return any(node_selector_term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])


# --- work queues ----------------------------------------------------------------------------


class WorkQueue(Generic[K]):
    """A de-duplicating queue drained by one task; failed keys are retried with backoff."""

    def __init__(self, name: str, handler: Callable[[K], None], *, batch: int = 200) -> None:
        self.name = name
        self._handler = handler
        self._pending: dict[K, None] = {}
        self._wake = asyncio.Event()
        self._failures: dict[K, int] = {}
        self._batch = batch
        self._timers: dict[K, asyncio.TimerHandle] = {}

    def add(self, key: K) -> None:
        """Queue `key` (no-op when already queued)."""
        if key not in self._pending:
            self._pending[key] = None
            self._wake.set()

    def add_after(self, key: K, delay: float) -> None:
        """Queue `key` after `delay` seconds (an earlier pending timer for it wins)."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        old = self._timers.get(key)
        when = loop.time() + delay
        if old is not None and old.when() <= when:
            return
        if old is not None:
            old.cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            self.add(key)

        self._timers[key] = loop.call_at(when, fire)

    def forget(self, key: K) -> None:
        """Drop a delayed re-queue of `key`."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    async def run(self) -> None:
        """Drain the queue forever."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                done = 0
                while self._pending:
                    key = next(iter(self._pending))
                    del self._pending[key]
                    self._process(key)
                    done += 1
                    if done % self._batch == 0:
                        await asyncio.sleep(0)
        finally:
            for timer in self._timers.values():
                timer.cancel()

    def _process(self, key: K) -> None:
        try:
            self._handler(key)
        except ApiError as exc:
            self._retry(key, exc)
        except Exception as exc:  # a controller bug must not kill the loop
            log.exception("%s: syncing %r failed", self.name, key)
            self._retry(key, exc)
        else:
            self._failures.pop(key, None)

    def _retry(self, key: K, exc: Exception) -> None:
        n = self._failures.get(key, 0) + 1
        self._failures[key] = n
        # client-go's default controller rate limiter: 5ms doubling, capped (here at 5s).
        delay = min(0.005 * 2 ** min(n, 20), 5.0)
        log.debug("%s: retrying %r in %.3fs after %s", self.name, key, delay, exc)
        self.add_after(key, delay)


async def every(period: float, fn: Callable[[], None], *, name: str) -> None:
    """Call `fn` every `period` seconds (wait.Until: the first call happens at once)."""
    while True:
        try:
            fn()
        except Exception:
            log.exception("%s: periodic pass failed", name)
        await asyncio.sleep(period)


# --- informers ------------------------------------------------------------------------------

Handler = Callable[[str, JSON | None, JSON | None], None]  # (type, old, new)


class Informer:
    """A cache of one resource kept current by a store subscription, with handlers."""

    def __init__(self, store: Store, plural: str) -> None:
        self.plural = plural
        self.objects: dict[Key, JSON] = {}
        self.by_namespace: dict[str, dict[str, JSON]] = defaultdict(dict)
        self._handlers: list[Handler] = []
        self._indexes: list[_Index] = []
        # The store's shared read-only objects when it offers them (no second copy of every
        # object in memory); a deep-copied list otherwise.
        iter_objects = getattr(store, "iter_objects", None)
        items = (
            list(iter_objects(plural)) if iter_objects else store.list(plural).get("items") or []
        )
        for item in items:
            self._put(item)
        self._unsubscribe = store.subscribe(plural, self._on_event)

    def add_handler(self, handler: Handler) -> Callable[[], None]:
        """Call handler(type, old, new) after every change; replays ADDED for cached objects.

        Returns a function that removes the handler again.
        """
        self._handlers.append(handler)
        for obj in list(self.objects.values()):
            handler("ADDED", None, obj)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._handlers.remove(handler)

        return remove

    def add_index(self, fn: Callable[[JSON], Iterable[str]]) -> dict[str, dict[Key, JSON]]:
        """An index: value -> {key: object} for every value fn(object) yields."""
        index = _Index(fn)
        for k, obj in self.objects.items():
            index.put(k, None, obj)
        self._indexes.append(index)
        return index.buckets

    def get(self, namespace: str | None, name: str) -> JSON | None:
        """The cached object or None."""
        return self.objects.get((namespace or "", name))

    def list(self, namespace: str | None = None) -> Iterator[JSON]:
        """Cached objects, optionally of one namespace."""
        if namespace is None:
            return iter(list(self.objects.values()))
        return iter(list(self.by_namespace.get(namespace, {}).values()))

    def stop(self) -> None:
        """Stop following the store."""
        self._unsubscribe()

    def _put(self, obj: JSON) -> JSON | None:
        k = key_of(obj)
        old = self.objects.get(k)
        self.objects[k] = obj
        self.by_namespace[k[0]][k[1]] = obj
        for index in self._indexes:
            index.put(k, old, obj)
        return old

    def _on_event(self, event: WatchEvent) -> None:
        obj = event.object
        k = key_of(obj)
        if event.type == "DELETED":
            old = self.objects.pop(k, None)
            ns_bucket = self.by_namespace.get(k[0])
            if ns_bucket is not None:
                ns_bucket.pop(k[1], None)
                if not ns_bucket:
                    del self.by_namespace[k[0]]
            for index in self._indexes:
                index.put(k, old, None)
            self._dispatch("DELETED", old or obj, None)
            return
        old = self._put(obj)
        self._dispatch("ADDED" if old is None else "MODIFIED", old, obj)

    def _dispatch(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        for handler in self._handlers:
            try:
                handler(etype, old, new)
            except Exception:
                log.exception("%s handler failed", self.plural)


class _Index:
    def __init__(self, fn: Callable[[JSON], Iterable[str]]) -> None:
        self.fn = fn
        self.buckets: dict[str, dict[Key, JSON]] = {}

    def put(self, k: Key, old: JSON | None, new: JSON | None) -> None:
        if old is not None:
            for value in self.fn(old):
                bucket = self.buckets.get(value)
                if bucket is not None:
                    bucket.pop(k, None)
                    if not bucket:
                        del self.buckets[value]
        if new is not None:
            for value in self.fn(new):
                self.buckets.setdefault(value, {})[k] = new


def _pod_node(pod: JSON) -> Iterable[str]:
    return ((pod.get("spec") or {}).get("nodeName") or "",)


def _controller_uid(obj: JSON) -> Iterable[str]:
    ref = controller_ref(obj)
    return (str(ref["uid"]),) if ref and ref.get("uid") else ()


class Informers:
    """The shared informer factory: one cache per resource for all controllers."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._informers: dict[str, Informer] = {}
        self._pods_by_node: dict[str, dict[Key, JSON]] | None = None
        self._by_owner: dict[str, dict[str, dict[Key, JSON]]] = {}

    def get(self, plural: str) -> Informer:
        """The informer of `plural`, started on first use."""
        informer = self._informers.get(plural)
        if informer is None:
            informer = Informer(self.store, plural)
            self._informers[plural] = informer
        return informer

    @property
    def pods_by_node(self) -> dict[str, dict[Key, JSON]]:
        """Pods by spec.nodeName ("" for unbound pods)."""
        if self._pods_by_node is None:
            self._pods_by_node = self.get("pods").add_index(_pod_node)
        return self._pods_by_node

    def by_owner(self, plural: str) -> dict[str, dict[Key, JSON]]:
        """Objects of `plural` by their controller owner's uid."""
        index = self._by_owner.get(plural)
        if index is None:
            index = self.get(plural).add_index(_controller_uid)
            self._by_owner[plural] = index
        return index

    def stop(self) -> None:
        """Unsubscribe every informer."""
        for informer in self._informers.values():
            informer.stop()


# --- events ---------------------------------------------------------------------------------


class EventRecorder:
    """Writes core/v1 Events, aggregating repeats as client-go's EventCorrelator does."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._seen: dict[tuple[str, ...], tuple[str, str]] = {}

    def record(
        self,
        obj: JSON,
        kind: str,
        etype: str,
        reason: str,
        message: str,
        component: str,
        *,
        api_version: str = "v1",
        namespace: str | None = None,
    ) -> None:
        """Record an event about `obj`; failures are logged, never raised (like client-go)."""
        m = meta(obj)
        # Events about cluster-scoped objects go to "default" (tools/record/event.go).
        ns = namespace or m.get("namespace") or "default"
        involved: JSON = {
            "kind": kind,
            "namespace": m.get("namespace") or "",
            "name": m.get("name"),
            "uid": m.get("uid"),
            "apiVersion": api_version,
            "resourceVersion": m.get("resourceVersion"),
        }
        if not involved["namespace"]:
            del involved["namespace"]
        now = now_rfc3339()
        agg = (ns, kind, str(m.get("name")), str(m.get("uid")), etype, reason, message, component)
        try:
            prior = self._seen.get(agg)
            if prior is not None:
                with contextlib.suppress(ApiError):
                    ev = self.store.get("events", prior[0], prior[1])
                    ev["count"] = int(ev.get("count") or 1) + 1
                    ev["lastTimestamp"] = now
                    self.store.update("events", prior[0], prior[1], ev)
                    return
            name = f"{m.get('name')}.{secrets.token_hex(8)}"
            self.store.create(
                "events",
                ns,
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"name": name, "namespace": ns},
                    "involvedObject": involved,
                    "reason": reason,
                    "message": message,
                    "type": etype,
                    "source": {"component": component},
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "count": 1,
                    "reportingComponent": component,
                    "reportingInstance": "",
                },
            )
            self._seen[agg] = (ns, name)
            if len(self._seen) > 4096:  # bounded, like the correlator's LRU cache
                self._seen.pop(next(iter(self._seen)))
        except ApiError as exc:
            log.debug("event %s on %s not recorded: %s", reason, m.get("name"), exc)


# --- controllers ----------------------------------------------------------------------------


class Context:
    """What every controller gets: the store, the timings, shared caches and the recorder."""

    def __init__(self, store: Store, profile: Profile) -> None:
        self.store = store
        self.profile = profile
        self.informers = Informers(store)
        self.recorder = EventRecorder(store)


class Controller:
    """One named, separately switchable controller."""

    name: ClassVar[str]

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.profile = ctx.profile
        self.informers = ctx.informers
        self.recorder = ctx.recorder
        self._tasks: list[asyncio.Task[None]] = []
        self._undo: list[Callable[[], None]] = []

    def start(self) -> list[asyncio.Task[None]]:
        """Register handlers and start this controller's tasks."""
        raise NotImplementedError

    def stop(self) -> None:
        """Switch the controller off: its tasks are cancelled and its handlers removed.

        Every write a controller makes runs in one of its tasks (handlers only cache and
        enqueue), so once this returns it writes nothing more. A controller is not started
        twice: switching it on again builds a new instance, which lists its world afresh as a
        restarted kube-controller-manager does.
        """
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    def watch(self, informer: Informer, handler: Handler) -> None:
        """informer.add_handler(handler), removed again by stop()."""
        self._undo.append(informer.add_handler(handler))

    def on_stop(self, undo: Callable[[], None]) -> None:
        """Run `undo` when the controller is stopped (e.g. remove an admission hook)."""
        self._undo.append(undo)

    def _spawn(self, coro: Any, what: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            coro, name=f"{self.name}:{what}"
        )
        self._tasks.append(task)
        return task


def ignore_not_found(fn: Callable[[], Any]) -> Any:
    """Run fn; a 404 (object already gone) is not an error for a controller."""
    try:
        return fn()
    except ApiError as exc:
        if exc.code == 404:
            return None
        raise


# --- quantities (apimachinery/pkg/api/resource) ----------------------------------------------

_SUFFIXES = {
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}


def parse_quantity(value: object) -> float:
    """A resource.Quantity as a float ("100m" -> 0.1, "1Gi" -> 1073741824); 0 when unreadable."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    for suffix in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E"):
        if text.endswith(suffix):
            try:
                return float(text[: -len(suffix)]) * _SUFFIXES[suffix]
            except ValueError:
                return 0.0
    try:
        return float(text)
    except ValueError:
        return 0.0


def pod_requests(pod: JSON) -> dict[str, float]:
    """Effective requests: max(sum of containers, any init container) per resource.

    (pkg/api/v1/resource/helpers.go PodRequests, without overhead and sidecars.)
    """
    spec = pod.get("spec") or {}
    total: dict[str, float] = {}
    for c in spec.get("containers") or ():
        for name, q in ((c.get("resources") or {}).get("requests") or {}).items():
            total[name] = total.get(name, 0.0) + parse_quantity(q)
    for c in spec.get("initContainers") or ():
        for name, q in ((c.get("resources") or {}).get("requests") or {}).items():
            total[name] = max(total.get(name, 0.0), parse_quantity(q))
    return total
