"""HAProxy as the external load balancer, driven through its runtime API (the stats socket).

The socket must be declared with ``level admin`` (``stats socket PATH level admin``). Draining
puts every server of the backend at the node's address in maintenance (``set server B/S state
maint``; ``mode="drain"`` uses HAProxy's drain state instead, which still serves persistent
sessions); restoring sets each server back to the state it had. What HAProxy routes to is read
back with ``show servers state``. Runtime changes do not survive an HAProxy restart or reload
without a server-state file: that is HAProxy's behaviour, and the reason to restore at teardown.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pytest_k8sdr.lb.base import (
    Drained,
    JournaledDrains,
    Member,
    NodeAddresses,
    host_from_record,
    host_record,
    node_of,
)
from pytest_k8sdr.lb.errors import (
    LBCommandFailed,
    LBConfigError,
    LBToolMissing,
    NodeNotInLB,
    UpstreamNotFound,
)
from pytest_k8sdr.lb.hosts import ConfigHost
from pytest_k8sdr.undo import UndoEnv, UndoStack, disruption_kind

HAProxyDrainMode = Literal["maint", "drain"]

# srv_admin_state bits (haproxy include/haproxy/server-t.h, enum srv_admin):
# FMAINT 0x01, IMAINT 0x02, CMAINT 0x04, FDRAIN 0x08, IDRAIN 0x10, RMAINT 0x20, HMAINT 0x40.
_ADMIN_FMAINT = 0x01
_ADMIN_MAINT_ANY = 0x01 | 0x02 | 0x04 | 0x20 | 0x40
_ADMIN_FDRAIN = 0x08
_ADMIN_DRAIN_ANY = 0x08 | 0x10
# srv_op_state (enum srv_state): 0 stopped, 1 starting, 2 running, 3 stopping.
_OP_STOPPED = 0


class RuntimeAPI(Protocol):
    """Sends one command to HAProxy's runtime API and returns the answer."""

    @property
    def name(self) -> str:
        """Where the socket is, for messages."""
        ...

    def send(self, command: str) -> str:
        """Send `command` (one line) and return HAProxy's whole answer."""
        ...


