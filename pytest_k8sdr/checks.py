"""Checks that the cluster healed itself; each watch-driven, each with an explicit timeout.

A failed check raises `ClusterCheckFailed` (an AssertionError) saying what is left: which pods,
on which node, in which state.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pytest_k8sdr.cluster import JSON, Cluster, NodeView, PodView, Snapshot, WaitResult
from pytest_k8sdr.errors import ClusterCheckFailed
from pytest_k8sdr.faults.node import NodeSnapshot
from pytest_k8sdr.lb.checks import assert_lb_drained, assert_lb_restored
from pytest_k8sdr.workloads import Workload

__all__ = [
    "PodHistory",
    "assert_endpoints_exclude_node",
    "assert_lb_drained",
    "assert_lb_restored",
    "assert_no_split_brain",
    "assert_node_isolated",
    "assert_node_rejoined",
    "assert_node_unreachable",
    "assert_pods_rescheduled",
    "assert_rebalanced",
]


def _pod_lines(pods: Iterable[PodView]) -> str:
    lines = [f"  {p.describe()}" for p in sorted(pods, key=lambda p: p.key)]
    return "\n".join(lines) or "  (no pods)"


# PodHistory watches running, by id (the dataclass is unhashable).
_RUNNING: dict[int, PodHistory] = {}
_RUNNING_LOCK = threading.Lock()


def assert_pods_rescheduled(
    workload: Workload,
    *,
    away_from: str,
    timeout: float = 120.0,
    replaced_uids: Iterable[str] | None = None,
) -> WaitResult[list[PodView]]:
    """All replicas Ready, none on `away_from`, the pods that were there replaced (new UIDs).

    `replaced_uids` are the UIDs that must not be among the Ready replicas; by default, those
    of the workload's pods on `away_from` when the check starts.
    """
    __tracebackhide__ = True
    cluster = workload.cluster
    if replaced_uids is None:
        replaced_uids = [p.uid for p in workload.pods() if p.node == away_from]
    old = set(replaced_uids)

    def healed(s: Snapshot[PodView]) -> list[PodView] | None:
        live = [p for p in s.values() if p.ready and not p.deleting and p.phase == "Running"]
        if len(live) < workload.replicas:
            return None
        if any(p.node == away_from or p.uid in old for p in live):
            return None
        return live

    def explain(s: Snapshot[PodView]) -> str:
        pods = list(s.values())
        return (
            f"want {workload.replicas} Ready replicas of {workload.kind} "
            f"{workload.namespace}/{workload.name}, none on {away_from} and none of the "
            f"{len(old)} old pod(s); pods now:\n{_pod_lines(pods)}"
        )

    return cluster.wait(
        "pods",
        healed,
        timeout=timeout,
        description=f"{workload.kind} {workload.name} to be rescheduled away from {away_from}",
        namespace=workload.namespace,
        label_selector=workload.selector,
        explain=explain,
        count=lambda s: (
            sum(
                1
                for p in s.values()
                if p.ready and not p.deleting and p.node != away_from and p.uid not in old
            ),
            workload.replicas,
        ),
        project=PodView.slim,
    )


def assert_endpoints_exclude_node(
    cluster: Cluster,
    namespace: str,
    service: str,
    node: str,
    *,
    timeout: float = 60.0,
    min_ready: int = 1,
) -> WaitResult[list[JSON]]:
    """The Service's ready endpoints name no pod on `node`, and at least `min_ready` remain."""
    __tracebackhide__ = True

    def ready_endpoints(s: Snapshot[JSON]) -> list[JSON]:
        return [
            ep
            for sl in s.values()
            for ep in sl.get("endpoints") or []
            if (ep.get("conditions") or {}).get("ready")
        ]

    def holds(s: Snapshot[JSON]) -> list[JSON] | None:
        ready = ready_endpoints(s)
        if any(ep.get("nodeName") == node for ep in ready) or len(ready) < min_ready:
            return None
        return ready

    def explain(s: Snapshot[JSON]) -> str:
        lines = [
            f"  {ep.get('addresses')} on {ep.get('nodeName')} conditions={ep.get('conditions')}"
            for sl in s.values()
            for ep in sl.get("endpoints") or []
        ]
        return f"endpoints of {namespace}/{service}:\n" + ("\n".join(lines) or "  (none)")

    return cluster.wait(
        "endpointslices",
        holds,
        timeout=timeout,
        description=f"endpoints of {namespace}/{service} to exclude node {node}",
        namespace=namespace,
        label_selector=f"kubernetes.io/service-name={service}",
        explain=explain,
    )


def assert_node_unreachable(
    cluster: Cluster, node: str, *, timeout: float = 120.0
) -> WaitResult[NodeView | None]:
    """The node turned Ready=Unknown and carries the unreachable NoExecute taint."""
    __tracebackhide__ = True
    return cluster.wait_node(
        node,
        lambda n: (
            n is not None
            and n.ready == "Unknown"
            and n.has_taint("node.kubernetes.io/unreachable", "NoExecute")
        ),
        timeout=timeout,
        description="to be Unknown with the unreachable:NoExecute taint",
    )


def assert_node_isolated(
    cluster: Cluster, node: str, *, timeout: float = 120.0
) -> WaitResult[bool]:
    """The Node object is gone and so are the pods bound to it (pod GC)."""
    __tracebackhide__ = True
    cluster.wait_node_gone(node, timeout=timeout)

    def explain(s: Snapshot[PodView]) -> str:
        return f"pods still bound to {node}:\n{_pod_lines(s.values())}"

    result: WaitResult[bool] = cluster.wait(
        "pods",
        lambda s: not s.objects,
        timeout=timeout,
        description=f"pods bound to deleted node {node} to be garbage-collected",
        project=PodView.slim,
        field_selector=f"spec.nodeName={node}",
        explain=explain,
    )
    return result


