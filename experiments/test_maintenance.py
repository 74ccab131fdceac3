"""Planned maintenance: cordon and drain a node while a PodDisruptionBudget guards the app."""

from __future__ import annotations

import pytest

from pytest_k8sdr import checks


@pytest.mark.disruptive
def test_drain_respects_the_disruption_budget(
    cluster, make_workload, node_faults, namespace, runbook
):
    web = make_workload("web", replicas=4)
    cluster.call(
        cluster.policy.create_namespaced_pod_disruption_budget,
        namespace,
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web"},
            "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "web"}}},
        },
    )
    victim = web.busiest_node()
    history = checks.PodHistory(cluster, namespace, label_selector=web.selector).start()

    # Planned isolation: cordon, then evict through the Eviction API (the PDB answers 429
    # while evicting more would leave fewer than 3). Uncordoned again at teardown.
    with runbook.phase("isolate"):
        report = node_faults.drain(victim, timeout=120)
        runbook.mark("node drained")
    assert report.evicted, "nothing was evicted"

    with runbook.phase("self-heal"):
        runbook.mark(
            "replicas Ready elsewhere", checks.assert_pods_rescheduled(web, away_from=victim)
        )
    assert cluster.node(victim).unschedulable
    history.stop()
    ready_floor = min_ready(history, web.replicas)
    assert ready_floor >= 3, f"only {ready_floor} replicas were Running at one point"


def min_ready(history, replicas):
    """The fewest pods Running at once during the drain, from the watch history."""
    events = []
    for spans in history.running.values():
        for start, end in spans.values():
            events.append((start, 1))
            if end is not None:
                events.append((end, -1))
    running, floor, counting = 0, replicas, False
    for _, delta in sorted(events, key=lambda e: (e[0], -e[1])):
        running += delta
        # Count from the moment the history has seen every replica Running.
        counting = counting or running >= replicas
        if counting:
            floor = min(floor, running)
    return floor
