"""The game-day lock: a Lease held for a whole disruptive session, so two runs never overlap.

The holder renews the Lease every third of its duration. A holder that died (SIGKILL, a lost CI
runner) stops renewing, and the lock is free once `renewTime + leaseDurationSeconds` has passed;
`k8sdr recover` releases it at once, as the lock is journaled (`GameDayLockHeld`).

A lock taken from a running session (deleted, held by someone else, or not renewable until it
expired) trips its `StopCondition`: the session makes no further disruption.

Several processes may hold one lock together: the workers of a pytest-xdist session share its
holder identity, and each is a *member* of the Lease (annotation `k8sdr.io/lock-members`,
their journal run ids). Each member renews it; leaving removes only that member, and the last
one to leave deletes the Lease. A member removed by someone else (`k8sdr recover --force`) has
lost the lock as surely as one whose Lease was deleted.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pytest_k8sdr.cluster import Cluster
from pytest_k8sdr.errors import ConfigError, Conflict, K8sdrError, LockHeld, LockLost, NotFound
from pytest_k8sdr.undo import Disruption, UndoEnv, disruption_kind

log = logging.getLogger(__name__)

DEFAULT_NAME = "k8sdr-game-day"
#: The Lease annotation listing the members holding it (a JSON list of journal run ids).
MEMBERS = "k8sdr.io/lock-members"
# How often a read-modify-write of the Lease is tried again after a 409 from a fellow member.
_ATTEMPTS = 10


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


@dataclass(frozen=True)
class Stop:
    """Why disruptions stopped, what the test running then fails with, and for how long.

    `scope` "session": no further disruption this session (the game-day lock was lost);
    "test": the running experiment stops and its disruptions are undone, the session goes on
    (its steady state broke).
    """

    reason: str
    error: type[K8sdrError] = LockLost
    scope: Literal["session", "test"] = "session"

    def exception(self) -> K8sdrError:
        """The error a stopped test, or a disruption attempted after the stop, raises."""
        if self.scope == "session":
            return self.error(f"{self.reason}; this session makes no further disruption")
        return self.error(f"{self.reason}; the experiment stopped and its disruptions are undone")


class StopCondition:
    """Once tripped, no further disruption is made (AWS FIS calls this a stop condition).

    `trip(reason)` is called from any thread (the lock's renewer, a steady-state monitor);
    `listeners` are told once per trip. `check()` raises the stop's error after the trip. A
    trip scoped to the test is cleared by `clear_test()` once the test's disruptions are undone.
    """

    def __init__(self) -> None:
        self._stop: Stop | None = None
        self._lock = threading.Lock()
        self.listeners: list[Callable[[str], None]] = []

    @property
    def reason(self) -> str | None:
        """Why disruptions stopped; None while they may go on."""
        stop = self._stop
        return stop.reason if stop is not None else None

    @property
    def stop(self) -> Stop | None:
        """The stop in force, if any."""
        return self._stop

    @property
    def session_reason(self) -> str | None:
        """Why the whole session stopped disrupting (None when it did not, or for one test only)."""
        stop = self._stop
        return stop.reason if stop is not None and stop.scope == "session" else None

    def trip(
        self,
        reason: str,
        *,
        error: type[K8sdrError] = LockLost,
        scope: Literal["session", "test"] = "session",
    ) -> None:
        """Stop disruptions (the first reason is kept; a session stop outranks a test's)."""
        with self._lock:
            current = self._stop
            if current is not None and (current.scope == "session" or scope == "test"):
                return
            self._stop = Stop(reason, error, scope)
        if scope == "session":
            log.error("k8sdr: the session stops disrupting: %s", reason)
        else:
            log.error("k8sdr: the experiment stops: %s", reason)
        for listener in list(self.listeners):
            listener(reason)

    def clear_test(self) -> None:
        """Forget a stop scoped to the test that has ended (a session stop stays)."""
        with self._lock:
            if self._stop is not None and self._stop.scope == "test":
                self._stop = None

    def check(self) -> None:
        """Raise the stop's error once tripped."""
        stop = self._stop
        if stop is not None:
            raise stop.exception()


def members_of(lease: dict[str, Any]) -> list[str]:
    """The members listed on a game-day Lease (none when it lists none)."""
    raw = ((lease.get("metadata") or {}).get("annotations") or {}).get(MEMBERS)
    try:
        members = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [str(m) for m in members] if isinstance(members, list) else []


class GameDayLock:
    """A Lease `name` in `namespace` held by `holder` while a disruptive session runs.

    `member` is this process's share of it (default: the holder itself); processes with the same
    `holder` and different members hold it together. `stop_condition` is tripped when the lock
    is lost while held.
    """

    def __init__(
        self,
        cluster: Cluster,
        holder: str,
        *,
        member: str | None = None,
        namespace: str = "default",
        name: str = DEFAULT_NAME,
        duration: int = 60,
        stop_condition: StopCondition | None = None,
    ) -> None:
        if duration < 3:
            raise ConfigError(f"lock duration must be at least 3 seconds, got {duration}")
        self.cluster = cluster
        self.holder = holder
        self.member = member or holder
        self.namespace = namespace
        self.name = name
        self.duration = duration
        self.stop_condition = stop_condition if stop_condition is not None else StopCondition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.held = False
        self.renewed: datetime | None = None

    def _body(
        self, resource_version: str | None, acquired: str | None, members: list[str]
    ) -> dict[str, Any]:
        now = _micro(datetime.now(UTC))
        meta: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {"app.kubernetes.io/managed-by": "pytest-k8sdr"},
            "annotations": {MEMBERS: json.dumps(sorted(set(members)))},
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
        """Take the lock, or join its fellow members; then keep renewing it.

        `LockHeld` naming the holder when another run holds it.
        """
        for _ in range(_ATTEMPTS):
            try:
                self._take(self._read())
                break
            except Conflict:
                continue  # written at the same moment (a fellow member, or another run): re-read
        else:
            raise LockHeld(
                f"the game-day lock {self.namespace}/{self.name} kept changing under us "
                f"({_ATTEMPTS} conflicting writes); is another run taking it?"
            )
        self.held = True
        self.renewed = datetime.now(UTC)
        self._thread = threading.Thread(target=self._renew, name="k8sdr-lock", daemon=True)
        self._thread.start()

    def _take(self, current: dict[str, Any] | None) -> None:
        c = self.cluster
        if current is None:
            c.call(
                c.coordination.create_namespaced_lease,
                self.namespace,
                self._body(None, None, [self.member]),
                _preload_content=False,
            )
            return
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
        # Ours (a fellow member holds it): join it. Expired or free: take it afresh.
        ours = holder == self.holder
        members = [*members_of(current), self.member] if ours else [self.member]
        c.call(
            c.coordination.replace_namespaced_lease,
            self.name,
            self.namespace,
            self._body(
                current["metadata"].get("resourceVersion"),
                spec.get("acquireTime") if ours else None,
                members,
            ),
            _preload_content=False,
        )

    def _renew(self) -> None:
        while not self._stop.wait(self.duration / 3):
            try:
                if not self._renew_once():
                    return
                self.renewed = datetime.now(UTC)
            except Exception as exc:  # keep trying until the lease expires
                log.warning("cannot renew the game-day lock: %s", exc)
                last = self.renewed or datetime.now(UTC)
                if datetime.now(UTC) - last > timedelta(seconds=self.duration):
                    self._lose(
                        f"the game-day lock {self.namespace}/{self.name} could not be renewed "
                        f"for {self.duration}s (last error: {exc}); it has expired and another "
                        "run may hold it"
                    )
                    return

    def _renew_once(self) -> bool:
        """Renew the Lease; False (and the stop condition tripped) when it is no longer ours."""
        where = f"{self.namespace}/{self.name}"
        for _ in range(_ATTEMPTS):
            current = self._read()
            spec = (current or {}).get("spec") or {}
            if current is None:
                self._lose(f"the game-day lock {where} was released by someone else")
                return False
            if spec.get("holderIdentity") != self.holder:
                self._lose(
                    f"the game-day lock {where} was taken by {spec.get('holderIdentity')!r} "
                    f"(renewed {spec.get('renewTime')})"
                )
                return False
            members = members_of(current)
            if self.member not in members:
                self._lose(
                    f"the game-day lock {where} no longer lists this run ({self.member}) among "
                    "its holders: someone else released it"
                )
                return False
            try:
                self.cluster.call(
                    self.cluster.coordination.replace_namespaced_lease,
                    self.name,
                    self.namespace,
                    self._body(
                        current["metadata"].get("resourceVersion"),
                        spec.get("acquireTime"),
                        members,
                    ),
                    _preload_content=False,
                )
                return True
            except Conflict:
                continue  # a fellow member renewed it at the same moment: read it again
        return True  # renewed by fellow members all along: the Lease is fresh

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
    """The game-day lock held by a run; undone by leaving it (deleting the Lease if last).

    `member` is the run's share of a lock held together (the workers of a pytest-xdist session);
    empty in records of a lock held alone.
    """

    kind = "lock"
    disruptive = False
    needs_cluster = True
    namespace: str
    name: str
    holder: str
    member: str = ""

    def summary(self) -> str:
        """``take the game-day lock NS/NAME``."""
        return f"take the game-day lock {self.namespace}/{self.name}"

    def undoing(self) -> str:
        """``release the game-day lock held by HOLDER``."""
        return f"release the game-day lock {self.namespace}/{self.name} held by {self.holder}"

    def undo(self, env: UndoEnv) -> None:
        """Leave the Lease if it is still ours (never another run's); the last member deletes it."""
        cluster = env.require_cluster("releasing the game-day lock")
        release_lease(cluster, self.namespace, self.name, self.holder, self.member or self.holder)


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


def release_lease(
    cluster: Cluster, namespace: str, name: str, holder: str, member: str | None = None
) -> bool:
    """Leave the Lease if `holder` holds it; True if it was deleted.

    `member` (default: the holder itself) is removed from its members, and the Lease deleted
    when no member is left.
    """
    member = member or holder
    for _ in range(_ATTEMPTS):
        current = _lease_json(cluster, namespace, name)
        if current is None or (current.get("spec") or {}).get("holderIdentity") != holder:
            return False
        meta = current["metadata"]
        members = members_of(current)
        rest = [m for m in members if m != member]
        try:
            if not rest:
                cluster.call(
                    cluster.coordination.delete_namespaced_lease,
                    name,
                    namespace,
                    body={"preconditions": {"resourceVersion": meta["resourceVersion"]}},
                    _preload_content=False,
                )
                return True
            if rest == members:
                return False  # not a member (left already): the others keep it
            cluster.call(
                cluster.coordination.patch_namespaced_lease,
                name,
                namespace,
                {
                    "metadata": {
                        "resourceVersion": meta["resourceVersion"],
                        "annotations": {MEMBERS: json.dumps(sorted(rest))},
                    }
                },
                _content_type="application/merge-patch+json",
                _preload_content=False,
            )
            return False
        except NotFound:
            return False
        except Conflict:
            continue  # a fellow member renewed or left at the same moment: read it again
    raise LockHeld(
        f"cannot leave the game-day lock {namespace}/{name}: it kept changing "
        f"({_ATTEMPTS} conflicting writes)"
    )
