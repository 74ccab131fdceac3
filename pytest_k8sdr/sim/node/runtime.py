"""The simulated container runtime: a pod's "containers" are HTTP listeners on its own IP.

One listener per TCP port of each container (its containerPorts and the ports its probes look
at) on the pod's loopback address, answering the pod HTTP contract (who am I: pod, namespace,
node, podIP). A container can be killed and started again (the kubelet restarts it after a
liveness failure); at `/metrics` it serves the pod's request counters
(`pytest_k8sdr.sim.node.metrics`). It survives a kubelet stop/start, as containerd does.

A container exits on its own after `sim.k8sdr.io/run-seconds` (a pod annotation, seconds;
default 1 for pods with restartPolicy Never or OnFailure, never for Always: servers run until
stopped) with the code `sim.k8sdr.io/exit-code` (default 0), so Jobs' pods run to
completion (`exit_plan`). Not modelled: UDP/SCTP ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from pytest_k8sdr.sim.apimachinery.clock import rfc3339
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.node.control import POD_FAULTS
from pytest_k8sdr.sim.node.metrics import CONTENT_TYPE, METRICS_PATH, PodMetrics
from pytest_k8sdr.sim.node.slim import EXIT_CODE_ANNOTATION, RUN_SECONDS_ANNOTATION

__all__ = [
    "Container",
    "PodContainers",
    "Runtime",
    "close_listener",
    "container_ports",
    "exit_plan",
    "http_listener",
    "probe_port",
]

log = logging.getLogger("pytest_k8sdr.sim.node")


async def http_listener(
    host: str, port: int, handler: Callable[[web.BaseRequest], Any]
) -> tuple[web.Server, asyncio.Server]:
    """An HTTP server listening on host:port."""
    server = web.Server(handler, access_log=None)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(server, host, port, reuse_address=True)
    return server, listener


async def close_listener(server: web.Server, listener: asyncio.Server) -> None:
    """Stop listening and drop the open connections."""
    listener.close()
    # Drop open keep-alive connections too: a stopped container's sockets go away.
    await server.shutdown(timeout=0.5)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(listener.wait_closed(), 1.0)


@dataclass
class Container:
    """One container of a running pod: its ports, listeners and restart history."""

    name: str
    ports: list[int]
    started_at: float
    running: bool = True
    restart_count: int = 0
    finished_at: float | None = None
    last_terminated: JSON | None = None
    # When the running container exits on its own (None: never) and with which code.
    exit_at: float | None = None
    run_seconds: float | None = None
    exit_code: int = 0
    listeners: list[tuple[web.Server, asyncio.Server]] = field(default_factory=list)


@dataclass
class PodContainers:
    """The containers of one running pod (its sandbox: the pod's IP)."""

    uid: str
    namespace: str
    name: str
    ip: str
    ports: list[int]
    started_at: float
    containers: dict[str, Container] = field(default_factory=dict)
    metrics: PodMetrics = field(default_factory=PodMetrics)

    @property
    def listeners(self) -> list[tuple[web.Server, asyncio.Server]]:
        """Every open listener of the pod."""
        return [lst for c in self.containers.values() for lst in c.listeners]


# A batch pod's containers run this long by default (seconds).
DEFAULT_BATCH_RUN_SECONDS = 1.0


def exit_plan(pod: JSON) -> tuple[float | None, int]:
    """How long the pod's containers run before exiting (None: until stopped), and the code.

    Unreadable annotation values fall back to the defaults (logged).
    """
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    run: float | None = DEFAULT_BATCH_RUN_SECONDS if policy != "Always" else None
    code = 0
    text = annotations.get(RUN_SECONDS_ANNOTATION)
    if text is not None:
        try:
            run = max(0.0, float(text))
        except ValueError:
            log.warning(
                "pod %s: %s=%r is not a number of seconds",
                meta.get("name"),
                RUN_SECONDS_ANNOTATION,
                text,
            )
    text = annotations.get(EXIT_CODE_ANNOTATION)
    if text is not None:
        try:
            code = int(text)
        except ValueError:
            log.warning(
                "pod %s: %s=%r is not an integer", meta.get("name"), EXIT_CODE_ANNOTATION, text
            )
    return run, code


def container_ports(container: JSON) -> list[int]:
    """The TCP ports a container's server listens on: its containerPorts and probe ports.

    An application listens where its probes look even when the port is not declared (a
    containerPort is informational upstream); named probe ports resolve to containerPorts.
    """
    ports = {
        int(p["containerPort"])
        for p in container.get("ports") or []
        if p.get("containerPort") and p.get("protocol", "TCP") == "TCP"
    }
    for key in ("readinessProbe", "livenessProbe", "startupProbe"):
        port = probe_port(container, container.get(key) or {})
        if port is not None:
            ports.add(port)
    return sorted(ports)


def probe_port(container: JSON, probe: JSON) -> int | None:
    """The port an httpGet, tcpSocket or grpc probe connects to (None: exec, or unresolved)."""
    handler = probe.get("httpGet") or probe.get("tcpSocket") or probe.get("grpc")
    if not handler:
        return None
    port = handler.get("port")
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port and p.get("containerPort"):
            return int(p["containerPort"])
    return None


class Runtime:
    """The simulated container runtime: which pods run, and their listeners.

    Survives a kubelet stop/start, as containerd does. With `serve=False` (hollow nodes)
    pods run without sockets. `faults` holds the pod faults of this machine by (namespace,
    pod name): `http-500` (the pod's server answers 500 to every request) or `refuse` (it
    listens nowhere: connections are refused); they outlast container restarts, as a broken
    dependency would, and end only with `clear_fault`.
    """

    def __init__(self, node_name: str, *, serve: bool = True) -> None:
        self.node_name = node_name
        self.serve = serve
        self.up = True
        # A new boot ID per machine start, as /proc/sys/kernel/random/boot_id.
        self.boot_id = str(uuid.uuid4())
        self.pods: dict[str, PodContainers] = {}
        self.faults: dict[tuple[str, str], str] = {}

    def is_running(self, uid: str) -> bool:
        """Whether the pod's sandbox runs (its containers may be restarting)."""
        return uid in self.pods

    async def start(self, pod: JSON, ip: str) -> PodContainers:
        """Start the pod's containers: each listens on ip:port for its TCP ports."""
        meta = pod["metadata"]
        uid = meta["uid"]
        running = self.pods.get(uid)
        if running is not None:
            return running
        specs = [c for c in (pod.get("spec") or {}).get("containers") or [] if c.get("name")]
        now = time.time()
        running = PodContainers(
            uid,
            meta.get("namespace", "default"),
            meta["name"],
            ip,
            sorted({p for c in specs for p in container_ports(c)}),
            now,
        )
        self.pods[uid] = running
        run, code = exit_plan(pod)
        for spec in specs:
            container = Container(spec["name"], container_ports(spec), now)
            container.run_seconds, container.exit_code = run, code
            container.exit_at = None if run is None else now + run
            running.containers[container.name] = container
            await self._listen(running, container)
        return running

    async def kill_container(self, uid: str, name: str, *, exit_code: int = 137) -> None:
        """Kill one container of a running pod (its listeners close); it stays not running."""
        container = self._container(uid, name)
        if container is None or not container.running:
            return
        await self._close(container)
        container.running = False
        container.exit_at = None
        container.finished_at = time.time()
        container.last_terminated = {
            "exitCode": exit_code,
            "reason": "Error" if exit_code else "Completed",
            "startedAt": rfc3339(container.started_at),
            "finishedAt": rfc3339(container.finished_at),
        }

    async def start_container(self, uid: str, name: str) -> None:
        """Start a killed container again (restartCount + 1)."""
        running = self.pods.get(uid)
        container = self._container(uid, name)
        if running is None or container is None or container.running:
            return
        container.running = True
        container.restart_count += 1
        container.started_at = time.time()
        if container.run_seconds is not None:
            container.exit_at = container.started_at + container.run_seconds
        await self._listen(running, container)

    def _container(self, uid: str, name: str) -> Container | None:
        running = self.pods.get(uid)
        return running.containers.get(name) if running is not None else None

    async def set_fault(self, namespace: str, pod: str, mode: str) -> None:
        """Make the pod's server fail: `http-500` or `refuse` (ValueError for another mode)."""
        if mode not in POD_FAULTS:
            raise ValueError(f"unknown pod fault {mode!r}; accepted: {', '.join(POD_FAULTS)}")
        self.faults[(namespace, pod)] = mode
        for running in self._named(namespace, pod):
            for container in running.containers.values():
                await self._close(container)
                if container.running:
                    await self._listen(running, container)

    async def clear_fault(self, namespace: str, pod: str) -> None:
        """End the pod's fault: its running containers serve again (idempotent)."""
        if self.faults.pop((namespace, pod), None) is None:
            return
        for running in self._named(namespace, pod):
            for container in running.containers.values():
                await self._close(container)
                if container.running:
                    await self._listen(running, container)

    def _named(self, namespace: str, pod: str) -> list[PodContainers]:
        return [p for p in self.pods.values() if (p.namespace, p.name) == (namespace, pod)]

    async def _listen(self, running: PodContainers, container: Container) -> None:
        fault = self.faults.get((running.namespace, running.name))
        if not self.serve or fault == "refuse":
            return
        body = json.dumps(
            {
                "pod": running.name,
                "namespace": running.namespace,
                "node": self.node_name,
                "podIP": running.ip,
            }
        ).encode()
        headers = {
            "X-K8sdr-Pod": f"{running.namespace}/{running.name}",
            "X-K8sdr-Node": self.node_name,
            "Content-Type": "application/json",
        }
        status = 500 if fault == "http-500" else 200
        metrics = running.metrics

        async def answer(request: web.BaseRequest) -> web.Response:
            if request.path == METRICS_PATH:
                return web.Response(
                    status=200,
                    body=metrics.render().encode(),
                    headers={"Content-Type": CONTENT_TYPE},
                )
            started = time.perf_counter()
            response = web.Response(status=status, body=body, headers=headers)
            metrics.observe(request.method, response.status, time.perf_counter() - started)
            return response

        for port in container.ports:
            try:
                container.listeners.append(await http_listener(running.ip, port, answer))
            except OSError as exc:
                log.warning(
                    "pod %s/%s: cannot listen on %s:%s: %s",
                    running.namespace,
                    running.name,
                    running.ip,
                    port,
                    exc,
                )

    @staticmethod
    async def _close(container: Container) -> None:
        listeners, container.listeners = container.listeners, []
        for server, listener in listeners:
            await close_listener(server, listener)

    async def stop(self, uid: str) -> None:
        """Stop the pod's containers (close its listeners and connections)."""
        running = self.pods.pop(uid, None)
        if running is None:
            return
        for container in running.containers.values():
            await self._close(container)

    async def stop_all(self) -> None:
        """Stop every pod (runtime down, or the agent exiting)."""
        for uid in list(self.pods):
            await self.stop(uid)
