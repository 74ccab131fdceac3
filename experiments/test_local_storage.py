"""A node holding a StatefulSet replica on local storage dies: the replica waits for the node.

On kind's default StorageClass `standard` (rancher.io/local-path, WaitForFirstConsumer) a
claim's volume is a directory on the node its first pod ran on, and the PersistentVolume is
pinned there by node affinity. Once that node is lost and isolated, the StatefulSet recreates
the replica's pod with the same claim, and the scheduler has nowhere to put it: it stays
Pending ("0/N nodes are available: ... node(s) had volume node affinity conflict") until the
node comes back, or until an operator gives up the data by deleting the claim. The other
replicas serve throughout. On network storage (a class without node affinity) the replica moves.
"""

from __future__ import annotations

import pytest

from pytest_k8sdr import (
    assert_min_available,
    assert_node_isolated,
    assert_node_rejoined,
    assert_node_unreachable,
    assert_pods_rescheduled,
    assert_pods_unschedulable,
    pod_history,
)

# The scheduler's VolumeBinding filter on a node the volume is not pinned to (kubernetes
# pkg/scheduler/framework/plugins/volumebinding/binder.go, ErrReasonNodeConflict).
VOLUME_CONFLICT = "node(s) had volume node affinity conflict"
# A class without node affinity: the simulator's stand-in for network storage.
NETWORK_CLASS = "network"


@pytest.mark.disruptive
def test_a_replica_on_local_storage_waits_for_its_node(
    cluster, make_workload, machines, node_faults, runbook
):
    db = make_workload("db", kind="StatefulSet", replicas=3, service=None, storage_class="standard")
    victim = db.busiest_node()
    stranded = sorted(p.name for p in db.pods() if p.node == victim)

    with pod_history(db):
        with runbook.phase("fail"):
            machines[victim].kill()  # really down before it is isolated
            assert_node_unreachable(cluster, victim)
        with runbook.phase("isolate"):
            snapshot = node_faults.isolate(victim)  # labels and taints saved, Node deleted
            assert_node_isolated(cluster, victim)
        with runbook.phase("self-heal"):
            # Recreated with its claim, but its volume is on the deleted node: Pending.
            pending = assert_pods_unschedulable(db, count=len(stranded), message=VOLUME_CONFLICT)
            assert sorted(p.name for p in pending.value) == stranded
        with runbook.phase("restore"):
            machines[victim].start()
            assert_node_rejoined(cluster, victim)
            back = db.wait_ready()  # the stranded replicas start again, on their volumes' node
            assert sorted(p.name for p in back.value if p.node == victim) == stranded
        # The replicas elsewhere served all along.
        assert_min_available(db, db.replicas - len(stranded))

    with runbook.phase("relabel"):
        node_faults.relabel(snapshot)
        assert_node_rejoined(cluster, victim, like=snapshot)


@pytest.mark.disruptive
def test_a_replica_on_network_storage_moves(cluster, make_workload, machines, node_faults, runbook):
    if cluster.read_path(f"/apis/storage.k8s.io/v1/storageclasses/{NETWORK_CLASS}") is None:
        pytest.skip(f"this cluster has no StorageClass {NETWORK_CLASS!r} (network storage)")
    db = make_workload(
        "db", kind="StatefulSet", replicas=3, service=None, storage_class=NETWORK_CLASS
    )
    victim = db.busiest_node()

    with pod_history(db):
        with runbook.phase("fail"):
            machines[victim].kill()
            assert_node_unreachable(cluster, victim)
        with runbook.phase("isolate"):
            snapshot = node_faults.isolate(victim)
            assert_node_isolated(cluster, victim)
        with runbook.phase("self-heal"):
            # Its volume follows it: the replica runs elsewhere, on the same claim.
            assert_pods_rescheduled(db, away_from=victim)

    with runbook.phase("restore"):
        machines[victim].start()
        assert_node_rejoined(cluster, victim)
    with runbook.phase("relabel"):
        node_faults.relabel(snapshot)
        assert_node_rejoined(cluster, victim, like=snapshot)
