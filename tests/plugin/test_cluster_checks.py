"""Every check, shown failing with what is left, and holding when its condition is zero.

On the session's simulated cluster (never a mocked client). Failures use short explicit
timeouts on conditions that cannot hold, so a slow machine only makes them fail later.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator

import pytest

from pytest_k8sdr import (
    Cluster,
    ClusterCheckFailed,
    ConfigError,
    Machines,
    MakePDB,
    MakeWorkload,
    NodeFaults,
    NodeSnapshot,
    NotFound,
    PodHistory,
    Taint,
    WaitTimeout,
    Workload,
    assert_endpoints_exclude_node,
    assert_eviction_halted,
    assert_min_available,
    assert_no_split_brain,
    assert_node_isolated,
    assert_node_rejoined,
    assert_node_unreachable,
    assert_pods_rescheduled,
    assert_pods_unschedulable,
    assert_rebalanced,
    pod_history,
)

WORKER = "k8sdr-worker"
GHOST = "k8sdr-ghost"  # a node that does not exist
HOLD = "example.com/hold"


def _wait_for(history: PodHistory, uids: int) -> None:
    """Until the history's own watch has seen `uids` pods (it runs in its own thread)."""
    deadline = time.monotonic() + 30
    while len(history.pods) < uids and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(history.pods) >= uids, history.pods


# -- node checks ----------------------------------------------------------------------------


def test_node_unreachable_fails_saying_how_the_node_is(cluster: Cluster) -> None:
    with pytest.raises(WaitTimeout, match=r"Unknown with the unreachable[\s\S]*Ready=True"):
        assert_node_unreachable(cluster, WORKER, timeout=1)


def test_node_rejoined_fails_naming_what_the_snapshot_has_and_the_node_lacks(
    cluster: Cluster,
) -> None:
    snapshot = NodeSnapshot.of(cluster.node(WORKER))
    wanted = dataclasses.replace(snapshot, labels={**snapshot.labels, "tier": "gold"})
    with pytest.raises(ClusterCheckFailed, match=r"missing since the snapshot:\n  label tier=gold"):
        assert_node_rejoined(cluster, WORKER, like=wanted, timeout=1)
    assert assert_node_rejoined(cluster, WORKER, like=snapshot, timeout=10).value is not None


@pytest.fixture
def ghost_pod(cluster: Cluster, namespace: str) -> Iterator[str]:
    """A pod bound to a node that does not exist, kept by a finalizer after pod GC deletes it."""
    body = {
        "metadata": {"name": "bound-to-a-ghost", "finalizers": [HOLD]},
        "spec": {"nodeName": GHOST, "containers": [{"name": "c", "image": "busybox"}]},
    }
    cluster.call(cluster.core.create_namespaced_pod, namespace, body, _preload_content=False)
    try:
        yield "bound-to-a-ghost"
    finally:
        patch = {"metadata": {"finalizers": None}}
        cluster.call(cluster.core.patch_namespaced_pod, "bound-to-a-ghost", namespace, patch)
        with contextlib.suppress(NotFound):
            cluster.call(cluster.core.delete_namespaced_pod, "bound-to-a-ghost", namespace)


def test_node_isolated_fails_naming_the_pods_still_bound(cluster: Cluster, ghost_pod: str) -> None:
    with pytest.raises(WaitTimeout, match=rf"pods still bound to {GHOST}:\n  .*/{ghost_pod} on"):
        assert_node_isolated(cluster, GHOST, timeout=1)


def test_node_isolated_fails_while_the_node_exists(cluster: Cluster) -> None:
    with pytest.raises(WaitTimeout, match=rf"node {WORKER} deleted[\s\S]*Ready=True"):
        assert_node_isolated(cluster, WORKER, timeout=1)


# -- workload checks ------------------------------------------------------------------------


@pytest.fixture
def web(make_workload: MakeWorkload) -> Workload:
    return make_workload("web", replicas=4)


def test_pods_rescheduled_fails_listing_the_pods_still_there(web: Workload) -> None:
    victim = web.busiest_node()
    with pytest.raises(WaitTimeout) as info:
        assert_pods_rescheduled(web, away_from=victim, timeout=1)
    message = str(info.value)
    assert f"want 4 Ready replicas of {web}, none on {victim}" in message
    assert f"on {victim} (Running, Ready" in message


