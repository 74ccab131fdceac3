"""A worker dies: the cluster notices, evicts, reschedules and updates its endpoints."""

from __future__ import annotations

import pytest

from pytest_k8sdr import (
    assert_endpoints_exclude_node,
    assert_node_rejoined,
    assert_node_unreachable,
    assert_pods_rescheduled,
)


@pytest.mark.disruptive
def test_worker_loss_is_healed(cluster, make_workload, machines, runbook):
    web = make_workload("web", replicas=6)
    victim = web.busiest_node()

    with runbook.phase("fail"):
        machines[victim].kill()
        assert_node_unreachable(cluster, victim)

    with runbook.phase("self-heal"):
        assert_pods_rescheduled(web, away_from=victim)
        assert_endpoints_exclude_node(web, victim)

    with runbook.phase("restore"):
        machines[victim].start()
        assert_node_rejoined(cluster, victim)
