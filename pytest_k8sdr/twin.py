"""The dry run's twin: a simulated cluster shaped after the target, filled from it read-only.

`read_target` reads the target through a read-only facade (nodes, their Leases and the
tolerations its admission gave to pods: the timings it can observe). `Twin.start` launches a
simulated cluster with the same node names and shape, then copies every object of every kind
the simulator serves (its discovery says which) that the target serves too, with the fields
the server sets stripped: a kind the simulator learns to serve is copied with no change here.

Never copied: Secrets (they stay on the target), what controllers and kubelets write
(Events, Leases, Endpoints, EndpointSlices, objects owned by another object: the twin's own
controllers make them again) and the Nodes themselves (shaped through `NodeShape`).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pytest_k8sdr.cluster import JSON, Cluster
from pytest_k8sdr.errors import ApiError, ToolError

log = logging.getLogger(__name__)

#: Kinds (by plural) never copied to the twin; see the module docstring.
NOT_COPIED = frozenset(
    {
        "nodes",
        "secrets",
        "events",
        "leases",
        "endpoints",
        "endpointslices",
        "componentstatuses",
        "bindings",
        "controllerrevisions",
    }
)
#: Namespaces the twin makes itself.
OWN_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
#: Loaded first (what later kinds refer to), in this order; any other kind comes after them.
LOAD_ORDER = (
    "namespaces",
    "priorityclasses",
    "storageclasses",
    "persistentvolumes",
    "persistentvolumeclaims",
    "serviceaccounts",
    "configmaps",
    "services",
    "poddisruptionbudgets",
)
#: Taints the node lifecycle controller owns: the twin's controller sets its own.
CONTROLLER_TAINTS = (
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "node.kubernetes.io/unschedulable",
    "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/disk-pressure",
    "node.kubernetes.io/pid-pressure",
    "node.kubernetes.io/network-unavailable",
)
_SERVER_SET_META = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
_ZONE = "topology.kubernetes.io/zone"
_UNREACHABLE = "node.kubernetes.io/unreachable"
_NOT_READY = "node.kubernetes.io/not-ready"


@dataclass(frozen=True)
class Resource:
    """One kind as discovery lists it: where its objects live."""

    group_version: str  # "v1", "apps/v1"
    plural: str
    kind: str
    namespaced: bool

    @property
    def path(self) -> str:
        """The collection's path across all namespaces."""
        root = "/api" if "/" not in self.group_version else "/apis"
        return f"{root}/{self.group_version}/{self.plural}"

    def create_path(self, namespace: str | None) -> str:
        """Where a new object of this kind is POSTed."""
        if not self.namespaced or namespace is None:
            return self.path
        root, _, plural = self.path.rpartition("/")
        return f"{root}/namespaces/{namespace}/{plural}"


@dataclass(frozen=True)
class Timings:
    """The target's timings: what it shows (Leases, pods' tolerations) and what it is told."""

    lease_duration: float | None = None
    renew_interval: float | None = None
    not_ready_toleration: int | None = None
    unreachable_toleration: int | None = None

    def profile(self, default: str) -> str:
        """The simulator's timing profile nearest to these timings (`default` when unknown)."""
        if self.lease_duration is None:
            return default
        from pytest_k8sdr.sim import PROFILES

        return min(
            PROFILES.values(),
            key=lambda p: abs(p.node_lease_duration - float(self.lease_duration or 0)),
        ).name

    def to_json(self) -> JSON:
        """As the plan's JSON shows them."""
        return {
            "node_lease_duration": self.lease_duration,
            "lease_renew_interval": self.renew_interval,
            "default_not_ready_toleration_seconds": self.not_ready_toleration,
            "default_unreachable_toleration_seconds": self.unreachable_toleration,
        }


@dataclass(frozen=True)
class NodeFacts:
    """One target node as the plan names it: its shape and its InternalIP."""

    name: str
    labels: Mapping[str, str]
    taints: tuple[tuple[str, str, str], ...]
    cpu: str
    memory: str
    pods: int
    ready: bool
    unschedulable: bool
    address: str | None

    @property
    def zone(self) -> str | None:
        """The node's zone label."""
        return self.labels.get(_ZONE)


@dataclass(frozen=True)
class TargetShape:
    """What the dry run read from the target: its nodes and timings."""

    nodes: tuple[NodeFacts, ...]
    timings: Timings

    def node(self, name: str) -> NodeFacts | None:
        """The node called `name`, if the target has it."""
        return next((n for n in self.nodes if n.name == name), None)


def _most_common(values: Sequence[float]) -> float | None:
    return Counter(values).most_common(1)[0][0] if values else None


