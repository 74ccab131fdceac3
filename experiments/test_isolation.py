"""The operator isolates a dead node: pods are released and a StatefulSet identity moves."""

from __future__ import annotations

import pytest

from pytest_k8sdr import checks


@pytest.mark.disruptive
def test_deleting_the_node_releases_the_statefulset(
    cluster, make_workload, machines, node_faults, runbook
):
    db = make_workload("db", kind="StatefulSet", replicas=3, service=None)
    history = checks.PodHistory(cluster, db.namespace, label_selector=db.selector).start()
    victim = db.busiest_node()

    with runbook.phase("fail"):
        machines[victim].kill()
        runbook.mark("node unreachable", checks.assert_node_unreachable(cluster, victim))

    with runbook.phase("isolate"):
        snapshot = node_faults.isolate(victim)  # labels and taints saved, Node deleted
        runbook.mark("pods garbage-collected", checks.assert_node_isolated(cluster, victim))

    with runbook.phase("self-heal"):
        runbook.mark("identity recreated", checks.assert_pods_rescheduled(db, away_from=victim))
    history.stop()
    checks.assert_no_split_brain(history)

    with runbook.phase("restore"):
        machines[victim].start()
        runbook.mark("node registered", checks.assert_node_rejoined(cluster, victim))

    with runbook.phase("relabel"):
        node_faults.relabel(snapshot)
        checks.assert_node_rejoined(cluster, victim, like=snapshot)


@pytest.mark.disruptive
def test_out_of_service_taint_recovers_a_powered_off_node(
    cluster, make_workload, machines, node_faults, undo, runbook
):
    db = make_workload("db", kind="StatefulSet", replicas=3, service=None)
    victim = db.busiest_node()

    with runbook.phase("fail"):
        machines[victim].stop()  # power off: non-graceful shutdown
        runbook.mark("node unreachable", checks.assert_node_unreachable(cluster, victim))

    # The out-of-service taint is removed when this block ends, after the node is back.
    with undo.context():
        with runbook.phase("isolate"):
            node_faults.out_of_service(victim)
        with runbook.phase("self-heal"):
            runbook.mark("identity recreated", checks.assert_pods_rescheduled(db, away_from=victim))
        with runbook.phase("restore"):
            machines[victim].start()
            runbook.mark("node Ready", checks.assert_node_rejoined(cluster, victim))
