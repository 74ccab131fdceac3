"""Node faults through the API: cordon, drain, isolate, taints, out-of-service, relabel.

Every fault validates its input first (unknown node, protected node, node already down), then
registers its disruption on the test's `UndoStack`, then acts. Nothing is touched when
validation fails. Each disruption kind (`Cordoned`, `Tainted`, `Isolated`, ...) undoes itself
from its journal record, at teardown as in `k8sdr recover`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pytest_k8sdr.cluster import Cluster, NodeView, PodView, Taint
from pytest_k8sdr.errors import ApiError, Conflict, FaultError, NotFound
from pytest_k8sdr.results import Satisfied
from pytest_k8sdr.undo import Disruption, UndoEnv, UndoStack, disruption_kind

log = logging.getLogger(__name__)

CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
OUT_OF_SERVICE = Taint("node.kubernetes.io/out-of-service", "NoExecute", "nodeshutdown")

# Taints the node lifecycle controller owns ("Taint Nodes by Condition",
# pkg/controller/nodelifecycle/node_lifecycle_controller.go); a snapshot never puts them back.
CONTROLLER_TAINTS = frozenset(
    {
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/unschedulable",
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/pid-pressure",
        "node.kubernetes.io/network-unavailable",
        "node.cloudprovider.kubernetes.io/uninitialized",
    }
)
# Annotations the kubelet and controllers maintain themselves.
MANAGED_ANNOTATION_PREFIXES = (
    "node.alpha.kubernetes.io/",
    "volumes.kubernetes.io/",
    "kubeadm.alpha.kubernetes.io/",
    "k8sdr.io/",
)


class NodeFaultError(FaultError):
    """A node fault could not be made or undone; names the node and why."""

    def __init__(self, node: str, action: str, reason: str) -> None:
        super().__init__(f"cannot {action} node {node!r}: {reason}")
        self.node = node
        self.action = action
        self.reason = reason


@dataclass(frozen=True)
class NodeSnapshot:
    """What an operator set by hand on a node, to put back after it re-registers."""

    name: str
    uid: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    taints: tuple[Taint, ...]
    unschedulable: bool
    internal_ip: str | None

    @classmethod
    def of(cls, node: NodeView) -> NodeSnapshot:
        """Snapshot a node's hand-set state (controller-managed taints and annotations left out)."""
        return cls(
            name=node.name,
            uid=node.uid,
            labels=dict(node.labels),
            annotations={
                k: v
                for k, v in node.annotations.items()
                if not k.startswith(MANAGED_ANNOTATION_PREFIXES)
            },
            taints=tuple(t for t in node.taints if t.key not in CONTROLLER_TAINTS),
            unschedulable=node.unschedulable,
            internal_ip=node.internal_ip,
        )

    def to_json(self) -> dict[str, Any]:
        """The snapshot as JSON (for journals and reports)."""
        return {
            "name": self.name,
            "uid": self.uid,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "taints": [t.to_json() for t in self.taints],
            "unschedulable": self.unschedulable,
            "internalIP": self.internal_ip,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> NodeSnapshot:
        """Build from `to_json`'s output."""
        return cls(
            name=str(raw["name"]),
            uid=str(raw.get("uid", "")),
            labels=dict(raw.get("labels") or {}),
            annotations=dict(raw.get("annotations") or {}),
            taints=tuple(Taint.from_json(t) for t in raw.get("taints") or []),
            unschedulable=bool(raw.get("unschedulable")),
            internal_ip=raw.get("internalIP"),
        )

    def differences(self, node: NodeView) -> list[str]:
        """What `node` lacks of this snapshot, one line each (empty when it matches)."""
        missing = []
        for key, value in sorted(self.labels.items()):
            if node.labels.get(key) != value:
                missing.append(f"label {key}={value} (has {node.labels.get(key)!r})")
        for key, value in sorted(self.annotations.items()):
            if node.annotations.get(key) != value:
                missing.append(f"annotation {key}")
        have = {(t.key, t.value, t.effect) for t in node.taints}
        for taint in self.taints:
            if (taint.key, taint.value, taint.effect) not in have:
                missing.append(f"taint {taint}")
        if node.unschedulable != self.unschedulable:
            missing.append(f"unschedulable={self.unschedulable} (has {node.unschedulable})")
        return missing


# -- disruption kinds: each undone from its record alone ---------------------------------------


class _NodeDisruption(Disruption):
    needs_cluster: ClassVar[bool] = True
    node: str

    def _cluster(self, env: UndoEnv) -> Cluster:
        return env.require_cluster(f"undoing {self.kind} of node {self.node}")


@disruption_kind
@dataclass(frozen=True)
class Cordoned(_NodeDisruption):
    """The node was cordoned; undone by uncordoning it."""

    kind = "cordon"
    node: str

    def summary(self) -> str:
        """``cordon node NODE``."""
        return f"cordon node {self.node}"

    def undoing(self) -> str:
        """``uncordon NODE``."""
        return f"uncordon {self.node}"

    def undo(self, env: UndoEnv) -> None:
        """Mark the node schedulable (a Node that is gone is left to its relabel)."""
        set_unschedulable(self._cluster(env), self.node, False)


@disruption_kind
@dataclass(frozen=True)
class Uncordoned(_NodeDisruption):
    """A cordoned node was uncordoned; undone by cordoning it again."""

    kind = "uncordon"
    node: str

    def summary(self) -> str:
        """``uncordon node NODE``."""
        return f"uncordon node {self.node}"

    def undoing(self) -> str:
        """``cordon NODE again``."""
        return f"cordon {self.node} again"

    def undo(self, env: UndoEnv) -> None:
        """Mark the node unschedulable again."""
        set_unschedulable(self._cluster(env), self.node, True)


@disruption_kind
@dataclass(frozen=True)
class Tainted(_NodeDisruption):
    """A taint was added to the node; undone by removing it."""

    kind = "taint"
    node: str
    taint: dict[str, Any]

    def summary(self) -> str:
        """``taint node NODE with KEY=VALUE:EFFECT``."""
        return f"taint node {self.node} with {Taint.from_json(self.taint)}"

    def undoing(self) -> str:
        """``remove taint T from NODE``."""
        return f"remove taint {Taint.from_json(self.taint)} from {self.node}"

    def undo(self, env: UndoEnv) -> None:
        """Remove the taint, keeping whatever else the node carries."""
        edit_taints(self._cluster(env), self.node, drop=[Taint.from_json(self.taint)])


@disruption_kind
@dataclass(frozen=True)
class OutOfService(Tainted):
    """The out-of-service taint was applied (non-graceful shutdown); undone by removing it."""

    kind = "out-of-service"


@disruption_kind
@dataclass(frozen=True)
class Untainted(_NodeDisruption):
    """Taints were removed from the node; undone by putting them back."""

    kind = "untaint"
    node: str
    taints: list[dict[str, Any]]

    def _taints(self) -> list[Taint]:
        return [Taint.from_json(t) for t in self.taints]

    def summary(self) -> str:
        """``remove T1, T2 from node NODE``."""
        return f"remove {', '.join(map(str, self._taints()))} from node {self.node}"

    def undoing(self) -> str:
        """``taint NODE with T1, T2 again``."""
        return f"taint {self.node} with {', '.join(map(str, self._taints()))} again"

    def undo(self, env: UndoEnv) -> None:
        """Put the taints back."""
        edit_taints(self._cluster(env), self.node, add=self._taints())


@disruption_kind
@dataclass(frozen=True)
class Isolated(_NodeDisruption):
    """The Node object was deleted; undone by putting its snapshot back once it re-registers.

    A node re-registers when its machine restarts, so an older fault of the node's machine is
    undone first (`after`); then the undo waits for the Node, up to the env's rejoin timeout.
    """

    kind = "isolate"
    after = frozenset({"machine"})
    node: str
    snapshot: dict[str, Any]

    def summary(self) -> str:
        """``delete the Node NODE (isolate; ...)``."""
        return f"delete the Node {self.node} (isolate; its labels and taints are saved)"

    def undoing(self) -> str:
        """``put back labels/taints of isolated node NODE``."""
        return f"put back labels/taints of isolated node {self.node}"

    def undo(self, env: UndoEnv) -> None:
        """Wait for the node to exist again, then add what it lacks of the snapshot."""
        cluster = self._cluster(env)
        snap = NodeSnapshot.from_json(self.snapshot)
        if cluster.get_raw("nodes", snap.name) is None:
            cluster.wait_node(
                snap.name,
                lambda n: n is not None,
                timeout=env.rejoin_timeout,
                description="to re-register after isolation",
            )
        apply_snapshot(cluster, snap)


def set_unschedulable(cluster: Cluster, name: str, value: bool) -> None:
    """Set a node's cordon as it is (no checks); a Node that is gone is left alone."""
    if cluster.get_raw("nodes", name) is None:
        return  # the Node is gone; a re-registered one is restored by relabel
    cluster.call(cluster.core.patch_node, name, {"spec": {"unschedulable": value or None}})


def edit_taints(
    cluster: Cluster, name: str, *, add: Sequence[Taint] = (), drop: Sequence[Taint] = ()
) -> None:
    """Add and remove taints, keeping whatever the controllers set meanwhile.

    The whole list is written with a JSON merge patch guarded by the resourceVersion read, so
    a taint the node lifecycle controller adds in between is never lost: a 409 re-reads.
    A Node that no longer exists is left alone (a re-registered one is restored by relabel).
    """
    gone = {(t.key, t.effect) for t in drop}
    for _ in range(10):
        raw = cluster.get_raw("nodes", name)
        if raw is None:
            return
        node = NodeView.from_json(raw)
        kept = [t for t in node.taints if (t.key, t.effect) not in gone]
        have = {(t.key, t.effect) for t in kept}
        wanted = kept + [t for t in add if (t.key, t.effect) not in have]
        if wanted == list(node.taints):
            return
        patch = {
            "metadata": {"resourceVersion": raw["metadata"]["resourceVersion"]},
            "spec": {"taints": [t.to_json() for t in wanted] or None},
        }
        try:
            cluster.call(
                cluster.core.patch_node,
                name,
                patch,
                _content_type="application/merge-patch+json",
                _preload_content=False,
            )
            return
        except Conflict:
            continue
    raise NodeFaultError(name, "change the taints of", "kept conflicting with other writers")


def apply_snapshot(cluster: Cluster, snap: NodeSnapshot) -> None:
    """Add to an existing node what it lacks of a snapshot (labels the kubelet set stay)."""
    node = cluster.node(snap.name)
    labels = {k: v for k, v in snap.labels.items() if node.labels.get(k) != v}
    annotations = {k: v for k, v in snap.annotations.items() if node.annotations.get(k) != v}
    body: dict[str, Any] = {}
    if labels or annotations:
        body["metadata"] = {}
        if labels:
            body["metadata"]["labels"] = labels
        if annotations:
            body["metadata"]["annotations"] = annotations
    if node.unschedulable != snap.unschedulable:
        body["spec"] = {"unschedulable": snap.unschedulable or None}
    if body:
        cluster.call(cluster.core.patch_node, snap.name, body)
    edit_taints(cluster, snap.name, add=snap.taints)


@dataclass
class DrainReport:
    """What a drain did: pods evicted, pods skipped and why, 429 retries, how long it took."""

    node: str
    evicted: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    retries: int = 0
    seconds: float = 0.0


def default_protection(node: NodeView) -> str | None:
    """Why a node may not be disrupted by default: control-plane nodes are protected."""
    for label in CONTROL_PLANE_LABELS:
        if label in node.labels:
            return f"it is a control-plane node (label {label}); pass allow_control_plane=True"
    return None


class NodeFaults:
    """Faults made to nodes through the API, each undone by the test's undo stack."""

    def __init__(
        self,
        cluster: Cluster,
        undo: UndoStack,
        *,
        allow_control_plane: bool = False,
        protected: Callable[[NodeView], str | None] | None = None,
        eviction_retry_interval: float = 5.0,
        rejoin_timeout: float = 120.0,
    ) -> None:
        self.cluster = cluster
        self.undo = undo
        self.allow_control_plane = allow_control_plane
        self.protected = protected
        # kubectl drain retries an eviction a PDB refused after 5s
        # (staging/src/k8s.io/kubectl/pkg/drain/drain.go).
        self.eviction_retry_interval = eviction_retry_interval
        self.rejoin_timeout = rejoin_timeout
        self._env = UndoEnv(cluster=cluster, rejoin_timeout=rejoin_timeout)

    # ------------------------------------------------------------------ checks

    def _target(self, name: str, action: str, *, must_be_ready: bool = False) -> NodeView:
        try:
            node = self.cluster.node(name)
        except FaultError:
            raise
        except Exception as exc:
            raise NodeFaultError(name, action, str(exc)) from exc
        reasons = []
        if not self.allow_control_plane:
            reasons.append(default_protection(node))
        if self.protected:
            reasons.append(self.protected(node))
        for reason in reasons:
            if reason:
                raise NodeFaultError(name, action, f"it is protected: {reason}")
        if must_be_ready and node.ready != "True":
            raise NodeFaultError(
                name, action, f"it is already down (Ready={node.ready}); nothing would be drained"
            )
        return node

    # ------------------------------------------------------------------ cordon

    def cordon(self, name: str) -> NodeView:
        """Mark the node unschedulable (as `kubectl cordon`); undone by uncordoning."""
        node = self._target(name, "cordon")
        if not node.unschedulable:
            self.undo.push(Cordoned(name), self._env)
        set_unschedulable(self.cluster, name, True)
        return self.cluster.node(name)

    def uncordon(self, name: str) -> NodeView:
        """Mark the node schedulable again; undone by cordoning it back if it was cordoned."""
        node = self._target(name, "uncordon")
        if node.unschedulable:
            self.undo.push(Uncordoned(name), self._env)
        set_unschedulable(self.cluster, name, False)
        return self.cluster.node(name)

    # ------------------------------------------------------------------ drain

    def drain(
        self,
        name: str,
        *,
        timeout: float = 120.0,
        ignore_daemonsets: bool = True,
        delete_emptydir_data: bool = False,
        force: bool = False,
        grace_period: int | None = None,
        allow_unready: bool = False,
    ) -> DrainReport:
        """Cordon and evict the node's pods as `kubectl drain` does, and wait until they are gone.

        Filters (staging/src/k8s.io/kubectl/pkg/drain/filters.go), checked before anything is
        touched: DaemonSet pods are skipped (an error unless `ignore_daemonsets`), mirror pods are
        skipped, pods with emptyDir need `delete_emptydir_data`, pods without a controller need
        `force`. A PDB's 429 is retried every `eviction_retry_interval` until `timeout`.
        """
        self._target(name, "drain", must_be_ready=not allow_unready)
        started = time.monotonic()
        report = DrainReport(name)
        pods = self.cluster.pods(node=name)
        to_evict: list[PodView] = []
        errors: list[str] = []
        for pod in pods:
            finished = pod.phase in ("Succeeded", "Failed")
            annotations = pod.raw["metadata"].get("annotations") or {}
            if "kubernetes.io/config.mirror" in annotations:
                report.skipped[pod.key] = "mirror pod"
                continue
            if pod.owner and pod.owner[0] == "DaemonSet" and not finished:
                if ignore_daemonsets:
                    report.skipped[pod.key] = "DaemonSet-managed"
                    continue
                errors.append(f"{pod.key} is managed by a DaemonSet (use ignore_daemonsets)")
                continue
            volumes = (pod.raw.get("spec") or {}).get("volumes") or []
            if not finished and any("emptyDir" in v for v in volumes) and not delete_emptydir_data:
                errors.append(f"{pod.key} uses emptyDir (use delete_emptydir_data)")
                continue
            if pod.owner is None and not finished and not force:
                errors.append(f"{pod.key} is not managed by a controller (use force)")
                continue
            to_evict.append(pod)
        if errors:
            raise NodeFaultError(name, "drain", "; ".join(errors))
        self.cordon(name)
        deadline = started + timeout
        pending = {p.key: p for p in to_evict}
        while pending:
            for key, pod in list(pending.items()):
                outcome = self._evict(pod, grace_period)
                if outcome == "evicted":
                    report.evicted.append(key)
                    del pending[key]
                elif outcome == "gone":
                    del pending[key]
                else:
                    report.retries += 1
            if pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    blocked = ", ".join(sorted(pending))
                    raise NodeFaultError(
                        name,
                        "drain",
                        f"a PodDisruptionBudget blocked evictions for {timeout:.0f}s: {blocked}",
                    )
                _sleep_until(min(self.eviction_retry_interval, remaining))
        uids = {p.key: p.uid for p in to_evict}

        def gone(s: Any) -> Satisfied[None] | None:
            left = any(uids.get(k) == o["metadata"].get("uid") for k, o in s.objects.items())
            return None if left else Satisfied(None, f"the evicted pods left node {name}")

        def left(s: Any) -> str:
            return "still on the node: " + ", ".join(
                PodView.from_json(o).describe()
                for k, o in s.objects.items()
                if uids.get(k) == o["metadata"].get("uid")
            )

        remaining = max(0.1, deadline - time.monotonic())
        self.cluster.wait(
            "pods",
            gone,
            timeout=remaining,
            description=f"evicted pods to leave node {name}",
            field_selector=f"spec.nodeName={name}",
            explain=left,
        )
        report.seconds = time.monotonic() - started
        return report

    def _evict(self, pod: PodView, grace_period: int | None) -> str:
        try:
            return self.cluster.evict(pod, grace_period=grace_period)
        except ApiError as exc:
            raise NodeFaultError(pod.node or "?", "drain", f"eviction of {pod.key}: {exc}") from exc

    # ------------------------------------------------------------------ taints

    def taint(self, name: str, taint: Taint) -> NodeView:
        """Add a taint; undone by removing it."""
        return self._taint(name, taint, Tainted(name, taint.to_json()))

    def _taint(self, name: str, taint: Taint, disruption: Tainted) -> NodeView:
        node = self._target(name, f"taint {taint}")
        if node.has_taint(taint.key, taint.effect):
            return node
        self.undo.push(disruption, self._env)
        edit_taints(self.cluster, name, add=[taint])
        return self.cluster.node(name)

    def untaint(self, name: str, key: str, effect: str | None = None) -> NodeView:
        """Remove a taint; undone by putting it back."""
        node = self._target(name, f"untaint {key}")
        removed = [t for t in node.taints if t.key == key and effect in (None, t.effect)]
        if removed:
            self.undo.push(Untainted(name, [t.to_json() for t in removed]), self._env)
            edit_taints(self.cluster, name, drop=removed)
        return self.cluster.node(name)

    def out_of_service(self, name: str) -> NodeView:
        """Apply `node.kubernetes.io/out-of-service=nodeshutdown:NoExecute` (non-graceful shutdown).

        Docs "Node Shutdowns": only for a node that is really off; the operator removes the taint
        once the node is back. Undone by removing it.
        """
        node = self._target(name, "mark out-of-service")
        if node.ready == "True":
            raise NodeFaultError(
                name,
                "mark out-of-service",
                "it is Ready; the out-of-service taint is only for a node that is really shut down",
            )
        return self._taint(name, OUT_OF_SERVICE, OutOfService(name, OUT_OF_SERVICE.to_json()))

    # ------------------------------------------------------------------ isolate / relabel

    def snapshot(self, name: str) -> NodeSnapshot:
        """Record a node's hand-set labels, annotations, taints and cordon."""
        return NodeSnapshot.of(self.cluster.node(name))

    def isolate(self, name: str) -> NodeSnapshot:
        """Delete the Node object (`kubectl delete node`), after snapshotting what was set by hand.

        Undo: once the node has re-registered (its machine restarted), put the snapshot back;
        an older fault of its machine is undone first, then the undo waits for the node, up to
        `rejoin_timeout`.
        """
        node = self._target(name, "isolate")
        snap = NodeSnapshot.of(node)
        self.undo.push(Isolated(name, snap.to_json()), self._env)
        with contextlib.suppress(NotFound):  # already gone: isolated all the same
            self.cluster.call(self.cluster.core.delete_node, name, _preload_content=False)
        return snap

    def relabel(self, snapshot: NodeSnapshot, *, timeout: float | None = None) -> NodeView:
        """Put a snapshot's labels, annotations, taints and cordon back on its node.

        Waits for the node to exist (it may still be re-registering). Only adds what is missing:
        labels the kubelet set on re-registration stay.
        """
        self.cluster.wait_node(
            snapshot.name,
            lambda n: n is not None,
            timeout=self.rejoin_timeout if timeout is None else timeout,
            description="to exist before relabelling",
        )
        apply_snapshot(self.cluster, snapshot)
        return self.cluster.node(snapshot.name)


def _sleep_until(seconds: float) -> None:
    """Wait between eviction rounds without a busy loop (an Event nobody sets)."""
    threading.Event().wait(seconds)


def dumps(snapshot: NodeSnapshot) -> str:
    """A snapshot as JSON, for journals and reports."""
    return json.dumps(snapshot.to_json(), sort_keys=True)
