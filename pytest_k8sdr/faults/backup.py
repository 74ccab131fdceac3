"""Backups of the cluster's state and their restores: the `backup` fixture's drivers.

- `sim`: the simulator's own snapshot of its store, as `etcdctl snapshot save` takes one of a
  running etcd (one consistent revision, to a file). A restore stops the control plane,
  replaces its store by the snapshot and starts it, as `etcdutl snapshot restore
  --bump-revision --mark-compacted` and a restart of kube-apiserver do: the resourceVersion
  continues above every one clients have seen and every older one is compacted, so each
  watch gets 410 Gone and its client lists afresh (kubernetes/kubernetes#118501).
- `command`: any CLI (velero, etcdctl, a site's own script), one template per action, with
  `{name}` (the backup's name), `{file}` (a file for tools that write one), `{namespaces}`
  (comma-separated; empty for the whole cluster), `{kubeconfig}`, `{context}` and `vars`.
  With `stop_control_plane: true` the restore runs with the control plane stopped (etcdctl),
  through the `control_plane` fault.

Configured in the machine inventory (the simulator's driver is the default on the simulator)::

    backup:
      driver: command
      save: velero backup create {name} --include-namespaces {namespaces} --wait
      restore: velero restore create {name} --from-backup {name} --wait
      delete: velero backup delete {name} --confirm    # optional: at teardown
      timeout: 600
      vars: {bucket: dr-drills}

A stopped control plane is journaled (`control-plane`) and started again at teardown and by
`k8sdr recover`; a backup the CLI keeps somewhere (`delete` configured) is journaled as
`backup` and deleted at teardown. The `delete` command must be idempotent: it also runs as an
undo of a save that may never have completed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pytest_k8sdr.errors import ConfigError, FaultError
from pytest_k8sdr.faults.controlplane import ControlPlane
from pytest_k8sdr.faults.machines._commands import Command, CommandTimeout, command_from, run_local
from pytest_k8sdr.undo import Disruption, UndoEnv, UndoStack, disruption_kind

__all__ = ["Backup", "BackupError", "BackupSpec", "BackupTaken", "Backups", "parse_backup"]

log = logging.getLogger(__name__)

DRIVERS = ("sim", "command")
PLACEHOLDERS = frozenset({"name", "file", "namespaces", "kubeconfig", "context"})
_KEYS = frozenset({"driver", "save", "restore", "delete", "stop_control_plane", "timeout", "vars"})
_TIMEOUT = 600.0
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class BackupError(FaultError):
    """A backup could not be taken, restored or deleted."""


@dataclass(frozen=True)
class BackupSpec:
    """A validated backup driver: which one, and for `command` its templates."""

    driver: str
    save: Command | None = None
    restore: Command | None = None
    delete: Command | None = None
    stop_control_plane: bool = False
    timeout: float = _TIMEOUT
    vars: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


def parse_backup(raw: object, source: str) -> BackupSpec | None:
    """The inventory's `backup:` mapping, validated; None when absent; ConfigError naming a key."""
    if raw is None:
        return None
    where = f"{source}: backup"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping with driver, save and restore")
    unknown = sorted(set(map(str, raw)) - _KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}"
        )
    driver = str(raw.get("driver") or "command")
    if driver not in DRIVERS:
        names = ", ".join(DRIVERS)
        raise ConfigError(f"{where}: driver: unknown driver {driver!r}; known: {names}")
    variables = _variables(raw.get("vars"), where)
    timeout = raw.get("timeout", _TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"{where}: timeout: expected a positive number, got {timeout!r}")
    stop = raw.get("stop_control_plane", False)
    if not isinstance(stop, bool):
        raise ConfigError(f"{where}: stop_control_plane: expected true or false, got {stop!r}")
    if driver == "sim":
        extra = sorted(k for k in ("save", "restore", "delete") if raw.get(k) is not None)
        if extra:
            raise ConfigError(f"{where}: {', '.join(extra)}: the sim driver takes no commands")
        return BackupSpec("sim", timeout=float(timeout))
    commands: dict[str, Command | None] = {}
    known = PLACEHOLDERS | set(variables)
    for key in ("save", "restore", "delete"):
        value = raw.get(key)
        if value is None:
            if key != "delete":
                raise ConfigError(f"{where}: {key}: required for the command driver, missing")
            commands[key] = None
            continue
        try:
            command = command_from(value)
            command.check(known)
        except ValueError as exc:
            raise ConfigError(f"{where}: {key}: {exc}") from None
        commands[key] = command
    return BackupSpec(
        "command",
        save=commands["save"],
        restore=commands["restore"],
        delete=commands["delete"],
        stop_control_plane=stop,
        timeout=float(timeout),
        vars=variables,
    )


def _variables(raw: object, where: str) -> Mapping[str, str]:
    if raw is None:
        return MappingProxyType({})
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: vars: expected a mapping, got {raw!r}")
    out: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"{where}: vars: {name!r} is not a valid placeholder name")
        if name in PLACEHOLDERS:
            raise ConfigError(f"{where}: vars: {name} is filled by the driver; rename it")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"{where}: vars.{name}: expected a string, got {value!r}")
        out[name] = str(value)
    return MappingProxyType(out)


@dataclass(frozen=True)
class Backup:
    """One backup: its name, what it covers, where its file is, and when it was taken.

    `resource_version` and `objects` are the snapshot's (sim driver), None otherwise.
    """

    name: str
    driver: str
    namespaces: tuple[str, ...]
    file: Path
    taken_at: datetime
    resource_version: int | None = None
    objects: int | None = None