def test_pods_unschedulable_fails_naming_each_pod_and_why_not(web: Workload) -> None:
    with pytest.raises(WaitTimeout) as info:
        assert_pods_unschedulable(web, message="volume node affinity conflict", timeout=1)
    message = str(info.value)
    assert f"want 1 pod(s) of {web} unschedulable with 'volume node affinity conflict'" in message
    assert "(Running, Ready" in message
    assert ": not unschedulable" in message


def test_pods_unschedulable_holds_with_the_schedulers_message(
    cluster: Cluster, make_workload: MakeWorkload
) -> None:
    # A class that does not exist cannot delay binding: the claims are unbound "immediate"
    # ones (upstream volumebinding/binder.go, IsDelayBindingMode of a missing class is false).
    db = make_workload(
        "db", kind="StatefulSet", replicas=2, service=None, storage_class="nope", wait=False
    )
    got = assert_pods_unschedulable(
        db, count=2, message="pod has unbound immediate PersistentVolumeClaims", timeout=30
    )
    assert sorted(p.name for p in got.value) == ["db-0", "db-1"]
    assert all(p.node is None for p in got.value)
    assert "0/" in got.observed
    assert " nodes are available: " in got.observed


def test_storage_class_gives_each_replica_a_bound_claim_and_needs_a_statefulset(
    cluster: Cluster, make_workload: MakeWorkload
) -> None:
    with pytest.raises(ConfigError, match="storage_class='standard' needs kind='StatefulSet'"):
        make_workload("web", storage_class="standard", wait=False)
    db = make_workload("db", kind="StatefulSet", replicas=2, service=None, storage_class="standard")
    claims = cluster.read_path(f"/api/v1/namespaces/{db.namespace}/persistentvolumeclaims")
    assert claims is not None
    bound = {
        c["metadata"]["name"]: (c["status"]["phase"], c["spec"]["storageClassName"])
        for c in claims["items"]
    }
    assert bound == {"data-db-0": ("Bound", "standard"), "data-db-1": ("Bound", "standard")}


def test_pods_rescheduled_away_from_several_nodes_names_them_all(web: Workload) -> None:
    nodes = sorted(web.nodes())
    with pytest.raises(WaitTimeout) as info:
        assert_pods_rescheduled(web, away_from=nodes, timeout=1)
    assert f"want 4 Ready replicas of {web}, none on {', '.join(nodes)}" in str(info.value)


def test_eviction_halted_holds_on_healthy_nodes_with_their_pods_still_bound(
    web: Workload,
) -> None:
    nodes = sorted(web.nodes())
    result = assert_eviction_halted(web, nodes, hold=1)
    assert {p.uid for p in result.value} == {p.uid for p in web.pods()}
    assert f"no NoExecute taint on {len(nodes)} node(s) for 1.0s" in result.observed


def test_eviction_halted_fails_at_the_first_no_execute_taint(
    web: Workload, node_faults: NodeFaults
) -> None:
    victim = web.busiest_node()
    taint = Taint("node.kubernetes.io/not-ready", "NoExecute")
    # Set after the check has started watching (the check leaves out nodes tainted before it).
    timer = threading.Timer(2.0, node_faults.taint, (victim, taint))
    timer.start()
    try:
        with pytest.raises(ClusterCheckFailed, match=f"node {victim} got taint"):
            assert_eviction_halted(web, [victim], hold=60)
    finally:
        timer.join()


def test_eviction_halted_refuses_what_it_cannot_check(web: Workload) -> None:
    with pytest.raises(ConfigError, match="at least one node"):
        assert_eviction_halted(web, [], hold=1)
    with pytest.raises(ConfigError, match="hold must be > 0"):
        assert_eviction_halted(web, [WORKER], hold=0)
    with pytest.raises(WaitTimeout, match="the timeout leaves"):
        assert_eviction_halted(web, [WORKER], hold=5, timeout=1)


def test_endpoints_exclude_node_fails_listing_the_endpoints_left(web: Workload) -> None:
    victim = web.busiest_node()
    with pytest.raises(WaitTimeout) as info:
        assert_endpoints_exclude_node(web, victim, timeout=1)
    message = str(info.value)
    assert f"want no ready endpoint on {victim} and at least 1 ready" in message
    assert f"on {victim} conditions=" in message


def test_endpoints_exclude_node_with_min_ready_zero_holds_at_once(
    make_workload: MakeWorkload,
) -> None:
    idle = make_workload("idle", replicas=0)
    got = assert_endpoints_exclude_node(idle, WORKER, min_ready=0, timeout=30)
    assert got.value == []
    assert got.elapsed < 10  # at the first list, not after the timeout


