"""A throwaway nginx load balancer on loopback in front of the nodes' NodePorts.

What the simulated backend uses as "the external load balancer", and what a user can start
locally: a real nginx process with its own prefix directory, one `upstream` of every node's
`address:nodePort`, retrying the next server on a connection error as nginx does by default,
and reporting which servers it tried in `X-Upstream-Addr`. Its process is journaled like a
disruption (`ManagedNginxRunning`), so `k8sdr recover` stops one a killed run left running.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_k8sdr.lb.errors import LBToolMissing
from pytest_k8sdr.lb.nginx import DrainMode, NginxLB
from pytest_k8sdr.processes import free_port, stop_process
from pytest_k8sdr.undo import Disruption, UndoEntry, UndoEnv, UndoStack, disruption_kind


def render_config(
    directory: Path,
    upstream: str,
    servers: Sequence[str],
    listen: str,
    status_listen: str | None = None,
) -> str:
    """A complete nginx.conf living in `directory`, load-balancing `servers` from `listen`.

    With `status_listen`, nginx's stub_status is served there at `/stub_status`, apart from the
    traffic (for Prometheus' nginx exporter).
    """
    lines = "\n".join(f"        server {s} max_fails=0;" for s in servers)
    status = (
        f"""
    server {{
        listen {status_listen};
        location = /stub_status {{ stub_status; }}
    }}"""
        if status_listen
        else ""
    )
    d = directory
    return f"""worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream {upstream} {{
{lines}
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://{upstream};
            proxy_connect_timeout 1s;
            proxy_read_timeout 5s;
            proxy_next_upstream error timeout http_502;
            add_header X-Upstream-Addr $upstream_addr always;
        }}
    }}{status}
}}
"""


class ManagedNginx:
    """An nginx this object starts, stopped by its undo entry; `lb` drains and restores it.

    `start` registers the process on `undo` (a private stack when None) before spawning it, so
    the undo stack stops it after undoing the drains made on it, and so does `k8sdr recover`.
    """

    def __init__(
        self,
        directory: Path,
        servers: Mapping[str, str],
        *,
        upstream: str = "k8sdr",
        listen_address: str = "127.0.0.1",
        undo: UndoStack | None = None,
        mode: DrainMode = "comment",
    ) -> None:
        if shutil.which("nginx") is None:
            raise LBToolMissing("nginx is not installed (Debian package nginx; see ci/setup)")
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port(listen_address)
        self.url = f"http://{listen_address}:{self.port}/"
        status = f"{listen_address}:{free_port(listen_address)}"
        #: nginx's stub_status, on a port of its own (what Prometheus' nginx exporter reads).
        self.status_url = f"http://{status}/stub_status"
        self.config = directory / "nginx.conf"
        self.config.write_text(
            render_config(
                directory,
                upstream,
                list(servers.values()),
                f"{listen_address}:{self.port}",
                status_listen=status,
            )
        )
        # Node name -> address as the upstream names it (host part of host:port).
        addresses = {node: server.rsplit(":", 1)[0] for node, server in servers.items()}
        self.command = ("nginx", "-e", str(directory / "error.log"))
        self.lb = NginxLB(
            upstream,
            config=str(self.config),
            nodes=addresses,
            nginx=self.command,
            undo=undo,
            mode=mode,
        )
        self.undo = undo if undo is not None else UndoStack()
        self._entry: UndoEntry | None = None
        self._lock = threading.Lock()

    def start(self, timeout: float = 10.0) -> ManagedNginx:
        """Start nginx as a daemon (known by its pid file) and wait until it listens.

        Not a child held by this object: the process is the undo stack's to stop, after the
        drains made on it, whether or not this object is still around.
        """
        self._entry = self.undo.push(
            ManagedNginxRunning(str(self.config), str(self.directory / "nginx.pid"), self.url)
        )
        log = self.directory / "start.log"
        with open(log, "wb") as out:
            started = subprocess.run(
                [*self.command, "-c", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=out,
                timeout=timeout,
                check=False,
            )
        if started.returncode != 0:
            self.stop()
            raise LBToolMissing(f"nginx did not start: {log.read_text().strip()}")
        address = self.url.split("//", 1)[1].rsplit(":", 1)[0]
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while True:
            try:
                with socket.create_connection((address, self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise LBToolMissing(f"nginx did not listen on {self.url} in time") from None
                pause.wait(0.05)

    def stop(self) -> None:
        """Stop nginx (idempotent), through its undo entry."""
        with self._lock:
            entry, self._entry = self._entry, None
        if entry is not None:
            self.undo.run(entry)


@disruption_kind
@dataclass(frozen=True)
class ManagedNginxRunning(Disruption):
    """A managed nginx process, known by its pid file; undone by stopping it."""

    kind = "managed-nginx"
    disruptive = False
    config: str
    pid_file: str
    url: str

    def summary(self) -> str:
        """``start a managed nginx at URL``."""
        return f"start a managed nginx at {self.url} ({self.config})"

    def undoing(self) -> str:
        """``stop the managed nginx at URL``."""
        return f"stop the managed nginx at {self.url}"

    def undo(self, env: UndoEnv) -> None:
        """SIGTERM the master named in the pid file, if it still runs this config; then wait."""
        try:
            pid = int(Path(self.pid_file).read_text().strip())
        except (OSError, ValueError):
            return  # never started, or stopped (nginx removes its pid file on exit)
        stop_process(pid, self.config)