def _node_facts(raw: JSON) -> NodeFacts:
    meta, spec, status = raw["metadata"], raw.get("spec") or {}, raw.get("status") or {}
    capacity = status.get("allocatable") or status.get("capacity") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    address = next(
        (a["address"] for a in status.get("addresses") or [] if a.get("type") == "InternalIP"),
        None,
    )
    taints = tuple(
        (t["key"], t.get("value") or "", t["effect"])
        for t in spec.get("taints") or []
        if t["key"] not in CONTROLLER_TAINTS
    )
    return NodeFacts(
        name=meta["name"],
        labels=dict(meta.get("labels") or {}),
        taints=taints,
        cpu=str(capacity.get("cpu", "2")),
        memory=str(capacity.get("memory", "8Gi")),
        pods=int(capacity.get("pods", 110)),
        ready=ready,
        unschedulable=bool(spec.get("unschedulable")),
        address=address,
    )


def read_target(target: Cluster) -> TargetShape:
    """Read the target's nodes and observable timings; every request a read."""
    nodes = tuple(_node_facts(n) for n in target.list_raw("nodes")["items"])
    leases = target.read_path("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases")
    durations = [
        float(lease["spec"]["leaseDurationSeconds"])
        for lease in (leases or {}).get("items", [])
        if (lease.get("spec") or {}).get("leaseDurationSeconds")
    ]
    tolerations: dict[str, list[float]] = {_NOT_READY: [], _UNREACHABLE: []}
    for pod in target.list_raw("pods")["items"]:
        for toleration in (pod.get("spec") or {}).get("tolerations") or []:
            key, seconds = toleration.get("key"), toleration.get("tolerationSeconds")
            if key in tolerations and seconds is not None and toleration.get("effect"):
                tolerations[key].append(float(seconds))
    lease = _most_common(durations)
    not_ready, unreachable = (_most_common(tolerations[k]) for k in (_NOT_READY, _UNREACHABLE))
    timings = Timings(
        lease_duration=lease,
        # The kubelet renews every quarter of the lease duration (pkg/kubelet/kubelet.go).
        renew_interval=lease / 4 if lease else None,
        not_ready_toleration=int(not_ready) if not_ready is not None else None,
        unreachable_toleration=int(unreachable) if unreachable is not None else None,
    )
    return TargetShape(nodes, timings)


def served(cluster: Cluster) -> list[Resource]:
    """Every kind `cluster` serves with list and create (its discovery documents)."""
    versions: list[str] = ["v1"]
    groups = cluster.read_path("/apis") or {}
    for group in groups.get("groups") or []:
        preferred = group.get("preferredVersion") or (group.get("versions") or [{}])[0]
        if preferred.get("groupVersion"):
            versions.append(preferred["groupVersion"])
    found: list[Resource] = []
    for gv in versions:
        root = "/api" if gv == "v1" else "/apis"
        listed = cluster.read_path(f"{root}/{gv}") or {}
        for r in listed.get("resources") or []:
            verbs = set(r.get("verbs") or [])
            if "/" in r["name"] or not {"list", "create"} <= verbs:
                continue
            found.append(Resource(gv, r["name"], r.get("kind", ""), bool(r.get("namespaced"))))
    return found


def strip(obj: JSON, resource: Resource) -> JSON | None:
    """The object as it would be created anew (server-set fields gone); None: not copied."""
    meta = obj.get("metadata") or {}
    if meta.get("ownerReferences") or meta.get("deletionTimestamp"):
        return None  # made again by its owner's controller on the twin
    namespace = meta.get("namespace")
    if resource.plural == "namespaces" and meta.get("name") in OWN_NAMESPACES:
        return None
    if resource.plural == "configmaps" and meta.get("name") == "kube-root-ca.crt":
        return None
    if resource.plural == "serviceaccounts" and meta.get("name") == "default":
        return None
    if (
        resource.plural == "services"
        and namespace == "default"
        and meta.get("name") == "kubernetes"
    ):
        return None
    copied: JSON = json.loads(json.dumps(obj))
    copied.pop("status", None)
    for key in _SERVER_SET_META:
        copied["metadata"].pop(key, None)
    spec = copied.get("spec")
    if isinstance(spec, dict):
        if resource.plural == "services":
            for key in ("clusterIP", "clusterIPs", "healthCheckNodePort"):
                spec.pop(key, None)
        if resource.plural == "persistentvolumes" and isinstance(spec.get("claimRef"), dict):
            for key in ("uid", "resourceVersion"):
                spec["claimRef"].pop(key, None)
    copied.setdefault("apiVersion", resource.group_version)
    copied.setdefault("kind", resource.kind)
    return copied


def _order(resource: Resource) -> tuple[int, str]:
    workloads = ("deployments", "statefulsets", "daemonsets", "replicasets", "pods")
    if resource.plural in LOAD_ORDER:
        return (LOAD_ORDER.index(resource.plural), resource.plural)
    if resource.plural in workloads:
        return (len(LOAD_ORDER) + 1 + workloads.index(resource.plural), resource.plural)
    return (len(LOAD_ORDER), resource.plural)


