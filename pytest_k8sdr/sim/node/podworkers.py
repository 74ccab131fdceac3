"""The kubelet's pod workers (pkg/kubelet/pod_workers.go and syncPod of kubelet.go).

Pods: Pending (podIP from the node's podCIDR) -> Running and Ready after the profile's
`pod_start_delay` (ready once its readiness probes pass, `prober`; a container failing its
liveness probe is restarted, `containers`); on deletion the containers stop (at once, or after the
`sim.k8sdr.io/shutdown-seconds` annotation capped by the grace period), the containers are
reported terminated and the kubelet makes the final delete (grace 0, uid precondition). A pod
whose containers have all exited for good (`containers`, restartPolicy Never/OnFailure) is
reported Succeeded or Failed, and its containers are stopped.
Sync passes run at most `DEFAULT_PASS_LIMIT` at a time, so a burst of 30,000 pods does not
starve the lease renewals.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_k8sdr.sim.apimachinery.clock import parse_rfc3339
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.client.rest import ApiClient, ApiStatusError
from pytest_k8sdr.sim.node.containers import ContainerSync, finished_phase
from pytest_k8sdr.sim.node.events import KubeletEvents
from pytest_k8sdr.sim.node.ipam import Ipam
from pytest_k8sdr.sim.node.nodespec import NodeSpec
from pytest_k8sdr.sim.node.podstatus import pod_signature, pod_status
from pytest_k8sdr.sim.node.prober import ProbeManager
from pytest_k8sdr.sim.node.runtime import Runtime
from pytest_k8sdr.sim.node.slim import SHUTDOWN_ANNOTATION, resource_version, slim_pod
from pytest_k8sdr.sim.profiles import Profile

__all__ = ["DEFAULT_PASS_LIMIT", "PassLimiter", "PodWorkers"]

log = logging.getLogger("pytest_k8sdr.sim.node")

STRATEGIC = "application/strategic-merge-patch+json"


@dataclass(slots=True)
class _PodWorker:
    """One pod's sync state. Its task exists only while a pass is due or running."""

    uid: str
    pod: JSON  # slimmed (`slim_pod`)
    gone: bool = False
    cold: bool = False  # must go through the start delay even if the API says Running
    start_at: float | None = None
    terminate_at: float | None = None
    delete_sent_at: float | None = None
    last_patch_at: float = 0.0
    last_patch_sig: Any = None
    failures: int = 0
    dirty: bool = False  # woken during a pass: run another one
    queued: bool = False  # waiting for a slot of the PassLimiter
    task: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None


DONE = -1.0
# Concurrent pod sync passes: above the client's connection pool, so the pool stays full.
DEFAULT_PASS_LIMIT = 128