def test_endpoints_need_a_service(make_workload: MakeWorkload) -> None:
    headless = make_workload("headless", replicas=0, service=None)
    with pytest.raises(ConfigError, match="has no Service"):
        assert_endpoints_exclude_node(headless, WORKER)


def test_rebalanced_fails_naming_the_skew_and_the_pods(web: Workload) -> None:
    # Four pods on three workers: some node has one more than another.
    with pytest.raises(WaitTimeout, match=r"skew 1 \(want at most 0\) over \{") as info:
        assert_rebalanced(web, max_skew=0, timeout=1)
    assert "pods now:" in str(info.value)
    spread = assert_rebalanced(web, max_skew=1, timeout=30).value
    assert sum(spread.values()) == 4


# -- history checks -------------------------------------------------------------------------


def test_history_checks_need_a_history(web: Workload) -> None:
    with pytest.raises(ConfigError, match=r"inside `with pod_history\(\.\.\.\)`"):
        assert_no_split_brain(web)


def test_min_available_fails_naming_when_and_who_was_down(
    make_workload: MakeWorkload, cluster: Cluster
) -> None:
    web = make_workload("web", replicas=2, service=None)
    with pod_history(web) as history:
        victim = web.pods()[0]
        cluster.call(cluster.core.delete_namespaced_pod, victim.name, web.namespace)
        web.wait_ready(timeout=60)
        _wait_for(history, uids=3)
        with pytest.raises(ClusterCheckFailed) as info:
            assert_min_available(web, 2)
        held = assert_min_available(web, 1)
    message = str(info.value)
    assert f"{web}: only 1 pod(s) available at " in message
    assert f"pod {victim.name} uid {victim.uid[:8]} on node {victim.node}" in message
    assert "Terminating" in message
    assert held.value == 1


def test_make_pdb_guards_the_workload_and_refuses_two_bounds(
    web: Workload, make_pdb: MakePDB, cluster: Cluster
) -> None:
    budget = make_pdb(web, min_available=3)
    raw = cluster.call(
        cluster.policy.read_namespaced_pod_disruption_budget, budget.name, budget.namespace
    )
    assert raw.spec.min_available == 3
    assert raw.spec.selector.match_labels == {"app": "web"}
    with pytest.raises(ConfigError, match="exactly one of min_available and max_unavailable"):
        make_pdb(web, min_available=1, max_unavailable=1)


# -- the split brain ------------------------------------------------------------------------


@pytest.mark.disruptive
def test_a_partitioned_node_isolated_by_mistake_is_a_split_brain(
    cluster: Cluster,
    make_workload: MakeWorkload,
    machines: Machines,
    node_faults: NodeFaults,
) -> None:
    db = make_workload("db", kind="StatefulSet", replicas=3, service=None)
    victim = db.busiest_node()
    old = [p for p in db.pods() if p.node == victim]
    with pod_history(db):
        machines[victim].partition()  # the machine runs on: its pods keep serving
        assert_node_unreachable(cluster, victim)
        node_faults.isolate(victim)  # the mistake: its Node is deleted though it is not down
        assert_pods_rescheduled(db, away_from=victim)
    try:
        with pytest.raises(ClusterCheckFailed, match=f"split brain in {db}") as info:
            assert_no_split_brain(db)
    finally:
        # A running kubelet never registers again: restart it, so the node comes back.
        machines[victim].kill()
        machines[victim].start()
        cluster.wait_node_ready(victim, timeout=60)
    message = str(info.value)
    now = {p.name: p for p in db.pods()}
    for pod in old:
        new = now[pod.name]
        assert new.node != victim
        assert (
            f"{pod.name}: pod {pod.name} uid {pod.uid[:8]} on node {victim} ({pod.ip}) still "
            f"answers on its address (as node {victim}) while its replacement pod {pod.name} "
            f"uid {new.uid[:8]} on node {new.node} ({new.ip}) runs"
        ) in message


def test_no_split_brain_holds_when_the_old_pod_is_silent(
    make_workload: MakeWorkload, cluster: Cluster
) -> None:
    db = make_workload("db", kind="StatefulSet", replicas=1, service=None)
    with pod_history(db) as history:
        first = db.pods()[0]
        cluster.call(cluster.core.delete_namespaced_pod, first.name, db.namespace)
        _wait_for(history, uids=2)
        db.wait_ready(timeout=60)
    got = assert_no_split_brain(db)
    assert got.value == [first.name]
    assert "replaced" in got.observed
