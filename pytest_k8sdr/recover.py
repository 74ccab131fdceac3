"""Undo what a killed run left open, from its journal file or the cluster's annotations.

Every handler is idempotent: undoing something already undone (or never made) is a no-op, so
`k8sdr recover` may run any number of times. Entries are undone newest first; an isolated node
that has not re-registered yet waits until the older entries (its machine's restart) are done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_k8sdr.cluster import Cluster
from pytest_k8sdr.errors import ConfigError, ToolError
from pytest_k8sdr.faults.node import NodeFaults, NodeSnapshot
from pytest_k8sdr.journal import (
    ANNOTATION,
    ClusterAnnotator,
    JournalRecord,
    OpenEntry,
    RetryLater,
    UndoStack,
    parse_annotation,
)

log = logging.getLogger(__name__)


_NODE_KINDS = frozenset(
    {"cordon", "uncordon", "taint", "out-of-service", "untaint", "isolate", "lock"}
)


class RecoverError(ToolError):
    """An open entry could not be undone; it stays open for the next `k8sdr recover`."""


@dataclass(frozen=True)
class Outcome:
    """What recover did with one open entry: `undone`, `failed` (with why) or `checked`."""

    entry: OpenEntry
    status: str
    detail: str = ""

    def line(self) -> str:
        """One line for the terminal."""
        node = f" [node {self.entry.record.node}]" if self.entry.record.node else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.status:8} {self.entry.id} {self.entry.description}{node}{detail}"


def describe(entry: OpenEntry) -> str:
    """One line naming an open entry, for `k8sdr recover --check`."""
    node = f" [node {entry.record.node}]" if entry.record.node else ""
    return f"open     {entry.id} {entry.record.kind}: {entry.description}{node} (since {entry.at})"


def entries_from_cluster(cluster: Cluster) -> list[OpenEntry]:
    """Open entries held in the `k8sdr.io/journal` annotations of the cluster's Nodes."""
    found: list[OpenEntry] = []
    for node in cluster.nodes():
        value = node.annotations.get(ANNOTATION)
        for entry_id, record in parse_annotation(value):
            found.append(OpenEntry(entry_id, f"{record.kind} {record.node}", record, ""))

    def order(entry: OpenEntry) -> tuple[str, int]:
        run, _, n = entry.id.rpartition("-")
        return (run, int(n) if n.isdigit() else 0)

    return sorted(found, key=order)


