"""A simulated cluster with a real nginx in front of its workers, and inner pytest runs on it."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_k8sdr import Cluster, NodeView, Satisfied
from pytest_k8sdr.config import load_kubeconfig
from pytest_k8sdr.faults.node import NodeSnapshot
from pytest_k8sdr.journal import ANNOTATION
from pytest_k8sdr.lb import NginxLB
from pytest_k8sdr.lock import DEFAULT_NAME
from pytest_k8sdr.sim import SimCluster

WORKERS = ("k8sdr-worker", "k8sdr-worker2", "k8sdr-worker3")
REPO = Path(__file__).resolve().parents[2]
# The simulator's nodes use 127.1.x.y; this nginx listens on an address of its own.
LB_ADDRESS = "127.89.0.1"


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Nginx:
    directory: Path
    conf: Path
    process: subprocess.Popen[bytes]

    @property
    def command(self) -> tuple[str, ...]:
        return ("nginx", "-e", str(self.directory / "error.log"))

    def lb(self, nodes: dict[str, str]) -> NginxLB:
        return NginxLB("web", config=str(self.conf), nodes=nodes, nginx=self.command)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()


def start_nginx(directory: Path, addresses: list[str], node_port: int = 30080) -> Nginx | None:
    """A real nginx whose upstream `web` lists the nodes; None when nginx is not installed."""
    if shutil.which("nginx") is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port(LB_ADDRESS)
    temp = "\n".join(
        f"    {kind}_temp_path {directory}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    servers = "\n".join(f"        server {a}:{node_port} max_fails=0;" for a in addresses)
    conf = directory / "nginx.conf"
    conf.write_text(
        f"""daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
{temp}
    upstream web {{
{servers}
    }}
    server {{
        listen {LB_ADDRESS}:{port};
        location / {{ proxy_pass http://web; }}
    }}
}}
"""
    )
    proc = subprocess.Popen(
        ["nginx", "-e", str(directory / "error.log"), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection((LB_ADDRESS, port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                _, err = proc.communicate()
                raise RuntimeError(f"nginx did not start: {err.decode()}") from None
            time.sleep(0.02)
    return Nginx(directory, conf, proc)


def context_of(kubeconfig: Path) -> str:
    _, context = load_kubeconfig([kubeconfig])
    assert context is not None
    return context


def inner_pytest(
    test_file: Path,
    kubeconfig: Path,
    *extra: str,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start an inner pytest against the cluster behind `kubeconfig` (its context allowed).

    The kubeconfig and allowed context may be overridden by `extra` (later options win).
    """
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-s",
        "-p",
        "no:cacheprovider",
        str(test_file),
        "--k8sdr-backend=kubeconfig",
        f"--k8sdr-kubeconfig={kubeconfig}",
        f"--k8sdr-allowed-contexts={context_of(kubeconfig)}",
        f"--rootdir={test_file.parent}",
        *extra,
    ]
    return subprocess.Popen(
        cmd,
        cwd=test_file.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def processes_mentioning(text: str) -> list[str]:
    """Live processes (not zombies) whose command line contains `text`: "pid: command line"."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if text in cmdline and state != "Z":
            found.append(f"{proc.name}: {cmdline.strip()}")
    return found


def recover(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `k8sdr recover ...` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "pytest_k8sdr.cli", "recover", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@dataclass(frozen=True)
class NodeState:
    """What must be as before after a recovery."""

    snapshot: NodeSnapshot
    ready: str | None
    journal_annotation: str | None

    @classmethod
    def of(cls, node: NodeView) -> NodeState:
        snap = NodeSnapshot.of(node)
        # The uid changes when a node re-registers; everything else must be as before.
        snap = NodeSnapshot(
            snap.name, "", snap.labels, snap.annotations, snap.taints, False, snap.internal_ip
        )
        return cls(snap, node.ready, node.annotations.get(ANNOTATION))


def cluster_state(cluster: Cluster) -> dict[str, Any]:
    """Every node's hand-set state and readiness, plus whether the game-day lock is held."""
    nodes = {n.name: NodeState.of(n) for n in cluster.nodes()}
    schedulable = {n.name: not n.unschedulable for n in cluster.nodes()}
    leases = cluster.list_raw("leases", "default")["items"]
    return {
        "nodes": nodes,
        "schedulable": schedulable,
        "lock": [x["metadata"]["name"] for x in leases if x["metadata"]["name"] == DEFAULT_NAME],
    }


def wait_all_ready(cluster: Cluster, names: list[str], timeout: float = 30.0) -> None:
    """Wait until every named node exists and is Ready."""

    def ready(snapshot: Any) -> Satisfied[None] | None:
        views = [NodeView.from_json(o) for o in snapshot.values()]
        have = {v.name for v in views if v.ready == "True"}
        return Satisfied(None) if set(names) <= have else None

    cluster.wait("nodes", ready, timeout=timeout, description="every node Ready")


def attach_and_stop(sim: SimCluster) -> None:
    """Stop the cluster through its state file (agents restarted elsewhere have new pids)."""
    try:
        SimCluster.attach(sim.state_dir).stop()
    except Exception:
        sim.stop()


class WriteCounter:
    """A plain-HTTP reverse proxy in front of the simulator that counts the writes through it.

    `kubeconfig` points clients at the proxy (with the cluster's own token), so every request a
    run makes is seen: `writes` lists ``METHOD path`` of each POST, PUT, PATCH and DELETE.
    """

    def __init__(self, sim: SimCluster, directory: Path) -> None:
        import asyncio
        import ssl
        import threading

        import yaml

        self.writes: list[str] = []
        self._upstream = sim.server_url
        self._ssl = ssl.create_default_context(cafile=str(sim.state_dir / "pki" / "ca.crt"))
        self._loop = asyncio.new_event_loop()
        self.port = free_port("127.0.0.1")
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)
        doc = yaml.safe_load(sim.kubeconfig_path.read_text())
        for entry in doc["clusters"]:
            entry["cluster"] = {"server": f"http://127.0.0.1:{self.port}"}
        self.kubeconfig = directory / "proxied.kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump(doc))

    def disruptive_writes(self) -> list[str]:
        """Writes other than the game-day lock's Lease (taking the lock disrupts nothing)."""
        return [
            w
            for w in self.writes
            if f"/leases/{DEFAULT_NAME}" not in w
            and "/leases?" not in w
            and not w.endswith("/leases")
        ]

    def _serve(self, ready: Any) -> None:
        import asyncio

        from aiohttp import ClientSession, web

        hop = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}

        async def handle(request: web.Request) -> web.StreamResponse:
            if request.method not in ("GET", "HEAD", "OPTIONS"):
                self.writes.append(f"{request.method} {request.path}")
            headers = {k: v for k, v in request.headers.items() if k.lower() not in hop}
            body = await request.read()
            async with self._session.request(
                request.method,
                self._upstream + request.path_qs,
                headers=headers,
                data=body,
                ssl=self._ssl,
                timeout=None,
                auto_decompress=False,
            ) as resp:
                out = web.StreamResponse(
                    status=resp.status,
                    headers={k: v for k, v in resp.headers.items() if k.lower() not in hop},
                )
                await out.prepare(request)
                async for chunk in resp.content.iter_any():
                    await out.write(chunk)
                await out.write_eof()
                return out

        async def main() -> None:
            self._session = ClientSession()
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handle)
            self._runner = runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            ready.set()
            await asyncio.Event().wait()

        asyncio.set_event_loop(self._loop)
        self._main = self._loop.create_task(main())
        self._loop.run_forever()

    def close(self) -> None:
        import asyncio

        async def shutdown() -> None:
            await self._session.close()
            await self._runner.cleanup()
            # Ended, not left pending: a pending task collected at exit is reported as destroyed.
            self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._main

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
