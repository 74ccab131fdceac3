"""Real nginx and HAProxy on loopback, in front of tiny backends that answer as pods on nodes.

A backend stands for a node's NodePort: an HTTP server on the node's own loopback address that
follows the pod HTTP contract. Killing the node is stopping that server.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pytest_k8sdr.lb import HAProxyLB, NginxLB
from pytest_k8sdr.undo import UndoStack

# The simulator uses 127.1.x.y; these tests keep to a /16 of their own, one /24 per test.
_NET = "127.88"


class _PodHandler(BaseHTTPRequestHandler):
    server: _PodServer

    def do_GET(self) -> None:
        srv = self.server
        body = json.dumps(
            {"pod": srv.pod, "namespace": "default", "node": srv.node, "podIP": srv.address}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-K8sdr-Pod", f"default/{srv.pod}")
        self.send_header("X-K8sdr-Node", srv.node)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib name)
        pass


class _PodServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: str, port: int, node: str, pod: str) -> None:
        self.address = address
        self.node = node
        self.pod = pod
        super().__init__((address, port), _PodHandler)


@dataclass
class Node:
    """A simulated node: its address and a NodePort that answers as one of its pods."""

    name: str
    address: str
    port: int
    _server: _PodServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        server = _PodServer(self.address, self.port, self.name, f"web-{self.name}")
        self._thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        self._server = server

    def kill(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass
class Cluster:
    nodes: list[Node]
    lb_address: str

    @property
    def addresses(self) -> dict[str, str]:
        return {n.name: n.address for n in self.nodes}

    def free_port(self) -> int:
        return _free_port(self.lb_address)


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
        return port


def wait_listening(address: str, port: int, timeout: float = 10.0) -> None:
    """Wait until something accepts connections on address:port (servers we just started)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def wait_unix_listening(path: str, timeout: float = 10.0) -> None:
    """Wait until something accepts connections on a Unix socket.

    HAProxy binds a stats socket under a temporary name and renames it into place, and may
    do so after its TCP listeners accept: a frontend that answers is no sign the socket is there.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                sock.connect(path)
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    net = f"{_NET}.{random.randrange(1, 250)}"
    port = _free_port(f"{net}.2")
    nodes = [Node(f"node-{i}", f"{net}.{i + 1}", port) for i in (1, 2, 3)]
    for node in nodes:
        node.start()
    yield Cluster(nodes, f"{net}.1")
    for node in nodes:
        node.kill()


_SHOW_ERRORS = """
            # Show a dead node as errors instead of retrying it silently on another one.
            proxy_next_upstream off;"""


def nginx_conf(
    directory: Path, upstream_body: str, listen: str, *, location: str = _SHOW_ERRORS
) -> str:
    """A whole nginx.conf running in `directory`, with `upstream web { upstream_body }`."""
    temp = "\n".join(
        f"    {kind}_temp_path {directory}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temp}
    upstream web {{
{upstream_body}
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://web;
            proxy_connect_timeout 1s;{location}
        }}
    }}
}}
"""


@dataclass
class NginxServer:
    directory: Path
    conf: Path
    url: str
    process: subprocess.Popen[bytes]

    @property
    def command(self) -> tuple[str, ...]:
        return ("nginx", "-e", str(self.directory / "error.log"))

    def lb(self, cluster: Cluster, undo: UndoStack, **kwargs: object) -> NginxLB:
        return NginxLB(
            "web",
            config=str(self.conf),
            nodes=cluster.addresses,
            nginx=self.command,
            undo=undo,
            **kwargs,  # type: ignore[arg-type]
        )


def upstream_lines(cluster: Cluster, params: str = " max_fails=0") -> str:
    return "\n".join(f"        server {n.address}:{n.port}{params};" for n in cluster.nodes)


def start_nginx(directory: Path, conf_text: str, address: str, port: int) -> NginxServer:
    conf = directory / "nginx.conf"
    conf.write_text(conf_text)
    proc = subprocess.Popen(
        ["nginx", "-e", str(directory / "error.log"), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_listening(address, port)
    except OSError:
        proc.kill()
        _, err = proc.communicate()
        raise RuntimeError(f"nginx did not start: {err.decode()}") from None
    return NginxServer(directory, conf, f"http://{address}:{port}/", proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
needs_haproxy = pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="haproxy is not installed"
)


@pytest.fixture
def undo() -> Iterator[UndoStack]:
    stack = UndoStack()
    yield stack
    stack.unwind()


@pytest.fixture
def nginx(tmp_path: Path, cluster: Cluster) -> Iterator[NginxServer]:
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed")
    port = cluster.free_port()
    text = nginx_conf(tmp_path, upstream_lines(cluster), f"{cluster.lb_address}:{port}")
    server = start_nginx(tmp_path, text, cluster.lb_address, port)
    yield server
    stop(server.process)


@dataclass
class HAProxyServer:
    directory: Path
    socket: str
    url: str
    process: subprocess.Popen[bytes]

    def lb(self, cluster: Cluster, undo: UndoStack, **kwargs: object) -> HAProxyLB:
        return HAProxyLB(
            "web",
            runtime=self.socket,
            nodes=cluster.addresses,
            undo=undo,
            **kwargs,  # type: ignore[arg-type]
        )


def haproxy_conf(directory: Path, cluster: Cluster, listen: str, *, level: str = "admin") -> str:
    servers = "\n".join(f"    server {n.name} {n.address}:{n.port}" for n in cluster.nodes)
    return f"""global
    stats socket {directory}/admin.sock mode 600 level {level}
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    # A dead server answers with 503 at once instead of being retried.
    retries 0
frontend fe
    bind {listen}
    default_backend web
backend web
    balance roundrobin
{servers}
"""


def start_haproxy(directory: Path, conf_text: str, address: str, port: int) -> HAProxyServer:
    conf = directory / "haproxy.cfg"
    conf.write_text(conf_text)
    proc = subprocess.Popen(
        ["haproxy", "-db", "-f", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    admin = str(directory / "admin.sock")
    try:
        wait_listening(address, port)
        wait_unix_listening(admin)
    except OSError:
        proc.kill()
        _, err = proc.communicate()
        raise RuntimeError(f"haproxy did not start: {err.decode()}") from None
    return HAProxyServer(directory, admin, f"http://{address}:{port}/", proc)


@pytest.fixture
def haproxy(tmp_path: Path, cluster: Cluster) -> Iterator[HAProxyServer]:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed")
    port = cluster.free_port()
    text = haproxy_conf(tmp_path, cluster, f"{cluster.lb_address}:{port}")
    server = start_haproxy(tmp_path, text, cluster.lb_address, port)
    yield server
    stop(server.process)
