"""A thin, typed facade over the official kubernetes client, with watch-driven waits.

Objects travel as the API's own JSON (dicts): the client's model classes cost seconds and
hundreds of megabytes at 30,000 pods. Typed, frozen views (`NodeView`, `PodView`) are made on
demand. Waits list, then watch from the list's resourceVersion, re-list on 410 and reconnect on
a cut stream; they return the moment the condition holds, stamped with the time the event that
made it true arrived.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import tenacity
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from pytest_k8sdr.errors import (
    ApiUnavailable,
    ConfigError,
    Gone,
    NotFound,
    ReadOnlyCluster,
    Throttled,
    ToolError,
    WaitTimeout,
    api_error,
)
from pytest_k8sdr.results import Result, Satisfied, deadline_for, report

log = logging.getLogger(__name__)

JSON = dict[str, Any]
T = TypeVar("T")
V = TypeVar("V")

# Objects per list request: client-go's pager default (k8s.io/client-go/tools/pager/pager.go
# defaultPageSize), which informers' initial lists use too. Paging keeps one page of raw JSON
# in memory at a time instead of the whole list, and costs nothing at small sizes.
LIST_PAGE_SIZE = 500

# PodView.raw of a view built without its JSON (never mutate it).
_NO_RAW: JSON = {}

MANAGED_BY = ("app.kubernetes.io/managed-by", "pytest-k8sdr")
#: The User-Agent of every request the plugin sends.
USER_AGENT = "pytest-k8sdr"

# Generated client methods that write: what a read-only facade refuses.
_WRITES = ("create_", "patch_", "replace_", "delete_", "connect_")


# --------------------------------------------------------------------------- views


ZONE_LABEL = "topology.kubernetes.io/zone"


@dataclass(frozen=True)
class Taint:
    """A node taint."""

    key: str
    effect: str
    value: str | None = None
    time_added: str | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Taint:
        """Build from the API's JSON."""
        return cls(raw["key"], raw["effect"], raw.get("value"), raw.get("timeAdded"))

    def to_json(self) -> JSON:
        """The API's JSON (without timeAdded, which the server stamps)."""
        out: JSON = {"key": self.key, "effect": self.effect}
        if self.value is not None:
            out["value"] = self.value
        return out

    def __str__(self) -> str:
        return f"{self.key}{'=' + self.value if self.value else ''}:{self.effect}"


@dataclass(frozen=True)
class NodeView:
    """What a test needs to know about a Node."""

    name: str
    uid: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    taints: tuple[Taint, ...]
    unschedulable: bool
    conditions: Mapping[str, str]
    addresses: Mapping[str, str]
    deleting: bool
    raw: JSON = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: JSON) -> NodeView:
        """Build from the API's JSON."""
        meta, spec, status = raw["metadata"], raw.get("spec") or {}, raw.get("status") or {}
        return cls(
            name=meta["name"],
            uid=meta.get("uid", ""),
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
            taints=tuple(Taint.from_json(t) for t in spec.get("taints") or []),
            unschedulable=bool(spec.get("unschedulable")),
            conditions={c["type"]: c["status"] for c in status.get("conditions") or []},
            addresses={a["type"]: a["address"] for a in reversed(status.get("addresses") or [])},
            deleting=bool(meta.get("deletionTimestamp")),
            raw=raw,
        )

    @property
    def ready(self) -> str | None:
        """The Ready condition's status: "True", "False", "Unknown", or None if absent."""
        return self.conditions.get("Ready")

    @property
    def internal_ip(self) -> str | None:
        """The node's InternalIP address."""
        return self.addresses.get("InternalIP")

    def has_taint(self, key: str, effect: str | None = None) -> bool:
        """Whether a taint with this key (and effect) is set."""
        return any(t.key == key and (effect is None or t.effect == effect) for t in self.taints)