@disruption_kind
@dataclass(frozen=True)
class BackupTaken(Disruption):
    """A backup kept by a CLI (a velero Backup); undone by its `delete` command (idempotent)."""

    kind = "backup"
    disruptive = False
    name: str
    delete: str | list[str]
    variables: dict[str, str]
    timeout: float = _TIMEOUT

    def summary(self) -> str:
        """``take backup NAME``."""
        return f"take backup {self.name}"

    def undoing(self) -> str:
        """``delete backup NAME``."""
        return f"delete backup {self.name}"

    def undo(self, env: UndoEnv) -> None:
        """Run the recorded delete command."""
        template = self.delete if isinstance(self.delete, str) else tuple(self.delete)
        _run(Command(template), self.variables, self.timeout, f"delete backup {self.name}")


def _run(command: Command, variables: Mapping[str, str], timeout: float, what: str) -> None:
    argv = command.render_argv(variables)
    try:
        done = run_local(argv, timeout=timeout)
    except OSError as exc:
        raise BackupError(f"{what}: cannot run {argv[0]}: {exc}") from exc
    except CommandTimeout as exc:
        raise BackupError(f"{what}: {exc}; output: {exc.output or '-'}") from exc
    if done.returncode != 0:
        raise BackupError(
            f"{what}: {argv[0]} exited with {done.returncode}: {done.tail() or 'no output'}"
        )


class Backups:
    """Take backups (`save`) and restore them (`restore`) through one driver."""

    def __init__(
        self,
        spec: BackupSpec,
        undo: UndoStack,
        directory: Path,
        *,
        sim: Any = None,
        control_plane: ControlPlane | None = None,
        kubeconfig: str | None = None,
        context: str | None = None,
    ) -> None:
        if spec.driver == "sim" and sim is None:
            raise ConfigError("the sim backup driver needs the simulated cluster (backend sim)")
        if (spec.driver == "sim" or spec.stop_control_plane) and control_plane is None:
            raise ConfigError("restoring this backup stops the control plane: none is known")
        self.spec = spec
        self._undo = undo
        self._directory = directory
        self._sim = sim
        self._control_plane = control_plane
        self._kubeconfig = kubeconfig or ""
        self._context = context or ""
        self._count = 0

    @property
    def driver(self) -> str:
        """The driver's name: sim or command."""
        return self.spec.driver

    def save(self, *, namespaces: Sequence[str] = (), name: str | None = None) -> Backup:
        """Take a backup (of `namespaces`, or the whole cluster); returns it once it is complete.

        The sim driver always snapshots the whole store, as etcdctl does.
        """
        self._count += 1
        name = name or f"k8sdr-{datetime.now(UTC):%Y%m%d%H%M%S}-{self._count}"
        if not _NAME.match(name) or len(name) > 63:
            raise ConfigError(f"backup name {name!r}: expected a DNS label (a-z, 0-9, -)")
        self._directory.mkdir(parents=True, exist_ok=True)
        file = self._directory / f"{name}.db"
        backup = Backup(name, self.driver, tuple(namespaces), file, _now())
        if self.spec.driver == "sim":
            from pytest_k8sdr.sim import SimError

            try:
                rv, objects = self._sim.save_snapshot(backup.file)
            except SimError as exc:
                raise BackupError(f"save backup {name}: {exc}") from exc
            log.info("backup %s: %d objects at resourceVersion %d", name, objects, rv)
            return Backup(name, "sim", backup.namespaces, backup.file, backup.taken_at, rv, objects)
        variables = self._variables(backup)
        delete = self.spec.delete
        if delete is not None:
            self._undo.push(
                BackupTaken(
                    name,
                    delete.template if isinstance(delete.template, str) else list(delete.template),
                    dict(variables),
                    self.spec.timeout,
                )
            )
        assert self.spec.save is not None
        _run(self.spec.save, variables, self.spec.timeout, f"save backup {name}")
        return backup

    def restore(self, backup: Backup) -> None:
        """Restore `backup`; with the control plane stopped meanwhile where the driver needs it.

        A stopped control plane is journaled and started again even when the restore fails.
        """
        if backup.driver != self.driver:
            raise ConfigError(f"backup {backup.name} was taken by the {backup.driver} driver")
        if self.spec.driver == "sim":
            from pytest_k8sdr.sim import SimError

            try:  # a missing or damaged file is an error before the control plane stops
                self._sim.check_snapshot(backup.file)
            except SimError as exc:
                raise BackupError(f"restore backup {backup.name}: {exc}") from exc
            plane = self._control_plane
            assert plane is not None
            plane.stop()
            try:
                rv = self._sim.restore_snapshot(backup.file)
            except SimError as exc:
                raise BackupError(f"restore backup {backup.name}: {exc}") from exc
            finally:
                plane.start()
            log.info("restored %s: the store continues at resourceVersion %d", backup.name, rv)
            return
        assert self.spec.restore is not None
        variables = self._variables(backup)
        what = f"restore backup {backup.name}"
        if not self.spec.stop_control_plane:
            _run(self.spec.restore, variables, self.spec.timeout, what)
            return
        plane = self._control_plane
        assert plane is not None
        plane.stop()
        try:
            _run(self.spec.restore, variables, self.spec.timeout, what)
        finally:
            plane.start()

    def _variables(self, backup: Backup) -> dict[str, str]:
        return {
            **self.spec.vars,
            "name": backup.name,
            "file": str(backup.file),
            "namespaces": ",".join(backup.namespaces),
            "kubeconfig": self._kubeconfig,
            "context": self._context,
        }


def _now() -> datetime:
    return datetime.now(UTC)