def assert_node_rejoined(
    cluster: Cluster,
    node: str,
    *,
    like: NodeSnapshot | None = None,
    timeout: float = 120.0,
) -> WaitResult[NodeView | None]:
    """The node is Ready and schedulable, carrying the labels and taints of `like`."""
    __tracebackhide__ = True

    def holds(n: NodeView | None) -> bool:
        if n is None or n.ready != "True":
            return False
        if like is not None:
            return not like.differences(n)
        return not n.unschedulable

    try:
        return cluster.wait_node(
            node, holds, timeout=timeout, description="to rejoin Ready with its labels and taints"
        )
    except ClusterCheckFailed as exc:
        raw = cluster.get_raw("nodes", node)
        if raw is not None and like is not None:
            missing = "\n".join(f"  {m}" for m in like.differences(NodeView.from_json(raw)))
            raise ClusterCheckFailed(f"{exc}\nmissing since the snapshot:\n{missing}") from None
        raise


def assert_rebalanced(
    workload: Workload, *, max_skew: int = 1, nodes: Iterable[str] | None = None
) -> dict[str, int]:
    """Live pods are spread over `nodes` (default: Ready, schedulable, untainted) within a skew."""
    __tracebackhide__ = True
    if nodes is None:
        nodes = [
            n.name
            for n in workload.cluster.nodes()
            if n.ready == "True"
            and not n.unschedulable
            and not any(t.effect in ("NoSchedule", "NoExecute") for t in n.taints)
        ]
    eligible = sorted(nodes)
    placement = workload.placement()
    counts = {n: placement.get(n, 0) for n in eligible}
    skew = max(counts.values()) - min(counts.values()) if counts else 0
    elsewhere = {n: c for n, c in placement.items() if n not in counts}
    if skew > max_skew or elsewhere:
        raise ClusterCheckFailed(
            f"{workload.kind} {workload.name} is not rebalanced: skew {skew} > {max_skew} "
            f"over {counts}" + (f"; pods on other nodes: {elsewhere}" if elsewhere else "")
        )
    return counts


def running_histories() -> list[PodHistory]:
    """The PodHistory watches started and not yet stopped.

    The plugin stops those a test started when the test ends, pass or fail: a watch thread
    left running outlives the cluster and, at interpreter exit, can abort the process while
    it logs its reconnection attempts.
    """
    with _RUNNING_LOCK:
        return list(_RUNNING.values())


@dataclass
class PodHistory:
    """Records, from a watch, when each pod UID was Running; run it around an experiment.

    `identity` of a pod is its name (a StatefulSet identity) unless `label` names a label.
    """

    cluster: Cluster
    namespace: str
    label_selector: str | None = None
    label: str | None = None
    running: dict[str, dict[str, list[datetime | None]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    errors: list[BaseException] = field(default_factory=list)

    def _identity(self, obj: JSON) -> str:
        meta = obj["metadata"]
        if self.label:
            return str((meta.get("labels") or {}).get(self.label, meta["name"]))
        return str(meta["name"])

    def _record(self, etype: str, obj: JSON) -> None:
        now = datetime.now(UTC)
        ident, uid = self._identity(obj), obj["metadata"].get("uid", "")
        phase = (obj.get("status") or {}).get("phase")
        spans = self.running[ident]
        if etype != "DELETED" and phase == "Running" and uid not in spans:
            spans[uid] = [now, None]
        ended = etype == "DELETED" or phase in ("Succeeded", "Failed")
        if ended and uid in spans and spans[uid][1] is None:
            spans[uid][1] = now

    def start(self) -> PodHistory:
        """Start watching in the background (the plugin stops it when the test ends)."""

        def run() -> None:
            try:
                self.cluster.wait(
                    "pods",
                    lambda s: True if self._stop.is_set() else None,
                    timeout=24 * 3600,
                    description="pod history",
                    namespace=self.namespace,
                    label_selector=self.label_selector,
                    on_event=self._record,
                    recheck_every=1.0,
                )
            except BaseException as exc:  # reported by assert_no_split_brain
                self.errors.append(exc)

        self._thread = threading.Thread(target=run, name="k8sdr-pod-history", daemon=True)
        with _RUNNING_LOCK:
            _RUNNING[id(self)] = self
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (within about a second); idempotent."""
        self._stop.set()
        with _RUNNING_LOCK:
            _RUNNING.pop(id(self), None)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def overlaps(self) -> list[str]:
        """Identities that had two UIDs Running at the same time, described."""
        found = []
        for ident, spans in sorted(self.running.items()):
            ordered = sorted(spans.items(), key=lambda kv: kv[1][0] or datetime.min)
            for (uid_a, (_, end_a)), (uid_b, (start_b, _)) in itertools.pairwise(ordered):
                if start_b is not None and (end_a is None or end_a > start_b):
                    found.append(
                        f"{ident}: uid {uid_a[:8]} still Running when uid {uid_b[:8]} "
                        f"started at {start_b.isoformat()}"
                    )
        return found


def assert_no_split_brain(history: PodHistory) -> None:
    """No identity ever had two pods Running at once, judged from the watch history."""
    __tracebackhide__ = True
    if history.errors:
        raise ClusterCheckFailed(f"pod history watch failed: {history.errors[0]}")
    overlaps = history.overlaps()
    if overlaps:
        raise ClusterCheckFailed("split brain:\n" + "\n".join(f"  {o}" for o in overlaps))


def spread(pods: Iterable[PodView]) -> dict[str, int]:
    """Live pods per node."""
    return dict(Counter(p.node or "<unscheduled>" for p in pods if not p.deleting))
