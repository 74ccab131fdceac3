"""The node is alive but unreachable: a network partition, or a frozen kubelet."""

from __future__ import annotations

import pytest

from pytest_k8sdr import checks


@pytest.mark.disruptive
@pytest.mark.parametrize("fault", ["partition", "freeze"])
def test_unreachable_node_is_healed_without_split_brain(
    fault, cluster, make_workload, machines, runbook
):
    db = make_workload("db", kind="StatefulSet", replicas=3, service=None)
    web = make_workload("web", replicas=4)
    history = checks.PodHistory(cluster, db.namespace, label_selector=db.selector).start()
    victim = web.busiest_node()
    machine = machines[victim]

    with runbook.phase("fail"):
        machine.partition() if fault == "partition" else machine.freeze()
        runbook.mark("node unreachable", checks.assert_node_unreachable(cluster, victim))
    with runbook.phase("self-heal"):
        runbook.mark("replicas Ready", checks.assert_pods_rescheduled(web, away_from=victim))
    with runbook.phase("restore"):
        machine.heal() if fault == "partition" else machine.thaw()
        runbook.mark("node Ready", checks.assert_node_rejoined(cluster, victim))
        db.wait_ready(timeout=60)
    history.stop()
    checks.assert_no_split_brain(history)
