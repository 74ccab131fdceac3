"""Most of a small zone lost at once: upstream stops evicting, and the operator must isolate.

When more than 2 nodes and at least 55% of a zone (`--unhealthy-zone-threshold`) are not
Ready, the node lifecycle controller calls the zone partially disrupted and, in a zone of at
most 50 nodes (`--large-cluster-size-threshold`), stops adding NoExecute taints: it assumes a
problem it should not make worse by evicting (pkg/controller/nodelifecycle/
node_lifecycle_controller.go, handleDisruption and ReducedQPSFunc). The nodes still turn
Unknown and get the unreachable NoSchedule taint, but their pods stay bound, not Ready, and
nothing replaces them: the cluster will not heal itself.

What the operator does: once the machines are really down, isolate them (delete their Node
objects, `kubectl delete node`); the pod garbage collector then deletes their pods and the
controllers recreate them on the nodes left. A zone here is the `topology.kubernetes.io/zone`
label; an unlabelled cluster is one zone, as upstream groups it.
"""

from __future__ import annotations

import pytest

from pytest_k8sdr import (
    Cluster,
    assert_eviction_halted,
    assert_node_isolated,
    assert_node_rejoined,
    assert_node_unreachable,
    assert_pods_rescheduled,
)

CONTROL_PLANE = "node-role.kubernetes.io/control-plane"
EXCLUDED = "node.kubernetes.io/exclude-disruption"  # left out of a zone's health by upstream
ZONE = "topology.kubernetes.io/zone"
UNHEALTHY_ZONE_THRESHOLD = 0.55  # upstream's default
# How long no NoExecute taint may come: at the normal rate one comes a monitor period (1 s on
# the fast timings, 5 s upstream) after the node turns Unknown.
HOLD = 10.0


def nodes_to_lose(cluster: Cluster) -> list[str]:
    """The fewest workers of one zone whose loss makes it partially disrupted; skips if none.

    At least one worker must be left somewhere for the pods to come back to.
    """
    nodes = [n for n in cluster.nodes() if EXCLUDED not in n.labels]
    workers = [n.name for n in nodes if CONTROL_PLANE not in n.labels and not n.unschedulable]
    zones: dict[str, list[str]] = {}
    for node in nodes:
        zones.setdefault(node.labels.get(ZONE, ""), []).append(node.name)
    for members in sorted(zones.values(), key=len, reverse=True):
        mine = sorted(n for n in members if n in workers)
        for lost in range(3, len(mine) + 1):  # more than 2, and >= the threshold
            if lost / len(members) >= UNHEALTHY_ZONE_THRESHOLD and len(workers) > lost:
                return mine[:lost]
    pytest.skip(
        "losing most of a zone needs a zone of whose nodes more than 2 and at least "
        f"{UNHEALTHY_ZONE_THRESHOLD:.0%} are workers, and a worker left elsewhere; zones here: "
        + ", ".join(f"{z or '(unlabelled)'}: {len(m)} nodes" for z, m in sorted(zones.items()))
    )


@pytest.mark.disruptive
def test_losing_most_of_a_zone_halts_eviction_until_isolation(
    cluster, make_workload, machines, node_faults, runbook
):
    lost = nodes_to_lose(cluster)
    web = make_workload("web", replicas=6)
    stranded = [p.uid for p in web.pods() if p.node in lost]
    assert stranded, f"no pod of {web} on {', '.join(lost)}: {web.placement()}"

    with runbook.phase("fail"):
        for node in lost:
            machines[node].kill()  # really down: isolating them is then safe
        for node in lost:
            assert_node_unreachable(cluster, node, no_execute=False)
        # Upstream stops evicting: no NoExecute taint comes, the pods stay bound.
        assert_eviction_halted(web, lost, hold=HOLD)

    # The runbook's answer: isolate the lost nodes, so their pods are deleted and replaced.
    with runbook.phase("isolate"):
        snapshots = [node_faults.isolate(node) for node in lost]
        for node in lost:
            assert_node_isolated(cluster, node)
    with runbook.phase("self-heal"):
        assert_pods_rescheduled(web, away_from=lost, replaced_uids=stranded)

    with runbook.phase("restore"):
        for node in lost:
            machines[node].start()
        for node in lost:
            assert_node_rejoined(cluster, node)
    with runbook.phase("relabel"):
        for snapshot in snapshots:
            node_faults.relabel(snapshot)
            assert_node_rejoined(cluster, snapshot.name, like=snapshot)
