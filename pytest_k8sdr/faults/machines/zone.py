"""A zone's machines at once: kill, stop, freeze or partition every node of one zone.

A zone is the nodes labelled `topology.kubernetes.io/zone=NAME` (the label the node lifecycle
controller groups nodes by, pkg/controller/nodelifecycle/node_lifecycle_controller.go: zone key
from the region and zone labels). The fault is ONE disruption, `ZoneFault`, journaled before any
machine is touched and naming every machine the way its own `MachineFault` would, so teardown
and `k8sdr recover` undo the whole zone from one record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_k8sdr.cluster import ZONE_LABEL
from pytest_k8sdr.errors import ConfigError
from pytest_k8sdr.faults.machines.base import (
    UNDO_OF,
    Action,
    MachineBase,
    MachineError,
    MachineFault,
)
from pytest_k8sdr.undo import Disruption, UndoEntry, UndoEnv, UndoStack, disruption_kind

__all__ = ["ZONE_LABEL", "Zone", "ZoneFault"]

log = logging.getLogger(__name__)


@disruption_kind
@dataclass(frozen=True)
class ZoneFault(Disruption):
    """Every machine of a zone faulted at once; undone by each machine's restore action.

    `machines` holds each node's `MachineFault` record data (driver, node, how to find it).
    """

    kind = "zone"
    zone: str
    fault: str
    restore: str
    machines: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        """``kill every machine of zone Z (n1, n2)``."""
        nodes = ", ".join(str(m.get("node")) for m in self.machines)
        return f"{self.fault} every machine of zone {self.zone} ({nodes})"

    def undoing(self) -> str:
        """``zone Z: start its 2 machines (undoes kill)``."""
        return (
            f"zone {self.zone}: {self.restore} its {len(self.machines)} machine(s) "
            f"(undoes {self.fault})"
        )

    def retryable(self, exc: BaseException) -> bool:
        """As a machine fault's undo: the API down or a machine not reachable yet."""
        return super().retryable(exc) or (isinstance(exc, MachineError) and exc.transient)

    def undo(self, env: UndoEnv) -> None:
        """Restore every machine (each restore is idempotent).

        All are tried; the first failure is raised afterwards.
        """
        failures: list[BaseException] = []
        for data in self.machines:
            try:
                MachineFault.from_data(data).undo(env)
            except Exception as exc:  # try the rest of the zone, then report
                log.warning("zone %s: undo on node %s failed: %s", self.zone, data.get("node"), exc)
                failures.append(exc)
        if failures:
            raise failures[0]


class _Specs:
    """The specs of a zone's machines, for the undo of the zone fault."""

    def __init__(self, machines: Sequence[MachineBase]) -> None:
        self._specs = {m.node: getattr(m, "spec", None) for m in machines}

    def spec_for(self, node: str) -> Any:
        """The machine spec of `node`; ConfigError when none is known."""
        spec = self._specs.get(node)
        if spec is None:
            raise ConfigError(f"no machine spec for node {node!r}")
        return spec


class Zone:
    """The machines of one zone; faults act on all of them and journal one `ZoneFault`."""

    def __init__(
        self, name: str, machines: Sequence[MachineBase], undo: UndoStack, sim: Any = None
    ) -> None:
        self.name = name
        self.machines = list(machines)
        self._undo = undo
        self._sim = sim
        self._pending: dict[Action, list[UndoEntry]] = {}

    @property
    def nodes(self) -> list[str]:
        """The zone's node names."""
        return [m.node for m in self.machines]

    def __repr__(self) -> str:
        return f"<Zone {self.name!r} nodes={self.nodes}>"

    def kill(self) -> None:
        """Power lost in the whole zone; undone by `start`."""
        self._fault(Action.KILL)

    def stop(self) -> None:
        """Power the zone's machines off; undone by `start`."""
        self._fault(Action.STOP)

    def freeze(self) -> None:
        """Hang every machine of the zone; undone by `thaw`."""
        self._fault(Action.FREEZE)

    def partition(self) -> None:
        """Cut the zone off from the API server (its pods keep serving); undone by `heal`."""
        self._fault(Action.PARTITION)

    def start(self) -> None:
        """Power the zone's machines on again."""
        self._restore(Action.START)

    def thaw(self) -> None:
        """Resume the zone's frozen machines."""
        self._restore(Action.THAW)

    def heal(self) -> None:
        """End the zone's partition."""
        self._restore(Action.HEAL)

    def _fault(self, action: Action) -> None:
        restore = UNDO_OF[action]
        for m in self.machines:  # every fault and its undo possible before anything is touched
            m._check(action)
            m._check(restore)
        records = [
            MachineFault(m.node, m.driver, str(action), str(restore), **m._locator()).to_data()
            for m in self.machines
        ]
        env = UndoEnv(inventory=_Specs(self.machines), sim=self._sim)
        entry = self._undo.push(ZoneFault(self.name, str(action), str(restore), records), env)
        self._pending.setdefault(restore, []).append(entry)
        log.info("zone %s: %s %s", self.name, action, ", ".join(self.nodes))
        for m in self.machines:
            m.carry_out(action)

    def _restore(self, action: Action) -> None:
        for m in self.machines:
            m._check(action)
        for m in self.machines:
            m.carry_out(action)
        for entry in self._pending.pop(action, []):
            self._undo.discard(entry)


def zone_nodes(
    name: str, list_nodes: Callable[[], Sequence[tuple[str, Mapping[str, str]]]]
) -> list[str]:
    """The nodes labelled with zone `name`; ConfigError naming the zones there are if none."""
    if not name:
        raise ConfigError("a zone name must not be empty")
    nodes = list(list_nodes())
    members = sorted(n for n, labels in nodes if labels.get(ZONE_LABEL) == name)
    if not members:
        zones = sorted({labels[ZONE_LABEL] for _, labels in nodes if ZONE_LABEL in labels})
        raise ConfigError(
            f"no node is in zone {name!r} (label {ZONE_LABEL}); zones in the cluster: "
            f"{', '.join(zones) or 'none'}"
        )
    return members
