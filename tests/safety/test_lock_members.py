"""One game-day lock held together: the workers of a session join it, the last one deletes it."""

from __future__ import annotations

import pytest

from pytest_k8sdr.cluster import Cluster
from pytest_k8sdr.errors import LockHeld
from pytest_k8sdr.lock import (
    DEFAULT_NAME,
    GameDayLock,
    GameDayLockHeld,
    members_of,
    release_lease,
)
from pytest_k8sdr.undo import UndoEnv

SESSION = "ops@host pid 1 run abc"


def _lease(cluster: Cluster, namespace: str) -> dict[str, object] | None:
    return cluster.get_raw("leases", DEFAULT_NAME, namespace)


def test_members_of_one_session_share_the_lock_and_the_last_deletes_it(
    cluster: Cluster, namespace: str
) -> None:
    locks = [
        GameDayLock(cluster, SESSION, member=f"abc-gw{n}", namespace=namespace, duration=30)
        for n in range(2)
    ]
    try:
        for lock in locks:
            lock.acquire()  # the second joins: a fellow member is not another run
        lease = _lease(cluster, namespace)
        assert lease is not None
        assert members_of(lease) == ["abc-gw0", "abc-gw1"]
        other = GameDayLock(cluster, "someone@else pid 2 run xyz", namespace=namespace)
        with pytest.raises(LockHeld, match=r"locked for a game day by 'ops@host pid 1 run abc'"):
            other.acquire()
    finally:
        for lock in locks:
            lock.stop()
    # Leaving goes through the journal record's undo, as `k8sdr recover` would.
    GameDayLockHeld(namespace, DEFAULT_NAME, SESSION, "abc-gw0").undo(UndoEnv(cluster=cluster))
    lease = _lease(cluster, namespace)
    assert lease is not None
    assert members_of(lease) == ["abc-gw1"]
    # Leaving twice changes nothing; the last member's leaving deletes the Lease.
    assert not release_lease(cluster, namespace, DEFAULT_NAME, SESSION, "abc-gw0")
    assert release_lease(cluster, namespace, DEFAULT_NAME, SESSION, "abc-gw1")
    assert _lease(cluster, namespace) is None


def test_a_member_removed_by_someone_else_has_lost_the_lock(
    cluster: Cluster, namespace: str
) -> None:
    lost: list[str] = []
    kept = GameDayLock(cluster, SESSION, member="abc-gw0", namespace=namespace, duration=3)
    removed = GameDayLock(cluster, SESSION, member="abc-gw1", namespace=namespace, duration=3)
    removed.stop_condition.listeners.append(lost.append)
    try:
        kept.acquire()
        removed.acquire()
        # `k8sdr recover --force` of gw1's run leaves the lock on its behalf.
        release_lease(cluster, namespace, DEFAULT_NAME, SESSION, "abc-gw1")
        assert removed._thread is not None
        removed._thread.join(30)  # its renewer ends once it sees it
        assert lost
        assert "no longer lists this run (abc-gw1)" in lost[0]
        assert kept.stop_condition.reason is None
    finally:
        kept.stop()
        removed.stop()
        release_lease(cluster, namespace, DEFAULT_NAME, SESSION, "abc-gw0")
    assert _lease(cluster, namespace) is None
