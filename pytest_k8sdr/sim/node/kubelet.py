"""The kubelet stand-in of a simulated node: its lifecycle, registration and status loop.

A kubelet registers (`registration`), renews its Lease (`lease`), posts its NodeStatus
(`nodestatus`, every status period when changed, every report period anyway) and runs the
pods bound to its node (`podworkers`, `podstatus`). A running kubelet never registers again,
even if its Node is deleted; it keeps renewing its Lease (kubernetes/kubernetes #116485).
Readiness, liveness and startup probes run against the pods' servers (`prober`, `probe`), and a
container failing liveness is restarted with back-off (`containers`). Not modelled: init
containers, restartPolicy, resource accounting, volumes, static pods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.client.rest import ApiClient, ApiStatusError
from pytest_k8sdr.sim.client.tasks import cancel_all
from pytest_k8sdr.sim.node.lease import NodeLease
from pytest_k8sdr.sim.node.nodespec import NodeSpec
from pytest_k8sdr.sim.node.nodestatus import (
    NodeIds,
    node_status,
    ready_condition,
    status_signature,
)
from pytest_k8sdr.sim.node.podworkers import DEFAULT_PASS_LIMIT, PassLimiter, PodWorkers
from pytest_k8sdr.sim.node.registration import try_register
from pytest_k8sdr.sim.node.runtime import Runtime
from pytest_k8sdr.sim.node.slim import resource_version, slim_node
from pytest_k8sdr.sim.profiles import Profile

__all__ = ["Kubelet"]

log = logging.getLogger("pytest_k8sdr.sim.node")

STRATEGIC = "application/strategic-merge-patch+json"


class Kubelet:
    """One node's kubelet: register, heartbeat, and run the pods bound to the node."""

    def __init__(
        self,
        spec: NodeSpec,
        client: ApiClient,
        runtime: Runtime,
        profile: Profile,
        limiter: PassLimiter | None = None,
    ) -> None:
        self.spec = spec
        self.client = client
        self.runtime = runtime
        self.profile = profile
        self.registered = False
        self.node_uid: str | None = None
        self.node: JSON | None = None
        self.started_at = 0.0
        self.runtime_checked_at = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._status_poke = asyncio.Event()
        # None until the first report: monotonic() counts from boot, so 0.0 is not "long ago".
        self._last_report: float | None = None
        self._running = False
        self._ids = NodeIds.of(spec.name, runtime.boot_id)
        self.lease = NodeLease(
            spec.name, client, profile, lambda: self.node_uid if self.node is not None else None
        )
        self.pod_workers = PodWorkers(
            spec,
            client,
            runtime,
            profile,
            limiter or PassLimiter(DEFAULT_PASS_LIMIT),
            lambda: self._running and self.registered,
        )

    @property
    def lease_renewals(self) -> int:
        """How many times the Lease was renewed (or created)."""
        return self.lease.renewals

    # lifecycle

    def start(self, initial_delay: float = 0.0) -> None:
        """Start like a kubelet process: register, then heartbeat and sync pods."""
        self._running = True
        self.started_at = time.monotonic()
        # The runtime's first status check completes one status period after start; until then
        # the node reports KubeletNotReady (observed upstream, docs/node-failure-semantics.md: a
        # returning kubelet shows Ready=False first, then Ready=True ~10s later).
        self.runtime_checked_at = (
            self.started_at + initial_delay + self.profile.node_status_update_frequency
        )
        self._tasks = [asyncio.create_task(self._main(initial_delay))]

    async def stop(self) -> None:
        """Stop like a kubelet process: nothing is deleted, pods keep running in the runtime."""
        self._running = False
        tasks = list(self._tasks) + self.pod_workers.stop()
        self._tasks = []
        await cancel_all(tasks)
        await self.pod_workers.close()

    async def _main(self, initial_delay: float) -> None:
        if initial_delay:
            await asyncio.sleep(initial_delay)
        self._tasks.append(asyncio.create_task(self.lease.run()))
        await asyncio.sleep(self.profile.kubelet_registration_delay)
        await self._register()
        self._tasks.append(asyncio.create_task(self._status_loop()))
        self.pod_workers.wake_all()

    # registration

    async def _register(self) -> None:
        """Register once, retrying with backoff until it works (as tryRegisterWithAPIServer)."""
        delay = 0.2
        while True:
            try:
                node = await try_register(self.client, self.spec, self.node_status(None))
                if node is not None:
                    self._set_node(node)
                    self.registered = True
                    log.info("node %s registered (uid %s)", self.spec.name, self.node_uid)
                    self._status_poke.set()
                    return
            except ApiStatusError as exc:
                log.warning("node %s: registration failed: %s", self.spec.name, exc)
            except ConnectionError as exc:
                log.warning("node %s: registration failed: %s", self.spec.name, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 7.0)

    def _set_node(self, node: JSON | None) -> None:
        if node is None:
            self.node = None
            return
        same = self.node is not None and node["metadata"].get("uid") == self.node_uid
        if same and resource_version(node) < resource_version(self.node):
            return
        self.node = slim_node(node)
        self.node_uid = node["metadata"].get("uid")

    def on_node(self, node: JSON | None) -> None:
        """The informer's view of this node changed (None: deleted)."""
        if node is None:
            if self.node is not None:
                log.warning(
                    "node %s was deleted; a running kubelet does not register again",
                    self.spec.name,
                )
            self.node = None
            return
        if self.registered:
            self._set_node(node)

    # node status

    def ready_condition(self) -> tuple[str, str, str]:
        """(status, reason, message) of the Ready condition the kubelet would post now."""
        return ready_condition(self.runtime.up, self.runtime_checked_at)

    def node_status(self, existing: JSON | None) -> JSON:
        """The NodeStatus the kubelet computes, keeping transition times of unchanged conditions."""
        return node_status(self.spec, self.ready_condition(), self._ids, existing)

    async def _status_loop(self) -> None:
        period = self.profile.node_status_update_frequency
        while True:
            try:
                await self.sync_node_status()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("node %s: status update failed: %s", self.spec.name, exc)
            self._status_poke.clear()
            # Jittered 4%, as the kubelet's syncNodeStatus loop (pkg/kubelet/kubelet.go).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._status_poke.wait(), period * (1 + random.random() * 0.04)
                )

    def poke_status(self) -> None:
        """Compute and post the node status now rather than at the next period."""
        self._status_poke.set()

    async def sync_node_status(self) -> None:
        """Post the NodeStatus when it changed or the report period has passed."""
        if not self.registered:
            return
        await self.client.gate.wait_open()
        existing = self.node
        if existing is None:
            log.debug("node %s not found; not posting status", self.spec.name)
            return
        status = self.node_status(existing)
        changed = status_signature(status) != status_signature(existing.get("status") or {})
        due = (
            self._last_report is None
            or time.monotonic() - self._last_report >= self.profile.node_status_report_frequency
        )
        if not (changed or due):
            return
        try:
            patched = await self.client.request(
                "PATCH",
                f"/api/v1/nodes/{self.spec.name}/status",
                body={"status": status},
                content_type=STRATEGIC,
                attempts=5,  # nodeStatusUpdateRetry
            )
        except ApiStatusError as exc:
            if exc.code == 404:
                self.node = None
                return
            raise
        self._last_report = time.monotonic()
        self._set_node(patched)

    # pods

    def on_pod(self, old: JSON | None, new: JSON | None) -> None:
        """The informer's view of a pod bound to this node changed (new None: gone)."""
        self.pod_workers.on_pod(old, new)

    def pods(self) -> list[JSON]:
        """The pods this kubelet knows about."""
        return self.pod_workers.pods()

    def runtime_changed(self) -> None:
        """The runtime went down or came back: re-sync every pod and the node status."""
        self.pod_workers.runtime_changed()
        self.poke_status()
