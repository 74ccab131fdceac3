"""The command driver: any local command per action (IPMI, a cloud CLI, a site's own tooling).

Commands are templates filled with `{node}`, `{address}`, `{api_host}`, `{api_port}` and the
node's `vars`; a non-zero exit or a run past the timeout (the command's process group is killed)
is a `MachineError`. Restore commands should be idempotent: they also run as undos of faults
that may never have taken effect.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from pytest_k8sdr.faults.machines import presets
from pytest_k8sdr.faults.machines._commands import Command, CommandTimeout, Completed, run_local
from pytest_k8sdr.faults.machines.base import (
    Action,
    MachineBase,
    MachineHealth,
    MachineState,
)
from pytest_k8sdr.faults.machines.inventory import CommandSpec
from pytest_k8sdr.undo import UndoStack


def api_variables(api_server: str | None) -> dict[str, str]:
    """`api_host` and `api_port` from HOST:PORT, when set."""
    if api_server is None:
        return {}
    host, _, port = api_server.rpartition(":")
    return {"api_host": host.strip("[]"), "api_port": port}


def run_templated(
    machine: MachineBase,
    action: Action | str,
    command: Command,
    variables: Mapping[str, str],
    timeout: float,
    *,
    check: bool = True,
) -> Completed:
    """Run a local command template for `machine`; failures become its `MachineError`."""
    argv = command.render_argv(variables)
    try:
        done = run_local(argv, timeout=timeout)
    except OSError as exc:
        raise machine.error(action, f"cannot run {argv[0]}: {exc}", may_have_acted=False) from exc
    except CommandTimeout as exc:
        raise machine.error(action, f"{exc}; output: {exc.output or '-'}") from exc
    if check and done.returncode != 0:
        raise machine.error(
            action, f"command exited with {done.returncode}: {done.tail() or 'no output'}"
        )
    return done


def check_command(
    machine: MachineBase,
    action: Action,
    commands: Mapping[str, Command],
    variables: Mapping[str, str],
) -> None:
    """MachineError (nothing touched) unless `action` has a command whose placeholders fill."""
    command = commands.get(action.value)
    if command is None:
        raise machine.error(
            action,
            f"no command configured for {action} (set commands.{action})",
            may_have_acted=False,
        )
    missing = command.placeholders() - set(variables)
    if missing:
        hint = " (set api_server)" if missing & {"api_host", "api_port"} else ""
        raise machine.error(
            action,
            f"the command needs {', '.join(sorted(missing))}{hint}",
            may_have_acted=False,
        )


class CommandMachine(MachineBase):
    """A machine driven by local commands, one per action."""

    driver = "command"

    def __init__(self, spec: CommandSpec, undo: UndoStack) -> None:
        super().__init__(spec.node, undo)
        self.spec = spec
        self.variables: Mapping[str, str] = {
            "node": spec.node,
            "address": spec.address or spec.node,
            **api_variables(spec.api_server),
            **spec.vars,
        }

    def _check(self, action: Action) -> None:
        check_command(self, action, self.spec.commands, self.variables)

    def _act(self, action: Action) -> None:
        self._run(action, self.spec.commands[action.value])

    def describe(self, action: Action) -> str:
        """The local command `action` runs, rendered as it would run."""
        command = self.spec.commands.get(action.value)
        if command is None:
            return super().describe(action)
        return shlex.join(command.render_argv(self.variables))

    def _run(self, action: Action | str, command: Command, *, check: bool = True) -> Completed:
        return run_templated(self, action, command, self.variables, self.spec.timeout, check=check)

    def health(self) -> MachineHealth:
        """Runs the `health` command (exit 0: running) and the service checks, if configured."""
        commands = self.spec.commands
        services: dict[str, bool] = {}
        for name, key in (("kubelet", presets.KUBELET_ACTIVE), ("runtime", presets.RUNTIME_ACTIVE)):
            if key in commands:
                services[name] = self._probe(key, commands[key])[0]
        if "health" not in commands:
            return MachineHealth(
                self.node, self.driver, MachineState.UNKNOWN, services, "no health command"
            )
        ok, detail = self._probe("health", commands["health"])
        state = MachineState.RUNNING if ok else MachineState.UNREACHABLE
        return MachineHealth(self.node, self.driver, state, services, detail)

    def _probe(self, key: str, command: Command) -> tuple[bool, str]:
        try:
            done = self._run(key, command, check=False)
        except Exception as exc:  # a probe that cannot run says "not healthy", with why
            return False, str(exc)
        return done.returncode == 0, done.tail()
