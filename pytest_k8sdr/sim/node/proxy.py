"""The kube-proxy stand-in: NodePorts and health endpoints of one node.

It serves the node's NodePorts on the node's loopback address (TCP forwarding to ready
endpoints, round robin; a connection with no endpoint is reset, as kube-proxy's REJECT
rule answers), the health check node ports of `externalTrafficPolicy: Local` services, and
kube-proxy's own health endpoint on port 10256. Not modelled: ClusterIPs, UDP/SCTP, session
affinity.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import socket
import struct
import time

from aiohttp import web

from pytest_k8sdr.sim.apimachinery.clock import rfc3339
from pytest_k8sdr.sim.apimachinery.meta import Key
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.client.informer import Informer
from pytest_k8sdr.sim.client.rest import ApiClient
from pytest_k8sdr.sim.client.tasks import cancel_all
from pytest_k8sdr.sim.node.runtime import close_listener, http_listener

__all__ = ["KUBE_PROXY_HEALTHZ_PORT", "KubeProxy"]

log = logging.getLogger("pytest_k8sdr.sim.node")

KUBE_PROXY_HEALTHZ_PORT = 10256


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST, as a REJECT rule answers (kube-proxy rejects with no endpoints)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


class KubeProxy:
    """NodePorts and health endpoints of one node, driven by services and EndpointSlices."""

    def __init__(
        self, client: ApiClient, node_name: str, node_ip: str, *, connect_timeout: float = 2.0
    ) -> None:
        self.client = client
        self.node_name = node_name
        self.node_ip = node_ip
        self.connect_timeout = connect_timeout
        self.services = Informer(client, "/api/v1/services")
        self.slices = Informer(client, "/apis/discovery.k8s.io/v1/endpointslices")
        self.node = Informer(client, "/api/v1/nodes", field_selector=f"metadata.name={node_name}")
        self._nodeports: dict[int, asyncio.Server] = {}
        self._nodeport_target: dict[int, tuple[Key, JSON, bool]] = {}
        self._health_ports: dict[int, tuple[web.Server, asyncio.Server]] = {}
        self._health_target: dict[int, Key] = {}
        self._healthz: tuple[web.Server, asyncio.Server] | None = None
        self._rr = itertools.count()
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.last_sync = 0.0
        for informer in (self.services, self.slices, self.node):
            informer.add_handler(lambda *_: self._dirty.set())

    async def start(self) -> None:
        """Serve the health endpoint and start following the API."""
        try:
            self._healthz = await http_listener(
                self.node_ip, KUBE_PROXY_HEALTHZ_PORT, self._answer_healthz
            )
        except OSError as exc:
            log.warning(
                "kube-proxy: cannot listen on %s:%s: %s", self.node_ip, KUBE_PROXY_HEALTHZ_PORT, exc
            )
        self._tasks = [
            asyncio.create_task(self.services.run()),
            asyncio.create_task(self.slices.run()),
            asyncio.create_task(self.node.run()),
            asyncio.create_task(self._sync_loop()),
        ]

    async def stop(self) -> None:
        """Stop following the API and close every listener."""
        await cancel_all(self._tasks)
        for listener in self._nodeports.values():
            listener.close()
        self._nodeports.clear()
        for server, listener in self._health_ports.values():
            await close_listener(server, listener)
        self._health_ports.clear()
        if self._healthz is not None:
            await close_listener(*self._healthz)
            self._healthz = None

    @property
    def synced(self) -> bool:
        """Whether services and endpoints have been listed at least once."""
        return self.services.has_synced() and self.slices.has_synced()

    def node_eligible(self) -> bool:
        """False when the Node is being deleted or marked for deletion by the autoscaler.

        pkg/proxy/healthcheck/proxy_health.go: 503 when the Node has a deletionTimestamp
        (and, since 1.28, the ToBeDeletedByClusterAutoscaler taint).
        """
        node = self.node.get(None, self.node_name)
        if node is None:
            return True
        if node["metadata"].get("deletionTimestamp"):
            return False
        taints = (node.get("spec") or {}).get("taints") or []
        return not any(t.get("key") == "ToBeDeletedByClusterAutoscaler" for t in taints)

    async def _answer_healthz(self, request: web.BaseRequest) -> web.Response:
        healthy = self.synced and self.node_eligible()
        body = {
            "lastUpdated": rfc3339(self.last_sync or None) if self.synced else "",
            "currentTime": rfc3339(),
            "nodeEligible": self.node_eligible(),
        }
        return web.Response(
            status=200 if healthy else 503,
            text=json.dumps(body),
            headers={"Content-Type": "application/json", "X-Content-Type-Options": "nosniff"},
        )

    async def _sync_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._sync()
            except Exception:
                log.exception("kube-proxy sync failed")

    async def _sync(self) -> None:
        if not self.synced:
            return
        wanted: dict[int, tuple[Key, JSON, bool]] = {}
        health: dict[int, Key] = {}
        for key, svc in self.services.objects.items():
            spec = svc.get("spec") or {}
            if spec.get("type") not in ("NodePort", "LoadBalancer"):
                continue
            local = spec.get("externalTrafficPolicy") == "Local"
            for port in spec.get("ports") or []:
                if port.get("nodePort") and port.get("protocol", "TCP") == "TCP":
                    wanted[int(port["nodePort"])] = (key, port, local)
            if local and spec.get("healthCheckNodePort"):
                health[int(spec["healthCheckNodePort"])] = key
        for node_port in set(self._nodeports) - set(wanted):
            self._nodeports.pop(node_port).close()
        for node_port in set(wanted) - set(self._nodeports):
            try:
                self._nodeports[node_port] = await asyncio.start_server(
                    functools.partial(self._forward, node_port),
                    self.node_ip,
                    node_port,
                    reuse_address=True,
                )
            except OSError as exc:
                log.warning("kube-proxy: cannot listen on %s:%s: %s", self.node_ip, node_port, exc)
        self._nodeport_target = wanted
        for hc_port in set(self._health_ports) - set(health):
            await close_listener(*self._health_ports.pop(hc_port))
        for hc_port in set(health) - set(self._health_ports):
            try:
                self._health_ports[hc_port] = await http_listener(
                    self.node_ip, hc_port, functools.partial(self._answer_service_health, hc_port)
                )
            except OSError as exc:
                log.warning("kube-proxy: cannot listen on %s:%s: %s", self.node_ip, hc_port, exc)
        self._health_target = health
        self.last_sync = time.time()

    def ready_endpoints(
        self, service_key: Key, port: JSON, *, local_only: bool
    ) -> list[tuple[str, int]]:
        """(address, port) of the service's ready endpoints for this service port."""
        ns, name = service_key
        port_name = port.get("name") or ""
        found: list[tuple[str, int]] = []
        for slice_obj in self.slices.objects.values():
            meta = slice_obj.get("metadata") or {}
            if meta.get("namespace") != ns:
                continue
            if (meta.get("labels") or {}).get("kubernetes.io/service-name") != name:
                continue
            target = None
            for slice_port in slice_obj.get("ports") or []:
                if (slice_port.get("name") or "") == port_name and slice_port.get("port"):
                    target = int(slice_port["port"])
            if target is None:
                continue
            for endpoint in slice_obj.get("endpoints") or []:
                # discovery/v1: a nil `ready` is to be read as ready.
                if (endpoint.get("conditions") or {}).get("ready") is False:
                    continue
                if local_only and endpoint.get("nodeName") != self.node_name:
                    continue
                for address in endpoint.get("addresses") or []:
                    found.append((address, target))
                    break
        return sorted(found)

    async def _forward(
        self, node_port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        target = self._nodeport_target.get(node_port)
        endpoints = (
            self.ready_endpoints(target[0], target[1], local_only=target[2]) if target else []
        )
        if not endpoints:
            _reset(writer)
            return
        address, port = endpoints[next(self._rr) % len(endpoints)]
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(address, port), self.connect_timeout
            )
        except (OSError, TimeoutError):
            _reset(writer)
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            writer.close()

    async def _answer_service_health(self, hc_port: int, request: web.BaseRequest) -> web.Response:
        """pkg/proxy/healthcheck/service_health.go: 200 with local endpoints, else 503."""
        key = self._health_target.get(hc_port, ("", ""))
        svc = self.services.objects.get(key) or {}
        local = 0
        for port in (svc.get("spec") or {}).get("ports") or []:
            local = max(local, len(self.ready_endpoints(key, port, local_only=True)))
        ns, name = key
        healthy = self.synced and self.node_eligible()
        body = {
            "service": {"namespace": ns, "name": name},
            "localEndpoints": local,
            "serviceProxyHealthy": healthy,
        }
        return web.Response(
            status=200 if local > 0 and healthy else 503,
            text=json.dumps(body),
            headers={
                "Content-Type": "application/json",
                "X-Content-Type-Options": "nosniff",
                "X-Load-Balancing-Endpoint-Weight": str(local),
            },
        )
