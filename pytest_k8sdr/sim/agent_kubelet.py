"""The kubelet stand-in of a simulated node: registration, heartbeats and pod lifecycle.

Registration follows pkg/kubelet/kubelet_node_status.go (`initialNode`,
`tryRegisterWithAPIServer`): POST the Node; on AlreadyExists only the default labels and the
controller-managed-attach-detach annotation are reconciled, so hand-made labels and taints
survive a restart while a deleted Node comes back fresh. A running kubelet never registers
again, even if its Node is deleted (kubernetes/kubernetes issues #71398, #115761); it keeps
renewing its Lease (issue #116485).

Pods: Pending (podIP from the node's podCIDR) -> Running and Ready after the profile's
`pod_start_delay`; on deletion the containers stop (at once, or after the
`sim.k8sdr.io/shutdown-seconds` annotation capped by the grace period), the containers are
reported terminated and the kubelet makes the final delete (grace 0, uid precondition).
Not modelled: readiness/liveness probes (a started container is ready), init containers,
restartPolicy and container restarts, resource accounting, volumes, static pods, events.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pytest_k8sdr.sim.agent_kube import (
    JSON,
    ApiClient,
    ApiStatusError,
    Informer,
    cancel_all,
    microtime,
    parse_rfc3339,
    rfc3339,
)
from pytest_k8sdr.sim.agent_net import Runtime
from pytest_k8sdr.sim.profiles import Profile

log = logging.getLogger("pytest_k8sdr.sim.agent")

KUBELET_VERSION = "v1.33.0-k8sdr-sim"
RUNTIME_VERSION = "k8sdr-sim://1"
LEASE_NAMESPACE = "kube-node-lease"
SHUTDOWN_ANNOTATION = "sim.k8sdr.io/shutdown-seconds"
CMAD_ANNOTATION = "volumes.kubernetes.io/controller-managed-attach-detach"
STRATEGIC = "application/strategic-merge-patch+json"
# pkg/kubelet/kubelet_node_status.go `updateDefaultLabels`: the only labels a restarted
# kubelet puts back on an existing Node.
DEFAULT_LABEL_KEYS = (
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "node.kubernetes.io/instance-type",
    "beta.kubernetes.io/instance-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "node.kubernetes.io/windows-build",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
)
# pkg/kubelet/nodestatus/setters.go: the conditions the kubelet owns, in its order.
PRESSURE_CONDITIONS = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)
POD_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")


@dataclass(frozen=True)
class NodeSpec:
    """Who a simulated node is: its name, addresses and the kubelet's registration flags."""

    name: str
    address: str
    pod_cidr: str
    labels: tuple[tuple[str, str], ...] = ()
    taints: tuple[tuple[str, str, str], ...] = ()  # key, value, effect
    zone: str | None = None
    cpu: str = "2"
    memory: str = "8Gi"
    max_pods: int = 110


class Ipam:
    """Pod IPs from the podCIDR, round robin as host-local IPAM (no immediate reuse)."""

    def __init__(self, cidr: str) -> None:
        network = ipaddress.ip_network(cidr)
        self._net = network
        # Hosts computed on demand: a hollow agent holds a thousand of these.
        self._first = int(network.network_address) + 1
        self._size = max(1, network.num_addresses - 2)
        self._owner: dict[str, str] = {}  # ip -> uid
        self._next = 0

    def contains(self, ip: str) -> bool:
        """Whether ip lies in the podCIDR."""
        try:
            return ipaddress.ip_address(ip) in self._net
        except ValueError:
            return False

    def reserve(self, uid: str, ip: str) -> bool:
        """Give `ip` to `uid` if it is ours and free."""
        if not self.contains(ip) or self._owner.get(ip, uid) != uid:
            return False
        self._owner[ip] = uid
        return True

    def allocate(self, uid: str) -> str:
        """The uid's IP, allocating the next free one; RuntimeError when the range is full."""
        for ip, owner in self._owner.items():
            if owner == uid:
                return ip
        for step in range(self._size):
            offset = (self._next + step) % self._size
            ip = str(ipaddress.IPv4Address(self._first + offset))
            if ip not in self._owner:
                self._next = (offset + 1) % self._size
                self._owner[ip] = uid
                return ip
        raise RuntimeError(f"pod CIDR {self._net} is full")

    def release(self, uid: str) -> None:
        """Free the uid's IP."""
        for ip in [ip for ip, owner in self._owner.items() if owner == uid]:
            del self._owner[ip]


