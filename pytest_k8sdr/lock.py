"""The game-day lock: a Lease held for a whole disruptive session, so two runs never overlap.

The holder renews the Lease every third of its duration. A holder that died (SIGKILL, a lost CI
runner) stops renewing, and the lock is free once `renewTime + leaseDurationSeconds` has passed;
`k8sdr recover` releases it at once, as the lock is journaled (`GameDayLockHeld`).

A lock taken from a running session (deleted, held by someone else, or not renewable until it
expired) trips its `StopCondition`: the session makes no further disruption.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pytest_k8sdr.cluster import Cluster
from pytest_k8sdr.errors import ConfigError, Conflict, LockHeld, LockLost, NotFound
from pytest_k8sdr.undo import Disruption, UndoEnv, disruption_kind

log = logging.getLogger(__name__)

DEFAULT_NAME = "k8sdr-game-day"


def _micro(t: datetime) -> str:
    # MicroTime, as Lease.spec.renewTime wants it (RFC 3339 with microseconds).
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class StopCondition:
    """Once tripped, a session makes no further disruption (AWS FIS calls this a stop condition).

    `trip(reason)` is called from any thread (the lock's renewer); `listeners` are told once.
    `check()` raises `LockLost` with the reason after the trip.
    """

    def __init__(self) -> None:
        self._reason: str | None = None
        self._lock = threading.Lock()
        self.listeners: list[Callable[[str], None]] = []

    @property
    def reason(self) -> str | None:
        """Why the session stopped disrupting; None while it may go on."""
        return self._reason

    def trip(self, reason: str) -> None:
        """Stop the session's disruptions (the first reason is kept)."""
        with self._lock:
            if self._reason is not None:
                return
            self._reason = reason
        log.error("k8sdr: the session stops disrupting: %s", reason)
        for listener in list(self.listeners):
            listener(reason)

    def check(self) -> None:
        """Raise `LockLost` once tripped."""
        if self._reason is not None:
            raise LockLost(f"{self._reason}; this session makes no further disruption")


class GameDayLock:
    """A Lease `name` in `namespace` held by `holder` while a disruptive session runs.

    `stop_condition` is tripped when the lock is lost while held.
    """

    def __init__(
        self,
        cluster: Cluster,
        holder: str,
        *,
        namespace: str = "default",
        name: str = DEFAULT_NAME,
        duration: int = 60,
        stop_condition: StopCondition | None = None,
    ) -> None:
        if duration < 3:
            raise ConfigError(f"lock duration must be at least 3 seconds, got {duration}")
        self.cluster = cluster
        self.holder = holder
        self.namespace = namespace
        self.name = name
        self.duration = duration
        self.stop_condition = stop_condition if stop_condition is not None else StopCondition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.held = False
        self.renewed: datetime | None = None

    def _body(self, resource_version: str | None, acquired: str | None) -> dict[str, Any]:
        now = _micro(datetime.now(UTC))
        meta: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {"app.kubernetes.io/managed-by": "pytest-k8sdr"},
        }
        if resource_version:
            meta["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "holderIdentity": self.holder,
                "leaseDurationSeconds": self.duration,
                "acquireTime": acquired or now,
                "renewTime": now,
            },
        }

    def _read(self) -> dict[str, Any] | None:
        return _lease_json(self.cluster, self.namespace, self.name)

    def acquire(self) -> None:
        """Take the lock, or raise `LockHeld` naming the holder; then keep renewing it."""
        current = self._read()
        c = self.cluster
        try:
            if current is None:
                c.call(
                    c.coordination.create_namespaced_lease,
                    self.namespace,
                    self._body(None, None),
                    _preload_content=False,
                )
            else:
                spec = current.get("spec") or {}
                holder = spec.get("holderIdentity")
                renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
                duration = int(spec.get("leaseDurationSeconds") or 0)
                expires = renewed + timedelta(seconds=duration) if renewed else None
                if holder and holder != self.holder and expires and expires > datetime.now(UTC):
                    left = (expires - datetime.now(UTC)).total_seconds()
                    raise LockHeld(
                        f"the cluster is locked for a game day by {holder!r} (Lease "
                        f"{self.namespace}/{self.name}, renewed {spec.get('renewTime')}; "
                        f"it expires in {left:.0f}s unless renewed). Wait for that run to end, "
                        "or, if it died, run `k8sdr recover` with its journal."
                    )
                c.call(
                    c.coordination.replace_namespaced_lease,
                    self.name,
                    self.namespace,
                    self._body(current["metadata"].get("resourceVersion"), None),
                    _preload_content=False,
                )
        except Conflict as exc:
            raise LockHeld(
                f"another run took the game-day lock {self.namespace}/{self.name} "
                "at the same moment"
            ) from exc
        self.held = True
        self.renewed = datetime.now(UTC)
        self._thread = threading.Thread(target=self._renew, name="k8sdr-lock", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        where = f"{self.namespace}/{self.name}"
        while not self._stop.wait(self.duration / 3):
            try:
                current = self._read()
                spec = (current or {}).get("spec") or {}
                if current is None:
                    self._lose(f"the game-day lock {where} was released by someone else")
                    return
                if spec.get("holderIdentity") != self.holder:
                    self._lose(
                        f"the game-day lock {where} was taken by {spec.get('holderIdentity')!r} "
                        f"(renewed {spec.get('renewTime')})"
                    )
                    return
                self.cluster.call(
                    self.cluster.coordination.replace_namespaced_lease,
                    self.name,
                    self.namespace,
                    self._body(current["metadata"].get("resourceVersion"), spec.get("acquireTime")),
                    _preload_content=False,
                )
                self.renewed = datetime.now(UTC)
            except Exception as exc:  # keep trying until the lease expires
                log.warning("cannot renew the game-day lock: %s", exc)
                last = self.renewed or datetime.now(UTC)
                if datetime.now(UTC) - last > timedelta(seconds=self.duration):
                    self._lose(
                        f"the game-day lock {where} could not be renewed for {self.duration}s "
                        f"(last error: {exc}); it has expired and another run may hold it"
                    )
                    return

    def _lose(self, reason: str) -> None:
        if self._stop.is_set():
            return  # our own release, while a renewal was under way
        self.held = False
        self.stop_condition.trip(reason)

    def stop(self) -> None:
        """Stop renewing (the Lease itself is released by undoing its `GameDayLockHeld`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.held = False


@disruption_kind
@dataclass(frozen=True)
class GameDayLockHeld(Disruption):
    """The game-day lock held by a run; undone by deleting the Lease if that run still holds it."""

    kind = "lock"
    disruptive = False
    needs_cluster = True
    namespace: str
    name: str
    holder: str

    def summary(self) -> str:
        """``take the game-day lock NS/NAME``."""
        return f"take the game-day lock {self.namespace}/{self.name}"

    def undoing(self) -> str:
        """``release the game-day lock held by HOLDER``."""
        return f"release the game-day lock {self.namespace}/{self.name} held by {self.holder}"

    def undo(self, env: UndoEnv) -> None:
        """Delete the Lease if it is still ours (never another run's)."""
        cluster = env.require_cluster("releasing the game-day lock")
        release_lease(cluster, self.namespace, self.name, self.holder)


@dataclass(frozen=True)
class LeaseState:
    """A game-day Lease as read: who holds it and when it was last renewed."""

    holder: str | None
    renewed: datetime | None
    duration: int

    def renewed_recently(self, now: datetime | None = None) -> bool:
        """Whether its holder still renews it: the last renewal is younger than two periods.

        A holder renews every third of the duration, so a Lease not renewed for two thirds of
        it has missed a renewal: its holder is dead or cut off (it expires at the full duration).
        """
        if self.renewed is None:
            return False
        age = ((now or datetime.now(UTC)) - self.renewed).total_seconds()
        return age < self.duration * 2 / 3


def _lease_json(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        resp = cluster.call(
            cluster.coordination.read_namespaced_lease, name, namespace, _preload_content=False
        )
    except NotFound:
        return None
    return json.loads(resp.data)  # type: ignore[no-any-return]


def read_lease(cluster: Cluster, namespace: str, name: str = DEFAULT_NAME) -> LeaseState | None:
    """The Lease's holder and last renewal; None when there is none."""
    current = _lease_json(cluster, namespace, name)
    if current is None:
        return None
    spec = current.get("spec") or {}
    return LeaseState(
        spec.get("holderIdentity"),
        _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime")),
        int(spec.get("leaseDurationSeconds") or 0),
    )


def release_lease(cluster: Cluster, namespace: str, name: str, holder: str) -> bool:
    """Delete the Lease if `holder` still holds it; True if it was deleted."""
    current = _lease_json(cluster, namespace, name)
    if current is None or (current.get("spec") or {}).get("holderIdentity") != holder:
        return False
    try:
        cluster.call(
            cluster.coordination.delete_namespaced_lease,
            name,
            namespace,
            body={"preconditions": {"resourceVersion": current["metadata"]["resourceVersion"]}},
            _preload_content=False,
        )
    except (NotFound, Conflict):
        return False
    return True
