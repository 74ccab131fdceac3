"""Control-plane loss: the API server and the controllers stop; the data plane keeps going.

- `sim`: the simulator's control-plane process is killed (API server, controllers and
  scheduler run in one process there); its store is durable, so a restart resumes it.
- `docker`: kind's control-plane node container is stopped (`docker stop`), as a power loss
  of the control-plane machine; undone by `docker start` (the static pods come back).
- `command`: the inventory's `control_plane: {stop: CMD, start: CMD}` templates (staging).

The stop is journaled as one `ControlPlaneStopped` before it is made, and undone by starting
the control plane at teardown, on Ctrl-C or SIGTERM and by `k8sdr recover`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_k8sdr.errors import ConfigError, FaultError
from pytest_k8sdr.faults.machines._commands import Command, CommandTimeout, run_local
from pytest_k8sdr.undo import Disruption, UndoEntry, UndoEnv, UndoStack, disruption_kind

__all__ = ["ControlPlane", "ControlPlaneError", "ControlPlaneStopped"]

log = logging.getLogger(__name__)

_TIMEOUT = 120.0


class ControlPlaneError(FaultError):
    """The control plane could not be stopped or started."""


@disruption_kind
@dataclass(frozen=True)
class ControlPlaneStopped(Disruption):
    """The control plane stopped; undone by starting it again (idempotent)."""

    kind = "control-plane"
    driver: str
    state_dir: str | None = None
    container: str | None = None
    docker: str = "docker"
    start: str | None = None
    timeout: float = _TIMEOUT

    def summary(self) -> str:
        """``stop the control plane (sim, DIR)``."""
        where = self.state_dir or self.container or "inventory command"
        return f"stop the control plane ({self.driver}, {where})"

    def undoing(self) -> str:
        """``start the control plane (sim)``."""
        return f"start the control plane ({self.driver})"

    def undo(self, env: UndoEnv) -> None:
        """Start the control plane again."""
        _start(self, env.sim)


def _start(rec: ControlPlaneStopped, sim: Any) -> None:
    if rec.driver == "sim":
        if sim is None or str(getattr(sim, "state_dir", "")) != str(rec.state_dir):
            from pytest_k8sdr.sim import SimCluster, SimLaunchError

            try:
                sim = SimCluster.attach(Path(str(rec.state_dir)))
            except SimLaunchError as exc:  # the cluster itself is gone: nothing to start
                log.info("no simulated cluster in %s: %s", rec.state_dir, exc)
                return
        sim.start_control_plane(timeout=rec.timeout)
    elif rec.driver == "docker":
        _run([rec.docker, "start", str(rec.container)], rec.timeout, "start")
    else:
        if not rec.start:
            raise ConfigError("the control plane's start command is not recorded")
        _run(Command(rec.start).render_argv({}), rec.timeout, "start")


def _run(argv: list[str], timeout: float, what: str) -> None:
    try:
        done = run_local(argv, timeout=timeout)
    except OSError as exc:
        raise ControlPlaneError(f"control plane {what}: cannot run {argv[0]}: {exc}") from exc
    except CommandTimeout as exc:
        raise ControlPlaneError(f"control plane {what}: {exc}") from exc
    if done.returncode != 0:
        raise ControlPlaneError(
            f"control plane {what}: {argv[0]} exited with {done.returncode}: "
            f"{done.tail() or 'no output'}"
        )


class ControlPlane:
    """The cluster's control plane as one machine: `stop` (journaled) and `start`."""

    def __init__(self, record: ControlPlaneStopped, undo: UndoStack, *, sim: Any = None) -> None:
        self._record = record
        self._undo = undo
        self._sim = sim
        self._stop_command: str | None = None
        self._entries: list[UndoEntry] = []

    @classmethod
    def for_backend(
        cls,
        backend: str,
        undo: UndoStack,
        *,
        sim: Any = None,
        context: str | None = None,
        commands: Mapping[str, Any] | None = None,
        docker: str = "docker",
    ) -> ControlPlane:
        """The control plane of the session's backend; ConfigError when it cannot be reached.

        On kubeconfig (staging) `commands` is the inventory's `control_plane` mapping.
        """
        if backend == "sim":
            if sim is None:
                raise ConfigError("the simulator backend has no running cluster")
            return cls(ControlPlaneStopped("sim", state_dir=str(sim.state_dir)), undo, sim=sim)
        if backend == "kind":
            name = (context or "kind-kind").removeprefix("kind-")
            rec = ControlPlaneStopped("docker", container=f"{name}-control-plane", docker=docker)
            return cls(rec, undo)
        if not commands or not commands.get("stop") or not commands.get("start"):
            raise ConfigError(
                "control-plane loss on this cluster needs commands: add "
                "`control_plane: {stop: CMD, start: CMD}` to the machine inventory"
            )
        for key in ("stop", "start"):
            try:
                Command(str(commands[key])).check(())
            except ValueError as exc:
                raise ConfigError(f"inventory control_plane.{key}: {exc}") from exc
        timeout = float(commands.get("timeout", _TIMEOUT))
        rec = ControlPlaneStopped("command", start=str(commands["start"]), timeout=timeout)
        plane = cls(rec, undo)
        plane._stop_command = str(commands["stop"])
        return plane

    @property
    def driver(self) -> str:
        """sim, docker or command."""
        return self._record.driver

    def stop(self) -> None:
        """Stop the API server and controllers (journaled first); undone by `start`."""
        entry = self._undo.push(self._record, UndoEnv(sim=self._sim))
        self._entries.append(entry)
        rec = self._record
        log.info("control plane: stop (%s)", rec.driver)
        if rec.driver == "sim":
            self._sim.stop_control_plane()
        elif rec.driver == "docker":
            _run([rec.docker, "stop", "--time", "0", str(rec.container)], rec.timeout, "stop")
        else:
            _run(Command(str(self._stop_command)).render_argv({}), rec.timeout, "stop")

    def start(self) -> None:
        """Start the control plane again and drop the undo of `stop`."""
        _start(self._record, self._sim)
        while self._entries:
            self._undo.discard(self._entries.pop())