def _rv(obj: JSON | None) -> int:
    value = str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "0")
    return int(value) if value.isdigit() else 0


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


_intern = sys.intern


def _str(value: Any) -> Any:
    return _intern(value) if isinstance(value, str) else value


def slim_pod(pod: JSON) -> JSON:
    """The fields of a pod the kubelet reads; everything else is dropped.

    A hollow agent holds 30,000 pods: full objects cost about 20 KiB each in Python, these
    about 2 KiB (keys are shared constants, repeated values interned).
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    slim_meta: JSON = {
        "name": meta.get("name"),
        "namespace": _str(meta.get("namespace")),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
        if meta.get(key) is not None:
            slim_meta[key] = meta[key]
    shutdown = (meta.get("annotations") or {}).get(SHUTDOWN_ANNOTATION)
    if shutdown is not None:
        slim_meta["annotations"] = {SHUTDOWN_ANNOTATION: shutdown}
    slim_spec: JSON = {
        "nodeName": _str(spec.get("nodeName")),
        "containers": [
            {
                "name": _str(c.get("name")),
                "image": _str(c.get("image", "")),
                "ports": [
                    {
                        "containerPort": p.get("containerPort"),
                        "protocol": _str(p.get("protocol", "TCP")),
                    }
                    for p in c.get("ports") or []
                ],
            }
            for c in spec.get("containers") or []
        ],
    }
    if spec.get("hostNetwork"):
        slim_spec["hostNetwork"] = True
    slim_status: JSON = {}
    for key in ("phase", "qosClass"):
        if status.get(key) is not None:
            slim_status[key] = _str(status[key])
    for key in ("podIP", "startTime"):
        if status.get(key) is not None:
            slim_status[key] = status[key]
    if status.get("conditions"):
        slim_status["conditions"] = [
            {
                "type": _str(c.get("type")),
                "status": _str(c.get("status")),
                "lastTransitionTime": c.get("lastTransitionTime"),
            }
            for c in status["conditions"]
        ]
    if status.get("containerStatuses"):
        slim_status["containerStatuses"] = [
            {
                "name": _str(s.get("name")),
                "ready": bool(s.get("ready")),
                "state": {
                    _str(k): {"startedAt": (v or {}).get("startedAt")}
                    for k, v in (s.get("state") or {}).items()
                },
            }
            for s in status["containerStatuses"]
        ]
    return {"metadata": slim_meta, "spec": slim_spec, "status": slim_status}


def slim_node(node: JSON) -> JSON:
    """The fields of a Node the kubelet reads (its identity and the status it compares)."""
    meta = node.get("metadata") or {}
    status = node.get("status") or {}
    return {
        "metadata": {
            "name": meta.get("name"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "status": {
            "conditions": [
                {
                    "type": _str(c.get("type")),
                    "status": _str(c.get("status")),
                    "reason": _str(c.get("reason")),
                    "message": _str(c.get("message")),
                    "lastTransitionTime": c.get("lastTransitionTime"),
                }
                for c in status.get("conditions") or []
            ],
            "addresses": status.get("addresses") or [],
            "allocatable": status.get("allocatable") or {},
            "nodeInfo": status.get("nodeInfo") or {},
        },
    }


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
        self.limiter = limiter or PassLimiter(DEFAULT_PASS_LIMIT)
        self.client = client
        self.runtime = runtime
        self.profile = profile
        self.ipam = Ipam(spec.pod_cidr)
        self.registered = False
        self.node_uid: str | None = None
        self.node: JSON | None = None
        self.started_at = 0.0
        self.runtime_checked_at = 0.0
        self._workers: dict[str, _PodWorker] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._status_poke = asyncio.Event()
        # None until the first report: monotonic() counts from boot, so 0.0 is not "long ago".
        self._last_report: float | None = None
        self._running = False
        self.lease_renewals = 0
        # Computed once: 1,000 hollow kubelets build their status every second (fast profile).
        self._machine_id = uuid.uuid5(uuid.NAMESPACE_DNS, spec.name).hex
        self._system_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, spec.name))

    # lifecycle

    def start(self, initial_delay: float = 0.0) -> None:
        """Start like a kubelet process: register, then heartbeat and sync pods."""
        self._running = True
        self.started_at = time.monotonic()
        # The runtime's first status check completes one status period after start; until then
        # the node reports KubeletNotReady (upstream-observed.md: a returning kubelet shows
        # Ready=False first, then Ready=True ~10s later).
        self.runtime_checked_at = (
            self.started_at + initial_delay + self.profile.node_status_update_frequency
        )
        self._tasks = [asyncio.create_task(self._main(initial_delay))]

    async def stop(self) -> None:
        """Stop like a kubelet process: nothing is deleted, pods keep running in the runtime."""
        self._running = False
        tasks = list(self._tasks) + [w.task for w in self._workers.values() if w.task]
        for worker in self._workers.values():
            if worker.timer is not None:
                worker.timer.cancel()
        self._tasks = []
        self._workers.clear()
        await cancel_all(tasks)

    async def _main(self, initial_delay: float) -> None:
        if initial_delay:
            await asyncio.sleep(initial_delay)
        self._tasks.append(asyncio.create_task(self._lease_loop()))
        await asyncio.sleep(self.profile.kubelet_registration_delay)
        await self._register()
        self._tasks.append(asyncio.create_task(self._status_loop()))
        for worker in list(self._workers.values()):
            self._wake(worker)

    # registration

    def default_labels(self) -> dict[str, str]:
        """The labels the kubelet sets on its own (pkg/kubelet/kubelet_node_status.go)."""
        labels = {
            "kubernetes.io/hostname": self.spec.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
        }
        if self.spec.zone:
            labels["topology.kubernetes.io/zone"] = self.spec.zone
        return labels

    def initial_node(self) -> JSON:
        """The Node a kubelet POSTs when it registers."""
        labels = self.default_labels()
        labels.update(dict(self.spec.labels))
        spec: JSON = {
            "podCIDR": self.spec.pod_cidr,
            "podCIDRs": [self.spec.pod_cidr],
            "providerID": f"k8sdr-sim://{self.spec.name}",
        }
        if self.spec.taints:
            spec["taints"] = [
                {"key": k, "effect": e, **({"value": v} if v else {})}
                for k, v, e in self.spec.taints
            ]
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.spec.name,
                "labels": labels,
                "annotations": {CMAD_ANNOTATION: "true"},
            },
            "spec": spec,
            "status": self.node_status(None),
        }

    async def _register(self) -> None:
        """Register once, retrying with backoff until it works (as tryRegisterWithAPIServer)."""
        delay = 0.2
        while True:
            try:
                if await self._try_register():
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

    async def _try_register(self) -> bool:
        try:
            created = await self.client.request("POST", "/api/v1/nodes", body=self.initial_node())
        except ApiStatusError as exc:
            if exc.reason != "AlreadyExists":
                raise
        else:
            self._set_node(created)
            return True
        try:
            existing = await self.client.request("GET", f"/api/v1/nodes/{self.spec.name}")
        except ApiStatusError as exc:
            if exc.code == 404:
                return False  # deleted in between: POST again
            raise
        patch = self._reconcile_existing(existing)
        if patch:
            # Upstream patches through PatchNodeStatus; the labels and annotation are metadata,
            # so here they go to the main resource.
            existing = await self.client.request(
                "PATCH", f"/api/v1/nodes/{self.spec.name}", body=patch, content_type=STRATEGIC
            )
        self._set_node(existing)
        return True

    def _reconcile_existing(self, existing: JSON) -> JSON | None:
        """The patch `updateDefaultLabels` + `reconcileCMADAnnotationWithExistingNode` make."""
        meta = existing.get("metadata") or {}
        have = meta.get("labels") or {}
        want = self.default_labels()
        labels: dict[str, str | None] = {}
        for key in DEFAULT_LABEL_KEYS:
            if key in want and have.get(key) != want[key]:
                labels[key] = want[key] or None
        patch: JSON = {"metadata": {}}
        if labels:
            patch["metadata"]["labels"] = labels
        if (meta.get("annotations") or {}).get(CMAD_ANNOTATION) != "true":
            patch["metadata"]["annotations"] = {CMAD_ANNOTATION: "true"}
        return patch if patch["metadata"] else None

    def _set_node(self, node: JSON | None) -> None:
        if node is None:
            self.node = None
            return
        same = self.node is not None and node["metadata"].get("uid") == self.node_uid
        if same and _rv(node) < _rv(self.node):
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

    # heartbeats

    async def _lease_loop(self) -> None:
        lease: JSON | None = None
        interval = self.profile.lease_renew_interval
        while True:
            began = time.monotonic()
            try:
                lease = await self._renew(lease)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("node %s: lease renewal failed: %s", self.spec.name, exc)
            # Scheduled from the start of the renewal so a slow answer does not push the next
            # one back; 4% jitter as wait.JitterUntil in the lease controller.
            period = interval * (1 + random.random() * 0.04)
            await asyncio.sleep(max(0.0, began + period - time.monotonic()))

    def _lease_body(self, base: JSON) -> JSON:
        lease = dict(base)
        meta = dict(lease.get("metadata") or {})
        meta.setdefault("name", self.spec.name)
        meta.setdefault("namespace", LEASE_NAMESPACE)
        # pkg/kubelet/util/nodelease.go setNodeOwnerFunction: owned by the Node when it exists.
        if not meta.get("ownerReferences") and self.node is not None and self.node_uid:
            meta["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": self.spec.name, "uid": self.node_uid}
            ]
        lease["metadata"] = meta
        lease["apiVersion"] = "coordination.k8s.io/v1"
        lease["kind"] = "Lease"
        lease["spec"] = {
            **(lease.get("spec") or {}),
            "holderIdentity": self.spec.name,
            "leaseDurationSeconds": int(self.profile.node_lease_duration),
            "renewTime": microtime(),
        }
        return lease

    async def _renew(self, lease: JSON | None) -> JSON | None:
        # Wait out a partition before stamping renewTime, so the first renewal after it is fresh.
        await self.client.gate.wait_open()
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
        if lease is not None:
            try:
                updated = await self.client.request(
                    "PUT", f"{path}/{self.spec.name}", body=self._lease_body(lease), attempts=3
                )
                self.lease_renewals += 1
                return updated
            except ApiStatusError:
                lease = None  # conflict or gone: fetch or create it again
        try:
            lease = await self.client.request("GET", f"{path}/{self.spec.name}", attempts=3)
        except ApiStatusError as exc:
            if exc.code != 404:
                raise
            created = await self.client.request("POST", path, body=self._lease_body({}), attempts=3)
            self.lease_renewals += 1
            return created
        updated = await self.client.request(
            "PUT", f"{path}/{self.spec.name}", body=self._lease_body(lease), attempts=3
        )
        self.lease_renewals += 1
        return updated

    def ready_condition(self) -> tuple[str, str, str]:
        """(status, reason, message) of the Ready condition the kubelet would post now."""
        if not self.runtime.up:
            return "False", "KubeletNotReady", "container runtime is down"
        if time.monotonic() < self.runtime_checked_at:
            return (
                "False",
                "KubeletNotReady",
                "container runtime status check may not have completed yet",
            )
        return "True", "KubeletReady", "kubelet is posting ready status"

    def node_status(self, existing: JSON | None) -> JSON:
        """The NodeStatus the kubelet computes, keeping transition times of unchanged conditions."""
        now = rfc3339()
        old = {
            c.get("type"): c for c in ((existing or {}).get("status") or {}).get("conditions") or []
        }
        wanted = [(t, "False", r, m) for t, r, m in PRESSURE_CONDITIONS]
        wanted.append(("Ready", *self.ready_condition()))
        conditions = []
        for ctype, status, reason, message in wanted:
            prior = old.get(ctype) or {}
            transition = prior.get("lastTransitionTime") if prior.get("status") == status else None
            conditions.append(
                {
                    "type": ctype,
                    "status": status,
                    "reason": reason,
                    "message": message,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": transition or now,
                }
            )
        resources = {
            "cpu": self.spec.cpu,
            "memory": self.spec.memory,
            "pods": str(self.spec.max_pods),
            "ephemeral-storage": "100Gi",
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
        }
        return {
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": self.spec.address},
                {"type": "Hostname", "address": self.spec.name},
            ],
            "capacity": resources,
            "allocatable": dict(resources),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": self._machine_id,
                "systemUUID": self._system_uuid,
                "bootID": self.runtime.boot_id,
                "kernelVersion": "6.1.0-k8sdr-sim",
                "osImage": "k8sdr simulated node",
                "containerRuntimeVersion": RUNTIME_VERSION,
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    @staticmethod
    def _status_signature(status: JSON) -> Any:
        conditions = sorted(
            (c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
            for c in status.get("conditions") or []
        )
        addresses = sorted((a.get("type"), a.get("address")) for a in status.get("addresses") or [])
        return (
            conditions,
            addresses,
            sorted((status.get("allocatable") or {}).items()),
            sorted((status.get("nodeInfo") or {}).items()),
        )

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
        changed = self._status_signature(status) != self._status_signature(
            existing.get("status") or {}
        )
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
        elif _rv(new) >= _rv(worker.pod):
            worker.pod = new
        self._wake(worker)

    def pods(self) -> list[JSON]:
        """The pods this kubelet knows about."""
        return [w.pod for w in self._workers.values() if not w.gone]

    def runtime_changed(self) -> None:
        """The runtime went down or came back: re-sync every pod and the node status."""
        for worker in list(self._workers.values()):
            if not self.runtime.up:
                worker.cold = True
                worker.start_at = None
            self._wake(worker)
        self.poke_status()

    def _wake(self, worker: _PodWorker) -> None:
        """Run a sync pass of the pod now (another one after the current pass, if running).

        Upstream runs a goroutine per pod (pkg/kubelet/pod_workers.go); here a pod has a task
        only while a pass runs, and a timer while one is due, so 30,000 settled hollow pods
        cost no tasks.
        """
        if worker.task is not None:
            worker.dirty = True
            return
        if worker.queued or not (self._running and self.registered):
            return  # queued: the pass will see the change; not registered: _main wakes all
        if worker.timer is not None:
            worker.timer.cancel()
            worker.timer = None
        worker.queued = True
        self.limiter.submit(lambda: self._start_pass(worker))

    def _start_pass(self, worker: _PodWorker) -> bool:
        worker.queued = False
        if not self._running or self._workers.get(worker.uid) is not worker:
            return False  # stopped, or the pod went away meanwhile
        task = asyncio.create_task(self._pod_worker(worker))
        worker.task = task

        def done(_: asyncio.Task[None]) -> None:
            # A done callback, not a finally: a task cancelled before it started runs no code.
            if worker.task is task:
                worker.task = None
            self.limiter.release()

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
            await self.runtime.stop(uid)
            self.ipam.release(uid)
            return DONE
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        if meta.get("deletionTimestamp"):
            return await self._terminate(worker)
        if status.get("phase") in ("Succeeded", "Failed"):
            await self.runtime.stop(uid)
            return None
        ip = self.spec.address if self._host_network(pod) else self.ipam.allocate(uid)
        if not self.runtime.up:
            await self.runtime.stop(uid)
            started = status.get("phase") == "Running"
            return await self._report(
                worker, self._pod_status(pod, ip, "down" if started else "pending")
            )
        if self.runtime.is_running(uid):
            return await self._report(worker, self._pod_status(pod, ip, "running"))
        if worker.start_at is None:
            # A restarted kubelet adopts containers the runtime still reports as running
            # (the API says Running); new pods go through the start delay.
            adopt = (
                status.get("phase") == "Running" and status.get("podIP") == ip and not worker.cold
            )
            worker.start_at = now if adopt else now + self.profile.pod_start_delay
            if not adopt:
                await self._report(worker, self._pod_status(pod, ip, "pending"), force=True)
        if now < worker.start_at:
            return worker.start_at
        worker.cold = False
        await self.runtime.start(pod, ip)
        return await self._report(worker, self._pod_status(pod, ip, "running"), force=True)

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
        await self.runtime.stop(worker.uid)
        if was_running and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            ip = (pod.get("status") or {}).get("podIP") or ""
            await self._report(worker, self._pod_status(pod, ip, "terminated"), force=True)
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

    def _pod_status(self, pod: JSON, ip: str, state: str) -> JSON:
        """The status a kubelet reports for the pod in `state`: pending|running|down|terminated."""
        status = pod.get("status") or {}
        now = rfc3339()
        containers = [c for c in (pod.get("spec") or {}).get("containers") or [] if c.get("name")]
        names = " ".join(c["name"] for c in containers)
        started_at = now
        statuses = []
        for c in containers:
            old: JSON = next(
                (s for s in status.get("containerStatuses") or [] if s.get("name") == c["name"]), {}
            )
            prior_state = old.get("state") or {}
            started_at = (prior_state.get("running") or prior_state.get("terminated") or {}).get(
                "startedAt"
            ) or now
            entry: JSON = {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": f"k8sdr-sim://{c.get('image', '')}",
                "restartCount": 0,
            }
            if state == "pending":
                entry.update(
                    ready=False,
                    started=False,
                    state={"waiting": {"reason": "ContainerCreating"}},
                )
            else:
                entry["containerID"] = f"k8sdr-sim://{pod['metadata']['uid'][:13]}-{c['name']}"
                if state == "running":
                    entry.update(
                        ready=True, started=True, state={"running": {"startedAt": started_at}}
                    )
                elif state == "down":
                    entry.update(
                        ready=False, started=True, state={"running": {"startedAt": started_at}}
                    )
                else:
                    entry.update(
                        ready=False,
                        started=False,
                        state={
                            "terminated": {
                                "exitCode": 0,
                                "reason": "Completed",
                                "startedAt": started_at,
                                "finishedAt": now,
                            }
                        },
                    )
            statuses.append(entry)
        ready = state == "running"
        not_ready_reason = "PodCompleted" if state == "terminated" else "ContainersNotReady"
        not_ready_message = (
            "" if state == "terminated" else f"containers with unready status: [{names}]"
        )
        conds: dict[str, tuple[str, str, str]] = {
            "PodReadyToStartContainers": ("False" if state == "terminated" else "True", "", ""),
            "Initialized": ("True", "", ""),
            "ContainersReady": ("True", "", "")
            if ready
            else ("False", not_ready_reason, not_ready_message),
            "Ready": ("True", "", "") if ready else ("False", not_ready_reason, not_ready_message),
        }
        old_conds = {c.get("type"): c for c in status.get("conditions") or []}
        conditions = []
        for ctype in POD_CONDITIONS:
            value, reason, message = conds[ctype]
            prior = old_conds.get(ctype) or {}
            cond: JSON = {
                "type": ctype,
                "status": value,
                "lastProbeTime": None,
                "lastTransitionTime": prior.get("lastTransitionTime")
                if prior.get("status") == value
                else now,
            }
            # null removes what an earlier state left behind (conditions merge by type).
            cond["reason"] = reason or None
            cond["message"] = message or None
            conditions.append(cond)
        phase = {"pending": "Pending", "running": "Running", "down": "Running"}.get(
            state, "Succeeded"
        )
        result: JSON = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": self.spec.address,
            "hostIPs": [{"ip": self.spec.address}],
            "startTime": status.get("startTime") or now,
            "containerStatuses": statuses,
            "qosClass": status.get("qosClass") or "BestEffort",
        }
        if ip:
            result["podIP"] = ip
            result["podIPs"] = [{"ip": ip}]
        return result

    @staticmethod
    def _pod_signature(status: JSON) -> Any:
        return (
            status.get("phase"),
            status.get("podIP"),
            sorted(
                (c.get("type"), c.get("status"))
                for c in status.get("conditions") or []
                if c.get("type") in POD_CONDITIONS
            ),
            sorted(
                (s.get("name"), bool(s.get("ready")), tuple(sorted((s.get("state") or {}).keys())))
                for s in status.get("containerStatuses") or []
            ),
        )

    async def _report(
        self, worker: _PodWorker, wanted: JSON, *, force: bool = False
    ) -> float | None:
        """Patch the pod's status when the API's differs from what the kubelet knows.

        A reconciliation against someone else's write (the node lifecycle controller marking the
        pod NotReady) is sent at most once per status period, so two writers cannot spin.
        """
        sig = self._pod_signature(wanted)
        if sig == self._pod_signature(worker.pod.get("status") or {}):
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
        if _rv(patched) >= _rv(worker.pod) and patched.get("metadata", {}).get("uid") == worker.uid:
            worker.pod = slim_pod(patched)
        return None


def _pod_name(pod: JSON) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


class KubeletHost:
    """The kubelet side of one agent process: informers shared by one or many kubelets."""

    def __init__(
        self,
        client: ApiClient,
        profile: Profile,
        specs: Iterable[NodeSpec],
        runtimes: dict[str, Runtime],
        *,
        hollow: bool = False,
    ) -> None:
        self.client = client
        self.profile = profile
        self.specs = list(specs)
        self.runtimes = runtimes
        self.hollow = hollow
        self.kubelets: dict[str, Kubelet] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.running = False

    def start(self) -> None:
        """Start every kubelet (as their processes would start) and the shared watches."""
        self.running = True
        limiter = PassLimiter(DEFAULT_PASS_LIMIT)
        self.kubelets = {
            s.name: Kubelet(s, self.client, self.runtimes[s.name], self.profile, limiter)
            for s in self.specs
        }
        if len(self.specs) == 1 and not self.hollow:
            name = self.specs[0].name
            nodes = Informer(
                self.client,
                "/api/v1/nodes",
                field_selector=f"metadata.name={name}",
                transform=slim_node,
            )
            pods = Informer(
                self.client,
                "/api/v1/pods",
                field_selector=f"spec.nodeName={name}",
                transform=slim_pod,
            )
        else:
            nodes = Informer(self.client, "/api/v1/nodes", transform=slim_node)
            pods = Informer(self.client, "/api/v1/pods", transform=slim_pod)

        def on_node(key: str, old: JSON | None, new: JSON | None) -> None:
            kubelet = self.kubelets.get(key)
            if kubelet is not None:
                kubelet.on_node(new)

        def on_pod(key: str, old: JSON | None, new: JSON | None) -> None:
            names = {((o or {}).get("spec") or {}).get("nodeName") for o in (old, new)}
            for name in names:
                kubelet = self.kubelets.get(name) if name else None
                if kubelet is not None:
                    kubelet.on_pod(old, new)

        nodes.add_handler(on_node)
        pods.add_handler(on_pod)
        self._tasks = [asyncio.create_task(nodes.run()), asyncio.create_task(pods.run())]
        spread = self.profile.lease_renew_interval if len(self.specs) > 1 else 0.0
        for kubelet in self.kubelets.values():
            kubelet.start(initial_delay=random.random() * spread)

    async def stop(self) -> None:
        """Stop every kubelet and the watches; pods keep running."""
        self.running = False
        await cancel_all(self._tasks)
        self._tasks = []
        for kubelet in self.kubelets.values():
            await kubelet.stop()

    def runtime_changed(self) -> None:
        """Tell every kubelet that its runtime went down or came back."""
        for kubelet in self.kubelets.values():
            kubelet.runtime_changed()