class Recoverer:
    """Undoes open journal entries without the objects that made them.

    `cluster` is needed for node entries, `inventory` for ssh and command machines.
    """

    def __init__(
        self,
        cluster: Cluster | None,
        *,
        inventory: Path | None = None,
        rejoin_timeout: float = 120.0,
    ) -> None:
        self.cluster = cluster
        self.inventory = inventory
        self.rejoin_timeout = rejoin_timeout
        self._handlers: dict[str, Callable[[JournalRecord, bool], None]] = {
            "cordon": lambda r, _: self._nodes().set_unschedulable(self._node(r), False),
            "uncordon": lambda r, _: self._nodes().set_unschedulable(self._node(r), True),
            "taint": self._drop_taint,
            "out-of-service": self._drop_taint,
            "untaint": self._add_taints,
            "isolate": self._relabel,
            "machine": self._machine,
            "lb-drain": self._lb,
            "lock": self._lock,
        }

    def check(self, entries: Iterable[OpenEntry]) -> None:
        """ConfigError naming every entry this recoverer could not undo; touches nothing."""
        problems = []
        for entry in entries:
            kind = entry.record.kind
            if kind not in self._handlers:
                problems.append(f"{entry.id}: unknown kind {kind!r}")
            elif kind in _NODE_KINDS and self.cluster is None:
                problems.append(f"{entry.id}: {kind} needs the cluster (a kubeconfig)")
        if problems:
            raise ConfigError("cannot recover: " + "; ".join(problems))

    def recover(
        self,
        entries: Sequence[OpenEntry],
        *,
        on_undone: Callable[[OpenEntry], None] | None = None,
    ) -> list[Outcome]:
        """Undo `entries` newest first; `on_undone(entry)` closes each one that was undone."""
        outcomes: list[Outcome] = []
        later: list[OpenEntry] = []
        for entry in reversed(entries):
            outcome = self._one(entry, last_chance=False)
            if outcome is None:
                later.append(entry)
                continue
            outcomes.append(outcome)
            if outcome.status == "undone" and on_undone:
                on_undone(entry)
        for entry in later:
            outcome = self._one(entry, last_chance=True)
            assert outcome is not None
            outcomes.append(outcome)
            if outcome.status == "undone" and on_undone:
                on_undone(entry)
        return outcomes

    def _one(self, entry: OpenEntry, *, last_chance: bool) -> Outcome | None:
        handler = self._handlers.get(entry.record.kind)
        if handler is None:
            return Outcome(entry, "failed", f"unknown kind {entry.record.kind!r}")
        try:
            log.info("recover: %s", entry.description)
            handler(entry.record, last_chance)
        except RetryLater:
            return None
        except Exception as exc:  # every entry is attempted; failures are reported together
            return Outcome(entry, "failed", f"{type(exc).__name__}: {exc}")
        if entry.record.node and self.cluster is not None:
            try:
                ClusterAnnotator(self.cluster).remove(entry.record.node, entry.id)
            except Exception as exc:
                return Outcome(entry, "undone", f"annotation left on the node: {exc}")
        return Outcome(entry, "undone")

    # -- nodes -----------------------------------------------------------------------

    def _nodes(self) -> NodeFaults:
        if self.cluster is None:
            raise RecoverError("node entries need the cluster: give a kubeconfig")
        return NodeFaults(
            self.cluster, UndoStack(), allow_control_plane=True, rejoin_timeout=self.rejoin_timeout
        )

    @staticmethod
    def _node(record: JournalRecord) -> str:
        node = record.data.get("node") or record.node
        if not isinstance(node, str):
            raise RecoverError(f"{record.kind} record without a node: {record.data}")
        return node

    def _drop_taint(self, record: JournalRecord, _: bool) -> None:
        from pytest_k8sdr.cluster import Taint

        taint = Taint.from_json(record.data["taint"])
        self._nodes().edit_taints(self._node(record), drop=[taint])

    def _add_taints(self, record: JournalRecord, _: bool) -> None:
        from pytest_k8sdr.cluster import Taint

        taints = [Taint.from_json(t) for t in record.data["taints"]]
        self._nodes().edit_taints(self._node(record), add=taints)

    def _relabel(self, record: JournalRecord, last_chance: bool) -> None:
        nodes = self._nodes()
        snapshot = NodeSnapshot.from_json(record.data["snapshot"])
        if self.cluster is not None and self.cluster.get_raw("nodes", snapshot.name) is None:
            if not last_chance:
                raise RetryLater  # its machine is restarted by an older entry
            nodes.relabel(snapshot)
            return
        nodes.apply_snapshot(snapshot)

    # -- machines --------------------------------------------------------------------

    def _machine(self, record: JournalRecord, _: bool) -> None:
        from pytest_k8sdr.faults.machines import Action, load_inventory, make_machine
        from pytest_k8sdr.faults.machines.inventory import DockerSpec, MachineSpec, SimSpec

        data = record.data
        node, driver = str(data["node"]), str(data["driver"])
        spec: MachineSpec
        if driver == "sim" and data.get("state_dir"):
            spec = SimSpec(node, Path(str(data["state_dir"])))
        elif driver == "docker" and self.inventory is None:
            spec = DockerSpec(
                node,
                cluster=data.get("cluster"),
                docker=str(data.get("docker") or "docker"),
                host=data.get("docker_host"),
            )
        elif self.inventory is not None:
            spec = load_inventory(self.inventory).spec_for(node)
        else:
            raise RecoverError(
                f"the {driver} machine of node {node!r} can only be found through its "
                "inventory: pass --inventory PATH"
            )
        machine: Any = make_machine(spec, UndoStack())
        machine._act(Action(str(data["restore"])))

    def _lock(self, record: JournalRecord, _: bool) -> None:
        from pytest_k8sdr.lock import release_lease

        if self.cluster is None:
            raise RecoverError("releasing the game-day lock needs the cluster: give a kubeconfig")
        data = record.data
        release_lease(self.cluster, str(data["namespace"]), str(data["name"]), str(data["holder"]))

    # -- load balancers --------------------------------------------------------------

    def _lb(self, record: JournalRecord, _: bool) -> None:
        from pytest_k8sdr.lb import HAProxyLB, NginxLB

        data = record.data
        address = str(data["address"])
        if data.get("lb") == "nginx":
            nginx = NginxLB(
                str(data["upstream"]),
                config=data.get("config"),
                file=str(data["file"]),
                host=_host(data["host"]),
                nginx=tuple(data.get("nginx") or ("nginx",)),
            )
            nginx._restore_address(address)
            return
        if data.get("lb") == "haproxy":
            haproxy = HAProxyLB(str(data["backend"]), runtime=_runtime(data["runtime"]))
            haproxy._set_states(dict(data["previous"]))
            return
        raise RecoverError(f"unknown load balancer {data.get('lb')!r}")


def _host(raw: dict[str, Any]) -> Any:
    from pytest_k8sdr.lb import DockerExecHost, LocalHost

    if raw.get("type") == "local":
        return LocalHost()
    if raw.get("type") == "docker":
        return DockerExecHost(str(raw["container"]), docker=tuple(raw.get("docker") or ["docker"]))
    raise RecoverError(
        f"the load balancer on {raw.get('name', 'an unknown host')} cannot be reached from here; "
        "restore its drained servers by hand (lines marked #k8sdr-drained)"
    )


def _runtime(raw: dict[str, Any]) -> Any:
    from pytest_k8sdr.lb import HostRuntimeAPI, SocketRuntimeAPI

    if raw.get("type") == "socket":
        address = raw["address"]
        return SocketRuntimeAPI(address if isinstance(address, str) else tuple(address))
    if raw.get("type") == "host":
        return HostRuntimeAPI(_host(raw["host"]), str(raw["socket"]), client=tuple(raw["client"]))
    raise RecoverError(f"the HAProxy runtime API {raw.get('name')} cannot be reached from here")
