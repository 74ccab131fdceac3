"""The machine under a node: one protocol, one error, and the undo bookkeeping every driver shares.

Every fault registers a `MachineFault` on the `UndoStack` *before* it acts, so a failure half
way, a Ctrl-C or a crashed test still leaves the undo to run at teardown. The undo of a fault is
the matching restore action (`kill` and `stop` → `start`, `freeze` → `thaw`, ...), carried out
by a machine built again from the record (and the inventory, for what a record may not hold);
restore actions are idempotent, so undoing a fault that never took effect is harmless. Calling a
restore action directly (`machine.start()`) discards the undo entries it made redundant.
"""

from __future__ import annotations

import enum
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Protocol, runtime_checkable

from pytest_k8sdr.errors import ConfigError, FaultError
from pytest_k8sdr.undo import Disruption, UndoEntry, UndoEnv, UndoStack, disruption_kind

log = logging.getLogger(__name__)


class Action(enum.StrEnum):
    """What can be done to a machine; the value is the name used in settings and errors."""

    STOP = "stop"
    KILL = "kill"
    FREEZE = "freeze"
    THAW = "thaw"
    PARTITION = "partition"
    HEAL = "heal"
    STOP_KUBELET = "stop_kubelet"
    START_KUBELET = "start_kubelet"
    STOP_RUNTIME = "stop_runtime"
    START_RUNTIME = "start_runtime"
    START = "start"
    HEALTH = "health"


#: The restore action that undoes each fault.
UNDO_OF: Mapping[Action, Action] = MappingProxyType(
    {
        Action.STOP: Action.START,
        Action.KILL: Action.START,
        Action.FREEZE: Action.THAW,
        Action.PARTITION: Action.HEAL,
        Action.STOP_KUBELET: Action.START_KUBELET,
        Action.STOP_RUNTIME: Action.START_RUNTIME,
    }
)
FAULTS = frozenset(UNDO_OF)
RESTORES = frozenset(UNDO_OF.values())


class MachineError(FaultError):
    """A driver could not carry out an action on a node's machine.

    `may_have_acted` is False when the driver knows nothing was touched (the machine could not be
    reached, the container does not exist, the settings forbid the action); the undo registered
    for the action is then dropped. When it is True (a command failed or timed out after it was
    sent) the undo stays on the stack. `transient` says the machine could not be reached yet
    (booting, its network not up): an undo meeting it is retried until its deadline.
    """

    def __init__(
        self,
        node: str,
        driver: str,
        action: Action | str,
        reason: str,
        *,
        may_have_acted: bool = True,
        transient: bool = False,
    ) -> None:
        self.node = node
        self.driver = driver
        self.action = str(action)
        self.reason = reason
        self.may_have_acted = may_have_acted
        self.transient = transient
        super().__init__(f"{driver} machine of node {node!r}: {self.action} failed: {reason}")


class MachineState(enum.StrEnum):
    """What the driver could tell about the machine."""

    RUNNING = "running"
    FROZEN = "frozen"
    STOPPED = "stopped"
    PARTITIONED = "partitioned"
    UNREACHABLE = "unreachable"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class MachineHealth:
    """The machine's state as its driver sees it; `services` maps kubelet/runtime to active."""

    node: str
    driver: str
    state: MachineState
    services: Mapping[str, bool] = field(default_factory=lambda: MappingProxyType({}))
    detail: str = ""

    @property
    def healthy(self) -> bool:
        """Running, and every service the driver checked is active."""
        return self.state is MachineState.RUNNING and all(self.services.values())