class PassLimiter:
    """At most `limit` pod sync passes at once, the rest wait in FIFO order.

    Bounds what a burst costs: 30,000 pods bound at once would otherwise build 30,000 status
    patches that all wait for one of the client's connections.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self.active = 0
        self._waiting: deque[Callable[[], bool]] = deque()

    def submit(self, start: Callable[[], bool]) -> None:
        """Call `start` when a slot is free; it returns False when it no longer needs one."""
        self._waiting.append(start)
        self._fill()

    def release(self) -> None:
        """A pass that `start` began has ended."""
        self.active -= 1
        self._fill()

    def _fill(self) -> None:
        while self._waiting and self.active < self.limit:
            start = self._waiting.popleft()
            self.active += 1
            if not start():
                self.active -= 1


class PodWorkers:
    """The pods bound to one node, each synced by passes of its own worker.

    `active()` says whether passes may run (the kubelet runs and has registered).
    """

    def __init__(
        self,
        spec: NodeSpec,
        client: ApiClient,
        runtime: Runtime,
        profile: Profile,
        limiter: PassLimiter,
        active: Callable[[], bool],
    ) -> None:
        self.spec = spec
        self.client = client
        self.runtime = runtime
        self.profile = profile
        self.limiter = limiter
        self.active = active
        self.ipam = Ipam(spec.pod_cidr)
        self._workers: dict[str, _PodWorker] = {}
        self.events = KubeletEvents(client, spec.name)
        self.prober = ProbeManager(profile, self._probe_changed, self._pod_of, self.events.record)
        self.containers = ContainerSync(runtime, self.prober, profile, self.events.record)

    def _probe_changed(self, uid: str) -> None:
        worker = self._workers.get(uid)
        if worker is not None:
            self._wake(worker)

    def _pod_of(self, uid: str) -> JSON | None:
        worker = self._workers.get(uid)
        return worker.pod if worker is not None else None

    def on_pod(self, old: JSON | None, new: JSON | None) -> None:
        """The informer's view of a pod bound to this node changed (new None: gone)."""
        old_uid = (old or {}).get("metadata", {}).get("uid")
        new_uid = (new or {}).get("metadata", {}).get("uid")
        if old_uid and old_uid != new_uid:
            worker = self._workers.get(old_uid)
            if worker is not None:
                worker.gone = True
                self._wake(worker)
        if new is None or not new_uid:
            return
        if (new.get("spec") or {}).get("nodeName") != self.spec.name:
            return
        worker = self._workers.get(new_uid)
        if worker is None:
            worker = _PodWorker(new_uid, new)
            ip = (new.get("status") or {}).get("podIP")
            if ip and not self._host_network(new):
                self.ipam.reserve(new_uid, ip)
            self._workers[new_uid] = worker
        elif resource_version(new) >= resource_version(worker.pod):
            worker.pod = new
        self._wake(worker)

    def pods(self) -> list[JSON]:
        """The pods this kubelet knows about."""
        return [w.pod for w in self._workers.values() if not w.gone]

    def runtime_changed(self) -> None:
        """The runtime went down or came back: re-sync every pod."""
        for worker in list(self._workers.values()):
            if not self.runtime.up:
                worker.cold = True
                worker.start_at = None
            self._wake(worker)

    def wake_all(self) -> None:
        """Run a pass of every pod (the kubelet has just registered)."""
        for worker in list(self._workers.values()):
            self._wake(worker)

    def stop(self) -> list[asyncio.Task[None]]:
        """Forget every worker; the tasks of the passes running, for the caller to cancel."""
        tasks = [w.task for w in self._workers.values() if w.task]
        for worker in self._workers.values():
            if worker.timer is not None:
                worker.timer.cancel()
        self._workers.clear()
        return tasks

    async def close(self) -> None:
        """End the probes and the events in flight (after `stop`)."""
        await self.prober.close()
        await self.events.close()

    def _wake(self, worker: _PodWorker) -> None:
        """Run a sync pass of the pod now (another one after the current pass, if running).

        Upstream runs a goroutine per pod (pkg/kubelet/pod_workers.go); here a pod has a task
        only while a pass runs, and a timer while one is due, so 30,000 settled hollow pods
        cost no tasks.
        """
        if worker.task is not None:
            worker.dirty = True
            return
        if worker.queued or not self.active():
            return  # queued: the pass will see the change; not registered: _main wakes all
        if worker.timer is not None:
            worker.timer.cancel()
            worker.timer = None
        worker.queued = True
        self.limiter.submit(lambda: self._start_pass(worker))

    def _start_pass(self, worker: _PodWorker) -> bool:
        worker.queued = False
        if not self.active() or self._workers.get(worker.uid) is not worker:
            return False  # stopped, or the pod went away meanwhile
        task = asyncio.create_task(self._pod_worker(worker))
        worker.task = task

        def done(_: asyncio.Task[None]) -> None:
            # A done callback, not a finally: a task cancelled before it started runs no code.
            if worker.task is task:
                worker.task = None
            self.limiter.release()
            # Woken after the pass's last look at `dirty` but before this callback ran (a
            # probe result, an informer event): that wake-up must not be lost, or a pod whose
            # readiness probe just passed stays Running, not Ready.
            if worker.dirty and self._workers.get(worker.uid) is worker:
                worker.dirty = False
                self._wake(worker)

        task.add_done_callback(done)
        return True

    async def _pod_worker(self, worker: _PodWorker) -> None:
        while True:
            worker.dirty = False
            try:
                until = await self._sync_pod(worker)
                worker.failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                worker.failures += 1
                log.warning("pod %s: sync failed: %s", _pod_name(worker.pod), exc)
                until = time.monotonic() + min(0.2 * 2**worker.failures, 7.0)
            if until == DONE:
                if self._workers.get(worker.uid) is worker:
                    del self._workers[worker.uid]
                return
            if worker.dirty:
                continue
            if until is not None:
                delay = until - time.monotonic()
                if delay <= 0:
                    continue
                worker.timer = asyncio.get_running_loop().call_later(delay, self._wake, worker)
            return

    @staticmethod
    def _host_network(pod: JSON) -> bool:
        return bool((pod.get("spec") or {}).get("hostNetwork"))

    async def _sync_pod(self, worker: _PodWorker) -> float | None:
        """One pass of the pod worker; the monotonic time to look again, None to wait, DONE."""
        pod = worker.pod
        uid = worker.uid
        now = time.monotonic()
        if worker.gone:
            await self._stop_containers(uid)
            self.ipam.release(uid)
            return DONE
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        if meta.get("deletionTimestamp"):
            return await self._terminate(worker)
        if status.get("phase") in ("Succeeded", "Failed"):
            await self._stop_containers(uid)
            return None
        ip = self.spec.address if self._host_network(pod) else self.ipam.allocate(uid)
        if not self.runtime.up:
            await self._stop_containers(uid)
            started = status.get("phase") == "Running"
            return await self._report(
                worker, pod_status(self.spec, pod, ip, "down" if started else "pending")
            )
        if self.runtime.is_running(uid):
            return await self._sync_running(worker, ip)
        if worker.start_at is None:
            # A restarted kubelet adopts containers the runtime still reports as running
            # (the API says Running); new pods go through the start delay.
            adopt = (
                status.get("phase") == "Running" and status.get("podIP") == ip and not worker.cold
            )
            worker.start_at = now if adopt else now + self.profile.pod_start_delay
            if not adopt:
                await self._report(worker, pod_status(self.spec, pod, ip, "pending"), force=True)
        if now < worker.start_at:
            return worker.start_at
        worker.cold = False
        await self.runtime.start(pod, ip)
        self.containers.started(pod, ip)
        return await self._sync_running(worker, ip, force=True)

    async def _sync_running(
        self, worker: _PodWorker, ip: str, *, force: bool = False
    ) -> float | None:
        """Restart what the probes ask for and report each container's readiness."""
        reports, again = await self.containers.sync(worker.pod, ip)
        phase = finished_phase(reports)
        status = pod_status(self.spec, worker.pod, ip, "running", reports, phase)
        until = await self._report(worker, status, force=force or phase is not None)
        if again is None or until is None:
            return again if until is None else until
        return min(again, until)

    async def _stop_containers(self, uid: str) -> None:
        self.containers.forget(uid)
        await self.runtime.stop(uid)

    async def _terminate(self, worker: _PodWorker) -> float | None:
        pod = worker.pod
        now = time.monotonic()
        if worker.delete_sent_at is not None:
            # Retry the final delete if the pod is still there a while later.
            again = worker.delete_sent_at + max(1.0, self.profile.node_status_update_frequency)
            if now < again:
                return again
        if worker.terminate_at is None:
            meta = pod["metadata"]
            deadline = parse_rfc3339(meta.get("deletionTimestamp"))
            grace = meta.get("deletionGracePeriodSeconds")
            remaining = float(grace) if grace is not None else 0.0
            if deadline is not None:
                remaining = (
                    min(remaining, max(0.0, deadline - time.time()))
                    if grace is not None
                    else max(0.0, deadline - time.time())
                )
            try:
                wanted = float((meta.get("annotations") or {}).get(SHUTDOWN_ANNOTATION, 0))
            except ValueError:
                wanted = 0.0
            worker.terminate_at = now + max(0.0, min(wanted, remaining))
        if now < worker.terminate_at:
            return worker.terminate_at
        was_running = (
            self.runtime.is_running(worker.uid)
            or (pod.get("status") or {}).get("phase") == "Running"
        )
        self.containers.stopping(pod)
        await self._stop_containers(worker.uid)
        if was_running and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            ip = (pod.get("status") or {}).get("podIP") or ""
            await self._report(worker, pod_status(self.spec, pod, ip, "terminated"), force=True)
        meta = pod["metadata"]
        try:
            await self.client.request(
                "DELETE",
                f"/api/v1/namespaces/{meta.get('namespace', 'default')}/pods/{meta['name']}",
                body={
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": worker.uid},
                },
            )
        except ApiStatusError as exc:
            if exc.code not in (404, 409):
                raise
        worker.delete_sent_at = time.monotonic()
        return worker.delete_sent_at + max(1.0, self.profile.node_status_update_frequency)

    async def _report(
        self, worker: _PodWorker, wanted: JSON, *, force: bool = False
    ) -> float | None:
        """Patch the pod's status when the API's differs from what the kubelet knows.

        A reconciliation against someone else's write (the node lifecycle controller marking the
        pod NotReady) is sent at most once per status period, so two writers cannot spin.
        """
        sig = pod_signature(wanted)
        if sig == pod_signature(worker.pod.get("status") or {}):
            return None
        now = time.monotonic()
        period = self.profile.node_status_update_frequency
        if not force and sig == worker.last_patch_sig and now - worker.last_patch_at < period:
            return worker.last_patch_at + period
        meta = worker.pod["metadata"]
        try:
            patched = await self.client.request(
                "PATCH",
                f"/api/v1/namespaces/{meta.get('namespace', 'default')}/pods/{meta['name']}/status",
                body={"metadata": {"uid": worker.uid}, "status": wanted},
                content_type=STRATEGIC,
            )
        except ApiStatusError as exc:
            if exc.code in (404, 409):
                return None  # gone or replaced; the informer will tell
            raise
        worker.last_patch_at = now
        worker.last_patch_sig = sig
        if (
            resource_version(patched) >= resource_version(worker.pod)
            and patched.get("metadata", {}).get("uid") == worker.uid
        ):
            worker.pod = slim_pod(patched)
        return None


def _pod_name(pod: JSON) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"