@dataclass(frozen=True, slots=True)
class PodView:
    """What a test needs to know about a Pod."""

    namespace: str
    name: str
    uid: str
    node: str | None
    phase: str
    ready: bool
    deleting: bool
    ip: str | None
    labels: Mapping[str, str]
    owner: tuple[str, str] | None
    raw: JSON = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: JSON, *, keep_raw: bool = True) -> PodView:
        """Build from the API's JSON; `keep_raw=False` drops it (`raw` is then empty).

        Waits over many pods keep only the view (see `Cluster.wait`'s `project`): a pod's
        JSON is some 1.2 KB on the wire and several times that parsed.
        """
        meta, spec, status = raw["metadata"], raw.get("spec") or {}, raw.get("status") or {}
        conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
        owners = [o for o in meta.get("ownerReferences") or [] if o.get("controller")]
        return cls(
            namespace=meta.get("namespace", ""),
            name=meta["name"],
            uid=meta.get("uid", ""),
            node=spec.get("nodeName"),
            phase=status.get("phase", "Pending"),
            ready=conditions.get("Ready") == "True",
            deleting=bool(meta.get("deletionTimestamp")),
            ip=status.get("podIP"),
            labels=dict(meta.get("labels") or {}),
            owner=(owners[0]["kind"], owners[0]["name"]) if owners else None,
            raw=raw if keep_raw else _NO_RAW,
        )

    @classmethod
    def slim(cls, raw: JSON) -> PodView:
        """`from_json(raw, keep_raw=False)`: the projection pod waits keep."""
        return cls.from_json(raw, keep_raw=False)

    @property
    def key(self) -> str:
        """`namespace/name`."""
        return f"{self.namespace}/{self.name}"

    def describe(self) -> str:
        """One line for failure messages: name, node, phase, readiness."""
        state = self.phase + (", Ready" if self.ready else ", not Ready")
        if self.deleting:
            state += ", Terminating"
        return f"{self.key} on {self.node or '<unscheduled>'} ({state}, uid {self.uid[:8]})"


# --------------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class Kind:
    """How to list and watch one resource through the generated client."""

    name: str
    api: str  # attribute of Cluster holding the API object
    namespaced_list: str | None
    cluster_list: str


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("nodes", "core", None, "list_node"),
        Kind("pods", "core", "list_namespaced_pod", "list_pod_for_all_namespaces"),
        Kind("events", "core", "list_namespaced_event", "list_event_for_all_namespaces"),
        Kind("services", "core", "list_namespaced_service", "list_service_for_all_namespaces"),
        Kind(
            "endpointslices",
            "discovery",
            "list_namespaced_endpoint_slice",
            "list_endpoint_slice_for_all_namespaces",
        ),
        Kind(
            "deployments",
            "apps",
            "list_namespaced_deployment",
            "list_deployment_for_all_namespaces",
        ),
        Kind(
            "statefulsets",
            "apps",
            "list_namespaced_stateful_set",
            "list_stateful_set_for_all_namespaces",
        ),
        Kind(
            "daemonsets", "apps", "list_namespaced_daemon_set", "list_daemon_set_for_all_namespaces"
        ),
        Kind("leases", "coordination", "list_namespaced_lease", "list_lease_for_all_namespaces"),
        Kind("namespaces", "core", None, "list_namespace"),
    )
}


# --------------------------------------------------------------------------- retries


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, ApiException):
        if exc.status == 429:
            # Overload answers carry Retry-After; a PodDisruptionBudget's 429 does not
            # (apiserver responsewriters/writers.go) and is the caller's to handle.
            return bool(exc.headers and exc.headers.get("Retry-After"))
        return (exc.status or 0) >= 500
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError)


def _retry_after(state: tenacity.RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, ApiException) and exc.headers:
        header = exc.headers.get("Retry-After")
        if header and header.isdigit():
            return float(header)
    return float(tenacity.wait_exponential_jitter(multiplier=0.1, max=2.0)(state))


