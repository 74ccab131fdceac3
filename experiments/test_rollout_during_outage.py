"""A rolling update started while a node is down, finished and cleaned up after isolation.

The rollout starts the moment the node dies: its pods still count as available until the node
lifecycle controller marks them not Ready (the grace period), so the Deployment controller
rolls on as if nothing had happened, within maxSurge and maxUnavailable, and may even bind new
pods to the dead node before it is tainted. Once they are marked, the dead node's old pods are
scaled down first (unhealthy replicas go before any Ready one: rolling.go
cleanupUnhealthyReplicas) and new pods bound there are evicted after their toleration, so the
rollout completes with the node still down: progress is counted in available replicas only,
never in pods merely bound (a rollout that cannot progress for progressDeadlineSeconds is
marked Progressing=False, ProgressDeadlineExceeded). The dead node's pods stay Terminating,
since no kubelet finishes them, until the node is isolated.
"""

from __future__ import annotations

import pytest

from pytest_k8sdr import assert_node_isolated, assert_node_rejoined, assert_node_unreachable


@pytest.mark.disruptive
def test_a_rollout_during_a_node_outage_completes_and_isolation_clears_the_node(
    cluster, make_workload, machines, node_faults, runbook
):
    web = make_workload("web", replicas=6, max_surge=1, max_unavailable=1, progress_deadline=60)
    victim = web.busiest_node()

    with runbook.phase("fail"):
        machines[victim].kill()  # really down before it is isolated
        web.restart()  # while the victim's pods still count as available
        assert_node_unreachable(cluster, victim)

    with runbook.phase("rollout"):
        done = web.wait_rolled_out()
        progressing = condition(done.value, "Progressing")
        assert progressing["reason"] == "NewReplicaSetAvailable", progressing
        left = [p for p in web.pods() if p.node == victim]
        # No kubelet finishes them: the dead node's pods are deleted, not gone.
        assert all(p.deleting for p in left), [p.describe() for p in left]
        assert victim not in web.nodes()

    with runbook.phase("isolate"):
        snapshot = node_faults.isolate(victim)
        assert_node_isolated(cluster, victim)

    with runbook.phase("restore"):
        machines[victim].start()
        assert_node_rejoined(cluster, victim)
    with runbook.phase("relabel"):
        node_faults.relabel(snapshot)
        assert_node_rejoined(cluster, victim, like=snapshot)


def condition(deployment, kind):
    conditions = (deployment.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})
