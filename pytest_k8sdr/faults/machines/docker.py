"""The docker driver: kind node containers, through the docker CLI.

A node's container is found by kind's own labels, as `kind get nodes` does: among containers
labelled `io.x-k8s.kind.cluster` (= the `cluster` setting, when set) with the role
`control-plane` or `worker`, the one named after the node (kind names each node's container
after the node; container names are unique per engine). Power actions are
`docker stop|kill|pause|unpause|start`; kubelet, runtime and partition actions run their
command inside the node with `docker exec` (systemd and iptables in a kind node). An engine
that cannot be reached or a container that does not exist is a `MachineError` saying so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from pytest_k8sdr.faults.machines import presets
from pytest_k8sdr.faults.machines._commands import Command, CommandTimeout, Completed, run_local
from pytest_k8sdr.faults.machines.base import (
    RESTORES,
    Action,
    MachineBase,
    MachineError,
    MachineHealth,
    MachineState,
)
from pytest_k8sdr.faults.machines.command import api_variables
from pytest_k8sdr.faults.machines.inventory import DockerSpec
from pytest_k8sdr.undo import UndoStack

log = logging.getLogger(__name__)

CLUSTER_LABEL = "io.x-k8s.kind.cluster"
ROLE_LABEL = "io.x-k8s.kind.role"
NODE_ROLES = ("control-plane", "worker")
# kind's API server port inside the control-plane container.
KIND_API_PORT = "6443"

_ENGINE_DOWN = (
    "Cannot connect to the Docker daemon",
    "Is the docker daemon running",
    "error during connect",
)
_IN_NODE = frozenset(
    {
        Action.PARTITION,
        Action.HEAL,
        Action.STOP_KUBELET,
        Action.START_KUBELET,
        Action.STOP_RUNTIME,
        Action.START_RUNTIME,
    }
)
JSON = dict[str, Any]


class DockerMachine(MachineBase):
    """A kind node container."""

    driver = "docker"

    def __init__(self, spec: DockerSpec, undo: UndoStack) -> None:
        super().__init__(spec.node, undo)
        self.spec = spec

    def _locator(self) -> dict[str, Any]:
        return {
            "kind_cluster": self.spec.cluster,
            "docker": self.spec.docker,
            "docker_host": self.spec.host,
        }

    def _check(self, action: Action) -> None:
        if action in _IN_NODE and action.value not in self.spec.commands:
            raise self.error(
                action,
                f"no command configured for {action} (set commands.{action})",
                may_have_acted=False,
            )

    def _act(self, action: Action) -> None:
        container = self.container(action)
        ident = container["Id"]
        status = container["State"]["Status"]
        if action is Action.STOP:
            self._docker(action, "stop", "-t", str(self.spec.stop_timeout), ident)
        elif action is Action.KILL:
            self._docker(action, "kill", ident)
        elif action is Action.FREEZE:
            self._docker(action, "pause", ident)
        elif action is Action.THAW:
            if status == "paused":
                self._docker(action, "unpause", ident)
        elif action is Action.START:
            if status == "paused":
                self._docker(action, "unpause", ident)
            elif status != "running":
                self._docker(action, "start", ident)
        elif status != "running" and action in RESTORES:
            # The node's services start with the container; nothing to restore while it is off.
            log.info("docker node %r is %s: %s has nothing to do", self.node, status, action)
        elif status != "running":
            raise self.error(
                action, f"container {self._name(container)} is {status}", may_have_acted=False
            )
        else:
            done = self._exec(action, container, self.spec.commands[action.value])
            if done.returncode != 0:
                raise self.error(
                    action,
                    f"command in container {self._name(container)} exited with"
                    f" {done.returncode}: {done.tail() or '-'}",
                )

    def health(self) -> MachineHealth:
        """The container's state and, when it runs, whether kubelet and runtime are active."""
        try:
            container = self.container(Action.HEALTH)
        except MachineError as exc:
            return MachineHealth(self.node, self.driver, MachineState.UNREACHABLE, {}, exc.reason)
        status = container["State"]["Status"]
        if status == "paused":
            return MachineHealth(self.node, self.driver, MachineState.FROZEN, {}, status)
        if status != "running":
            return MachineHealth(self.node, self.driver, MachineState.STOPPED, {}, status)
        services: dict[str, bool] = {}
        for name, key in (("kubelet", presets.KUBELET_ACTIVE), ("runtime", presets.RUNTIME_ACTIVE)):
            if key in self.spec.commands:
                try:
                    done = self._exec(Action.HEALTH, container, self.spec.commands[key])
                except MachineError:
                    services[name] = False
                else:
                    services[name] = done.returncode == 0
        return MachineHealth(self.node, self.driver, MachineState.RUNNING, services, status)

    def container(self, action: Action | str = Action.HEALTH) -> JSON:
        """`docker inspect` of the node's container, found by kind's labels."""
        label = f"{CLUSTER_LABEL}={self.spec.cluster}" if self.spec.cluster else CLUSTER_LABEL
        listed = self._docker(
            action, "ps", "--all", "--no-trunc", "--filter", f"label={label}", "--format", "{{.ID}}"
        )
        ids = listed.stdout.split()
        where = f"cluster {self.spec.cluster!r}" if self.spec.cluster else "any kind cluster"
        if not ids:
            raise self.error(
                action,
                f"no kind node containers (label {label}) for {where}: is the cluster running?",
                may_have_acted=False,
            )
        containers = self._inspect(action, ids)
        nodes = [
            c for c in containers if (c["Config"].get("Labels") or {}).get(ROLE_LABEL) in NODE_ROLES
        ]
        matches = [c for c in nodes if self._name(c) == self.node]
        if not matches:
            names = ", ".join(sorted(self._name(c) for c in nodes)) or "none"
            raise self.error(
                action,
                f"no kind node container named {self.node!r} in {where} (nodes: {names})",
                may_have_acted=False,
            )
        return matches[0]

    def _inspect(self, action: Action | str, ids: list[str]) -> list[JSON]:
        done = self._docker(action, "inspect", *ids, check=False)
        # A container removed between ps and inspect: inspect the rest (it prints what it can).
        try:
            data = json.loads(done.stdout or "[]")
        except json.JSONDecodeError as exc:
            raise self.error(
                action, f"docker inspect printed no JSON: {done.tail()}", may_have_acted=False
            ) from exc
        if done.returncode != 0 and not data:
            self._raise(action, ["inspect", *ids], done)
        return list(data)

    @staticmethod
    def _name(container: Mapping[str, Any]) -> str:
        return str(container["Name"]).lstrip("/")

    def _variables(self, action: Action | str, container: JSON, command: Command) -> dict[str, str]:
        variables = {"node": self.node, "container": self._name(container), **self.spec.vars}
        api = api_variables(self.spec.api_server)
        if not api and command.placeholders() & {"api_host", "api_port"}:
            api = self._kind_api(action, container)
        return {**variables, **api}

    def _kind_api(self, action: Action | str, container: JSON) -> dict[str, str]:
        """The API server as a kind node reaches it: the control plane's address, port 6443."""
        cluster = container["Config"]["Labels"][CLUSTER_LABEL]
        listed = self._docker(
            action,
            "ps",
            "--no-trunc",
            "--filter",
            f"label={CLUSTER_LABEL}={cluster}",
            "--filter",
            f"label={ROLE_LABEL}=control-plane",
            "--format",
            "{{.ID}}",
        )
        ids = listed.stdout.split()
        if not ids:
            return {}
        networks = self._inspect(action, ids[:1])[0]["NetworkSettings"]["Networks"]
        for network in networks.values():
            if network.get("IPAddress"):
                return {"api_host": network["IPAddress"], "api_port": KIND_API_PORT}
        return {}

    def _exec(self, action: Action | str, container: JSON, command: Command) -> Completed:
        variables = self._variables(action, container, command)
        missing = command.placeholders() - set(variables)
        if missing:
            raise self.error(
                action,
                f"cannot fill {', '.join(sorted(missing))}: set api_server",
                may_have_acted=False,
            )
        script = command.render_shell(variables)
        return self._docker(action, "exec", container["Id"], "sh", "-c", script, check=False)

    def _docker(self, action: Action | str, *args: str, check: bool = True) -> Completed:
        argv = [self.spec.docker, *args]
        env = {"DOCKER_HOST": self.spec.host} if self.spec.host else None
        try:
            done = run_local(argv, timeout=self.spec.timeout, env=env)
        except OSError as exc:
            raise self.error(
                action,
                f"cannot run the docker CLI {self.spec.docker!r}: {exc}",
                may_have_acted=False,
            ) from exc
        except CommandTimeout as exc:
            raise self.error(action, f"docker {args[0]} timed out: {exc}") from exc
        if check and done.returncode != 0:
            self._raise(action, args, done)
        return done

    def _raise(
        self, action: Action | str, args: tuple[str, ...] | list[str], done: Completed
    ) -> None:
        text = done.stderr
        if any(marker in text for marker in _ENGINE_DOWN):
            raise self.error(
                action, f"the Docker engine cannot be reached: {done.tail()}", may_have_acted=False
            )
        if "No such container" in text:
            raise self.error(
                action, f"the node's container is gone: {done.tail()}", may_have_acted=False
            )
        raise self.error(action, f"docker {args[0]} exited with {done.returncode}: {done.tail()}")
