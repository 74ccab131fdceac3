"""The game-day lock: a Lease held for a whole disruptive session, so two runs never overlap.

The holder renews the Lease every third of its duration. A holder that died (SIGKILL, a lost CI
runner) stops renewing, and the lock is free once `renewTime + leaseDurationSeconds` has passed;
`k8sdr recover` releases it at once, as the lock is journaled like any disruption.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from pytest_k8sdr.cluster import Cluster
from pytest_k8sdr.errors import ConfigError, Conflict, LockHeld, NotFound

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


class GameDayLock:
    """A Lease `name` in `namespace` held by `holder` while a disruptive session runs."""

    def __init__(
        self,
        cluster: Cluster,
        holder: str,
        *,
        namespace: str = "default",
        name: str = DEFAULT_NAME,
        duration: int = 60,
    ) -> None:
        if duration < 3:
            raise ConfigError(f"lock duration must be at least 3 seconds, got {duration}")
        self.cluster = cluster
        self.holder = holder
        self.namespace = namespace
        self.name = name
        self.duration = duration
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.held = False

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
        try:
            resp = self.cluster.call(
                self.cluster.coordination.read_namespaced_lease,
                self.name,
                self.namespace,
                _preload_content=False,
            )
        except NotFound:
            return None
        return json.loads(resp.data)  # type: ignore[no-any-return]

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
        self._thread = threading.Thread(target=self._renew, name="k8sdr-lock", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.duration / 3):
            try:
                current = self._read()
                if current is None or (current.get("spec") or {}).get("holderIdentity") != (
                    self.holder
                ):
                    log.error("the game-day lock was taken from us: %s", current)
                    return
                acquired = (current.get("spec") or {}).get("acquireTime")
                self.cluster.call(
                    self.cluster.coordination.replace_namespaced_lease,
                    self.name,
                    self.namespace,
                    self._body(current["metadata"].get("resourceVersion"), acquired),
                    _preload_content=False,
                )
            except Exception as exc:  # keep trying until the lease expires
                log.warning("cannot renew the game-day lock: %s", exc)

    def release(self) -> None:
        """Stop renewing and delete the Lease if it is still ours (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        release_lease(self.cluster, self.namespace, self.name, self.holder)
        self.held = False


def release_lease(cluster: Cluster, namespace: str, name: str, holder: str) -> bool:
    """Delete the Lease if `holder` still holds it; True if it was deleted."""
    try:
        resp = cluster.call(
            cluster.coordination.read_namespaced_lease, name, namespace, _preload_content=False
        )
    except NotFound:
        return False
    current = json.loads(resp.data)
    if (current.get("spec") or {}).get("holderIdentity") != holder:
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
