"""Watch-driven waits against the simulator: they return at the event, and honour deadlines."""

from __future__ import annotations

import threading
import time

import pytest

from pytest_k8sdr import SLOExceeded
from pytest_k8sdr.cluster import Cluster, WaitTimeout
from pytest_k8sdr.runbook import Runbook

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
    assert time.monotonic() - start < 10
    assert "cut short by the runbook phase's SLO" in str(info.value)
    assert book.summary()[0]["verdict"] == "slo-exceeded"
