"""Planned maintenance: cordon and drain a node while a PodDisruptionBudget guards the app."""

from __future__ import annotations

import pytest

from pytest_k8sdr import assert_min_available, assert_pods_rescheduled, pod_history


@pytest.mark.disruptive
def test_drain_respects_the_disruption_budget(make_workload, make_pdb, node_faults, runbook):
    web = make_workload("web", replicas=4)
    make_pdb(web, min_available=3)
    victim = web.busiest_node()

    # Planned isolation: cordon, then evict through the Eviction API (the PDB answers 429
    # while evicting more would leave fewer than 3). Uncordoned again at teardown.
    with pod_history(web):
        with runbook.phase("isolate"):
            node_faults.drain(victim)
            assert_min_available(web, 3)
        with runbook.phase("self-heal"):
            assert_pods_rescheduled(web, away_from=victim)
            assert_min_available(web, 3)
