"""NginxLB against a real nginx on loopback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from lb_helpers import Cluster, NginxServer, nginx_conf, start_nginx, stop, upstream_lines

from pytest_k8sdr.errors import ClusterCheckFailed, ConfigError, FaultError
from pytest_k8sdr.lb import (
    LBCommandFailed,
    LBConfigError,
    LBConfigInvalid,
    LBToolMissing,
    NginxLB,
    NodeNotInLB,
    TrafficProbe,
    UpstreamNotFound,
    assert_lb_drained,
    assert_lb_restored,
)
from pytest_k8sdr.undo import UndoStack


def _nginx_t_dump(server: NginxServer) -> str:
    out = subprocess.run(
        [*server.command, "-c", str(server.conf), "-T"], capture_output=True, check=True
    )
    return out.stdout.decode()


def test_drain_comments_out_the_node_and_restore_puts_back_the_exact_bytes(
    nginx: NginxServer, cluster: Cluster, undo: UndoStack
) -> None:
    lb = nginx.lb(cluster, undo)
    lb.validate()
    original = nginx.conf.read_bytes()
    victim = cluster.nodes[1]

    lb.drain(victim.name)

    assert len(undo) == 1
    assert victim.name in undo.pending[0].description
    dump = _nginx_t_dump(nginx)
    assert f"#k8sdr-drained# server {victim.address}:{victim.port} max_fails=0;" in dump
    members = lb.members()
    assert [m.address for m in members] == [cluster.nodes[0].address, cluster.nodes[2].address]
    assert all(m.active for m in members)
    assert lb.last_change is not None

    lb.restore(victim.name)

    assert nginx.conf.read_bytes() == original
    assert len(undo) == 0
    assert [m.address for m in lb.members()] == [n.address for n in cluster.nodes]


def test_down_mode_marks_the_server_down_and_restores_exactly(
    nginx: NginxServer, cluster: Cluster, undo: UndoStack
) -> None:
    lb = nginx.lb(cluster, undo, mode="down")
    original = nginx.conf.read_bytes()
    victim = cluster.nodes[0]

    lb.drain(victim.address)  # an address is accepted as itself

    by_address = {m.address: m for m in lb.members()}
    assert by_address[victim.address].active is False
    assert by_address[victim.address].state == "down"
    assert by_address[cluster.nodes[1].address].active is True
    lb.drain(victim.address)  # a no-op: already drained
    assert len(undo) == 1

    lb.restore(victim.address)
    assert nginx.conf.read_bytes() == original


def test_every_port_of_the_address_is_drained_and_comments_survive(
    tmp_path: Path, cluster: Cluster, undo: UndoStack
) -> None:
    victim = cluster.nodes[2]
    port = cluster.free_port()
    body = (
        upstream_lines(cluster)
        + f"\n        server {victim.address}:{victim.port + 1} weight=2;  # second NodePort\n"
        + "        keepalive 4;"
    )
    server = start_nginx(
        tmp_path,
        nginx_conf(tmp_path, body, f"{cluster.lb_address}:{port}"),
        cluster.lb_address,
        port,
    )
    try:
        lb = server.lb(cluster, undo)
        original = server.conf.read_bytes()
        lb.drain(victim.name)
        assert victim.address not in {m.address for m in lb.members()}
        assert server.conf.read_text().count("#k8sdr-drained#") == 2
        undo.unwind()  # what teardown does
        assert server.conf.read_bytes() == original
    finally:
        stop(server.process)


def test_another_instance_restores_what_a_killed_run_drained(
    nginx: NginxServer, cluster: Cluster, undo: UndoStack
) -> None:
    original = nginx.conf.read_bytes()
    nginx.lb(cluster, UndoStack(), mode="down").drain("node-3")
    fresh = nginx.lb(cluster, undo)  # no memory of the drain: the marker carries the original
    fresh.restore("node-3")
    assert nginx.conf.read_bytes() == original
    fresh.restore("node-3")  # restoring a node that is not drained changes nothing
    assert nginx.conf.read_bytes() == original


def test_upstream_in_an_included_file(tmp_path: Path, cluster: Cluster, undo: UndoStack) -> None:
    port = cluster.free_port()
    included = tmp_path / "conf.d" / "upstreams.conf"
    included.parent.mkdir()
    included.write_text(f"upstream web {{\n{upstream_lines(cluster)}\n}}\n")
    text = nginx_conf(tmp_path, upstream_lines(cluster), f"{cluster.lb_address}:{port}")
    # Move the upstream out of nginx.conf into conf.d/, included by a relative path.
    start = text.index("    upstream web {")
    end = text.index("    }\n", start) + len("    }\n")
    text = text[:start] + "    include conf.d/*.conf;\n" + text[end:]
    server = start_nginx(tmp_path, text, cluster.lb_address, port)
    try:
        lb = NginxLB(
            "web",
            config=str(server.conf),
            file=str(included),
            nodes=cluster.addresses,
            nginx=server.command,
            undo=undo,
        )
        original = included.read_bytes()
        lb.drain("node-1")
        assert "node-1" not in {m.name for m in lb.members()}
        assert cluster.nodes[0].address not in {m.address for m in lb.members()}
        # Draining the other two would leave the upstream empty: nginx -t refuses it.
        lb.drain("node-2")
        drained_two = included.read_bytes()
        with pytest.raises(LBConfigInvalid, match="no servers are inside upstream"):
            lb.drain("node-3")
        assert included.read_bytes() == drained_two
        lb.restore("node-2")
        lb.restore("node-1")
        assert included.read_bytes() == original
    finally:
        stop(server.process)


def test_a_change_that_does_not_validate_leaves_the_file_intact(
    nginx: NginxServer, cluster: Cluster, undo: UndoStack
) -> None:
    lb = nginx.lb(cluster, undo)
    lb.drain("node-1")
    lb.drain("node-2")
    before = nginx.conf.read_bytes()
    with pytest.raises(LBConfigInvalid, match="nothing was changed") as info:
        lb.drain("node-3")
    assert isinstance(info.value, FaultError)
    assert nginx.conf.read_bytes() == before
    assert not list(nginx.directory.glob("*.k8sdr*")), "the candidate copy was left behind"
    # nginx still serves from node-3.
    assert [m.address for m in lb.members()] == [cluster.nodes[2].address]


def test_a_configuration_broken_beforehand_is_reported_and_left_alone(
    nginx: NginxServer, cluster: Cluster, undo: UndoStack
) -> None:
    text = nginx.conf.read_text().replace(
        "access_log off;", "access_log off;\n    bogus_directive 1;"
    )
    nginx.conf.write_text(text)
    before = nginx.conf.read_bytes()
    lb = nginx.lb(cluster, undo)
    with pytest.raises(LBConfigInvalid, match="bogus_directive"):
        lb.validate()
    with pytest.raises(LBConfigInvalid, match="bogus_directive"):
        lb.drain("node-1")
    assert nginx.conf.read_bytes() == before


def test_bad_input_is_a_clear_error_and_changes_nothing(
    nginx: NginxServer, cluster: Cluster, undo: UndoStack
) -> None:
    before = nginx.conf.read_bytes()
    wrong_upstream = NginxLB(
        "api", config=str(nginx.conf), nodes=cluster.addresses, nginx=nginx.command, undo=undo
    )
    with pytest.raises(UpstreamNotFound, match=r"no upstream 'api' \(upstreams there: web\)"):
        wrong_upstream.drain("node-1")
    with pytest.raises(UpstreamNotFound, match="'api'"):
        wrong_upstream.validate()

    lb = nginx.lb(cluster, undo)
    with pytest.raises(NodeNotInLB, match=r"127\.9\.9\.9.*servers: 127\.88") as info:
        lb.drain("127.9.9.9")
    assert isinstance(info.value, ConfigError)
    with pytest.raises(LBConfigError, match=r"unknown node 'node-9'.*known nodes: node-1"):
        lb.drain("node-9")
    with pytest.raises(LBConfigError, match="drain mode"):
        nginx.lb(cluster, undo, mode="delete")

    missing = NginxLB(
        "web",
        config=str(nginx.conf),
        nodes=cluster.addresses,
        nginx=("/nonexistent/nginx",),
        undo=undo,
    )
    with pytest.raises(LBToolMissing, match="/nonexistent/nginx"):
        missing.drain("node-1")
    with pytest.raises(LBToolMissing):
        missing.members()

    assert nginx.conf.read_bytes() == before
    assert len(undo) == 0


def test_a_server_sharing_its_line_is_refused_before_any_change(
    tmp_path: Path, cluster: Cluster, undo: UndoStack
) -> None:
    a, b, c = cluster.nodes
    body = (
        f"        server {a.address}:{a.port}; server {b.address}:{b.port};\n"
        f"        server {c.address}:{c.port};"
    )
    port = cluster.free_port()
    server = start_nginx(
        tmp_path,
        nginx_conf(tmp_path, body, f"{cluster.lb_address}:{port}"),
        cluster.lb_address,
        port,
    )
    try:
        before = server.conf.read_bytes()
        with pytest.raises(LBConfigError, match="line of its own"):
            server.lb(cluster, undo).drain("node-2")
        assert server.conf.read_bytes() == before
    finally:
        stop(server.process)


def test_killed_node_errors_stop_after_drain_and_traffic_returns_after_restore(
    nginx: NginxServer, cluster: Cluster, undo: UndoStack
) -> None:
    lb = nginx.lb(cluster, undo)
    victim = cluster.nodes[1]
    with TrafficProbe(nginx.url, rate=60, timeout=2.0) as probe:
        assert_lb_restored(lb, victim.name, probe=probe, window=0.5)

        victim.kill()
        killed_at = probe.now()
        # The dead node is still in the upstream: its share of requests fails.
        with pytest.raises(ClusterCheckFailed, match="still routes to node node-2"):
            assert_lb_drained(lb, victim.name, probe=probe)
        assert probe.wait_settled(killed_at + 0.5, timeout=5.0)
        errors = probe.summary(since=killed_at, until=killed_at + 0.5)
        assert errors.errors > 0
        assert errors.errors_by_kind.keys() == {"HTTP 502"}
        assert victim.name not in errors.per_node

        lb.drain(victim.name)
        drained = assert_lb_drained(lb, victim.name, probe=probe, window=0.5).value
        assert drained is not None
        assert drained.errors == 0
        assert victim.name not in drained.per_node
        assert set(drained.per_node) == {"node-1", "node-3"}

        victim.start()
        lb.restore(victim.name)
        restored = assert_lb_restored(lb, victim.name, probe=probe, window=0.5).value
        assert restored is not None
        assert restored.per_node.get(victim.name, 0) >= 1
        assert restored.errors == 0
    whole = probe.summary()
    assert whole.requests > 60
    assert whole.longest_error_window > 0


def test_retried_requests_are_seen_when_nginx_hides_the_dead_node(
    tmp_path: Path, cluster: Cluster, undo: UndoStack
) -> None:
    # nginx's default: a refused connection is retried on the next server, so clients see no
    # error; the header listing the servers tried shows the dead node all the same.
    location = "\n            add_header X-Upstream-Addr $upstream_addr always;"
    port = cluster.free_port()
    text = nginx_conf(
        tmp_path, upstream_lines(cluster), f"{cluster.lb_address}:{port}", location=location
    )
    server = start_nginx(tmp_path, text, cluster.lb_address, port)
    try:
        lb = server.lb(cluster, undo)
        victim = cluster.nodes[2]
        with TrafficProbe(server.url, rate=60, upstream_header="X-Upstream-Addr") as probe:
            victim.kill()
            killed_at = probe.now()
            assert probe.wait_settled(killed_at + 0.5, timeout=5.0)
            hidden = probe.summary(killed_at, killed_at + 0.5)
            assert hidden.errors == 0
            assert hidden.retried > 0, hidden.describe()
            assert "answered after the load balancer retried" in hidden.describe()
            retried = [r.upstream for r in probe.records() if r.retried]
            assert all(u is not None and u.startswith(f"{victim.address}:") for u in retried)

            lb.drain(victim.name)
            drained = assert_lb_drained(lb, victim.name, probe=probe, window=0.5).value
            assert drained is not None
            assert drained.retried == 0
        undo.unwind()
    finally:
        stop(server.process)


def test_restore_keeps_the_restored_file_when_nginx_is_not_running(
    nginx: NginxServer, cluster: Cluster, undo: UndoStack
) -> None:
    lb = nginx.lb(cluster, undo)
    original = nginx.conf.read_bytes()
    lb.drain("node-2")
    stop(nginx.process)  # nginx died meanwhile: nothing to reload
    with pytest.raises(LBCommandFailed, match="the file is restored, nginx did not reload it"):
        lb.restore("node-2")
    assert nginx.conf.read_bytes() == original  # nginx serves node-2 once it runs again
    assert len(undo) == 0


def test_a_drain_after_an_unwind_registers_a_new_undo(
    nginx: NginxServer, cluster: Cluster, undo: UndoStack
) -> None:
    lb = nginx.lb(cluster, undo)
    original = nginx.conf.read_bytes()
    with undo.context():
        lb.drain("node-1")
        assert nginx.conf.read_bytes() != original
    assert nginx.conf.read_bytes() == original
    lb.drain("node-1")
    assert len(undo) == 1
    undo.unwind()
    assert nginx.conf.read_bytes() == original
