"""HAProxyLB against a real HAProxy on loopback, through its runtime API."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lb_helpers import Cluster, HAProxyServer, haproxy_conf, start_haproxy, stop

from pytest_k8sdr.errors import ClusterCheckFailed
from pytest_k8sdr.lb import (
    HAProxyLB,
    HostRuntimeAPI,
    LBCommandFailed,
    LBConfigError,
    LBToolMissing,
    LocalHost,
    NodeNotInLB,
    SocketRuntimeAPI,
    TrafficProbe,
    UpstreamNotFound,
    assert_lb_drained,
    assert_lb_restored,
)
from pytest_k8sdr.undo import UndoStack


def _states(lb: HAProxyLB) -> dict[str, str]:
    return {m.name: m.state for m in lb.members()}


def test_drain_puts_the_node_in_maintenance_and_restore_brings_it_back(
    haproxy: HAProxyServer, cluster: Cluster, undo: UndoStack
) -> None:
    lb = haproxy.lb(cluster, undo)
    lb.validate()
    members = lb.members()
    assert [(m.name, m.address, m.port) for m in members] == [
        (n.name, n.address, n.port) for n in cluster.nodes
    ]
    assert all(m.active and m.healthy for m in members)

    lb.drain("node-2")
    assert len(undo) == 1
    assert _states(lb) == {"node-1": "ready", "node-2": "maint", "node-3": "ready"}
    assert_lb_drained(lb, "node-2")
    with pytest.raises(ClusterCheckFailed, match=r"does not route to node node-2.*\[maint\]"):
        assert_lb_restored(lb, "node-2")

    lb.restore("node-2")
    assert len(undo) == 0
    assert _states(lb) == {"node-1": "ready", "node-2": "ready", "node-3": "ready"}
    assert_lb_restored(lb, "node-2")


def test_restore_puts_back_the_state_the_server_had(
    haproxy: HAProxyServer, cluster: Cluster, undo: UndoStack
) -> None:
    runtime = SocketRuntimeAPI(haproxy.socket)
    assert runtime.send("set server web/node-3 state drain").strip() == ""
    lb = haproxy.lb(cluster, undo, mode="maint")
    lb.drain("node-3")  # already out of rotation (drain): nothing to do, nothing to undo
    assert len(undo) == 0
    assert _states(lb)["node-3"] == "drain"

    lb_drain_mode = haproxy.lb(cluster, undo, mode="drain")
    lb_drain_mode.drain("node-1")
    assert _states(lb)["node-1"] == "drain"
    undo.unwind()  # what teardown does
    assert _states(lb) == {"node-1": "ready", "node-2": "ready", "node-3": "drain"}


def test_another_instance_lifts_a_forced_maintenance(
    haproxy: HAProxyServer, cluster: Cluster, undo: UndoStack
) -> None:
    haproxy.lb(cluster, UndoStack()).drain("node-1")
    fresh = haproxy.lb(cluster, undo)
    assert _states(fresh)["node-1"] == "maint"
    fresh.restore("node-1")
    assert _states(fresh)["node-1"] == "ready"


def test_bad_input_is_a_clear_error_and_changes_nothing(
    haproxy: HAProxyServer, cluster: Cluster, undo: UndoStack, tmp_path: Path
) -> None:
    lb = haproxy.lb(cluster, undo)
    with pytest.raises(UpstreamNotFound, match="no backend 'api'"):
        HAProxyLB("api", runtime=haproxy.socket, nodes=cluster.addresses, undo=undo).drain("node-1")
    with pytest.raises(NodeNotInLB, match=r"127\.9\.9\.9.*servers: node-1=127\.88"):
        lb.drain("127.9.9.9")
    with pytest.raises(LBConfigError, match="unknown node 'node-7'"):
        lb.drain("node-7")
    with pytest.raises(LBConfigError, match="drain mode"):
        haproxy.lb(cluster, undo, mode="off")
    gone = HAProxyLB("web", runtime=str(tmp_path / "nope.sock"), nodes=cluster.addresses)
    with pytest.raises(LBCommandFailed, match=r"nope\.sock is not reachable"):
        gone.drain("node-1")
    assert len(undo) == 0
    assert set(_states(lb).values()) == {"ready"}


def test_a_socket_without_admin_level_is_refused(tmp_path: Path, cluster: Cluster) -> None:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed")
    port = cluster.free_port()
    text = haproxy_conf(tmp_path, cluster, f"{cluster.lb_address}:{port}", level="operator")
    server = start_haproxy(tmp_path, text, cluster.lb_address, port)
    try:
        lb = HAProxyLB("web", runtime=server.socket, nodes=cluster.addresses)
        with pytest.raises(LBConfigError, match=r"level 'operator'.*level admin"):
            lb.validate()
    finally:
        stop(server.process)


def test_runtime_api_through_a_host_command(
    haproxy: HAProxyServer, cluster: Cluster, undo: UndoStack
) -> None:
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed")
    runtime = HostRuntimeAPI(LocalHost(), haproxy.socket)
    lb = HAProxyLB("web", runtime=runtime, nodes=cluster.addresses, undo=undo)
    lb.drain("node-1")
    assert _states(lb)["node-1"] == "maint"
    lb.restore("node-1")
    assert _states(lb)["node-1"] == "ready"

    missing = HostRuntimeAPI(LocalHost(), haproxy.socket, client=("/nonexistent/socat",))
    with pytest.raises(LBToolMissing, match="/nonexistent/socat"):
        HAProxyLB("web", runtime=missing, nodes=cluster.addresses).members()


def test_killed_node_errors_stop_after_drain_and_traffic_returns_after_restore(
    haproxy: HAProxyServer, cluster: Cluster, undo: UndoStack
) -> None:
    lb = haproxy.lb(cluster, undo)
    victim = cluster.nodes[0]
    with TrafficProbe(haproxy.url, rate=60, timeout=2.0) as probe:
        assert_lb_restored(lb, victim.name, probe=probe, window=0.5)

        victim.kill()
        killed_at = probe.now()
        assert probe.wait_settled(killed_at + 0.5, timeout=5.0)
        errors = probe.summary(since=killed_at, until=killed_at + 0.5)
        assert errors.errors > 0
        # 503: no server could take it; a connection reset as the node dies would be a 502.
        assert "HTTP 503" in errors.errors_by_kind
        assert errors.errors_by_kind.keys() <= {"HTTP 502", "HTTP 503"}

        lb.drain(victim.name)
        drained = assert_lb_drained(lb, victim.name, probe=probe, window=0.5).value
        assert drained is not None
        assert drained.errors == 0
        assert set(drained.per_node) == {"node-2", "node-3"}

        victim.start()
        lb.restore(victim.name)
        restored = assert_lb_restored(lb, victim.name, probe=probe, window=0.5).value
        assert restored is not None
        assert restored.per_node.get(victim.name, 0) >= 1
        assert restored.errors == 0


def test_a_drain_after_an_unwind_registers_a_new_undo(
    haproxy: HAProxyServer, cluster: Cluster, undo: UndoStack
) -> None:
    lb = haproxy.lb(cluster, undo)
    with undo.context():
        lb.drain("node-2")
        assert _states(lb)["node-2"] == "maint"
    assert _states(lb)["node-2"] == "ready"
    lb.drain("node-2")
    assert len(undo) == 1
    undo.unwind()
    assert _states(lb)["node-2"] == "ready"
