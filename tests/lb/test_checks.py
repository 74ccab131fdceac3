"""The checks fail when the load balancer or the traffic says so, and say what is left."""

from __future__ import annotations

import pytest
from lb_helpers import Cluster, HAProxyServer, NginxServer

from pytest_k8sdr import ClusterCheckFailed, Runbook, UndoStack
from pytest_k8sdr.lb import TrafficProbe, assert_lb_drained, assert_lb_restored


def test_drained_in_the_file_but_not_reloaded_is_caught_by_the_traffic(
    nginx: NginxServer, cluster: Cluster, undo: UndoStack
) -> None:
    lb = nginx.lb(cluster, undo)
    victim = cluster.nodes[1]
    # An operator edits the file and forgets `nginx -s reload`: nginx -T reads the file, so
    # the configuration looks drained, but nginx still routes to the node.
    line = f"server {victim.address}:{victim.port} max_fails=0;"
    nginx.conf.write_text(nginx.conf.read_text().replace(line, f"# {line}"))
    with TrafficProbe(nginx.url, rate=60) as probe, pytest.raises(ClusterCheckFailed) as info:
        assert_lb_drained(lb, victim.name, probe=probe, window=0.5, timeout=1.0)
    message = str(info.value)
    assert "no clean 0.5s window of traffic within 1.0s" in message
    assert f"node {victim.name} still answered" in message
    assert f"default/web-{victim.name}" in message
    assert "answered by node: node-1" in message


def test_restored_but_dead_node_fails_the_restore_check(
    haproxy: HAProxyServer, cluster: Cluster, undo: UndoStack
) -> None:
    lb = haproxy.lb(cluster, undo)
    victim = cluster.nodes[2]
    lb.drain(victim.name)
    victim.kill()
    lb.restore(victim.name)  # back in rotation, but nothing answers there
    with TrafficProbe(haproxy.url, rate=60) as probe, pytest.raises(ClusterCheckFailed) as info:
        assert_lb_restored(lb, victim.name, probe=probe, window=0.5, timeout=1.0)
    message = str(info.value)
    assert f"node {victim.name} answered or served 0 request(s)" in message
    assert "request(s) failed" in message
    assert "HTTP 503" in message


def test_checks_need_a_running_probe(nginx: NginxServer, cluster: Cluster, undo: UndoStack) -> None:
    lb = nginx.lb(cluster, undo)
    lb.drain("node-1")
    probe = TrafficProbe(nginx.url)
    with pytest.raises(ClusterCheckFailed, match=r"probe .* is not running"):
        assert_lb_drained(lb, "node-1", probe=probe)
    assert assert_lb_drained(lb, "node-1").value is None  # the configuration alone
    with pytest.raises(ClusterCheckFailed, match=r"node-1 \(127\.88\.\d+\.2\): it is in no server"):
        assert_lb_restored(lb, "node-1")


def test_a_clean_window_is_decided_when_the_traffic_turned_clean(
    nginx: NginxServer, cluster: Cluster, undo: UndoStack
) -> None:
    lb = nginx.lb(cluster, undo)
    victim = cluster.nodes[1]
    book = Runbook("drain")
    with TrafficProbe(nginx.url, rate=60) as probe, book.phase("drain LB", slo="30s") as phase:
        lb.drain(victim.name)
        got = assert_lb_drained(lb, victim.name, probe=probe, window=2.0)
    summary = got.value
    assert summary is not None
    # On the wall clock, like every result: the window starts where the check was decided.
    assert phase.started <= got.at <= summary.ended_at
    assert abs((summary.started_at - got.at).total_seconds()) < 0.01
    assert (summary.ended_at - summary.started_at).total_seconds() >= 2.0
    assert "a clean 2.0s window" in got.observed
    # The phase ends when the traffic turned clean, not after the window that confirmed it.
    assert phase.duration is not None
    assert phase.duration < 2.0
    assert [m.label for m in book.marks] == ["LB drained"]