@runtime_checkable
class Machine(Protocol):
    """A node's machine: what the runbook does to it, whatever it runs on."""

    @property
    def node(self) -> str:
        """The Kubernetes node name."""
        ...

    @property
    def driver(self) -> str:
        """The driver's name: sim, docker, ssh or command."""
        ...

    def stop(self) -> None:
        """Power off cleanly; undone by `start`."""

    def kill(self) -> None:
        """Crash: power lost, nothing shut down; undone by `start`."""

    def freeze(self) -> None:
        """Suspend the machine (or its kubelet) without losing state; undone by `thaw`."""

    def thaw(self) -> None:
        """Resume a frozen machine."""

    def partition(self) -> None:
        """Keep the node running but cut it off from the API server; undone by `heal`."""

    def heal(self) -> None:
        """Undo a partition."""

    def stop_kubelet(self) -> None:
        """Stop the kubelet service; undone by `start_kubelet`."""

    def start_kubelet(self) -> None:
        """Start the kubelet service."""

    def stop_runtime(self) -> None:
        """Stop the container runtime; undone by `start_runtime`."""

    def start_runtime(self) -> None:
        """Start the container runtime."""

    def start(self) -> None:
        """Power on (or restart) the machine."""

    def health(self) -> MachineHealth:
        """The machine's state; reaching nothing is a state, not an error."""
        ...


class MachineBase(ABC):
    """Shared plumbing: undo registration before each fault, errors naming node/driver/action.

    A driver implements `_act` (and may refine `_check`, called before anything is touched).
    """

    driver: ClassVar[str]

    def __init__(self, node: str, undo: UndoStack) -> None:
        self._node = node
        self._undo = undo
        self._pending: dict[Action, list[UndoEntry]] = {}

    @property
    def node(self) -> str:
        """The Kubernetes node name."""
        return self._node

    def __repr__(self) -> str:
        return f"<{type(self).__name__} node={self._node!r}>"

    def stop(self) -> None:
        """Power off cleanly; undone by `start`."""
        self._fault(Action.STOP)

    def kill(self) -> None:
        """Crash: power lost, nothing shut down; undone by `start`."""
        self._fault(Action.KILL)

    def freeze(self) -> None:
        """Suspend the machine (or its kubelet) without losing state; undone by `thaw`."""
        self._fault(Action.FREEZE)

    def thaw(self) -> None:
        """Resume a frozen machine."""
        self._restore(Action.THAW)

    def partition(self) -> None:
        """Keep the node running but cut it off from the API server; undone by `heal`."""
        self._fault(Action.PARTITION)

    def heal(self) -> None:
        """Undo a partition."""
        self._restore(Action.HEAL)

    def stop_kubelet(self) -> None:
        """Stop the kubelet service; undone by `start_kubelet`."""
        self._fault(Action.STOP_KUBELET)

    def start_kubelet(self) -> None:
        """Start the kubelet service."""
        self._restore(Action.START_KUBELET)

    def stop_runtime(self) -> None:
        """Stop the container runtime; undone by `start_runtime`."""
        self._fault(Action.STOP_RUNTIME)

    def start_runtime(self) -> None:
        """Start the container runtime."""
        self._restore(Action.START_RUNTIME)

    def start(self) -> None:
        """Power on (or restart) the machine."""
        self._restore(Action.START)

    @abstractmethod
    def health(self) -> MachineHealth:
        """The machine's state; reaching nothing is a state, not an error."""

    def error(
        self,
        action: Action | str,
        reason: str,
        *,
        may_have_acted: bool = True,
        transient: bool = False,
    ) -> MachineError:
        """A `MachineError` naming this machine's node and driver."""
        return MachineError(
            self._node,
            self.driver,
            action,
            reason,
            may_have_acted=may_have_acted,
            transient=transient,
        )

    def describe(self, action: Action) -> str:
        """What `action` would run, in words a user can check (the dry run prints it)."""
        return f"{self.driver} machine of node {self._node}: {action}"

    def carry_out(self, action: Action) -> None:
        """Carry out `action` now, with no undo bookkeeping (what an undo does)."""
        log.info("%s machine of node %r: %s", self.driver, self._node, action)
        self._act(action)

    def _locator(self) -> dict[str, Any]:
        """What the record needs to find this machine again without the inventory."""
        return {}

    def _undo_env(self) -> UndoEnv:
        """How the undo of a fault reaches this machine: its own spec (never journaled)."""
        return UndoEnv(inventory=_OneSpec(self._node, getattr(self, "spec", None)))

    def _check(self, action: Action) -> None:  # noqa: B027 - an optional hook, not abstract
        """Raise `MachineError(may_have_acted=False)` if `action` cannot be carried out."""

    @abstractmethod
    def _act(self, action: Action) -> None:
        """Carry out `action`; raise `MachineError` (via `self.error`) when it fails."""

    def _fault(self, action: Action) -> None:
        restore = UNDO_OF[action]
        # Both the fault and its undo must be possible before anything is touched.
        self._check(action)
        try:
            self._check(restore)
        except MachineError as exc:
            raise self.error(
                action, f"it could not be undone: {exc.reason}", may_have_acted=False
            ) from exc
        # Journaled (when the stack has a journal) before anything is touched, so that
        # `k8sdr recover` can restore the machine if this process dies.
        entry = self._undo.push(
            MachineFault(self._node, self.driver, str(action), str(restore), **self._locator()),
            self._undo_env(),
        )
        self._pending.setdefault(restore, []).append(entry)
        log.info("%s machine of node %r: %s", self.driver, self._node, action)
        try:
            self._act(action)
        except MachineError as exc:
            if not exc.may_have_acted:
                self._undo.discard(entry)
                self._pending[restore].remove(entry)
            raise

    def _restore(self, action: Action) -> None:
        self._check(action)
        log.info("%s machine of node %r: %s", self.driver, self._node, action)
        self._act(action)
        for entry in self._pending.pop(action, []):
            self._undo.discard(entry)


