"""The simulated container runtime: a pod's "containers" are HTTP listeners on its own IP.

One listener per TCP containerPort on the pod's loopback address, answering the pod HTTP
contract (who am I: pod, namespace, node, podIP) and, at `/metrics`, the pod's request counters
(`pytest_k8sdr.sim.node.metrics`). It survives a kubelet stop/start, as
containerd does. Not modelled: UDP/SCTP ports, container restarts.
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

from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.node.metrics import CONTENT_TYPE, METRICS_PATH, PodMetrics

__all__ = ["PodContainers", "Runtime", "close_listener", "http_listener"]

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
class PodContainers:
    """The listeners of one running pod."""

    uid: str
    namespace: str
    name: str
    ip: str
    ports: list[int]
    started_at: float
    listeners: list[tuple[web.Server, asyncio.Server]] = field(default_factory=list)
    metrics: PodMetrics = field(default_factory=PodMetrics)


class Runtime:
    """The simulated container runtime: which pods run, and their listeners.

    Survives a kubelet stop/start, as containerd does. With `serve=False` (hollow nodes)
    pods run without sockets.
    """

    def __init__(self, node_name: str, *, serve: bool = True) -> None:
        self.node_name = node_name
        self.serve = serve
        self.up = True
        # A new boot ID per machine start, as /proc/sys/kernel/random/boot_id.
        self.boot_id = str(uuid.uuid4())
        self.pods: dict[str, PodContainers] = {}

    def is_running(self, uid: str) -> bool:
        """Whether the pod's containers run."""
        return uid in self.pods

    async def start(self, pod: JSON, ip: str) -> PodContainers:
        """Start the pod's containers: listen on ip:port for every TCP containerPort."""
        meta = pod["metadata"]
        uid = meta["uid"]
        running = self.pods.get(uid)
        if running is not None:
            return running
        ports = sorted(
            {
                int(p["containerPort"])
                for c in (pod.get("spec") or {}).get("containers") or []
                for p in c.get("ports") or []
                if p.get("containerPort") and p.get("protocol", "TCP") == "TCP"
            }
        )
        running = PodContainers(
            uid, meta.get("namespace", "default"), meta["name"], ip, ports, time.time()
        )
        if self.serve:
            body = json.dumps(
                {
                    "pod": running.name,
                    "namespace": running.namespace,
                    "node": self.node_name,
                    "podIP": ip,
                }
            ).encode()
            headers = {
                "X-K8sdr-Pod": f"{running.namespace}/{running.name}",
                "X-K8sdr-Node": self.node_name,
                "Content-Type": "application/json",
            }

            metrics = running.metrics

            async def answer(request: web.BaseRequest) -> web.Response:
                if request.path == METRICS_PATH:
                    return web.Response(
                        status=200,
                        body=metrics.render().encode(),
                        headers={"Content-Type": CONTENT_TYPE},
                    )
                started = time.perf_counter()
                response = web.Response(status=200, body=body, headers=headers)
                metrics.observe(request.method, response.status, time.perf_counter() - started)
                return response

            for port in ports:
                try:
                    running.listeners.append(await http_listener(ip, port, answer))
                except OSError as exc:
                    log.warning(
                        "pod %s/%s: cannot listen on %s:%s: %s",
                        running.namespace,
                        running.name,
                        ip,
                        port,
                        exc,
                    )
        self.pods[uid] = running
        return running

    async def stop(self, uid: str) -> None:
        """Stop the pod's containers (close its listeners and connections)."""
        running = self.pods.pop(uid, None)
        if running is None:
            return
        for server, listener in running.listeners:
            await close_listener(server, listener)

    async def stop_all(self) -> None:
        """Stop every pod (runtime down, or the agent exiting)."""
        for uid in list(self.pods):
            await self.stop(uid)
