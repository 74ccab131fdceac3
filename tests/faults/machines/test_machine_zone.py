"""Zone faults on the simulator: every machine of a zone at once, one disruption, one undo."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_k8sdr.cluster import Cluster
from pytest_k8sdr.errors import ConfigError
from pytest_k8sdr.faults.machines import ZONE_LABEL, Machines, ZoneFault, parse_inventory
from pytest_k8sdr.sim import SimCluster
from pytest_k8sdr.undo import REGISTRY, UndoEnv, UndoStack

ZONES = {"k8sdr-worker": "zone-a", "k8sdr-worker2": "zone-a", "k8sdr-worker3": "zone-b"}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimCluster, Cluster]]:
    started = SimCluster.start(tmp_path_factory.mktemp("zones"), workers=3, profile="fast")
    cluster = Cluster.from_kubeconfig(started.kubeconfig_path)
    try:
        # As a cloud controller manager labels nodes with their zone.
        for node, zone in ZONES.items():
            cluster.call(
                cluster.core.patch_node,
                node,
                {"metadata": {"labels": {ZONE_LABEL: zone}}},
                _preload_content=False,
            )
        yield started, cluster
    finally:
        cluster.close()
        SimCluster.attach(started.state_dir).stop()


def _machines(sim: tuple[SimCluster, Cluster], stack: UndoStack) -> Machines:
    started, cluster = sim
    nodes = {n: {"driver": "sim", "state_dir": str(started.state_dir)} for n in ZONES}
    return Machines(parse_inventory({"nodes": nodes}), stack, cluster=cluster)


def test_the_cluster_lists_its_zones(sim: tuple[SimCluster, Cluster]) -> None:
    _, cluster = sim
    assert cluster.zones() == {
        "zone-a": ["k8sdr-worker", "k8sdr-worker2"],
        "zone-b": ["k8sdr-worker3"],
    }


def test_an_unknown_zone_names_the_zones_there_are_and_touches_nothing(
    sim: tuple[SimCluster, Cluster], stack: UndoStack
) -> None:
    with pytest.raises(ConfigError, match=r"no node is in zone 'zone-x'.*zone-a, zone-b"):
        _machines(sim, stack).zone("zone-x")
    assert len(stack) == 0


def test_killing_a_zone_is_one_disruption_undone_at_teardown(
    sim: tuple[SimCluster, Cluster], stack: UndoStack
) -> None:
    started, _ = sim
    zone = _machines(sim, stack).zone("zone-a")
    assert zone.nodes == ["k8sdr-worker", "k8sdr-worker2"]
    zone.kill()
    assert len(stack) == 1
    (entry,) = stack.pending
    assert entry.record.kind == "zone"
    summary = REGISTRY.load(entry.record).summary()
    assert summary == "kill every machine of zone zone-a (k8sdr-worker, k8sdr-worker2)"
    assert entry.description == "zone zone-a: start its 2 machine(s) (undoes kill)"
    assert [started.node_state(n) for n in ZONES] == ["stopped", "stopped", "running"]
    stack.unwind()  # teardown
    assert len(stack) == 0
    assert [started.node_state(n) for n in ZONES] == ["running"] * 3
    # The Node may still show Ready from before the kill: wait for the new agents' sockets.
    deadline = time.monotonic() + 30
    sockets = [Path(started._agent(n).socket) for n in ZONES]
    while not all(s.exists() for s in sockets) and time.monotonic() < deadline:
        time.sleep(0.05)
    started.wait_nodes_ready(list(ZONES), timeout=30)


def test_a_zone_fault_is_undone_from_its_record_alone_as_recover_does(
    sim: tuple[SimCluster, Cluster], stack: UndoStack
) -> None:
    started, _ = sim
    zone = _machines(sim, stack).zone("zone-b")
    zone.partition()
    (entry,) = stack.pending
    record = entry.record
    assert isinstance(REGISTRY.load(record), ZoneFault)
    assert started.node_state("k8sdr-worker3") == "partitioned"
    # `k8sdr recover`: another process, nothing but the journal record and no inventory.
    REGISTRY.undo(record, UndoEnv())
    assert started.node_state("k8sdr-worker3") == "running"
    stack.discard(entry)


def test_healing_the_zone_by_hand_discards_its_undo(
    sim: tuple[SimCluster, Cluster], stack: UndoStack
) -> None:
    started, _ = sim
    zone = _machines(sim, stack).zone("zone-a")
    zone.partition()
    assert [started.node_state(n) for n in zone.nodes] == ["partitioned"] * 2
    zone.heal()
    assert len(stack) == 0
    assert [started.node_state(n) for n in zone.nodes] == ["running"] * 2


def test_zone_fault_record_round_trips(tmp_path: Path) -> None:
    fault = ZoneFault(
        "zone-a",
        "kill",
        "start",
        [{"node": "n1", "driver": "sim", "fault": "kill", "restore": "start"}],
    )
    assert REGISTRY.load(fault.record()) == fault
    assert fault.undoing() == "zone zone-a: start its 1 machine(s) (undoes kill)"
