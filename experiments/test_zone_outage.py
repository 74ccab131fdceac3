"""A whole zone goes down: its replicas come back in the other zones, the LB drains the zone.

The zone lost is one with no control-plane node, out of at least three zones (label
`topology.kubernetes.io/zone`). Upstream's node lifecycle controller treats a zone with no Ready
node as really down (FullDisruption) and taints its nodes at the normal eviction rate, while the
other zones stay Normal (pkg/controller/nodelifecycle/node_lifecycle_controller.go,
handleDisruption): so the pods are evicted and replaced, as for one lost node.
"""

from __future__ import annotations

import pytest

from pytest_k8sdr import (
    Cluster,
    assert_endpoints_exclude_node,
    assert_lb_drained,
    assert_lb_restored,
    assert_node_rejoined,
    assert_node_unreachable,
    assert_pods_rescheduled,
)

CONTROL_PLANE = "node-role.kubernetes.io/control-plane"


def zone_to_lose(cluster: Cluster) -> tuple[str, dict[str, str]]:
    """The largest zone without a control-plane node, and each worker's zone; skips if none."""
    zones = cluster.zones()
    if len(zones) < 3:
        pytest.skip(
            f"a zone outage needs nodes in three zones (label topology.kubernetes.io/zone); "
            f"this cluster has {len(zones)}: {', '.join(zones) or 'none'}"
        )
    masters = {n.name for n in cluster.nodes() if CONTROL_PLANE in n.labels}
    candidates = [z for z, nodes in zones.items() if not masters & set(nodes)]
    if not candidates:
        pytest.skip("every zone holds a control-plane node: no zone can be lost")
    lost = max(candidates, key=lambda z: (len(zones[z]), z))
    return lost, {n: z for z, nodes in zones.items() for n in nodes if n not in masters}


@pytest.mark.disruptive
def test_zone_outage_is_healed_and_drained(cluster, make_workload, make_lb, machines, runbook):
    lost, zone_of = zone_to_lose(cluster)
    zone = machines.zone(lost)
    web = make_workload("web", replicas=6)
    front = make_lb(web)
    spread = {zone_of.get(p.node or "") for p in web.pods()}
    assert len(spread) >= 3, f"{web} is not spread over three zones: {web.placement()}"

    with front.probe() as probe:
        probe.wait_for_record(timeout=10)
        with runbook.phase("fail"):
            zone.kill()
            for node in zone.nodes:
                assert_node_unreachable(cluster, node)
        with runbook.phase("drain LB"):
            for node in zone.nodes:
                front.lb.drain(node)
            for node in zone.nodes:
                assert_lb_drained(front.lb, node, probe=probe)
        with runbook.phase("self-heal"):
            healed = assert_pods_rescheduled(web, away_from=zone.nodes)
            for node in zone.nodes:
                assert_endpoints_exclude_node(web, node)
        others = {z for z in zone_of.values() if z != lost}
        assert {zone_of.get(p.node or "") for p in healed.value} == others, web.placement()

        with runbook.phase("restore"):
            zone.start()
            for node in zone.nodes:
                assert_node_rejoined(cluster, node)
        with runbook.phase("revert LB"):
            for node in zone.nodes:
                front.lb.restore(node)
            for node in zone.nodes:
                assert_lb_restored(front.lb, node, probe=probe)
