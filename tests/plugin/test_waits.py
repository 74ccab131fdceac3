"""Watch-driven waits against the simulator: they return at the event, and honour deadlines."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from kubernetes.client.rest import ApiException

from pytest_k8sdr import (
    ApiUnavailable,
    Cluster,
    ConfigError,
    Conflict,
    Gone,
    Invalid,
    MakeWorkload,
    NotFound,
    ReadOnlyCluster,
    Runbook,
    Satisfied,
    SLOExceeded,
    WaitTimeout,
)
from pytest_k8sdr.sim import SimCluster

NODE = "k8sdr-worker"


def test_wait_returns_when_the_change_is_made_and_stamps_its_time(cluster: Cluster) -> None:
    label = f"mark-{time.monotonic_ns()}"

    def write_later() -> None:
        time.sleep(0.5)
        cluster.call(cluster.core.patch_node, NODE, {"metadata": {"labels": {"k8sdr-test": label}}})

    writer = threading.Thread(target=write_later)
    before = cluster.requests
    writer.start()
    got = cluster.wait_node(
        NODE,
        lambda n: n is not None and n.labels.get("k8sdr-test") == label,
        timeout=20,
        description="to carry the label",
    )
    writer.join()
    try:
        assert 0.4 < got.elapsed < 5
        # One list and one watch: no polling, whatever the wait's length.
        assert got.requests <= 3
        assert cluster.requests - before <= 4  # plus the writer's patch
    finally:
        cluster.call(cluster.core.patch_node, NODE, {"metadata": {"labels": {"k8sdr-test": None}}})


def test_wait_timeout_says_what_is_left(cluster: Cluster) -> None:
    with pytest.raises(WaitTimeout, match=r"node k8sdr-worker Ready=Unknown[\s\S]*Ready=True"):
        cluster.wait_node_unreachable(NODE, timeout=1)


def test_a_wait_inside_a_phase_ends_at_the_phase_slo(cluster: Cluster) -> None:
    book = Runbook("slo")
    start = time.monotonic()
    with (
        pytest.raises(SLOExceeded, match="phase 'fail' exceeded its SLO") as info,
        book.phase("fail", slo=1),
    ):
        cluster.wait_node_unreachable(NODE, timeout=60)
    assert time.monotonic() - start < 40  # the SLO, not the wait's 60 s timeout, ended it
    assert "cut short by the runbook phase's SLO" in str(info.value)
    assert book.summary()[0]["verdict"] == "slo-exceeded"


def _events(cluster: Cluster, namespace: str, n: int) -> None:
    """`n` Events in `namespace` (inert objects: nothing acts on them)."""
    for i in range(n):
        cluster.call(
            cluster.core.create_namespaced_event,
            namespace,
            {
                "metadata": {"name": f"e{i:04d}"},
                "involvedObject": {"kind": "Pod", "name": f"p{i}", "namespace": namespace},
                "reason": "Test",
                "message": "paging",
                "type": "Normal",
            },
            _preload_content=False,
        )


def test_lists_are_read_in_pages_and_waits_keep_only_projections(
    cluster: Cluster, namespace: str
) -> None:
    _events(cluster, namespace, 1100)
    before = cluster.requests
    listed = cluster.list_raw("events", namespace)
    assert cluster.requests - before == 3  # pages of 500, 500 and 100
    assert len(listed["items"]) == 1100
    assert len({e["metadata"]["name"] for e in listed["items"]}) == 1100
    assert "continue" not in listed["metadata"]
    pages = list(cluster.list_pages("events", namespace))
    assert [len(p["items"]) for p, _ in pages] == [500, 500, 100]
    assert [fresh for _, fresh in pages] == [True, False, False]
    # What the pager guarantees: every page of one list is the same snapshot (the first page's
    # resourceVersion). Two separate lists need not share one: node leases renew every second.
    assert len({p["metadata"]["resourceVersion"] for p, _ in pages}) == 1
    assert listed["metadata"]["resourceVersion"]
    got = cluster.wait(
        "events",
        lambda s: Satisfied(list(s.values())) if len(s.objects) == 1100 else None,
        timeout=10,
        description="every event",
        namespace=namespace,
        project=lambda e: e["metadata"]["name"],
    )
    assert sorted(got.value) == [f"e{i:04d}" for i in range(1100)]


class _ContinueExpires(Cluster):
    """The facade, with the API answering 410 once to the first continued list."""

    expired = False

    def call(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        if "_continue" in kwargs and not self.expired:
            self.expired = True
            raise Gone("list: 410 Expired", status=410)
        return super().call(fn, *args, **kwargs)


def test_an_expired_continue_token_falls_back_to_a_whole_list(
    cluster: Cluster, namespace: str
) -> None:
    _events(cluster, namespace, 600)
    flaky = _ContinueExpires(cluster.api_client)
    pages = list(flaky.list_pages("events", namespace))
    assert flaky.expired
    # The first page, then the whole list again, unpaginated and marked fresh.
    assert [(len(p["items"]), fresh) for p, fresh in pages] == [(500, True), (600, True)]
    assert len(flaky.list_raw("events", namespace)["items"]) == 600


def test_an_api_server_that_never_answers_is_reported_not_waited_on(tmp_path: Path) -> None:
    sim = SimCluster.start(tmp_path / "sim", workers=0)
    api = Cluster.from_kubeconfig(sim.kubeconfig_path, api_deadline=3)
    try:
        assert api.nodes() == []  # answering (no nodes were started)
        os.kill(sim.server_pid, signal.SIGSTOP)  # accepts connections, answers nothing
        began = time.monotonic()
        with pytest.raises(ApiUnavailable, match="for 3s"):
            api.nodes()
        assert time.monotonic() - began < 30
    finally:
        os.kill(sim.server_pid, signal.SIGCONT)
        api.close()
        sim.stop()


def test_a_pod_history_is_stopped_when_its_block_ends_even_by_a_failure(
    pytester: pytest.Pytester,
) -> None:
    # A failing experiment leaves its `with pod_history(...)` block through the exception; the
    # watch thread must not outlive the test (at exit, it aborted the interpreter while
    # logging reconnection attempts).
    pytester.makepyfile(
        """
        import threading
        from pytest_k8sdr import pod_history

        def test_fails_inside_a_history(make_workload):
            db = make_workload("db", replicas=0, service=None)
            with pod_history(db) as history:
                assert history.running
                assert False, "the experiment failed"

        def test_next_test_sees_it_stopped():
            names = [t.name for t in threading.enumerate()]
            assert "k8sdr-pod-history" not in names, names
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(failed=1, passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


# -- conditions that hold with 0, [] or None --------------------------------------------------


def test_a_condition_whose_value_is_zero_or_none_holds_at_once(cluster: Cluster) -> None:
    for value in (0, [], None, False):
        got = cluster.wait(
            "nodes",
            lambda s, v=value: Satisfied(v),  # type: ignore[misc]
            timeout=30,
            description="a falsy value",
        )
        assert got.value == value
        assert got.elapsed < 10  # at the list, not after the 30 s timeout


def test_a_wait_for_zero_replicas_returns_at_once(make_workload: MakeWorkload) -> None:
    none = make_workload("none", replicas=0, service=None, wait=False)
    got = none.wait_ready(timeout=30)
    assert got.value == []
    assert got.elapsed < 10


def test_a_condition_must_say_satisfied(cluster: Cluster) -> None:
    with pytest.raises(ConfigError, match=r"returned True: return Satisfied\(value\)"):
        cluster.wait("nodes", lambda s: True, timeout=5, description="x")  # type: ignore[arg-type,return-value]


# -- phases time themselves from their waits ------------------------------------------------


def test_an_unmarked_slow_wait_counts_in_its_phase(cluster: Cluster) -> None:
    label = f"slow-{time.monotonic_ns()}"

    def write_later() -> None:
        time.sleep(1.5)
        cluster.call(cluster.core.patch_node, NODE, {"metadata": {"labels": {"k8sdr-test": label}}})

    book = Runbook("slow")
    writer = threading.Thread(target=write_later)

    def phase() -> None:
        with book.phase("fail", slo="1s"):
            book.mark("quick", cluster.wait_node_ready(NODE, timeout=10))
            writer.start()
            # Never marked: the phase times itself from it all the same.
            cluster.wait_node(
                NODE,
                lambda n: n is not None and n.labels.get("k8sdr-test") == label,
                timeout=20,
                description="to carry the label",
            )

    try:
        with pytest.raises(SLOExceeded, match="phase 'fail' exceeded its SLO"):
            phase()
    finally:
        writer.join()
        cluster.call(cluster.core.patch_node, NODE, {"metadata": {"labels": {"k8sdr-test": None}}})
    assert book.phases[0].duration is not None
    assert book.phases[0].duration >= 1.5


# -- the client boundary --------------------------------------------------------------------


def test_api_errors_are_translated_once_with_the_client_error_chained(
    cluster: Cluster, namespace: str
) -> None:
    with pytest.raises(NotFound, match="read_namespaced_pod: 404") as info:
        cluster.call(cluster.core.read_namespaced_pod, "no-such-pod", namespace)
    assert isinstance(info.value.__cause__, ApiException)
    body = {"metadata": {"name": "cm"}, "data": {"a": "1"}}
    cluster.call(cluster.core.create_namespaced_config_map, namespace, body)
    with pytest.raises(Conflict, match="already exists"):
        cluster.call(cluster.core.create_namespaced_config_map, namespace, body)
    with pytest.raises(Invalid):
        cluster.call(
            cluster.core.create_namespaced_config_map, namespace, {"metadata": {"name": "Bad_"}}
        )


def test_a_read_only_facade_refuses_writes_before_any_request(
    cluster: Cluster, namespace: str
) -> None:
    read_only = Cluster(cluster.api_client, read_only=True)
    assert read_only.nodes()  # reads go through
    with pytest.raises(ReadOnlyCluster, match="create_namespaced_config_map"):
        read_only.call(
            read_only.core.create_namespaced_config_map, namespace, {"metadata": {"name": "x"}}
        )
    assert read_only.requests == 1  # the list; the write never left
    with pytest.raises(NotFound):
        cluster.call(cluster.core.read_namespaced_config_map, "x", namespace)
    assert not cluster.read_only  # the session's own facade is untouched
