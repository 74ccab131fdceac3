"""The control plane is lost: the data plane keeps serving, and nothing is evicted for it.

The API server, the controllers and the scheduler stop (on the simulator its control-plane
process, on kind the control-plane container, on staging the inventory's `control_plane`
commands). Kubelets and kube-proxy keep running what they have, so traffic through the load
balancer is served without an error. When the control plane returns, from its store (etcd;
the simulator's durable store), the node lifecycle controller gives every node a fresh grace
period from the moment it first sees it (pkg/controller/nodelifecycle/
node_lifecycle_controller.go, tryUpdateNodeHealth: a node it has no health data for is timed
from now), so no node is marked Unknown or tainted for the outage, and the workloads are the
same pods as before.
"""

from __future__ import annotations

import pytest

from pytest_k8sdr import assert_eviction_halted, assert_node_rejoined

# The outage: longer than the node monitor grace period (4 s on the fast timings), so that a
# controller timing the nodes from their last heartbeat would find every one of them overdue.
OUTAGE = 10.0
# How long after the return no NoExecute taint may come: two grace periods (fast timings).
HOLD = 8.0


@pytest.mark.disruptive
def test_control_plane_loss_keeps_traffic_and_evicts_nothing(
    cluster, make_workload, make_lb, control_plane, runbook
):
    web = make_workload("web", replicas=6)
    front = make_lb(web)
    workers = sorted(web.nodes())
    before = {p.uid for p in web.pods()}

    with front.probe() as probe:
        probe.wait_for_record(timeout=10)
        with runbook.phase("fail"):
            control_plane.stop()
            down = probe.now()
            assert probe.wait_settled(down + OUTAGE, timeout=OUTAGE + 10), "the probe stalled"
            outage = probe.summary(down, down + OUTAGE)
        assert outage.requests > 0, outage.describe()
        assert outage.errors == 0, f"errors with the control plane down: {outage.describe()}"

        with runbook.phase("restore"):
            control_plane.start()
            for node in workers:
                assert_node_rejoined(cluster, node)
            assert_eviction_halted(web, workers, hold=HOLD)
            after = {p.uid for p in web.wait_ready().value}
        assert after == before, f"pods replaced for the outage: {web.placement()}"
        back = probe.summary(down + OUTAGE)
        assert back.errors == 0, f"errors once the control plane was back: {back.describe()}"
