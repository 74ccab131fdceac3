"""The whole runbook, end to end, every phase timed against its SLO.

The node is isolated only once its machine is killed: deleting the Node of a machine that still
runs lets its pods serve beside their replacements (see test_isolation.py).
"""

from __future__ import annotations

import pytest

from pytest_k8sdr import (
    assert_lb_drained,
    assert_lb_restored,
    assert_node_isolated,
    assert_node_rejoined,
    assert_node_unreachable,
    assert_pods_rescheduled,
    assert_rebalanced,
    rebalance,
)


@pytest.mark.disruptive
def test_whole_runbook(cluster, make_workload, make_lb, machines, node_faults, runbook):
    web = make_workload("web", replicas=6)
    front = make_lb(web)
    victim = web.busiest_node()
    workers = sorted(web.nodes())

    with front.probe() as probe:
        with runbook.phase("fail"):
            machines[victim].kill()  # really down before it is isolated
            assert_node_unreachable(cluster, victim)
        with runbook.phase("isolate"):
            snapshot = node_faults.isolate(victim)
            assert_node_isolated(cluster, victim)
        with runbook.phase("self-heal"):
            assert_pods_rescheduled(web, away_from=victim)
        with runbook.phase("drain LB"):
            front.lb.drain(victim)
            assert_lb_drained(front.lb, victim, probe=probe)
        with runbook.phase("restore"):
            machines[victim].start()
            assert_node_rejoined(cluster, victim)
        with runbook.phase("relabel"):
            node_faults.relabel(snapshot)
            assert_node_rejoined(cluster, victim, like=snapshot)
        with runbook.phase("revert LB"):
            front.lb.restore(victim)
        with runbook.phase("rebalance"):
            rebalance(web, workers, max_skew=1)
            assert_rebalanced(web, nodes=workers, max_skew=1)
        assert_lb_restored(front.lb, victim, probe=probe)
