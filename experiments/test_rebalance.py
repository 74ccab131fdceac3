"""After a node returns nothing moves back on its own: rebalance through the Eviction API."""

from __future__ import annotations

import pytest

from pytest_k8sdr import (
    assert_node_rejoined,
    assert_node_unreachable,
    assert_pods_rescheduled,
    assert_rebalanced,
    rebalance,
)


@pytest.mark.disruptive
def test_workload_rebalances_onto_the_returned_node(cluster, make_workload, machines, runbook):
    web = make_workload("web", replicas=6)
    victim = web.busiest_node()
    workers = sorted(web.nodes() | {victim})

    with runbook.phase("fail"):
        machines[victim].kill()
        assert_node_unreachable(cluster, victim)
    with runbook.phase("self-heal"):
        assert_pods_rescheduled(web, away_from=victim)
    with runbook.phase("restore"):
        machines[victim].start()
        assert_node_rejoined(cluster, victim)
    assert victim not in web.nodes(), "pods moved back on their own; Kubernetes does not do that"

    with runbook.phase("rebalance"):
        rebalance(web, workers, max_skew=1)
        assert_rebalanced(web, nodes=workers, max_skew=1)
