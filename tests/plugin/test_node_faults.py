"""Node faults and their undo, on the simulated cluster (never a mocked client)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_k8sdr import Cluster, NotFound, Taint, UndoStack
from pytest_k8sdr.faults.node import NodeFaultError, NodeFaults
from pytest_k8sdr.workloads import Workload

WORKER = "k8sdr-worker"
WORKER2 = "k8sdr-worker2"
CONTROL_PLANE = "k8sdr-control-plane"


def writes(cluster: Cluster) -> int:
    return cluster.requests


def test_cordon_and_its_undo(cluster: Cluster) -> None:
    stack = UndoStack()
    faults = NodeFaults(cluster, stack)
    node = faults.cordon(WORKER)
    assert node.unschedulable
    # The node lifecycle controller adds the unschedulable taint (upstream: within 0.1s).
    cluster.wait_node(
        WORKER,
        lambda n: n is not None and n.has_taint("node.kubernetes.io/unschedulable", "NoSchedule"),
        timeout=5,
        description="to get the unschedulable taint",
    )
    stack.unwind()
    after = cluster.wait_node(
        WORKER,
        lambda n: (
            n is not None
            and not n.unschedulable
            and not n.has_taint("node.kubernetes.io/unschedulable")
        ),
        timeout=5,
        description="to be schedulable again",
    )
    assert after.value is not None


def test_unknown_node_is_refused_naming_it_and_touching_nothing(cluster: Cluster) -> None:
    faults = NodeFaults(cluster, UndoStack())
    before = {n.name: (n.unschedulable, n.taints) for n in cluster.nodes()}
    for action in (faults.cordon, faults.drain, faults.isolate):
        with pytest.raises((NodeFaultError, NotFound), match="k8sdr-wroker"):
            action("k8sdr-wroker")
    assert len(faults.undo) == 0
    assert {n.name: (n.unschedulable, n.taints) for n in cluster.nodes()} == before


def test_control_plane_is_protected_unless_allowed(cluster: Cluster) -> None:
    stack = UndoStack()
    with pytest.raises(NodeFaultError, match="control-plane node"):
        NodeFaults(cluster, stack).cordon(CONTROL_PLANE)
    assert not cluster.node(CONTROL_PLANE).unschedulable
    allowed = NodeFaults(cluster, stack, allow_control_plane=True)
    assert allowed.cordon(CONTROL_PLANE).unschedulable
    stack.unwind()
    assert not cluster.node(CONTROL_PLANE).unschedulable


def test_taint_untaint_and_undo(cluster: Cluster) -> None:
    stack = UndoStack()
    faults = NodeFaults(cluster, stack)
    taint = Taint("example.com/maintenance", "NoSchedule", "true")
    assert faults.taint(WORKER2, taint).has_taint(taint.key, "NoSchedule")
    with stack.context():
        assert not faults.untaint(WORKER2, taint.key).has_taint(taint.key)
    assert cluster.node(WORKER2).has_taint(taint.key, "NoSchedule")
    stack.unwind()
    assert not cluster.node(WORKER2).has_taint(taint.key)


def test_out_of_service_refused_on_a_ready_node(cluster: Cluster) -> None:
    faults = NodeFaults(cluster, UndoStack())
    with pytest.raises(NodeFaultError, match="it is Ready"):
        faults.out_of_service(WORKER)
    assert not cluster.node(WORKER).has_taint("node.kubernetes.io/out-of-service")


def test_drain_evicts_through_the_eviction_api_and_reports(
    cluster: Cluster, make_workload: Callable[..., Workload], namespace: str
) -> None:
    web = make_workload("web", replicas=4)
    victim = web.busiest_node()
    on_victim = {p.key for p in web.pods() if p.node == victim}
    stack = UndoStack()
    report = NodeFaults(cluster, stack, eviction_retry_interval=0.2).drain(victim, timeout=60)
    assert set(report.evicted) == on_victim
    assert cluster.node(victim).unschedulable
    web.wait_ready(timeout=60)
    assert victim not in web.nodes()
    stack.unwind()
    assert not cluster.node(victim).unschedulable


def test_drain_blocked_by_pdb_fails_after_timeout_naming_pods(
    cluster: Cluster, make_workload: Callable[..., Workload], namespace: str
) -> None:
    web = make_workload("guarded", replicas=2)
    cluster.call(
        cluster.policy.create_namespaced_pod_disruption_budget,
        namespace,
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "guarded"},
            "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "guarded"}}},
        },
    )
    victim = web.busiest_node()
    stack = UndoStack()
    faults = NodeFaults(cluster, stack, eviction_retry_interval=0.2)
    with pytest.raises(NodeFaultError, match=r"PodDisruptionBudget blocked evictions.*guarded"):
        faults.drain(victim, timeout=2)
    assert all(not p.deleting for p in web.pods())
    stack.unwind()
    assert not cluster.node(victim).unschedulable


def test_drain_refuses_unmanaged_pods_before_touching_anything(
    cluster: Cluster, namespace: str
) -> None:
    cluster.call(
        cluster.core.create_namespaced_pod,
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "bare"},
            "spec": {"nodeName": WORKER2, "containers": [{"name": "c", "image": "x"}]},
        },
    )
    faults = NodeFaults(cluster, UndoStack())
    with pytest.raises(NodeFaultError, match=f"{namespace}/bare is not managed by a controller"):
        faults.drain(WORKER2)
    assert not cluster.node(WORKER2).unschedulable
    assert len(faults.undo) == 0


def test_isolate_snapshots_and_relabels_after_reregistration(
    cluster: Cluster, k8sdr_backend: object
) -> None:
    sim = k8sdr_backend.sim  # type: ignore[attr-defined]
    victim = "k8sdr-worker3"
    stack = UndoStack()
    faults = NodeFaults(cluster, stack)
    faults.cordon(victim)
    cluster.call(
        cluster.core.patch_node,
        victim,
        {"metadata": {"labels": {"node-role.kubernetes.io/worker": "", "tier": "gold"}}},
    )
    try:
        snap = faults.isolate(victim)
        assert snap.labels["tier"] == "gold"
        assert snap.unschedulable
        cluster.wait_node_gone(victim, timeout=10)
        # A kubelet restart registers a fresh Node: hand labels and the cordon are lost (§5).
        sim.kill_node(victim)
        sim.start_node(victim)
        fresh = cluster.wait_node_ready(victim, timeout=60).value
        assert fresh is not None
        assert fresh.uid != snap.uid
        assert "tier" not in fresh.labels
        assert not fresh.unschedulable
        assert snap.differences(fresh)
        back = faults.relabel(snap)
        assert snap.differences(back) == []
    finally:
        stack.unwind()
        cluster.call(
            cluster.core.patch_node,
            victim,
            {"metadata": {"labels": {"node-role.kubernetes.io/worker": None, "tier": None}}},
        )
    assert not cluster.node(victim).unschedulable
