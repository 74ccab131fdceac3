"""The external load balancer stops sending traffic to a dead node, and gets it back.

The node is isolated (its Node deleted) only after its machine is killed: a machine that still
ran would keep its pods serving beside their replacements (see test_isolation.py).

Both run under a steady-state hypothesis read from Prometheus (on the simulator, a managed one
scraping the pods' /metrics and nginx through its exporter): the pods answer no more than 1%
errors, and the load balancer is up. It is checked before the first disruption, watched while
the experiment disrupts (a breach stops it, undoing what it did) and required again after it.
"""

from __future__ import annotations

import pytest

from pytest_k8sdr import (
    assert_lb_drained,
    assert_lb_restored,
    assert_node_rejoined,
    assert_node_unreachable,
    assert_pods_rescheduled,
)

STEADY_STATE = pytest.mark.k8sdr(
    steady_state=[
        'error ratio: sum(http_requests_total{namespace="$namespace",code=~"5.."} or '
        'vector(0)) / sum(http_requests_total{namespace="$namespace"}) < 0.01',
        'lb up: min(nginx_up{namespace="$namespace"}) >= 1',
    ]
)


@STEADY_STATE
@pytest.mark.disruptive
def test_lb_drain_with_traffic_running(cluster, make_workload, make_lb, machines, runbook):
    web = make_workload("web", replicas=6)
    front = make_lb(web)
    victim = web.busiest_node()

    with front.probe() as probe:
        probe.wait_for_record(timeout=10)
        with runbook.phase("fail"):
            machines[victim].kill()
            assert_node_unreachable(cluster, victim)
        with runbook.phase("drain LB"):
            front.lb.drain(victim)
            assert_lb_drained(front.lb, victim, probe=probe)


@STEADY_STATE
@pytest.mark.disruptive
def test_restore_relabel_and_revert_lb(
    cluster, make_workload, make_lb, machines, node_faults, runbook
):
    web = make_workload("web", replicas=6)
    front = make_lb(web)
    victim = web.busiest_node()

    with front.probe() as probe:
        with runbook.phase("fail"):
            machines[victim].kill()
            assert_node_unreachable(cluster, victim)
        with runbook.phase("isolate"):
            snapshot = node_faults.isolate(victim)  # the machine is really down (killed)
        with runbook.phase("drain LB"):
            front.lb.drain(victim)
            assert_lb_drained(front.lb, victim, probe=probe)
        with runbook.phase("self-heal"):
            assert_pods_rescheduled(web, away_from=victim)

        with runbook.phase("restore"):
            machines[victim].start()
            assert_node_rejoined(cluster, victim)
        with runbook.phase("relabel"):
            node_faults.relabel(snapshot)
            assert_node_rejoined(cluster, victim, like=snapshot)
        with runbook.phase("revert LB"):
            front.lb.restore(victim)
            assert_lb_restored(front.lb, victim, probe=probe)
