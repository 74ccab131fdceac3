"""The operator isolates a dead node: pods are released and a StatefulSet identity moves.

Isolating a node (deleting its Node, or the out-of-service taint) is only safe once its machine
is really down: a machine that still runs (cut off from the API server, or with a frozen
kubelet) keeps its pods serving, and once their Pod objects are gone the StatefulSet starts each
identity again elsewhere, so two pods answer as one (a split brain). Here the machine is killed
or powered off first, and `assert_no_split_brain` asks the old pods' own addresses.
"""

from __future__ import annotations

import pytest

from pytest_k8sdr import (
    assert_no_split_brain,
    assert_node_isolated,
    assert_node_rejoined,
    assert_node_unreachable,
    assert_pods_rescheduled,
    pod_history,
)


@pytest.mark.disruptive
def test_deleting_the_node_releases_the_statefulset(
    cluster, make_workload, machines, node_faults, runbook
):
    db = make_workload("db", kind="StatefulSet", replicas=3, service=None)
    victim = db.busiest_node()

    with pod_history(db):
        with runbook.phase("fail"):
            machines[victim].kill()  # really down before it is isolated
            assert_node_unreachable(cluster, victim)
        with runbook.phase("isolate"):
            snapshot = node_faults.isolate(victim)  # labels and taints saved, Node deleted
            assert_node_isolated(cluster, victim)
        with runbook.phase("self-heal"):
            assert_pods_rescheduled(db, away_from=victim)
    assert_no_split_brain(db)

    with runbook.phase("restore"):
        machines[victim].start()
        assert_node_rejoined(cluster, victim)
    with runbook.phase("relabel"):
        node_faults.relabel(snapshot)
        assert_node_rejoined(cluster, victim, like=snapshot)


@pytest.mark.disruptive
def test_out_of_service_taint_recovers_a_powered_off_node(
    cluster, make_workload, machines, node_faults, undo, runbook
):
    db = make_workload("db", kind="StatefulSet", replicas=3, service=None)
    victim = db.busiest_node()

    with runbook.phase("fail"):
        machines[victim].stop()  # power off: a non-graceful shutdown, really down
        assert_node_unreachable(cluster, victim)

    # The out-of-service taint is removed when this block ends, after the node is back.
    with undo.context():
        with runbook.phase("isolate"):
            node_faults.out_of_service(victim)
        with runbook.phase("self-heal"):
            assert_pods_rescheduled(db, away_from=victim)
        with runbook.phase("restore"):
            machines[victim].start()
            assert_node_rejoined(cluster, victim)
