"""The node is alive but unreachable: a network partition, or a frozen kubelet.

The node is not isolated: its machine still runs, so deleting its Node would let the
StatefulSet start its identities again elsewhere while the old pods keep serving (a split
brain; test_isolation.py isolates only a node that is really down).
"""

from __future__ import annotations

import pytest

from pytest_k8sdr import (
    assert_no_split_brain,
    assert_node_rejoined,
    assert_node_unreachable,
    assert_pods_rescheduled,
    pod_history,
)


@pytest.mark.disruptive
@pytest.mark.parametrize("fault", ["partition", "freeze"])
def test_unreachable_node_is_healed_without_split_brain(
    fault, cluster, make_workload, machines, runbook
):
    db = make_workload("db", kind="StatefulSet", replicas=3, service=None)
    web = make_workload("web", replicas=4)
    victim = web.busiest_node()
    machine = machines[victim]

    with pod_history(db):
        with runbook.phase("fail"):
            machine.partition() if fault == "partition" else machine.freeze()
            assert_node_unreachable(cluster, victim)
        with runbook.phase("self-heal"):
            assert_pods_rescheduled(web, away_from=victim)
        with runbook.phase("restore"):
            machine.heal() if fault == "partition" else machine.thaw()
            assert_node_rejoined(cluster, victim)
            db.wait_ready()
    assert_no_split_brain(db)
