"""The sim driver: the simulator's node agents, through the launcher's own calls.

The same calls as `k8sdr sim node ...`: kill is SIGKILL of the node's agent process, freeze
SIGSTOP (thaw SIGCONT), stop SIGTERM, start a new agent process that re-registers like a
restarted kubelet; partition, kubelet and runtime actions go through the agent's control socket.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from pytest_k8sdr.faults.machines.base import (
    Action,
    MachineBase,
    MachineHealth,
    MachineState,
)
from pytest_k8sdr.faults.machines.inventory import SimSpec
from pytest_k8sdr.sim import SimCluster
from pytest_k8sdr.undo import UndoEnv, UndoStack

log = logging.getLogger(__name__)


class SimNodes(Protocol):
    """What the driver needs of `pytest_k8sdr.sim.launcher.SimCluster`."""

    def kill_node(self, name: str) -> Any:
        """SIGKILL the node's agent."""

    def stop_node(self, name: str) -> Any:
        """SIGTERM the node's agent."""

    def freeze_node(self, name: str) -> Any:
        """SIGSTOP the node's agent."""

    def thaw_node(self, name: str) -> Any:
        """SIGCONT the node's agent."""

    def start_node(self, name: str) -> Any:
        """Start the node's agent."""

    def partition_node(self, name: str) -> Any:
        """Cut the agent off from the API server."""

    def heal_node(self, name: str) -> Any:
        """Undo a partition."""

    def stop_kubelet(self, name: str) -> Any:
        """Stop the node's kubelet."""

    def start_kubelet(self, name: str) -> Any:
        """Start the node's kubelet."""

    def stop_runtime(self, name: str) -> Any:
        """Stop the node's container runtime."""

    def start_runtime(self, name: str) -> Any:
        """Start the node's container runtime."""

    def node_state(self, name: str) -> Any:
        """What the launcher knows of the node's agent."""


def attach(state_dir: Path) -> SimNodes:
    """The simulated cluster whose launcher state lives in `state_dir`."""
    return SimCluster.attach(state_dir)


class SimMachine(MachineBase):
    """A simulated node's agent process."""

    driver = "sim"

    def __init__(
        self,
        spec: SimSpec,
        undo: UndoStack,
        cluster: SimNodes | None = None,
    ) -> None:
        super().__init__(spec.node, undo)
        self.spec = spec
        self._cluster = cluster

    @property
    def cluster(self) -> SimNodes:
        """The simulated cluster (attached from the spec's state directory on first use)."""
        if self._cluster is None:
            if self.spec.state_dir is None:
                raise self.error(
                    Action.HEALTH,
                    "no simulated cluster given and no state_dir set",
                    may_have_acted=False,
                )
            try:
                self._cluster = attach(self.spec.state_dir)
            except Exception as exc:  # any launcher failure: say where we looked
                raise self.error(
                    Action.HEALTH,
                    f"cannot attach to the simulator in {self.spec.state_dir}: {exc}",
                    may_have_acted=False,
                ) from exc
        return self._cluster

    def _locator(self) -> dict[str, Any]:
        state_dir = self.spec.state_dir
        if state_dir is None:
            state_dir = getattr(self._cluster, "state_dir", None)
        return {"state_dir": str(state_dir) if state_dir is not None else None}

    def _undo_env(self) -> UndoEnv:
        env = super()._undo_env()
        env.sim = self._cluster
        return env

    def _calls(self) -> Mapping[Action, Callable[[str], Any]]:
        c = self.cluster
        return {
            Action.STOP: c.stop_node,
            Action.KILL: c.kill_node,
            Action.FREEZE: c.freeze_node,
            Action.THAW: c.thaw_node,
            Action.START: c.start_node,
            Action.PARTITION: c.partition_node,
            Action.HEAL: c.heal_node,
            Action.STOP_KUBELET: c.stop_kubelet,
            Action.START_KUBELET: c.start_kubelet,
            Action.STOP_RUNTIME: c.stop_runtime,
            Action.START_RUNTIME: c.start_runtime,
        }

    def _act(self, action: Action) -> None:
        try:
            state = str(self.cluster.node_state(self.node))
        except ValueError as exc:  # the launcher's "unknown node"
            raise self.error(action, str(exc), may_have_acted=False) from exc
        if state == "stopped" and action in _NOOP_WHEN_STOPPED:
            # A restarted agent is thawed, healed, with kubelet and runtime running.
            log.info("sim node %r is stopped: %s has nothing to do", self.node, action)
            return
        if action is Action.THAW and state != "frozen":
            return
        if state == "stopped" and action in _NEEDS_AGENT:
            raise self.error(action, "the node's agent is stopped", may_have_acted=False)
        try:
            self._calls()[action](self.node)
        except Exception as exc:  # the launcher's own errors, named for the report
            raise self.error(action, f"{type(exc).__name__}: {exc}") from exc

    def health(self) -> MachineHealth:
        """The agent's state as the launcher reports it."""
        try:
            state = str(self.cluster.node_state(self.node))
        except Exception as exc:  # unreachable simulator or unknown node: a state, not an error
            return MachineHealth(self.node, self.driver, MachineState.UNKNOWN, {}, str(exc))
        mapped, services = _STATES.get(state, (MachineState.UNKNOWN, {}))
        return MachineHealth(self.node, self.driver, mapped, services, state)


_NOOP_WHEN_STOPPED = frozenset(
    {Action.THAW, Action.HEAL, Action.START_KUBELET, Action.START_RUNTIME, Action.STOP}
)
_NEEDS_AGENT = frozenset(
    {Action.FREEZE, Action.PARTITION, Action.STOP_KUBELET, Action.STOP_RUNTIME}
)
_UP = {"kubelet": True, "runtime": True}
# The launcher's node states (SimCluster.node_state).
_STATES: Mapping[str, tuple[MachineState, Mapping[str, bool]]] = {
    "running": (MachineState.RUNNING, _UP),
    "frozen": (MachineState.FROZEN, {}),
    "stopped": (MachineState.STOPPED, {}),
    "partitioned": (MachineState.PARTITIONED, _UP),
    "kubelet-stopped": (MachineState.RUNNING, {**_UP, "kubelet": False}),
    "runtime-stopped": (MachineState.RUNNING, {**_UP, "runtime": False}),
}