@dataclass
class Loaded:
    """What was copied to the twin, by kind, and what could not be (with the reason)."""

    counts: dict[str, int] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)

    def to_json(self) -> JSON:
        """As the plan's JSON shows it."""
        return {"copied": dict(sorted(self.counts.items())), "not_copied": list(self.refused)}


def copy_objects(target: Cluster, twin: Cluster) -> Loaded:
    """Copy every object of every kind both serve (but `NOT_COPIED`) from target to twin."""
    loaded = Loaded()
    kinds = sorted((r for r in served(twin) if r.plural not in NOT_COPIED), key=_order)
    for resource in kinds:
        listed = target.read_path(resource.path)
        if listed is None:  # the target does not serve it
            continue
        for obj in listed.get("items") or []:
            copied = strip(obj, resource)
            if copied is None:
                continue
            meta = copied["metadata"]
            where = f"{resource.plural} {meta.get('namespace', '')}/{meta['name']}".replace(
                " /", " "
            )
            try:
                twin.create_object(resource.create_path(meta.get("namespace")), copied)
            except ApiError as exc:
                loaded.refused.append(f"{where}: {exc}")
                continue
            loaded.counts[resource.plural] = loaded.counts.get(resource.plural, 0) + 1
    return loaded


def wait_workloads_ready(twin: Cluster, timeout: float) -> list[str]:
    """Wait until the twin's Deployments, StatefulSets and DaemonSets are Ready; what is not."""
    deadline = time.monotonic() + timeout
    while True:
        waiting = list(_not_ready(twin))
        if not waiting or time.monotonic() >= deadline:
            return waiting
        time.sleep(0.2)


def _not_ready(twin: Cluster) -> Iterator[str]:
    for kind in ("deployments", "statefulsets", "daemonsets"):
        listed = twin.read_path(f"/apis/apps/v1/{kind}") or {}
        for obj in listed.get("items") or []:
            status = obj.get("status") or {}
            if kind == "daemonsets":
                wanted, ready = status.get("desiredNumberScheduled", 0), status.get("numberReady")
            else:
                wanted, ready = (
                    (obj.get("spec") or {}).get("replicas", 1),
                    status.get("readyReplicas"),
                )
            if (ready or 0) < wanted:
                meta = obj["metadata"]
                yield f"{kind} {meta['namespace']}/{meta['name']}: {ready or 0}/{wanted} Ready"


class Launched(Protocol):
    """A simulated cluster the plugin launched (`pytest_k8sdr.backends.launch_sim`)."""

    sim: Any  # pytest_k8sdr.sim.SimCluster
    cluster: Cluster  # read-write

    def close(self) -> None:
        """Stop it and close its journal entry."""


#: Starts the twin's simulator: `SimCluster.start`'s state directory and keywords.
Launch = Callable[..., Launched]


@dataclass
class Twin:
    """A running twin: the simulated cluster, a read-write facade on it, and what it holds."""

    launched: Launched
    target: TargetShape
    loaded: Loaded
    not_ready: list[str]

    @property
    def sim(self) -> Any:
        """The twin's `pytest_k8sdr.sim.SimCluster`."""
        return self.launched.sim

    @property
    def cluster(self) -> Cluster:
        """A read-write facade on the twin."""
        return self.launched.cluster

    @classmethod
    def start(
        cls,
        target: Cluster,
        state_dir: Path,
        *,
        launch: Launch,
        profile: str,
        ready_timeout: float = 60.0,
    ) -> Twin:
        """Shape a simulated cluster after `target` and fill it; the target is only read.

        `launch` starts the simulator journaled first, as every simulator the plugin launches
        (`pytest_k8sdr.backends.launch_sim`), so `k8sdr recover` stops a twin a killed run left.
        """
        from pytest_k8sdr.sim import NodeShape

        shape = read_target(target)
        if not shape.nodes:
            raise ToolError("the target has no nodes: there is nothing to rehearse on")
        nodes = [
            NodeShape(
                n.name,
                labels=tuple(n.labels.items()),
                taints=n.taints,
                zone=n.zone,
                cpu=n.cpu,
                memory=n.memory,
                max_pods=n.pods,
                unschedulable=n.unschedulable,
                ready=n.ready,
            )
            for n in shape.nodes
        ]
        launched = launch(state_dir, nodes=nodes, profile=shape.timings.profile(profile), workers=0)
        try:
            loaded = copy_objects(target, launched.cluster)
            not_ready = wait_workloads_ready(launched.cluster, ready_timeout)
        except BaseException:
            launched.close()
            raise
        return cls(launched, shape, loaded, not_ready)

    def stop(self) -> None:
        """Stop the twin (the target was never touched)."""
        self.launched.close()
