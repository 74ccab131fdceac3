"""A worker dies: the cluster notices, evicts, reschedules and updates its endpoints."""

from __future__ import annotations

import pytest

from pytest_k8sdr import checks


@pytest.mark.disruptive
def test_worker_loss_is_healed(cluster, make_workload, machines, runbook):
    web = make_workload("web", replicas=6)
    victim = web.busiest_node()

    with runbook.phase("fail"):
        machines[victim].kill()
        runbook.mark("node unreachable", checks.assert_node_unreachable(cluster, victim))

    with runbook.phase("self-heal"):
        runbook.mark(
            "replicas Ready elsewhere", checks.assert_pods_rescheduled(web, away_from=victim)
        )
        runbook.mark(
            "endpoints exclude the node",
            checks.assert_endpoints_exclude_node(cluster, web.namespace, web.service, victim),
        )

    with runbook.phase("restore"):
        machines[victim].start()
        runbook.mark("node Ready", checks.assert_node_rejoined(cluster, victim))