class _OneSpec:
    """The spec of one machine, for the undo of its own faults."""

    def __init__(self, node: str, spec: object) -> None:
        self.node = node
        self.spec = spec

    def spec_for(self, node: str) -> Any:
        """The spec, for its own node (ConfigError for any other)."""
        if node != self.node or self.spec is None:
            raise ConfigError(f"no machine spec for node {node!r}")
        return self.spec


@disruption_kind
@dataclass(frozen=True)
class MachineFault(Disruption):
    """A fault of a node's machine; undone by its restore action.

    The record names the driver, the node and how to find the machine again where that needs
    no inventory (the simulator's state directory, a kind cluster's name and engine). ssh and
    command machines are found again through the inventory (`UndoEnv.inventory`; for `k8sdr
    recover`, the journal's or `--inventory`). Secrets are never recorded.
    """

    kind = "machine"
    node: str
    driver: str
    fault: str
    restore: str
    state_dir: str | None = None
    kind_cluster: str | None = None
    docker: str | None = None
    docker_host: str | None = None

    def summary(self) -> str:
        """``kill the sim machine of node NODE``."""
        return f"{self.fault} the {self.driver} machine of node {self.node}"

    def undoing(self) -> str:
        """``sim machine of node 'NODE': start (undoes kill)``."""
        return f"{self.driver} machine of node {self.node!r}: {self.restore} (undoes {self.fault})"

    def retryable(self, exc: BaseException) -> bool:
        """The API down, or the machine not reachable yet."""
        return super().retryable(exc) or (isinstance(exc, MachineError) and exc.transient)

    def undo(self, env: UndoEnv) -> None:
        """Build the machine again and carry out the restore action."""
        from pytest_k8sdr.faults.machines.factory import make_machine

        machine = make_machine(self.spec(env), UndoStack(), sim=env.sim)
        machine.carry_out(Action(self.restore))

    def spec(self, env: UndoEnv) -> Any:
        """The machine's spec: the inventory's when it has one, else what the record says."""
        from pytest_k8sdr.faults.machines.inventory import DockerSpec, SimSpec

        if env.inventory is not None:
            try:
                spec = env.inventory.spec_for(self.node)
            except ConfigError:
                spec = None
            usable = getattr(spec, "driver", None) == self.driver and not (
                isinstance(spec, SimSpec) and spec.state_dir is None and self.state_dir
            )
            if usable:
                return spec
        if self.driver == "sim":
            return SimSpec(self.node, Path(self.state_dir) if self.state_dir else None)
        if self.driver == "docker":
            return DockerSpec(
                self.node,
                cluster=self.kind_cluster,
                docker=self.docker or "docker",
                host=self.docker_host,
            )
        raise ConfigError(
            f"the {self.driver} machine of node {self.node!r} can only be found through its "
            "inventory: pass --inventory PATH"
        )
