"""From a validated spec to a machine; `Machines` hands out one machine per node."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pytest_k8sdr.errors import ConfigError
from pytest_k8sdr.faults.machines.base import MachineBase
from pytest_k8sdr.faults.machines.command import CommandMachine
from pytest_k8sdr.faults.machines.docker import DockerMachine
from pytest_k8sdr.faults.machines.inventory import (
    CommandSpec,
    DockerSpec,
    Inventory,
    MachineSpec,
    SimSpec,
    SshSpec,
)
from pytest_k8sdr.faults.machines.sim import SimMachine, SimNodes
from pytest_k8sdr.faults.machines.ssh import SshMachine
from pytest_k8sdr.faults.machines.zone import Zone, zone_nodes
from pytest_k8sdr.undo import UndoStack


def make_machine(spec: MachineSpec, undo: UndoStack, *, sim: SimNodes | None = None) -> MachineBase:
    """The machine for `spec`; `sim` is the running simulated cluster for sim specs."""
    if isinstance(spec, SimSpec):
        return SimMachine(spec, undo, sim)
    if isinstance(spec, DockerSpec):
        return DockerMachine(spec, undo)
    if isinstance(spec, SshSpec):
        return SshMachine(spec, undo)
    if isinstance(spec, CommandSpec):
        return CommandMachine(spec, undo)
    raise TypeError(f"not a machine spec: {spec!r}")


class Machines:
    """The machine of each node, built on first use; every fault registers on `undo`.

    `cluster` (a `pytest_k8sdr.cluster.Cluster`) is needed only by `zone`, to find the nodes.
    """

    def __init__(
        self,
        inventory: Inventory,
        undo: UndoStack,
        *,
        sim: SimNodes | None = None,
        cluster: Any = None,
    ) -> None:
        self.inventory = inventory
        self.undo = undo
        self._sim = sim
        self._cluster = cluster
        self._machines: dict[str, MachineBase] = {}

    def check(self, nodes: Iterable[str]) -> None:
        """ConfigError naming every node without a usable machine; touches nothing."""
        self.inventory.check_nodes(nodes)

    def __getitem__(self, node: str) -> MachineBase:
        machine = self._machines.get(node)
        if machine is None:
            machine = make_machine(self.inventory.spec_for(node), self.undo, sim=self._sim)
            self._machines[node] = machine
        return machine

    def zone(self, name: str) -> Zone:
        """The machines of every node labelled `topology.kubernetes.io/zone=NAME`.

        Its faults (`kill`, `stop`, `freeze`, `partition`) act on the whole zone and are
        journaled as one disruption. ConfigError, before anything is touched, when no node is
        in that zone or one of them has no machine.
        """
        cluster = self._cluster
        if cluster is None:
            raise ConfigError("machines.zone needs the cluster to find the zone's nodes")
        nodes = zone_nodes(name, lambda: [(n.name, n.labels) for n in cluster.nodes()])
        self.check(nodes)
        return Zone(name, [self[n] for n in nodes], self.undo, sim=self._sim)
