"""An in-process control plane for controller tests, with kubelet stand-ins that tests drive.

No HTTP and no node processes: a `FakeKubelet` plays kubelet against the Store (registers its
Node and Lease, renews the Lease, starts pods, finishes graceful deletes), and stops when the
test "kills" it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from pytest_k8sdr.sim import ApiError, Store, WatchEvent
from pytest_k8sdr.sim.controllers import ControllerManager
from pytest_k8sdr.sim.profiles import FAST, Profile

JSON = dict[str, Any]

# The fast profile, shortened further: heartbeats every 0.1s, grace 1s (ten missed
# renewals: no flapping), tolerations 1.5s, pod GC every 0.2s with a 0.5s quarantine,
# scheduler backoff 0.1s up to 0.5s.
TEST_PROFILE = FAST.replace(
    name="test",
    node_lease_duration=0.4,
    node_monitor_period=0.2,
    node_monitor_grace_period=1.0,
    node_startup_grace_period=2.0,
    node_eviction_rate=10.0,
    default_not_ready_toleration_seconds=2,
    default_unreachable_toleration_seconds=2,
    podgc_period=0.2,
    podgc_quarantine=0.5,
    pod_initial_backoff=0.1,
    pod_max_backoff=0.5,
)
WATCHED = (
    "nodes",
    "pods",
    "leases",
    "events",
    "endpointslices",
    "endpoints",
    "replicasets",
    "deployments",
    "statefulsets",
    "daemonsets",
    "poddisruptionbudgets",
    "namespaces",
)


def micro_now() -> str:
    """metav1.MicroTime now."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc_now() -> str:
    """metav1.Time now."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(obj: JSON, ctype: str) -> JSON | None:
    """The status condition of that type."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


def taints(node: JSON) -> set[tuple[str, str]]:
    """(key, effect) of every taint."""
    return {(t["key"], t["effect"]) for t in (node.get("spec") or {}).get("taints") or []}


