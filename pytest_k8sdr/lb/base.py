"""What every load-balancer driver offers, and how a node name becomes an address."""

from __future__ import annotations

import ipaddress
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from pytest_k8sdr.lb.errors import LBConfigError
from pytest_k8sdr.undo import Disruption, UndoEntry, UndoEnv, UndoStack

#: How a node name maps to its address (the Node's InternalIP): a dict, or a callable that
#: raises (any exception) for an unknown node. An IP address is always accepted as itself.
NodeAddresses: TypeAlias = Mapping[str, str] | Callable[[str], str]


@dataclass(frozen=True)
class Member:
    """One server of an upstream or backend, as the load balancer itself reports it.

    `active` says whether the configuration lets traffic go to it (not `down`, not in
    maintenance or drain); `healthy` is the load balancer's own health verdict when it has one.
    """

    name: str
    address: str
    port: int | None
    active: bool
    state: str
    healthy: bool | None = None


class LoadBalancer(Protocol):
    """An external load balancer in front of the nodes: drain a node, restore it, read it back.

    `drain` registers its undo before changing anything and is a no-op for a node already
    drained; `restore` brings back exactly what `drain` changed. Both take a node name (mapped
    through the driver's node addresses) or an address.
    """

    @property
    def name(self) -> str:
        """A short description for messages, e.g. ``nginx upstream web on local``."""
        ...

    @property
    def last_change(self) -> float | None:
        """`time.monotonic()` when the last drain or restore took effect, None before any."""
        ...

    def address_of(self, node: str) -> str:
        """The address of `node`; `LBConfigError` when it cannot be mapped."""
        ...

    def members(self) -> list[Member]:
        """The servers, read from the running load balancer (not from our own bookkeeping)."""
        ...

    def validate(self) -> None:
        """Check that the load balancer is reachable and the upstream or backend exists."""
        ...

    def drain(self, node: str) -> None:
        """Stop sending traffic to every server at the node's address."""
        ...

    def restore(self, node: str) -> None:
        """Put back what `drain` changed for the node, exactly as it was."""
        ...


class JournaledDrains:
    """What the drivers share: node addresses, the undo stack, one undo entry per drained address.

    A driver calls `_register_drain` (with its own drain kind, which undoes itself from its
    record) before it changes anything, `_undo_drain` first in `restore`, and `_changed` once a
    change took effect; it holds `_lock` around both.

    `listeners` are told what changed (``drain w1 (127.0.1.2)``), right after it took effect
    (a reload, a runtime API answer): the report's LB lane.
    """

    def __init__(self, nodes: NodeAddresses | None, undo: UndoStack | None) -> None:
        self.nodes = nodes
        self.undo = undo if undo is not None else UndoStack()
        self._lock = threading.RLock()
        self._entries: dict[str, UndoEntry] = {}
        self._last_change: float | None = None
        self.listeners: list[Callable[[str], None]] = []

    @property
    def name(self) -> str:
        """A short description for messages (each driver says what and where)."""
        raise NotImplementedError

    @property
    def last_change(self) -> float | None:
        """`time.monotonic()` right after the last drain or restore took effect."""
        return self._last_change

    def address_of(self, node: str) -> str:
        """The node's address, through `nodes`."""
        return resolve_address(node, self.nodes)

    def _changed(self, what: str) -> None:
        self._last_change = time.monotonic()
        for listener in list(self.listeners):
            listener(what)

    def _register_drain(
        self, address: str, drain: Disruption, connections: Mapping[str, Any]
    ) -> None:
        """Push the drain of `address` (once: a second drain keeps the first undo).

        `connections` are the live ones its record names but cannot open (`UndoEnv`).
        """
        registered = self._entries.get(address)
        if registered is None or registered.done:  # done: unwound by the stack meanwhile
            self._entries[address] = self.undo.push(drain, UndoEnv(connections=connections))

    def _undo_drain(self, address: str) -> bool:
        """Run our own pending undo of `address`; False when there is none (not ours)."""
        entry = self._entries.pop(address, None)
        if entry is None or entry.done:
            return False
        self.undo.run(entry)
        return True


class Drained(Disruption):
    """What the drain kinds share: an address (of a node, if one was named) out of a pool."""

    address: str
    node: str | None

    @abstractmethod
    def pool(self) -> str:
        """Where the address was drained from, e.g. ``nginx upstream 'web' in FILE``."""

    def summary(self) -> str:
        """``drain ADDRESS (node N) from POOL``."""
        return f"drain {self._who()} from {self.pool()}"

    def undoing(self) -> str:
        """``restore ADDRESS (node N) in POOL``."""
        return f"restore {self._who()} in {self.pool()}"

    def _who(self) -> str:
        return f"{self.address} (node {self.node})" if self.node else self.address


def resolve_address(node: str, nodes: NodeAddresses | None) -> str:
    """Map `node` to an address through `nodes`; an IP address maps to itself."""
    if isinstance(nodes, Mapping):
        if node in nodes:
            return nodes[node]
    elif nodes is not None:
        try:
            return nodes(node)
        except Exception as exc:  # the mapping is the caller's: any failure means "unknown"
            if _is_ip(node):
                return node
            raise LBConfigError(f"cannot map node {node!r} to an address: {exc}") from exc
    if _is_ip(node):
        return node
    known = f"; known nodes: {', '.join(sorted(nodes))}" if isinstance(nodes, Mapping) else ""
    raise LBConfigError(f"unknown node {node!r}: no address for it{known}")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def split_host_port(server: str, default_port: int | None) -> tuple[str, int | None]:
    """Split ``ADDR[:PORT]`` (``[v6]:PORT`` too) into host and port."""
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif server.count(":") == 1:
        host, port = server.split(":")
    else:
        host, port = server, ""
    return host, int(port) if port.isdigit() else default_port


def node_of(node: str) -> str | None:
    """The Node name behind a drain argument, or None when it is an address."""
    return None if _is_ip(node) else node


def host_record(host: object) -> dict[str, Any]:
    """How to reach a `ConfigHost` again from another process (JSON; never a secret)."""
    from pytest_k8sdr.lb.hosts import DockerExecHost, LocalHost

    if isinstance(host, LocalHost):
        return {"type": "local"}
    if isinstance(host, DockerExecHost):
        return {"type": "docker", "container": host.container, "docker": list(host.docker)}
    return {"type": "other", "name": str(getattr(host, "name", type(host).__name__))}


def host_from_record(raw: Mapping[str, Any], connections: Mapping[str, Any]) -> Any:
    """The `ConfigHost` a `host_record` describes; LBConfigError for one not reachable so.

    A host a record cannot open again (an SSH session) is taken from `connections` by name.
    """
    from pytest_k8sdr.lb.hosts import DockerExecHost, LocalHost

    if raw.get("type") == "local":
        return LocalHost()
    if raw.get("type") == "docker":
        return DockerExecHost(str(raw["container"]), docker=tuple(raw.get("docker") or ["docker"]))
    live = connections.get(str(raw.get("name")))
    if live is not None:
        return live
    raise LBConfigError(
        f"the load balancer on {raw.get('name', 'an unknown host')} cannot be reached from here; "
        "restore its drained servers by hand"
    )
