"""The sim driver: the simulator's node agents, through the launcher's own calls.

The same calls as `k8sdr sim node ...`: kill is SIGKILL of the node's agent process, freeze
SIGSTOP (thaw SIGCONT), stop SIGTERM, start a new agent process that re-registers like a
restarted kubelet; partition, kubelet and runtime actions go through the agent's control socket.
`fail_pod` is a fault of one pod's server on the machine (it answers 500, or refuses
connections), so the kubelet's probes of it fail; it is journaled as `sim-pod-fault` and
undone like any other fault.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pytest_k8sdr.errors import ConfigError
from pytest_k8sdr.faults.machines.base import (
    Action,
    MachineBase,
    MachineHealth,
    MachineState,
)
from pytest_k8sdr.faults.machines.inventory import SimSpec
from pytest_k8sdr.sim import SimCluster
from pytest_k8sdr.undo import Disruption, UndoEntry, UndoEnv, UndoStack, disruption_kind

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

    def set_pod_fault(self, name: str, namespace: str, pod: str, mode: str) -> Any:
        """Make a pod's server on the node fail (http-500 or refuse)."""

    def clear_pod_fault(self, name: str, namespace: str, pod: str) -> Any:
        """End a pod fault."""


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

    def fail_pod(self, namespace: str, pod: str, mode: str = "http-500") -> UndoEntry:
        """Make the server of `pod` on this machine fail, so its probes fail.

        `http-500` answers 500 to every request (an httpGet probe fails, a tcpSocket one
        passes), `refuse` refuses connections (every probe fails). The fault outlasts
        container restarts and holds until `heal_pod` or the undo; the entry it returns is on
        the undo stack. A bad mode or an unknown node is an error before anything is touched.
        """
        if mode not in POD_FAULTS:
            raise self.error(
                Action.HEALTH,
                f"unknown pod fault {mode!r}; accepted: {', '.join(POD_FAULTS)}",
                may_have_acted=False,
            )
        try:
            state = str(self.cluster.node_state(self.node))
        except ValueError as exc:
            raise self.error(Action.HEALTH, str(exc), may_have_acted=False) from exc
        if state in ("stopped", "frozen"):
            raise self.error(
                Action.HEALTH, f"the node's agent is {state}: no pod fault", may_have_acted=False
            )
        fault = SimPodFault(self.node, namespace, pod, mode, **self._locator())
        entry = self._undo.push(fault, self._undo_env())
        try:
            self.cluster.set_pod_fault(self.node, namespace, pod, mode)
        except Exception as exc:  # the launcher's own errors, named for the report
            raise self.error(Action.HEALTH, f"{type(exc).__name__}: {exc}") from exc
        return entry

    def heal_pod(self, entry: UndoEntry) -> None:
        """End a pod fault made by `fail_pod` now (its undo), rather than at teardown."""
        self._undo.run(entry)

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


POD_FAULTS = ("http-500", "refuse")


@disruption_kind
@dataclass(frozen=True)
class SimPodFault(Disruption):
    """A simulated pod's server made to fail on its node's machine; undone by clearing it."""

    kind = "sim-pod-fault"
    node: str
    namespace: str
    pod: str
    mode: str
    state_dir: str | None = None

    def summary(self) -> str:
        """``make pod NS/POD on node NODE fail (http-500)``."""
        return f"make pod {self.namespace}/{self.pod} on node {self.node} fail ({self.mode})"

    def undoing(self) -> str:
        """``clear the http-500 fault of pod NS/POD on node NODE``."""
        return f"clear the {self.mode} fault of pod {self.namespace}/{self.pod} on node {self.node}"

    def undo(self, env: UndoEnv) -> None:
        """Clear the fault (a no-op if the agent restarted since: it forgot its faults)."""
        cluster = env.sim
        if cluster is None:
            if self.state_dir is None:
                raise ConfigError(f"undoing {self.kind} of {self.pod}: no simulator state_dir")
            cluster = attach(Path(self.state_dir))
        cluster.clear_pod_fault(self.node, self.namespace, self.pod)


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