class FakeKubelet:
    """Registers a node, heartbeats, runs its pods; `kill()` stops all of that at once."""

    _ips = itertools.count(1)

    def __init__(
        self,
        cluster: Cluster,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        cpu: str = "4",
        max_pods: int = 110,
        renew_every: float = 0.1,
    ) -> None:
        self.cluster = cluster
        self.store = cluster.store
        self.name = name
        self.labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            **(labels or {}),
        }
        self.cpu = cpu
        self.max_pods = max_pods
        self.renew_every = renew_every
        self.task: asyncio.Task[None] | None = None
        self.start_pods = True

    def register(self) -> None:
        """Create the Node (Ready) and its Lease, as a kubelet's first sync does."""
        now = rfc_now()
        conds = [
            {
                "type": t,
                "status": "False",
                "reason": f"KubeletHas{r}",
                "message": "",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
            for t, r in (
                ("MemoryPressure", "SufficientMemory"),
                ("DiskPressure", "NoDiskPressure"),
                ("PIDPressure", "SufficientPID"),
            )
        ]
        conds.append(
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
        )
        node = self.store.create(
            "nodes",
            None,
            {
                "metadata": {"name": self.name, "labels": dict(self.labels)},
                "spec": {},
            },
        )
        node["status"] = {
            "conditions": conds,
            "allocatable": {"cpu": self.cpu, "memory": "8Gi", "pods": str(self.max_pods)},
            "capacity": {"cpu": self.cpu, "memory": "8Gi", "pods": str(self.max_pods)},
        }
        node = self.store.update("nodes", None, self.name, node, subresource="status")
        self.store.create(
            "leases",
            "kube-node-lease",
            {
                "metadata": {
                    "name": self.name,
                    "ownerReferences": [
                        {
                            "apiVersion": "v1",
                            "kind": "Node",
                            "name": self.name,
                            "uid": node["metadata"]["uid"],
                        }
                    ],
                },
                "spec": {
                    "holderIdentity": self.name,
                    "leaseDurationSeconds": 40,
                    "renewTime": micro_now(),
                },
            },
        )

    def start(self) -> None:
        """Start heartbeating and running pods."""
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    def kill(self) -> None:
        """Stop at once (power loss): no more heartbeats, pods left as they are."""
        if self.task is not None:
            self.task.cancel()
            self.task = None

    def renew(self) -> None:
        """One Lease renewal, and Ready=True re-posted if the controller changed it."""
        with contextlib.suppress(ApiError):
            lease = self.store.get("leases", "kube-node-lease", self.name)
            lease["spec"]["renewTime"] = micro_now()
            self.store.update("leases", "kube-node-lease", self.name, lease)
        with contextlib.suppress(ApiError):
            node = self.store.get("nodes", None, self.name)
            ready = condition(node, "Ready")
            if ready is None or ready.get("status") != "True":
                now = rfc_now()
                for c in node["status"]["conditions"]:
                    c["lastHeartbeatTime"] = now
                    if c["type"] == "Ready":
                        c.update(
                            status="True",
                            reason="KubeletReady",
                            lastTransitionTime=now,
                            message="kubelet is posting ready status",
                        )
                    elif c["status"] != "False":
                        c.update(
                            status="False", lastTransitionTime=now, reason="KubeletHasNoPressure"
                        )
                self.store.update("nodes", None, self.name, node, subresource="status")

    async def _run(self) -> None:
        while True:
            self.renew()
            self.sync_pods()
            await asyncio.sleep(self.renew_every)

    def sync_pods(self) -> None:
        """Start pending pods, finish graceful deletions."""
        pods = self.store.list("pods", field_selector=f"spec.nodeName={self.name}")["items"]
        for pod in pods:
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            try:
                if pod["metadata"].get("deletionTimestamp"):
                    self.store.delete("pods", ns, name, grace_period_seconds=0)
                elif self.start_pods and pod["status"].get("phase") == "Pending":
                    self._start_pod(pod)
            except ApiError:
                continue

    def _start_pod(self, pod: JSON) -> None:
        now = rfc_now()
        n = next(self._ips)
        status = pod["status"]
        status.update(
            phase="Running",
            podIP=f"127.16.{n // 250}.{n % 250 + 1}",
            hostIP="127.1.0.1",
            startTime=now,
        )
        conds = [
            c
            for c in status.get("conditions") or []
            if c["type"] not in ("Initialized", "Ready", "ContainersReady")
        ]
        for t in ("Initialized", "ContainersReady", "Ready"):
            conds.append(
                {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
            )
        status["conditions"] = conds
        self.store.update(
            "pods", pod["metadata"]["namespace"], pod["metadata"]["name"], pod, subresource="status"
        )


class Cluster:
    """A Store with controllers on the running loop, plus kubelet stand-ins."""

    def __init__(self, profile: Profile = TEST_PROFILE, disabled: Iterable[str] = ()) -> None:
        self.profile = profile
        self.store = Store()
        self.kubelets: dict[str, FakeKubelet] = {}
        self.controllers = ControllerManager(self.store, profile)
        self.controllers.start(set(disabled))
        self.tasks = self.controllers.tasks()
        self._changed = asyncio.Event()
        for plural in WATCHED:
            self.store.subscribe(plural, self._on_change)

    def _on_change(self, event: WatchEvent) -> None:
        self._changed.set()

    def add_node(self, name: str, *, zone: str | None = None, **kwargs: Any) -> FakeKubelet:
        """Register a node and start its kubelet."""
        labels = dict(kwargs.pop("labels", None) or {})
        if zone is not None:
            labels["topology.kubernetes.io/zone"] = zone
            labels["topology.kubernetes.io/region"] = "r1"
        kubelet = FakeKubelet(self, name, labels=labels, **kwargs)
        kubelet.register()
        kubelet.start()
        self.kubelets[name] = kubelet
        return kubelet

    def kill_together(self, names: Iterable[str]) -> None:
        """Kill several nodes at the same instant, right after one last common heartbeat."""
        for name in names:
            self.kubelets[name].kill()
            self.kubelets[name].renew()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Wait until predicate() is truthy (checked on every store change and every 50ms)."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.05))

    async def hold(self, predicate: Callable[[], Any], seconds: float, what: str) -> None:
        """Assert predicate() stays truthy for `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert predicate(), f"{what} stopped holding"
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        """Stop kubelets and controllers."""
        for kubelet in self.kubelets.values():
            kubelet.kill()
        tasks = [*self.tasks, *self.controllers.tasks()]
        self.controllers.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- reading ----------------------------------------------------------------------------

    def node(self, name: str) -> JSON:
        """The node."""
        return self.store.get("nodes", None, name)

    def get_if(
        self, plural: str, namespace: str | None, name: str, pred: Callable[[JSON], Any]
    ) -> JSON | None:
        """The object when pred(object) holds, else None (also None when it is gone)."""
        try:
            obj = self.store.get(plural, namespace, name)
        except ApiError:
            return None
        return obj if pred(obj) else None

    def pods(self, namespace: str = "default", selector: str | None = None) -> list[JSON]:
        """Pods of a namespace, optionally with label `k=v`."""
        return labelled(self.store.list("pods", namespace)["items"], selector)

    def slices(self, service: str, namespace: str = "default") -> list[JSON]:
        """The EndpointSlices of a Service."""
        return labelled(
            self.store.list("endpointslices", namespace)["items"],
            f"kubernetes.io/service-name={service}",
        )

    def events(self, reason: str, name: str | None = None) -> list[JSON]:
        """Events with that reason (about the object called `name`)."""
        return [
            e
            for e in self.store.list("events")["items"]
            if e.get("reason") == reason
            and (name is None or e["involvedObject"].get("name") == name)
        ]

    # --- building ---------------------------------------------------------------------------

    def deployment(self, name: str, replicas: int, namespace: str = "default", **spec: Any) -> JSON:
        """Create a Deployment with a Service of the same name."""
        body = {
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": pod_template(name, spec.pop("pod_spec", None)),
                **spec,
            },
        }
        dep = self.store.create("deployments", namespace, body)
        self.service(name, namespace)
        return dep

    def statefulset(
        self, name: str, replicas: int, namespace: str = "default", **spec: Any
    ) -> JSON:
        """Create a StatefulSet with a Service of the same name."""
        body = {
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "serviceName": name,
                "selector": {"matchLabels": {"app": name}},
                "template": pod_template(name, None),
                **spec,
            },
        }
        sts = self.store.create("statefulsets", namespace, body)
        self.service(name, namespace)
        return sts

    def service(self, name: str, namespace: str = "default") -> JSON:
        """A ClusterIP Service selecting app=name."""
        with contextlib.suppress(ApiError):
            return self.store.get("services", namespace, name)
        return self.store.create(
            "services",
            namespace,
            {
                "metadata": {"name": name},
                "spec": {
                    "selector": {"app": name},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                },
            },
        )


def labelled(items: list[JSON], selector: str | None) -> list[JSON]:
    """Items carrying label `k=v` (filtered here so these tests exercise only the controllers)."""
    if selector is None:
        return list(items)
    k, v = selector.split("=", 1)
    return [i for i in items if (i["metadata"].get("labels") or {}).get(k) == v]


def pod_template(app: str, pod_spec: JSON | None) -> JSON:
    """A pod template labelled app=<app> with one container on port 8080."""
    spec = {
        "terminationGracePeriodSeconds": 1,
        "containers": [
            {
                "name": "c",
                "image": "k8sdr/pod:1",
                "ports": [{"containerPort": 8080}],
                "resources": {"requests": {"cpu": "100m"}},
            }
        ],
    }
    spec.update(pod_spec or {})
    return {"metadata": {"labels": {"app": app}}, "spec": spec}


def run(
    scenario: Callable[[Cluster], Any],
    *,
    profile: Profile = TEST_PROFILE,
    disabled: Iterable[str] = (),
    timeout: float = 60.0,
) -> None:
    """Run an async scenario against a fresh cluster, always closing it."""

    async def main() -> None:
        cluster = Cluster(profile, disabled)
        try:
            await asyncio.wait_for(scenario(cluster), timeout)
        finally:
            await cluster.close()

    asyncio.run(main())


def ready_pods(c: Cluster, selector: str, n: int, avoid: str | None = None) -> list[JSON]:
    """Exactly n live Ready pods with label `selector` (none on node `avoid`), else []."""
    pods = [
        p
        for p in c.pods(selector=selector)
        if not p["metadata"].get("deletionTimestamp")
        and (condition(p, "Ready") or {}).get("status") == "True"
        and p["spec"].get("nodeName") != avoid
    ]
    return pods if len(pods) == n else []
