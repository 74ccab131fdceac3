"""Which machine each node runs on: a YAML inventory or flat settings, validated up front.

An inventory file::

    defaults:                  # every node; keys its driver does not use are ignored
      driver: ssh
      user: ubuntu
      key: ~/.ssh/id_ed25519
      sudo: true
      preset: systemd          # systemd | k3s | none: default per-action commands
      api_server: 10.0.0.10:6443
      power_on: ipmitool -I lanplus -H {bmc} -U admin -E chassis power on
    nodes:
      worker-1:
        host: 10.0.0.11
        vars: {bmc: 10.0.1.11}
      kind-worker:
        driver: docker
        cluster: kind

Flat settings (ini, environment, command line) carry the same keys as `defaults`, as strings.
Everything is checked before any machine is touched: an unknown key, a missing host, a key file
that does not exist or a command naming an unknown placeholder is a `ConfigError` naming the node
and the key. Passwords and key passphrases are held as `Secret`, which never prints its value.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

import yaml

from pytest_k8sdr.errors import ConfigError
from pytest_k8sdr.faults.machines import presets
from pytest_k8sdr.faults.machines._commands import Command, command_from
from pytest_k8sdr.faults.machines.base import Action

if TYPE_CHECKING:
    from pytest_k8sdr.faults.backup import BackupSpec

DRIVERS = ("sim", "docker", "ssh", "command")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return _EMPTY


class Secret:
    """A password or passphrase: `reveal()` gives the value; repr and str never do."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value, for the one call that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class SimSpec:
    """A simulated node: its agent, found through the simulator's state directory."""

    driver: ClassVar[str] = "sim"
    node: str
    state_dir: Path | None = None


@dataclass(frozen=True)
class DockerSpec:
    """A kind node container, found by kind's labels (cluster and role), never by its name."""

    driver: ClassVar[str] = "docker"
    node: str
    cluster: str | None = None
    docker: str = "docker"
    host: str | None = None  # DOCKER_HOST, when not the local engine
    timeout: float = 60.0
    stop_timeout: int = 10
    api_server: str | None = None
    commands: Mapping[str, Command] = field(default_factory=lambda: presets.KIND_NODE)
    vars: Mapping[str, str] = field(default_factory=_empty)


@dataclass(frozen=True)
class SshHop:
    """Where and how to log in over SSH (a machine or a jump host)."""

    host: str
    port: int = 22
    user: str | None = None
    key: Path | None = None
    key_passphrase: Secret | None = None
    password: Secret | None = None
    agent: bool = True


@dataclass(frozen=True)
class SshSpec:
    """A staging machine reached over SSH; power-on goes through the local `power_on` command."""

    driver: ClassVar[str] = "ssh"
    node: str
    login: SshHop
    known_hosts: Path | None = None
    accept_unknown_host_keys_INSECURE: bool = False
    jump: SshHop | None = None
    connect_timeout: float = 10.0
    command_timeout: float = 60.0
    sudo: bool = False
    commands: Mapping[str, Command] = field(default_factory=lambda: presets.SYSTEMD)
    power_on: Command | None = None
    power_on_timeout: float = 120.0
    api_server: str | None = None
    vars: Mapping[str, str] = field(default_factory=_empty)


@dataclass(frozen=True)
class CommandSpec:
    """Any local command per action (IPMI, a cloud CLI, a site's own tooling)."""

    driver: ClassVar[str] = "command"
    node: str
    address: str | None = None
    commands: Mapping[str, Command] = field(default_factory=_empty)
    timeout: float = 120.0
    api_server: str | None = None
    vars: Mapping[str, str] = field(default_factory=_empty)


MachineSpec: TypeAlias = SimSpec | DockerSpec | SshSpec | CommandSpec

# Command keys: every action but health, plus the health checks of the two services.
COMMAND_KEYS = frozenset(a.value for a in Action if a is not Action.HEALTH) | {
    presets.KUBELET_ACTIVE,
    presets.RUNTIME_ACTIVE,
    "health",
}

_COMMON = {"driver", "vars", "api_server"}
_HOP = {"host", "port", "user", "key", "key_passphrase", "key_passphrase_env", "password",
        "password_env", "agent"}  # fmt: skip
_KEYS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "sim": frozenset(_COMMON | {"state_dir"}),
        "docker": frozenset(
            _COMMON | {"cluster", "docker", "docker_host", "timeout", "stop_timeout", "commands"}
        ),
        "ssh": frozenset(
            _COMMON
            | _HOP
            | {
                "known_hosts",
                "accept_unknown_host_keys_INSECURE",
                "jump",
                "connect_timeout",
                "command_timeout",
                "sudo",
                "preset",
                "commands",
                "power_on",
                "power_on_timeout",
            }
        ),
        "command": frozenset(_COMMON | {"address", "commands", "timeout"}),
    }
)
_ALL_KEYS = frozenset().union(*_KEYS.values())

# Placeholders every driver fills; `vars` adds more.
_PLACEHOLDERS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "docker": frozenset({"node", "container", "api_host", "api_port"}),
        "ssh": frozenset({"node", "host", "address", "user", "api_host", "api_port"}),
        "command": frozenset({"node", "address", "api_host", "api_port"}),
    }
)


class _Fields:
    """One node's raw settings, read key by key; errors name the node and the key."""

    def __init__(self, where: str, raw: Mapping[str, Any]) -> None:
        self.where = where
        self.raw = raw

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.where}: {key}: {problem}")

    def has(self, key: str) -> bool:
        return self.raw.get(key) not in (None, "")

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.raw.get(key)
        if value is None or value == "":
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.fail(key, f"expected a string, got {value!r}")
        return str(value)

    def required(self, key: str) -> str:
        value = self.text(key)
        if value is None:
            raise self.fail(key, "required, missing")
        return value

    def number(self, key: str, default: float) -> float:
        value = self.raw.get(key)
        if value is None or value == "":
            return default
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self.fail(key, f"expected a number of seconds, got {value!r}") from None
        if isinstance(value, bool) or not number > 0:
            raise self.fail(key, f"expected a positive number, got {value!r}")
        return number

    def integer(self, key: str, default: int) -> int:
        value = self.raw.get(key)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise self.fail(key, f"expected an integer, got {value!r}") from None
        if isinstance(value, bool) or number < 0 or str(number) != str(value).strip():
            raise self.fail(key, f"expected a non-negative integer, got {value!r}")
        return number

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise self.fail(key, f"expected true or false, got {value!r}")

    def path(self, key: str, *, must_exist: bool) -> Path | None:
        text = self.text(key)
        if text is None:
            return None
        path = Path(text).expanduser()
        if must_exist and not path.is_file():
            raise self.fail(key, f"no such file: {path}")
        return path

    def secret(self, key: str) -> Secret | None:
        env_key = f"{key}_env"
        if self.has(key) and self.has(env_key):
            raise self.fail(key, f"give {key} or {env_key}, not both")
        if self.has(env_key):
            var = self.required(env_key)
            if var not in os.environ:
                raise self.fail(env_key, f"environment variable {var} is not set")
            return Secret(os.environ[var])
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(key, "expected a string")
        return Secret(value)

    def mapping(self, key: str) -> Mapping[str, Any]:
        value = self.raw.get(key)
        if value is None:
            return _EMPTY
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise self.fail(key, f"expected a mapping, got {value!r}")
        return value

    def variables(self) -> Mapping[str, str]:
        raw = self.mapping("vars")
        out: dict[str, str] = {}
        for name, value in raw.items():
            if not name.isidentifier():
                raise self.fail("vars", f"{name!r} is not a valid placeholder name")
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise self.fail(f"vars.{name}", f"expected a string, got {value!r}")
            out[name] = str(value)
        return MappingProxyType(out)

    def api_server(self) -> str | None:
        text = self.text("api_server")
        if text is None:
            return None
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise self.fail("api_server", f"expected HOST:PORT, got {text!r}")
        return text

    def commands(
        self, base: Mapping[str, Command], placeholders: Iterable[str], api_server: str | None
    ) -> Mapping[str, Command]:
        out = dict(base)
        for name, value in self.mapping("commands").items():
            if name not in COMMAND_KEYS:
                raise self.fail(
                    f"commands.{name}",
                    f"unknown action; known: {', '.join(sorted(COMMAND_KEYS))}",
                )
            if value is None:  # `stop: null` removes a preset's command
                out.pop(name, None)
                continue
            try:
                out[name] = command_from(value)
            except ValueError as exc:
                raise self.fail(f"commands.{name}", str(exc)) from None
        given = self.mapping("commands")
        for name, command in out.items():
            # A preset's partition needs api_server only when a test partitions the node (the
            # driver checks before acting; docker finds kind's API server itself). Commands
            # given here must be complete now.
            require_api = name in given and api_server is None and self.driver_name() != "docker"
            self.check_command(f"commands.{name}", command, placeholders, require_api)
        return MappingProxyType(out)

    def command(
        self, key: str, placeholders: Iterable[str], api_server: str | None
    ) -> Command | None:
        value = self.raw.get(key)
        if value is None or value == "":
            return None
        try:
            command = command_from(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None
        self.check_command(key, command, placeholders, api_server is None)
        return command

    def check_command(
        self, key: str, command: Command, placeholders: Iterable[str], require_api: bool
    ) -> None:
        try:
            command.check(placeholders)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None
        if require_api and command.placeholders() & {"api_host", "api_port"}:
            raise self.fail(key, "uses {api_host}/{api_port}: set api_server (HOST:PORT)")

    def driver_name(self) -> str:
        return str(self.raw.get("driver"))


def _hop(fields: _Fields) -> SshHop:
    port = fields.integer("port", 22)
    if not 0 < port < 65536:
        raise fields.fail("port", f"expected a TCP port, got {port}")
    return SshHop(
        host=fields.required("host"),
        port=port,
        user=fields.text("user"),
        key=fields.path("key", must_exist=True),
        key_passphrase=fields.secret("key_passphrase"),
        password=fields.secret("password"),
        agent=fields.flag("agent", True),
    )


def _jump(fields: _Fields) -> SshHop | None:
    value = fields.raw.get("jump")
    if value is None or value == "":
        return None
    if isinstance(value, str):
        # user@host[:port], like ssh -J.
        user, _, hostport = value.rpartition("@")
        host, sep, port = hostport.partition(":")
        value = {"host": host, "user": user or None, "port": port if sep else None}
    if not isinstance(value, Mapping):
        raise fields.fail("jump", f"expected user@host[:port] or a mapping, got {value!r}")
    unknown = sorted(set(value) - _HOP)
    if unknown:
        raise fields.fail("jump", f"unknown key(s) {', '.join(unknown)}; known: {sorted(_HOP)}")
    return _hop(_Fields(f"{fields.where}: jump", value))


def _build(node: str, where: str, raw: Mapping[str, Any]) -> MachineSpec:
    fields = _Fields(where, raw)
    driver = fields.required("driver")
    if driver not in DRIVERS:
        raise fields.fail("driver", f"unknown driver {driver!r}; known: {', '.join(DRIVERS)}")
    variables = fields.variables()
    names = _PLACEHOLDERS.get(driver, frozenset()) | set(variables)
    clash = sorted(set(variables) & _PLACEHOLDERS.get(driver, frozenset()))
    if clash:
        raise fields.fail("vars", f"{', '.join(clash)} is filled by the driver; rename it")
    api_server = fields.api_server()
    if driver == "sim":
        state_dir = fields.text("state_dir")
        return SimSpec(node, Path(state_dir).expanduser() if state_dir else None)
    if driver == "docker":
        return DockerSpec(
            node,
            cluster=fields.text("cluster"),
            docker=fields.text("docker", "docker") or "docker",
            host=fields.text("docker_host"),
            timeout=fields.number("timeout", 60.0),
            stop_timeout=fields.integer("stop_timeout", 10),
            api_server=api_server,
            commands=fields.commands(presets.KIND_NODE, names, api_server),
            vars=variables,
        )
    if driver == "command":
        return CommandSpec(
            node,
            address=fields.text("address"),
            commands=fields.commands(_EMPTY, names, api_server),
            timeout=fields.number("timeout", 120.0),
            api_server=api_server,
            vars=variables,
        )
    preset_name = fields.text("preset", "systemd") or "systemd"
    if preset_name not in presets.PRESETS:
        raise fields.fail(
            "preset", f"unknown preset {preset_name!r}; known: {', '.join(presets.PRESETS)}"
        )
    known_hosts = fields.path("known_hosts", must_exist=True)
    return SshSpec(
        node,
        login=_hop(fields),
        known_hosts=known_hosts,
        accept_unknown_host_keys_INSECURE=fields.flag("accept_unknown_host_keys_INSECURE", False),
        jump=_jump(fields),
        connect_timeout=fields.number("connect_timeout", 10.0),
        command_timeout=fields.number("command_timeout", 60.0),
        sudo=fields.flag("sudo", False),
        commands=fields.commands(presets.PRESETS[preset_name], names, api_server),
        power_on=fields.command("power_on", names, api_server),
        power_on_timeout=fields.number("power_on_timeout", 120.0),
        api_server=api_server,
        vars=variables,
    )


def _merge(defaults: Mapping[str, Any], entry: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """Node keys over defaults; node keys must belong to the node's driver."""
    driver = entry.get("driver", defaults.get("driver"))
    if driver is None:
        raise ConfigError(f"{where}: driver: required, missing (in the node or in defaults)")
    allowed = _KEYS.get(str(driver))
    if allowed is None:
        raise ConfigError(
            f"{where}: driver: unknown driver {driver!r}; known: {', '.join(DRIVERS)}"
        )
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)} for the {driver} driver;"
            f" known: {', '.join(sorted(allowed))}"
        )
    merged = {k: v for k, v in defaults.items() if k in allowed}
    for key, value in entry.items():
        if key in ("commands", "vars") and isinstance(value, Mapping):
            base = merged.get(key)
            merged[key] = {**(base if isinstance(base, Mapping) else {}), **value}
        else:
            merged[key] = value
    merged["driver"] = driver
    return merged


# Drivers that need nothing per node: any node without an entry gets the defaults.
_NO_PER_NODE = ("sim", "docker")


@dataclass(frozen=True)
class Inventory:
    """Validated machine specs by node name; unlisted nodes use the defaults when they can."""

    machines: Mapping[str, MachineSpec]
    defaults: Mapping[str, Any] = field(default_factory=_empty)
    source: str = "settings"
    #: `control_plane: {stop: CMD, start: CMD, timeout: S}`: how the control plane is
    #: stopped and started (`pytest_k8sdr.faults.controlplane`, the command driver).
    control_plane: Mapping[str, Any] = field(default_factory=_empty)
    #: `backup: {driver, save, restore, delete, ...}`: how backups are taken and restored
    #: (`pytest_k8sdr.faults.backup`); None: the backend's default (sim on the simulator).
    backup: BackupSpec | None = None

    def spec_for(self, node: str) -> MachineSpec:
        """The node's machine spec; ConfigError naming the node when there is none."""
        spec = self.machines.get(node)
        if spec is not None:
            return spec
        driver = self.defaults.get("driver")
        if driver in _NO_PER_NODE:
            where = f"{self.source}: node {node!r}"
            return _build(node, where, _merge(self.defaults, {}, where))
        if driver is None:
            raise ConfigError(
                f"node {node!r} has no machine in {self.source} and no default driver is set"
            )
        raise ConfigError(
            f"node {node!r} has no machine in {self.source}; the {driver} driver needs"
            f" an entry per node ({', '.join(sorted(self.machines)) or 'none listed'})"
        )

    def check_nodes(self, nodes: Iterable[str]) -> None:
        """ConfigError listing every node in `nodes` without a usable machine."""
        problems = []
        for node in nodes:
            try:
                self.spec_for(node)
            except ConfigError as exc:
                problems.append(str(exc))
        if problems:
            raise ConfigError("; ".join(problems))


def parse_inventory(data: object, *, source: str = "inventory") -> Inventory:
    """Validate an inventory document (`defaults` and `nodes` mappings)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping with 'defaults' and 'nodes'")
    unknown = sorted(set(data) - {"defaults", "nodes", "control_plane", "backup"})
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key(s) {', '.join(map(str, unknown))}")
    defaults = data.get("defaults") or {}
    nodes = data.get("nodes") or {}
    if not isinstance(defaults, Mapping):
        raise ConfigError(f"{source}: defaults: expected a mapping")
    if not isinstance(nodes, Mapping):
        raise ConfigError(f"{source}: nodes: expected a mapping of node name to machine")
    bad = sorted(set(map(str, defaults)) - _ALL_KEYS)
    if bad:
        raise ConfigError(
            f"{source}: defaults: unknown key(s) {', '.join(bad)};"
            f" known: {', '.join(sorted(_ALL_KEYS))}"
        )
    machines: dict[str, MachineSpec] = {}
    for node, entry in nodes.items():
        where = f"{source}: node {node!r}"
        if not isinstance(node, str) or not node:
            raise ConfigError(f"{source}: node names must be strings, got {node!r}")
        if entry is None:
            entry = {}
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected a mapping of settings, got {entry!r}")
        machines[node] = _build(node, where, _merge(defaults, entry, where))
    plane = data.get("control_plane") or {}
    if not isinstance(plane, Mapping) or set(map(str, plane)) - {"stop", "start", "timeout"}:
        raise ConfigError(
            f"{source}: control_plane: expected a mapping with stop, start (and timeout)"
        )
    _check_control_plane(plane, source)
    # Imported here: the backup drivers use the control plane, which uses this package.
    from pytest_k8sdr.faults.backup import parse_backup

    inventory = Inventory(
        MappingProxyType(machines),
        MappingProxyType(dict(defaults)),
        source,
        MappingProxyType(dict(plane)),
        parse_backup(data.get("backup"), source),
    )
    if defaults.get("driver") in _NO_PER_NODE:
        # Check the defaults now, so that a bad default fails before any node is touched.
        inventory.spec_for("<any unlisted node>")
    elif defaults.get("driver") in DRIVERS and not machines:
        # Every node would be refused at its first fault (`spec_for`): refused now instead.
        raise ConfigError(
            f"{source}: nodes: the {defaults['driver']} driver needs an entry per node, and"
            " `nodes:` lists none (add `nodes: {NODE: {...}}` with each node to disrupt)"
        )
    elif "driver" in defaults and str(defaults["driver"]) not in DRIVERS:
        raise ConfigError(
            f"{source}: defaults: driver: unknown driver {defaults['driver']!r};"
            f" known: {', '.join(DRIVERS)}"
        )
    return inventory


def _check_control_plane(plane: Mapping[str, Any], source: str) -> None:
    """`control_plane`, when given, as the command driver will run it: checked before any fault."""
    if not plane:
        return
    for key in ("stop", "start"):
        value = plane.get(key)
        if value in (None, ""):
            raise ConfigError(f"{source}: control_plane.{key}: required, missing")
        try:
            Command(str(value)).check(())
        except ValueError as exc:
            raise ConfigError(f"{source}: control_plane.{key}: {exc}") from None
    timeout = plane.get("timeout")
    if timeout is not None:
        _Fields(f"{source}: control_plane", plane).number("timeout", 0.0)


def _read_yaml(path: Path) -> object:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"machine inventory {path}: cannot read: {exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"machine inventory {path}: not valid YAML: {exc}") from exc


def load_inventory(path: Path | str) -> Inventory:
    """Read and validate a YAML inventory file."""
    path = Path(path).expanduser()
    return parse_inventory(_read_yaml(path), source=f"machine inventory {path}")


def inventory_from_settings(settings: Mapping[str, str], *, source: str = "settings") -> Inventory:
    """An inventory from flat settings: `inventory` names a YAML file, other keys are defaults.

    Flat defaults (for example from ini or the environment) override the file's defaults.
    """
    flat = {k: v for k, v in settings.items() if v not in (None, "")}
    path = flat.pop("inventory", None)
    if path is None:
        return parse_inventory({"defaults": flat}, source=source)
    file = Path(path).expanduser()
    data = _read_yaml(file)
    where = f"machine inventory {file}"
    if not flat:
        return parse_inventory(data, source=where)
    if data is None:
        data = {}
    if not isinstance(data, Mapping) or not isinstance(data.get("defaults") or {}, Mapping):
        return parse_inventory(data, source=where)  # reports the shape error
    merged = {**data, "defaults": {**(data.get("defaults") or {}), **flat}}
    return parse_inventory(merged, source=f"{where} with {source}")
