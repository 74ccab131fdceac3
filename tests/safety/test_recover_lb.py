"""`k8sdr recover` restores load-balancer drains from the journal alone (real nginx, HAProxy)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from safety_helpers import Nginx, free_port, start_nginx

from pytest_k8sdr import UndoStack
from pytest_k8sdr.journal import Journal, read_journal
from pytest_k8sdr.lb import HAProxyLB
from pytest_k8sdr.recover import Recoverer
from pytest_k8sdr.undo import UndoEnv

NODES = {"node-1": "127.89.1.2", "node-2": "127.89.1.3", "node-3": "127.89.1.4"}


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Nginx]:
    server = start_nginx(tmp_path / "nginx", list(NODES.values()))
    if server is None:
        pytest.skip("nginx is not installed")
    yield server
    server.stop()


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[str]:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed")
    sock = tmp_path / "admin.sock"
    port = free_port("127.89.1.1")
    servers = "\n".join(f"    server {n} {a}:30080" for n, a in NODES.items())
    conf = tmp_path / "haproxy.cfg"
    conf.write_text(
        f"""global
    stats socket {sock} mode 600 level admin
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.89.1.1:{port}
    default_backend web
backend web
{servers}
"""
    )
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(conf)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not sock.exists():
        assert time.monotonic() < deadline, "haproxy did not start"
        time.sleep(0.02)
    yield str(sock)
    proc.terminate()
    proc.communicate(timeout=10)


def test_nginx_drains_are_recovered_byte_for_byte(nginx: Nginx, tmp_path: Path) -> None:
    original = nginx.conf.read_bytes()
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        lb = nginx.lb(NODES)
        lb.undo = UndoStack(journal)
        lb.drain("node-2")
        lb.drain("node-3")
    assert [m.address for m in lb.members()] == ["127.89.1.2"]
    entries = read_journal(path)  # the process that drained is gone: only the journal is left
    assert [e.record.kind for e in entries] == ["nginx-drain", "nginx-drain"]
    outcomes = Recoverer(UndoEnv()).recover(entries)
    assert [o.status for o in outcomes] == ["undone", "undone"]
    assert nginx.conf.read_bytes() == original
    assert len(lb.members()) == 3
    # Idempotent: a second recovery finds nothing to change.
    assert [o.status for o in Recoverer(UndoEnv()).recover(entries)] == ["undone", "undone"]
    assert nginx.conf.read_bytes() == original


def test_haproxy_drains_are_recovered_to_their_previous_state(haproxy: str, tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        lb = HAProxyLB("web", runtime=haproxy, nodes=NODES, undo=UndoStack(journal))
        lb.drain("node-1")
    assert {m.name: m.state for m in lb.members()}["node-1"] == "maint"
    outcomes = Recoverer(UndoEnv()).recover(read_journal(path))
    assert [o.status for o in outcomes] == ["undone"]
    assert {m.name: m.state for m in lb.members()} == {n: "ready" for n in NODES}