class SocketRuntimeAPI:
    """The runtime API on this machine: a UNIX socket path, or a ``(host, port)`` TCP socket."""

    def __init__(self, address: str | tuple[str, int], *, timeout: float = 10.0) -> None:
        self.address = address
        self.timeout = timeout
        self.name = address if isinstance(address, str) else f"{address[0]}:{address[1]}"

    def send(self, command: str) -> str:
        """Connect, send the command, read until HAProxy closes the connection."""
        family = socket.AF_UNIX if isinstance(self.address, str) else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.address)
                sock.sendall(command.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise LBCommandFailed(
                f"HAProxy runtime API at {self.name} is not reachable: {exc}"
            ) from exc
        return b"".join(chunks).decode(errors="replace")


class HostRuntimeAPI:
    """The runtime API of an HAProxy on a `ConfigHost` (a container, an SSH host).

    The command is piped into `client`, which must connect its standard input and output to
    the socket; ``{socket}`` in it is replaced by `socket_path`. The default is socat, as in
    HAProxy's own documentation.
    """

    def __init__(
        self,
        host: ConfigHost,
        socket_path: str,
        *,
        client: Sequence[str] = ("socat", "stdio", "UNIX-CONNECT:{socket}"),
        timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.socket_path = socket_path
        self.client = tuple(client)
        self.timeout = timeout
        self.name = f"{socket_path} on {host.name}"

    def send(self, command: str) -> str:
        """Pipe the command through the client on the host."""
        argv = [part.replace("{socket}", self.socket_path) for part in self.client]
        result = self.host.run(argv, stdin=command.encode() + b"\n", timeout=self.timeout)
        if result.returncode in (126, 127):
            raise LBToolMissing(f"{self.client[0]!r} cannot be run on {self.host.name}")
        result.check(self.host.name)
        return result.stdout.decode(errors="replace")


def runtime_record(runtime: RuntimeAPI) -> dict[str, Any]:
    """How to reach a runtime API again from another process (JSON; no secrets)."""
    if isinstance(runtime, SocketRuntimeAPI):
        address = runtime.address
        return {"type": "socket", "address": address if isinstance(address, str) else list(address)}
    if isinstance(runtime, HostRuntimeAPI):
        return {
            "type": "host",
            "host": host_record(runtime.host),
            "socket": runtime.socket_path,
            "client": list(runtime.client),
        }
    return {"type": "unknown", "name": runtime.name}


def runtime_from_record(raw: dict[str, Any], connections: Mapping[str, Any]) -> RuntimeAPI:
    """The runtime API a `runtime_record` describes; LBConfigError when it cannot be reached.

    One a record cannot open again (over SSH, or of a type of its own) comes from `connections`.
    """
    if raw.get("type") == "socket":
        address = raw["address"]
        return SocketRuntimeAPI(address if isinstance(address, str) else tuple(address))
    if raw.get("type") == "host":
        host = host_from_record(raw["host"], connections)
        return HostRuntimeAPI(host, str(raw["socket"]), client=tuple(raw["client"]))
    live = connections.get(str(raw.get("name")))
    if live is not None:
        return live  # type: ignore[no-any-return]
    raise LBConfigError(f"the HAProxy runtime API {raw.get('name')} cannot be reached from here")


@dataclass(frozen=True)
class _ServerState:
    name: str
    address: str
    port: int | None
    op_state: int
    admin_state: int

    @property
    def admin(self) -> str:
        if self.admin_state & _ADMIN_MAINT_ANY:
            return "maint"
        if self.admin_state & _ADMIN_DRAIN_ANY:
            return "drain"
        return "ready"


class HAProxyLB(JournaledDrains):
    """Drain and restore nodes in the HAProxy backend `backend` through its runtime API.

    `runtime` is a `RuntimeAPI`, or a UNIX socket path on this machine. `undo` receives the
    undo of every drain before the change is made (a private stack when None, as `.undo`).
    """

    def __init__(
        self,
        backend: str,
        *,
        runtime: RuntimeAPI | str,
        nodes: NodeAddresses | None = None,
        mode: HAProxyDrainMode = "maint",
        undo: UndoStack | None = None,
    ) -> None:
        if mode not in ("maint", "drain"):
            raise LBConfigError(f"HAProxy drain mode must be 'maint' or 'drain', not {mode!r}")
        super().__init__(nodes, undo)
        self.backend = backend
        self.runtime: RuntimeAPI = (
            SocketRuntimeAPI(runtime) if isinstance(runtime, str) else runtime
        )
        self.mode: HAProxyDrainMode = mode

    @property
    def name(self) -> str:
        """``haproxy backend NAME at SOCKET``."""
        return f"haproxy backend {self.backend!r} at {self.runtime.name}"

    def members(self) -> list[Member]:
        """The backend's servers as HAProxy reports them (`show servers state`)."""
        return [
            Member(
                s.name,
                s.address,
                s.port,
                active=s.admin == "ready",
                state=s.admin,
                healthy=s.op_state != _OP_STOPPED,
            )
            for s in self._states()
        ]

    def validate(self) -> None:
        """Check the runtime API answers with admin rights and the backend exists."""
        self._states()
        answer = self.runtime.send("show cli level").strip()
        # `show cli level` exists since HAProxy 2.0; older ones answer "Unknown command".
        if answer and answer != "admin" and not answer.startswith("Unknown command"):
            raise LBConfigError(
                f"{self.name}: the runtime API socket has level {answer!r}; "
                "draining needs `stats socket ... level admin`"
            )

    def drain(self, node: str) -> None:
        """Put every server at the node's address in maintenance (or drain)."""
        address = self.address_of(node)
        with self._lock:
            servers = self._servers_at(node, address)
            targets = [s for s in servers if s.admin == "ready"]
            if not targets:
                return  # already out of rotation
            previous = {s.name: s.admin for s in targets}
            self._register_drain(
                address,
                HAProxyDrain(
                    address=address,
                    backend=self.backend,
                    runtime=runtime_record(self.runtime),
                    previous=previous,
                    node=node_of(node),
                ),
                self._connections(),
            )
            self._set_states({s.name: self.mode for s in targets})

    def restore(self, node: str) -> None:
        """Set the node's servers back to the state they had before `drain`."""
        address = self.address_of(node)
        with self._lock:
            if self._undo_drain(address):
                return
            # Drained by someone else (another process): only our own forced states are lifted.
            servers = self._servers_at(node, address)
            forced = _ADMIN_FMAINT | _ADMIN_FDRAIN
            self._set_states({s.name: "ready" for s in servers if s.admin_state & forced})

    def _connections(self) -> dict[str, Any]:
        live: dict[str, Any] = {self.runtime.name: self.runtime}
        host = getattr(self.runtime, "host", None)
        if host is not None:
            live[host.name] = host
        return live

    def _servers_at(self, node: str, address: str) -> list[_ServerState]:
        states = self._states()
        servers = [s for s in states if s.address == address]
        if not servers:
            listed = ", ".join(f"{s.name}={s.address}" for s in states) or "none"
            raise NodeNotInLB(
                f"node {node!r} ({address}) is in no server of {self.name}; servers: {listed}"
            )
        return servers

    def _set_states(self, states: dict[str, str]) -> None:
        for server, state in states.items():
            answer = self.runtime.send(f"set server {self.backend}/{server} state {state}")
            if answer.strip():
                raise LBCommandFailed(
                    f"set server {self.backend}/{server} state {state} on {self.runtime.name}: "
                    f"{answer.strip()}"
                )
        if states:
            # Read back: the answer of `set server` is empty on success, but be sure.
            now = {s.name: s.admin for s in self._states()}
            wrong = {k: now.get(k) for k, v in states.items() if now.get(k) != v}
            if wrong:
                raise LBCommandFailed(f"{self.name}: servers not in the state set: {wrong}")
            self._changed(", ".join(f"{self.backend}/{k} {v}" for k, v in states.items()))

    def _states(self) -> list[_ServerState]:
        answer = self.runtime.send(f"show servers state {self.backend}")
        lines = [line for line in answer.splitlines() if line.strip()]
        header = next((line for line in lines if line.startswith("# be_id")), None)
        if header is None:
            if "Can't find backend" in answer or "No such backend" in answer:
                raise UpstreamNotFound(
                    f"HAProxy at {self.runtime.name} has no backend {self.backend!r}"
                )
            raise LBCommandFailed(
                f"unexpected answer from the runtime API at {self.runtime.name}: {answer.strip()!r}"
            )
        columns = header[2:].split()
        states = []
        for line in lines:
            if line.startswith("#") or (line == lines[0] and line.strip().isdigit()):
                continue
            row = dict(zip(columns, line.split(), strict=False))
            if row.get("be_name") != self.backend:
                continue
            port = row.get("srv_port", "")
            states.append(
                _ServerState(
                    name=row["srv_name"],
                    address=row["srv_addr"],
                    port=int(port) if port.isdigit() else None,
                    op_state=int(row["srv_op_state"]),
                    admin_state=int(row["srv_admin_state"]),
                )
            )
        return states


@disruption_kind
@dataclass(frozen=True)
class HAProxyDrain(Drained):
    """Servers of an HAProxy backend put out of rotation; undone by setting their old states."""

    kind = "haproxy-drain"
    address: str
    backend: str
    runtime: dict[str, Any]
    previous: dict[str, str]
    node: str | None = None

    def pool(self) -> str:
        """``haproxy backend 'B'``."""
        return f"haproxy backend {self.backend!r}"

    def undo(self, env: UndoEnv) -> None:
        """Set each drained server back to the state it had."""
        runtime = runtime_from_record(self.runtime, env.connections)
        HAProxyLB(self.backend, runtime=runtime)._set_states(dict(self.previous))