@dataclass
class Snapshot(Generic[V]):
    """The objects a wait currently knows, by `namespace/name` (or `name`).

    Each is the API's JSON, or what the wait's `project` made of it.
    """

    objects: dict[str, V] = field(default_factory=dict)

    def values(self) -> Iterator[V]:
        """The objects."""
        return iter(self.objects.values())


def _key(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else str(meta["name"])


class Cluster:
    """One cluster, reached through a kubeconfig, with typed reads and watch-driven waits.

    `read_only=True` makes every write raise `ReadOnlyCluster` before a request is sent.
    """

    def __init__(
        self, api_client: k8s.ApiClient, *, api_deadline: float = 30.0, read_only: bool = False
    ) -> None:
        self.api_client = api_client
        self.core = k8s.CoreV1Api(api_client)
        self.apps = k8s.AppsV1Api(api_client)
        self.discovery = k8s.DiscoveryV1Api(api_client)
        self.coordination = k8s.CoordinationV1Api(api_client)
        self.policy = k8s.PolicyV1Api(api_client)
        self.api_deadline = api_deadline
        # A read-only facade (the dry run) refuses every write itself, before any request.
        self.read_only = read_only
        self.requests = 0  # API requests made through this facade, for the benchmarks
        # Told about long waits: (what, done, total, elapsed); None when nobody listens.
        self.progress: Callable[[str, int | None, int | None, float], None] | None = None
        self.progress_done: Callable[[], None] | None = None
        # Watch responses of `follow` calls, by their stop event: `stop_following` cuts them.
        self._following: dict[int, list[Any]] = {}
        self._following_lock = threading.Lock()

    @classmethod
    def from_kubeconfig(
        cls, path: Path | None = None, context: str | None = None, **kwargs: Any
    ) -> Cluster:
        """Connect through a kubeconfig file and context; ConfigError names what is wrong."""
        configuration = k8s.Configuration()
        try:
            k8s_config.load_kube_config(
                config_file=str(path) if path else None,
                context=context,
                client_configuration=configuration,
            )
        except (k8s_config.ConfigException, OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot load kubeconfig {path or '(default)'}: {exc}") from exc
        api_client = k8s.ApiClient(configuration)
        # Named in the API server's audit log (and the simulator's request counts).
        api_client.user_agent = USER_AGENT
        return cls(api_client, **kwargs)

    def close(self) -> None:
        """Close the client's connections: the idle ones now, those in use when they return."""
        # The client's close() ends in urllib3's PoolManager.clear(), which only forgets its
        # pools (urllib3 2.8's poolmanager.py: a RecentlyUsedContainer with no dispose_func):
        # their idle TLS connections stay open until the garbage collector frees the pool, and
        # a response still held (a watch's, a caller's) keeps it alive, so a socket was
        # collected unclosed at the end of a session (an unraisable ResourceWarning).
        # HTTPConnectionPool.close() closes them now, and any in use once it is put back.
        pools = self.api_client.rest_client.pool_manager.pools
        for key in pools.keys():  # noqa: SIM118 - its __iter__ raises NotImplementedError
            pool = pools.get(key)
            if pool is not None:
                pool.close()
        self.api_client.close()

    # ----------------------------------------------------------------- raw calls

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a generated client method, retrying transient failures until the API deadline.

        429 honours Retry-After; 5xx and connection errors back off exponentially. When the API
        stays down past the deadline, `ApiUnavailable` says so instead of hanging. A request
        without its own `_request_timeout` gets one (connect 5 s, read the API deadline), so a
        server that accepts but never answers is retried, then reported, not waited on forever.
        Every failure leaves as an `ApiError` subclass (`NotFound`, `Conflict`, `Gone`,
        `Throttled`, ...), the client's `ApiException` chained as its cause.
        """
        name = getattr(fn, "__name__", "request")
        if self.read_only and name.startswith(_WRITES):
            raise ReadOnlyCluster(name)
        if "_request_timeout" not in kwargs:
            kwargs["_request_timeout"] = (5.0, max(self.api_deadline, 1.0))
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_transient),
            wait=_retry_after,
            stop=tenacity.stop_after_delay(self.api_deadline),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self.requests += 1
                    result = fn(*args, **kwargs)
                    if kwargs.get("_preload_content") is False and not kwargs.get("watch"):
                        # Read the body now (urllib3 keeps it for `.data`): an unread response
                        # holds its connection, whose socket is then dropped unclosed.
                        getattr(result, "data", None)
                    return result
        except ApiException as exc:
            raise _translate(exc, name, self.api_deadline) from exc
        except (urllib3.exceptions.HTTPError, ConnectionError) as exc:
            raise ApiUnavailable(
                f"API server unreachable for {self.api_deadline:.0f}s: {exc}"
            ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _list_fn(
        self, kind: Kind, namespace: str | None
    ) -> tuple[Callable[..., Any], tuple[str, ...]]:
        """The generated list method for `kind` and its positional arguments."""
        api = getattr(self, kind.api)
        if namespace is not None and kind.namespaced_list:
            return getattr(api, kind.namespaced_list), (namespace,)
        return getattr(api, kind.cluster_list), ()

    def list_raw(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> JSON:
        """List as the API's JSON (`items`, `metadata.resourceVersion`), page by page."""
        pages = self.list_pages(
            kind, namespace, label_selector=label_selector, field_selector=field_selector
        )
        listed: JSON = {}
        for page, fresh in pages:
            if fresh:
                listed = page
            else:
                listed["items"].extend(page["items"])
        listed["metadata"].pop("continue", None)
        return listed

    def list_pages(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = LIST_PAGE_SIZE,
    ) -> Iterator[tuple[JSON, bool]]:
        """List in pages of `limit` objects: (page, fresh), one consistent list.

        Every page carries `metadata.resourceVersion`, the version of the whole list (its first
        page's). When the continue token expires midway (410), the list starts over
        unpaginated, as client-go's pager does with FullListIfExpired: `fresh` is True on the
        page that starts a list, so a caller drops what it gathered before it.
        """
        fn, args = self._list_fn(KINDS[kind], namespace)
        kwargs: dict[str, Any] = {"_preload_content": False, "limit": limit}
        if label_selector:
            kwargs["label_selector"] = label_selector
        if field_selector:
            kwargs["field_selector"] = field_selector
        rv: str | None = None
        first = True
        while True:
            try:
                page = _parse(self.call(fn, *args, **kwargs).data)
            except Gone:
                if "_continue" not in kwargs:
                    raise
                log.debug("list of %s: continue token expired; listing again whole", kind)
                kwargs.pop("_continue")
                kwargs.pop("limit")
                first = True
                continue
            meta = page.setdefault("metadata", {})
            fresh, first = first, False
            if fresh:
                rv = meta.get("resourceVersion")
            elif rv is not None:
                meta["resourceVersion"] = rv
            token = meta.get("continue")
            yield page, fresh
            if not token:
                return
            kwargs["_continue"] = token

    def read_path(self, path: str, **query: str | int) -> JSON | None:
        """GET any API path as JSON (discovery, a list of any kind); None when it is not served.

        A read, so a read-only facade allows it: the dry run reads every kind the twin serves.
        """
        try:
            return self.call(self._raw("read_path", "GET", path, query))
        except NotFound:
            return None

    def create_object(self, path: str, body: JSON) -> JSON:
        """POST an object of any kind to its collection's path; a write (refused read-only)."""
        return self.call(self._raw("create_object", "POST", path, {}, body))

    def _raw(
        self,
        name: str,
        method: str,
        path: str,
        query: Mapping[str, str | int],
        body: JSON | None = None,
    ) -> Callable[..., JSON]:
        """A request of any path through the client, named `name` for `call`'s write check."""
        api = self.api_client

        def request(_request_timeout: Any = None) -> JSON:
            headers = {"Accept": "application/json", "Content-Type": "application/json"}
            params = api.param_serialize(
                method,
                path,
                query_params=list(query.items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            answer = api.call_api(*params, _request_timeout=_request_timeout)
            answer.read()
            if not 200 <= answer.status < 300:
                raise ApiException(http_resp=answer)
            return _parse(answer.data)

        request.__name__ = name
        return request

    def get_raw(self, kind: str, name: str, namespace: str | None = None) -> JSON | None:
        """One object as JSON, or None when it does not exist."""
        listed = self.list_raw(kind, namespace, field_selector=f"metadata.name={name}")
        items = listed.get("items") or []
        return items[0] if items else None

    # ----------------------------------------------------------------- reads

    def nodes(self, label_selector: str | None = None) -> list[NodeView]:
        """All nodes, by name."""
        raw = self.list_raw("nodes", label_selector=label_selector)
        return sorted((NodeView.from_json(n) for n in raw["items"]), key=lambda n: n.name)

    def zones(self) -> dict[str, list[str]]:
        """Node names by zone (label `topology.kubernetes.io/zone`); unlabelled nodes are left out.

        The node lifecycle controller groups nodes the same way (with the region) to decide
        each zone's health (pkg/controller/nodelifecycle/node_lifecycle_controller.go).
        """
        zones: dict[str, list[str]] = {}
        for node in self.nodes():
            zone = node.labels.get(ZONE_LABEL)
            if zone:
                zones.setdefault(zone, []).append(node.name)
        return dict(sorted(zones.items()))

    def node(self, name: str) -> NodeView:
        """One node; `NotFound` names the node and the nodes that exist."""
        raw = self.get_raw("nodes", name)
        if raw is None:
            known = ", ".join(n.name for n in self.nodes()) or "none"
            raise NotFound(f"unknown node {name!r} (nodes in the cluster: {known})")
        return NodeView.from_json(raw)

    def pods(
        self,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        node: str | None = None,
    ) -> list[PodView]:
        """Pods, optionally of a namespace, selector, or node."""
        raw = self.list_raw(
            "pods",
            namespace,
            label_selector=label_selector,
            field_selector=f"spec.nodeName={node}" if node else None,
        )
        return sorted((PodView.from_json(p) for p in raw["items"]), key=lambda p: p.key)

    def events(self, namespace: str | None = None, *, involved: str | None = None) -> list[JSON]:
        """Events, optionally about one object name."""
        field_selector = f"involvedObject.name={involved}" if involved else None
        return list(self.list_raw("events", namespace, field_selector=field_selector)["items"])

    def endpoints(self, namespace: str, service: str) -> list[JSON]:
        """The endpoints of a Service across its EndpointSlices, each with `conditions`."""
        raw = self.list_raw(
            "endpointslices", namespace, label_selector=f"kubernetes.io/service-name={service}"
        )
        return [ep for s in raw["items"] for ep in s.get("endpoints") or []]

    def evict(self, pod: PodView, *, grace_period: int | None = None) -> str:
        """Evict a pod through the Eviction API (PDBs apply).

        Returns "evicted", "gone" (404) or "blocked" (429: a PodDisruptionBudget said no).
        """
        body: dict[str, Any] = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod.name, "namespace": pod.namespace},
        }
        if grace_period is not None:
            body["deleteOptions"] = {"gracePeriodSeconds": grace_period}
        try:
            self.call(
                self.core.create_namespaced_pod_eviction,
                pod.name,
                pod.namespace,
                body,
                _preload_content=False,
            )
        except NotFound:
            return "gone"
        except Throttled:
            return "blocked"
        return "evicted"

    # ----------------------------------------------------------------- waits

    def wait(
        self,
        kind: str,
        predicate: Callable[[Snapshot[V]], Satisfied[T] | None],
        *,
        description: str,
        timeout: float | None = None,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        explain: Callable[[Snapshot[V]], str] | None = None,
        on_event: Callable[[str, JSON], None] | None = None,
        recheck_every: float | None = None,
        count: Callable[[Snapshot[V]], tuple[int, int]] | None = None,
        project: Callable[[JSON], V] | None = None,
        show_progress: bool = True,
    ) -> Result[T]:
        """Wait until `predicate(snapshot)` says `Satisfied(value)`; None means not yet.

        Returns the value, stamped with the time the event that satisfied it arrived, and
        reports it to the runbook phase the caller runs in. `timeout` (seconds) defaults to the
        phase's remaining SLO, or `DEFAULT_TIMEOUT` outside a phase; a phase's SLO also cuts a
        longer timeout short.

        `project(object)`, when given, is what the snapshot keeps of each object instead of its
        JSON (e.g. `PodView.slim`): over 30,000 pods it keeps the wait's memory to the views,
        the list being read one page at a time.

        `on_event(type, object)` sees every change (for histories such as split-brain checks).
        `recheck_every` re-evaluates the predicate at least that often even without events
        (each time resuming the watch from the last resourceVersion: no re-list).
        `count(snapshot)` gives (done, total) for the live progress line; a background watch
        passes `show_progress=False` (it is nobody's wait).
        On timeout, `WaitTimeout` carries `description` and `explain(snapshot)`: what is left.
        """
        k = KINDS[kind]
        fn, args = self._list_fn(k, namespace)
        start = time.monotonic()
        deadline, bounded = deadline_for(timeout)
        requests_before = self.requests
        snapshot: Snapshot[V] = Snapshot()
        keep: Callable[[JSON], Any] = project or (lambda obj: obj)

        def relist() -> str:
            rv = ""
            pages = self.list_pages(
                kind, namespace, label_selector=label_selector, field_selector=field_selector
            )
            # Views hold no reference cycle: no cause for the collector to rescan them all.
            with _gc_paused():
                for page, fresh in pages:
                    if fresh:
                        snapshot.objects = {}
                    items = page["items"]
                    snapshot.objects.update((_key(o), keep(o)) for o in items)
                    if on_event:
                        for obj in items:
                            on_event("LISTED", obj)
                    rv = str(page["metadata"].get("resourceVersion", ""))
            return rv

        def report_progress() -> None:
            if self.progress is not None and show_progress:
                done, total = count(snapshot) if count else (None, None)
                self.progress(description, done, total, time.monotonic() - start)

        def satisfied() -> Result[T] | None:
            got = predicate(snapshot)
            if got is None:
                return None
            if not isinstance(got, Satisfied):
                raise ConfigError(
                    f"the condition of the wait for {description} returned {got!r}: return "
                    "Satisfied(value) when it holds and None while it does not"
                )
            if self.progress_done is not None and show_progress:
                self.progress_done()
            return report(
                Result(
                    got.value,
                    datetime.now(UTC),
                    got.observed or description,
                    time.monotonic() - start,
                    self.requests - requests_before,
                )
            )

        rv = relist()
        if (done := satisfied()) is not None:
            return done
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if recheck_every is not None:
                if (done := satisfied()) is not None:
                    return done
                remaining = min(remaining, recheck_every)
            kwargs: dict[str, Any] = {
                "watch": True,
                "resource_version": rv,
                "allow_watch_bookmarks": True,
                # The server ends the stream at our deadline; the read timeout is a backstop
                # against a server that stops answering altogether.
                "timeout_seconds": max(1, int(remaining + 0.999)),
                "_request_timeout": (5.0, remaining + 5.0),
                "_preload_content": False,
            }
            if label_selector:
                kwargs["label_selector"] = label_selector
            if field_selector:
                kwargs["field_selector"] = field_selector
            try:
                resp = self.call(fn, *args, **kwargs)
            except Gone:
                rv = relist()
                continue
            try:
                for line in _lines(resp):
                    event = json.loads(line)
                    etype, obj = event.get("type"), event.get("object") or {}
                    if etype == "ERROR":
                        if obj.get("code") == 410:
                            rv = relist()
                            if (done := satisfied()) is not None:
                                return done
                            break
                        raise ToolError(f"watch of {kind} failed: {obj.get('message', obj)}")
                    rv = str((obj.get("metadata") or {}).get("resourceVersion", rv))
                    if etype == "BOOKMARK":
                        continue
                    if etype == "DELETED":
                        snapshot.objects.pop(_key(obj), None)
                    else:
                        snapshot.objects[_key(obj)] = keep(obj)
                    if on_event:
                        on_event(str(etype), obj)
                    if (done := satisfied()) is not None:
                        return done
                    report_progress()
            except (urllib3.exceptions.HTTPError, ConnectionError) as exc:
                # A cut stream: resume from the last resourceVersion we saw.
                log.debug("watch of %s cut (%s); resuming from %s", kind, exc, rv)
            finally:
                _end_stream(resp)
        if self.progress_done is not None and show_progress:
            self.progress_done()
        what = explain(snapshot) if explain else ""
        waited = time.monotonic() - start
        limit = " (cut short by the runbook phase's SLO)" if bounded else ""
        raise WaitTimeout(
            f"timed out after {waited:.1f}s{limit} waiting for {description}"
            + (f"\n{what}" if what else "")
        )

    def follow(
        self,
        kind: str,
        on_event: Callable[[str, JSON], None],
        stopping: threading.Event,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        on_listed: Callable[[], None] | None = None,
    ) -> None:
        """List, then watch `kind` until `stopping` is set, telling `on_event(type, object)`.

        The listed objects come as ``LISTED``; then ``ADDED``, ``MODIFIED``, ``DELETED`` as they
        arrive, on one watch connection resumed from the last resourceVersion when the server
        ends it (re-listed on 410); `on_listed()` once the first list is told.
        `stop_following(stopping)` from another thread sets
        `stopping` and cuts the connection, so this returns at once.
        """
        fn, args = self._list_fn(KINDS[kind], namespace)

        def relist() -> str:
            listed = self.list_raw(kind, namespace, label_selector=label_selector)
            for obj in listed["items"]:
                on_event("LISTED", obj)
            return str(listed["metadata"].get("resourceVersion", ""))

        rv = relist()
        if on_listed is not None:
            on_listed()
        while not stopping.is_set():
            kwargs: dict[str, Any] = {
                "watch": True,
                "resource_version": rv,
                "allow_watch_bookmarks": True,
                "timeout_seconds": 300,
                "_request_timeout": (5.0, 330.0),
                "_preload_content": False,
            }
            if label_selector:
                kwargs["label_selector"] = label_selector
            try:
                resp = self.call(fn, *args, **kwargs)
            except Gone:
                rv = relist()
                continue
            with self._following_lock:
                self._following.setdefault(id(stopping), []).append(resp)
            if stopping.is_set():  # stopped while connecting: nobody will cut this one
                _cut(resp)
            try:
                for line in _lines(resp):
                    event = json.loads(line)
                    etype, obj = str(event.get("type")), event.get("object") or {}
                    if etype == "ERROR":
                        if obj.get("code") == 410:
                            rv = relist()
                            break
                        raise ToolError(f"watch of {kind} failed: {obj.get('message', obj)}")
                    rv = str((obj.get("metadata") or {}).get("resourceVersion", rv))
                    if etype != "BOOKMARK":
                        on_event(etype, obj)
            except (urllib3.exceptions.HTTPError, ConnectionError, OSError, ValueError) as exc:
                if not stopping.is_set():
                    log.debug("watch of %s cut (%s); resuming from %s", kind, exc, rv)
            finally:
                with self._following_lock:
                    self._following.get(id(stopping), []).remove(resp)
                _end_stream(resp)
        with self._following_lock:
            self._following.pop(id(stopping), None)

    def stop_following(self, stopping: threading.Event) -> None:
        """Set `stopping` and cut the watch connections of the `follow` calls given it."""
        stopping.set()
        with self._following_lock:
            responses = list(self._following.get(id(stopping), []))
        for resp in responses:
            _cut(resp)

    def wait_node(
        self,
        name: str,
        condition: Callable[[NodeView | None], bool],
        *,
        description: str,
        timeout: float | None = None,
    ) -> Result[NodeView | None]:
        """Wait for a condition on one node (None = the Node object is gone)."""

        def view(s: Snapshot[JSON]) -> NodeView | None:
            raw = s.objects.get(name)
            return NodeView.from_json(raw) if raw else None

        def check(s: Snapshot[JSON]) -> Satisfied[NodeView | None] | None:
            node = view(s)
            return Satisfied(node) if condition(node) else None

        def explain(s: Snapshot[JSON]) -> str:
            node = view(s)
            if node is None:
                return f"node {name} does not exist"
            taints = ", ".join(map(str, node.taints)) or "none"
            return (
                f"node {name}: Ready={node.ready}, unschedulable={node.unschedulable}, "
                f"taints: {taints}"
            )

        return self.wait(
            "nodes",
            check,
            timeout=timeout,
            description=f"node {name} {description}",
            field_selector=f"metadata.name={name}",
            explain=explain,
        )

    def wait_node_ready(
        self, name: str, *, timeout: float | None = None
    ) -> Result[NodeView | None]:
        """Wait until the node exists and is Ready=True."""
        return self.wait_node(
            name,
            lambda n: n is not None and n.ready == "True",
            timeout=timeout,
            description="Ready",
        )

    def wait_node_unreachable(
        self, name: str, *, timeout: float | None = None
    ) -> Result[NodeView | None]:
        """Wait until the node's Ready condition is Unknown (its kubelet stopped posting)."""
        return self.wait_node(
            name,
            lambda n: n is not None and n.ready == "Unknown",
            timeout=timeout,
            description="Ready=Unknown",
        )

    def wait_node_gone(self, name: str, *, timeout: float | None = None) -> Result[NodeView | None]:
        """Wait until the Node object no longer exists."""
        return self.wait_node(name, lambda n: n is None, timeout=timeout, description="deleted")


def _translate(exc: ApiException, method: str, deadline: float) -> Exception:
    """The `ApiError` for the client's `ApiException` (the status decides the class)."""
    body: Any = None
    if exc.body:
        try:
            body = json.loads(exc.body)
        except (TypeError, ValueError):
            body = None
    what = method
    if _transient(exc):
        what = f"{method} kept failing for {deadline:.0f}s"
    return api_error(exc.status, str(exc.reason or ""), body, what)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (restoring it as it was).

    A list of 30,000 pods allocates millions of containers; the collector re-scanning them as
    they are created costs more than the parse itself (3.6s against 1.0s for 37 MB), and JSON
    cannot hold a reference cycle, so there is nothing for it to find.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse(data: bytes) -> JSON:
    """Parse a (possibly huge) JSON body with the cyclic garbage collector paused."""
    with _gc_paused():
        return json.loads(data)  # type: ignore[no-any-return]


def _end_stream(resp: Any) -> None:
    """Give a watch's connection back to the pool; closed first unless the stream had ended.

    A stream left midway (its wait satisfied, or cut) still has events arriving: put back as
    it is, its connection would carry them into the next request's answer.
    """
    if not resp.closed:
        resp.close()
    resp.release_conn()


def _cut(resp: Any) -> None:
    """End a streamed response from another thread: its reader wakes up at once."""
    # urllib3 2.3+ shuts the socket down for reading (HTTPResponse.shutdown); older ones can
    # only close it, which wakes the reader on its next chunk.
    shutdown = getattr(resp, "shutdown", None)
    try:
        if shutdown is not None:
            shutdown()
        else:
            resp.close()
    except (OSError, RuntimeError, ValueError):
        # Already ended by its reader, who may have put its connection back (RuntimeError)
        # or closed it (ValueError) since the caller picked it.
        pass


def _lines(resp: Any) -> Iterator[bytes]:
    """Lines of a streamed watch response as they arrive."""
    buffer = b""
    for chunk in resp.stream(amt=None, decode_content=False):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer
