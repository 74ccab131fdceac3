"""Undo what a killed run left open, from its journal file or the cluster's annotations.

Each open entry is undone through the disruption registry from its record alone, exactly as a
test's teardown undoes it (`pytest_k8sdr.undo`): same order, same retries, same code. Every
undo is idempotent, so `k8sdr recover` may run any number of times.

Before anything is touched, recover asks whether the run that opened the entries still lives:
on the same host, whether its pid runs and is that very process (its start time and the boot
are compared, since pids are reused); from any host, whether it still renews its game-day
Lease. A live run is named, with its pid, host and the lock's last renewal, and its entries are
left alone unless `--force`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_k8sdr.cluster import Cluster
from pytest_k8sdr.errors import ConfigError, ToolError
from pytest_k8sdr.journal import (
    ANNOTATION,
    ClusterAnnotator,
    OpenEntry,
    ProcessIdentity,
    parse_annotation,
    run_of,
)
from pytest_k8sdr.undo import REGISTRY, Registry, UndoEnv

log = logging.getLogger(__name__)


def registry() -> Registry:
    """The registry, with every disruption kind of the plugin registered."""
    # Each module registers its kinds when imported; a fresh process imports them all here.
    import pytest_k8sdr.backends
    import pytest_k8sdr.faults.backup
    import pytest_k8sdr.faults.controlplane
    import pytest_k8sdr.faults.machines
    import pytest_k8sdr.faults.node
    import pytest_k8sdr.lb.haproxy
    import pytest_k8sdr.lb.managed
    import pytest_k8sdr.lb.nginx
    import pytest_k8sdr.lock
    import pytest_k8sdr.namespaces
    import pytest_k8sdr.prometheus.managed  # noqa: F401

    return REGISTRY


@dataclass(frozen=True)
class Outcome:
    """What recover did with one open entry: `undone`, `moot` or `failed` (with why)."""

    entry: OpenEntry
    status: str
    detail: str = ""

    def line(self) -> str:
        """One line for the terminal."""
        node = f" [node {self.entry.record.node}]" if self.entry.record.node else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.status:8} {self.entry.id} {_undoing(self.entry)}{node}{detail}"


def _undoing(entry: OpenEntry) -> str:
    try:
        return registry().load(entry.record).undoing()
    except (ConfigError, ValueError):
        return entry.description


def describe(entry: OpenEntry) -> str:
    """One line naming an open entry, for `k8sdr recover --check`."""
    node = f" [node {entry.record.node}]" if entry.record.node else ""
    try:
        what = registry().load(entry.record).summary()
    except (ConfigError, ValueError):
        what = entry.description
    since = f" (since {entry.at})" if entry.at else ""
    return f"open     {entry.id} {entry.record.kind}: {what}{node}{since}"


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


# -- is the run still alive? ------------------------------------------------------------------


@dataclass(frozen=True)
class RunState:
    """What recover could tell of the run that opened some entries.

    `alive` is True (the pid is that run, or it renews its lock), False (it does not), or None
    (nothing to tell by: another host and no lock).
    """

    run: str
    alive: bool | None
    identity: ProcessIdentity | None
    lock: str | None  # the Lease, when the run held one: "namespace/name"
    renewed: datetime | None
    why: str

    def line(self) -> str:
        """The run, its pid and host, its lock's last renewal, and the verdict."""
        who = (
            f"pid {self.identity.pid} on host {self.identity.host}"
            if self.identity is not None
            else "pid and host unknown"
        )
        if self.lock is None:
            lock = "no game-day lock"
        elif self.renewed is None:
            lock = f"game-day lock {self.lock}"
        else:
            age = (datetime.now(UTC) - self.renewed).total_seconds()
            stamp = self.renewed.isoformat(timespec="seconds")
            lock = f"game-day lock {self.lock} last renewed {stamp} ({age:.0f}s ago)"
        verdict = {True: "is still running", False: "is gone", None: "may be running"}[self.alive]
        return f"run {self.run} ({who}; {lock}) {verdict}: {self.why}"


def run_state(
    run: str,
    session: Mapping[str, Any],
    entries: Sequence[OpenEntry],
    cluster: Cluster | None,
) -> RunState:
    """Whether the run that opened `entries` still lives (see the module's docstring)."""
    from pytest_k8sdr.lock import read_lease

    identity = ProcessIdentity.from_session(session)
    by_pid = identity.alive() if identity is not None else None
    held = [r for r in (e.record for e in entries) if r.kind == "lock"]
    lock: str | None = None
    renewed: datetime | None = None
    renewing = False
    lease_note = ""
    if by_pid is False:
        # On its own host, a run whose process is gone is gone, whatever its Lease says (it
        # expires on its own); its cluster need not even answer.
        if held:
            lock = f"{held[-1].data.get('namespace')}/{held[-1].data.get('name')}"
        return RunState(run, False, identity, lock, None, "its process is gone")
    if held and cluster is not None:
        data = held[-1].data
        namespace, name, holder = str(data["namespace"]), str(data["name"]), data["holder"]
        lock = f"{namespace}/{name}"
        try:
            lease = read_lease(cluster, namespace, name)
        except ToolError as exc:
            lease, lease_note = None, f" (the Lease could not be read: {exc})"
        if lease is not None and lease.holder == holder:
            renewed = lease.renewed
            renewing = lease.renewed_recently()
    elif cluster is not None and identity is None:
        # From the annotations alone: a Lease whose holder names the run.
        lock, renewed, renewing = _lease_naming(cluster, run)
    if by_pid is True:
        return RunState(run, True, identity, lock, renewed, "its process still runs")
    if renewing:
        return RunState(run, True, identity, lock, renewed, "it still renews its game-day lock")
    if lock is not None:
        why = "its game-day lock is no longer renewed" + lease_note
        return RunState(run, False, identity, lock, renewed, why)
    why = "another host, and no game-day lock to tell by" + lease_note
    return RunState(run, None, identity, lock, renewed, why)


def _lease_naming(cluster: Cluster, run: str) -> tuple[str | None, datetime | None, bool]:
    from pytest_k8sdr.lock import DEFAULT_NAME, members_of, read_lease

    try:
        leases = cluster.list_raw("leases")["items"]
    except ToolError:
        return None, None, False
    for item in leases:
        meta, spec = item["metadata"], item.get("spec") or {}
        # A run holds it alone (its holder names the run) or as a member (an xdist worker).
        named = f"run {run}" in str(spec.get("holderIdentity")) or run in members_of(item)
        if meta["name"] == DEFAULT_NAME and named:
            lease = read_lease(cluster, meta["namespace"], meta["name"])
            if lease is not None:
                where = f"{meta['namespace']}/{meta['name']}"
                return where, lease.renewed, lease.renewed_recently()
    return None, None, False


# -- undoing ----------------------------------------------------------------------------------


class Recoverer:
    """Undoes open journal entries without the objects that made them, through the registry."""

    def __init__(self, env: UndoEnv, *, kinds: Registry | None = None) -> None:
        self.env = env
        self.registry = kinds if kinds is not None else registry()

    def check(self, entries: Iterable[OpenEntry]) -> None:
        """ConfigError naming every entry this recoverer could not undo; touches nothing."""
        problems = []
        for entry in entries:
            try:
                disruption = self.registry.load(entry.record)
            except (ConfigError, ValueError) as exc:
                problems.append(f"{entry.id}: {exc}")
                continue
            if disruption.needs_cluster and self.env.cluster is None:
                problems.append(f"{entry.id}: {entry.record.kind} needs the cluster (a kubeconfig)")
        if problems:
            raise ConfigError("cannot recover: " + "; ".join(problems))

    def recover(
        self,
        entries: Sequence[OpenEntry],
        *,
        on_undone: Callable[[OpenEntry, str], None] | None = None,
    ) -> list[Outcome]:
        """Undo `entries` as the registry orders them; `on_undone(entry, how)` closes each.

        An entry made moot by another (a disruption inside a simulated cluster the run
        launched, which is stopped) is closed without being undone.
        """
        records = [e.record for e in entries]
        moot = self.registry.moot(records)
        outcomes: list[Outcome] = []
        for index, container in moot.items():
            why = f"ended with it: {_undoing(entries[container])}"
            outcomes.append(Outcome(entries[index], "moot", why))
            if on_undone is not None:
                on_undone(entries[index], "moot")
        for index in self.registry.order(records):
            if index in moot:
                continue
            entry = entries[index]
            outcome = self._one(entry)
            outcomes.append(outcome)
            if outcome.status == "undone" and on_undone is not None:
                on_undone(entry, "recovered")
        return outcomes

    def _one(self, entry: OpenEntry) -> Outcome:
        try:
            log.info("recover: %s", entry.description)
            self.registry.undo(entry.record, self.env)
        except Exception as exc:  # every entry is attempted; failures are reported together
            return Outcome(entry, "failed", f"{type(exc).__name__}: {exc}")
        cluster = self.env.cluster
        if entry.record.node and cluster is not None:
            try:
                ClusterAnnotator(cluster).remove(entry.record.node, entry.id)
            except Exception as exc:
                return Outcome(entry, "undone", f"annotation left on the node: {exc}")
        return Outcome(entry, "undone")


@dataclass(frozen=True)
class RunPlan:
    """One run's open entries, how to undo them, and whether that run is alive."""

    run: str
    entries: list[OpenEntry]
    recoverer: Recoverer
    state: RunState


def plan_runs(
    entries: Sequence[OpenEntry],
    sessions: Mapping[str, Mapping[str, Any]],
    connect: Callable[[Path | None, str | None], Cluster],
    *,
    kubeconfig: Path | None = None,
    context: str | None = None,
    inventory: Path | None = None,
    needs_cluster: bool = False,
    rejoin_timeout: float = 120.0,
    retry_deadline: float = 30.0,
) -> list[RunPlan]:
    """Group `entries` by run, newest run first, each with the env its session describes.

    `kubeconfig`, `context` and `inventory` override the sessions'; `connect` opens a cluster
    (called only for runs with entries that need one). ConfigError before anything is touched
    when an entry cannot be undone (unknown kind, no cluster, a bad inventory).
    """
    from pytest_k8sdr.faults.machines import load_inventory

    kinds = registry()
    by_run: dict[str, list[OpenEntry]] = {}
    for entry in entries:
        by_run.setdefault(run_of(entry.id), []).append(entry)
    plans: list[RunPlan] = []
    for run in reversed(list(by_run)):
        session = sessions.get(run, {})
        mine = by_run[run]
        cluster = None
        if needs_cluster or any(_needs_cluster(kinds, e) for e in mine):
            cluster = connect(
                kubeconfig or _path(session.get("kubeconfig")),
                context or _text(session.get("context")),
            )
        machines = inventory or _path(session.get("machines"))
        env = UndoEnv(
            cluster=cluster,
            inventory=(
                load_inventory(machines)
                if machines is not None and any(e.record.kind == "machine" for e in mine)
                else None
            ),
            rejoin_timeout=rejoin_timeout,
            retry_deadline=retry_deadline,
        )
        recoverer = Recoverer(env, kinds=kinds)
        recoverer.check(mine)
        plans.append(RunPlan(run, mine, recoverer, run_state(run, session, mine, cluster)))
    return plans


def _needs_cluster(kinds: Registry, entry: OpenEntry) -> bool:
    cls = kinds.kinds.get(entry.record.kind)
    return cls is not None and cls.needs_cluster


def _path(value: object) -> Path | None:
    return Path(value) if isinstance(value, str) and value else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
