"""Test workloads that work on every backend: a Deployment or StatefulSet behind a NodePort.

The pods run a tiny HTTP server that says who answered (pod, namespace, node), the same
contract the simulator's pods follow, so a traffic probe can tell which node served a request.
On the simulator the image is never pulled; on kind and staging it must be pullable.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_k8sdr.cluster import JSON, Cluster, PodView, Snapshot
from pytest_k8sdr.errors import ConfigError, NotFound
from pytest_k8sdr.results import Result, Satisfied

DEFAULT_IMAGE = "python:3.12-alpine"
CONTAINER_PORT = 8080
# The volumeClaimTemplate of a StatefulSet made with `storage_class`: claims `data-<pod>`.
CLAIM_TEMPLATE = "data"

# Answers every GET with who served it: the pod HTTP contract shared with the simulator.
SERVER_SCRIPT = """
import http.server, json, os
ENV = ("POD_NAME", "POD_NAMESPACE", "NODE_NAME", "POD_IP")
POD, NS, NODE, IP = (os.environ.get(k, "") for k in ENV)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"pod": POD, "namespace": NS, "node": NODE, "podIP": IP}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-K8sdr-Pod", NS + "/" + POD)
        self.send_header("X-K8sdr-Node", NODE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", 8080), H).serve_forever()
"""


def _ready(pod: PodView) -> bool:
    return pod.ready and not pod.deleting and pod.phase == "Running"


def _downward_env() -> list[JSON]:
    fields = {
        "POD_NAME": "metadata.name",
        "POD_NAMESPACE": "metadata.namespace",
        "NODE_NAME": "spec.nodeName",
        "POD_IP": "status.podIP",
    }
    return [{"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in fields.items()]


def pod_template(
    app: str,
    *,
    image: str = DEFAULT_IMAGE,
    termination_grace_period: int = 2,
    labels: Mapping[str, str] | None = None,
    spread: bool = True,
) -> JSON:
    """A pod template serving the pod HTTP contract on port 8080."""
    pod_labels = {"app": app, **(labels or {})}
    spec: JSON = {
        "terminationGracePeriodSeconds": termination_grace_period,
        "containers": [
            {
                "name": "web",
                "image": image,
                "command": ["python", "-c", SERVER_SCRIPT],
                "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
                "env": _downward_env(),
                "readinessProbe": {
                    "httpGet": {"path": "/", "port": CONTAINER_PORT},
                    "periodSeconds": 1,
                },
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            }
        ],
    }
    if spread:
        # Soft spread so replicas land on every node without ever blocking scheduling.
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app": app}},
            }
        ]
    return {"metadata": {"labels": pod_labels}, "spec": spec}


@dataclass
class Workload:
    """A deployed workload: its kind, name, namespace, selector and (optional) Service.

    `port` is where its pods answer on their own address; `history` is the pod history last
    recorded around it (`pod_history(workload)`), which the history checks read (the checks
    sit above workloads, so a workload only holds it).
    """

    cluster: Cluster
    kind: str  # "Deployment" | "StatefulSet" | "DaemonSet"
    name: str
    namespace: str
    replicas: int
    service: str | None = None
    node_port: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    port: int = CONTAINER_PORT
    history: object = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    @property
    def selector(self) -> str:
        """The label selector of its pods."""
        return ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))

    def pods(self) -> list[PodView]:
        """Its pods, including terminating ones."""
        return self.cluster.pods(self.namespace, label_selector=self.selector)

    def placement(self) -> dict[str, int]:
        """How many live (not terminating) pods run on each node."""
        counts: collections.Counter[str] = collections.Counter(
            p.node or "<unscheduled>" for p in self.pods() if not p.deleting
        )
        return dict(counts)

    def nodes(self) -> set[str]:
        """The nodes its live pods run on."""
        return {n for n in self.placement() if n != "<unscheduled>"}

    def busiest_node(self, *, exclude: set[str] | None = None) -> str:
        """The node running most of its pods (ties broken by name)."""
        placement = {
            n: c
            for n, c in self.placement().items()
            if n != "<unscheduled>" and n not in (exclude or set())
        }
        if not placement:
            raise NotFound(f"{self} has no scheduled pods: no node to pick")
        return sorted(placement.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]

    def wait_ready(self, *, timeout: float | None = None) -> Result[list[PodView]]:
        """Wait until `replicas` pods are Running, Ready and not terminating (0 holds at once)."""

        def ready(s: Snapshot[PodView]) -> Satisfied[list[PodView]] | None:
            live = [p for p in s.values() if _ready(p)]
            if len(live) < self.replicas:
                return None
            return Satisfied(live, f"{len(live)} Ready replicas of {self}")

        def explain(s: Snapshot[PodView]) -> str:
            pods = sorted(s.values(), key=lambda p: p.key)
            lines = [f"  {p.describe()}" for p in pods] or ["  (no pods)"]
            return f"want {self.replicas} Ready replicas; pods now:\n" + "\n".join(lines)

        return self.cluster.wait(
            "pods",
            ready,
            timeout=timeout,
            description=f"{self} to have {self.replicas} Ready replicas",
            namespace=self.namespace,
            label_selector=self.selector,
            project=PodView.slim,
            explain=explain,
            count=lambda s: (sum(1 for o in s.values() if _ready(o)), self.replicas),
        )


@dataclass(frozen=True)
class DisruptionBudget:
    """A PodDisruptionBudget guarding a workload's pods."""

    name: str
    namespace: str
    min_available: int | str | None
    max_unavailable: int | str | None


def create_pdb(
    workload: Workload,
    *,
    min_available: int | str | None = None,
    max_unavailable: int | str | None = None,
    name: str | None = None,
) -> DisruptionBudget:
    """Create a PodDisruptionBudget over the workload's pods (exactly one of the two bounds)."""
    if (min_available is None) == (max_unavailable is None):
        raise ConfigError(
            f"a PodDisruptionBudget for {workload} needs exactly one of min_available and "
            f"max_unavailable (got {min_available!r} and {max_unavailable!r})"
        )
    budget = DisruptionBudget(
        name or workload.name, workload.namespace, min_available, max_unavailable
    )
    spec: JSON = {"selector": {"matchLabels": dict(workload.labels)}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    else:
        spec["maxUnavailable"] = max_unavailable
    cluster = workload.cluster
    cluster.call(
        cluster.policy.create_namespaced_pod_disruption_budget,
        workload.namespace,
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": budget.name, "namespace": budget.namespace},
            "spec": spec,
        },
        _preload_content=False,
    )
    return budget


def delete_pdb(cluster: Cluster, budget: DisruptionBudget) -> None:
    """Delete a PodDisruptionBudget; one already gone (with its namespace) is no error."""
    with contextlib.suppress(NotFound):
        cluster.call(
            cluster.policy.delete_namespaced_pod_disruption_budget,
            budget.name,
            budget.namespace,
            _preload_content=False,
        )


def deploy(
    cluster: Cluster,
    namespace: str,
    name: str,
    *,
    kind: str = "Deployment",
    replicas: int = 3,
    service: str | None = "NodePort",
    image: str = DEFAULT_IMAGE,
    labels: Mapping[str, str] | None = None,
    termination_grace_period: int = 2,
    pod_management_policy: str = "Parallel",
    storage_class: str | None = None,
    storage_size: str = "1Gi",
    wait: bool = True,
    timeout: float | None = None,
) -> Workload:
    """Create a workload (and a Service of type `service`, or none) and wait until it is Ready.

    `storage_class` gives a StatefulSet a claim per replica (`data-<pod>`, `storage_size`,
    ReadWriteOnce, mounted at /data) of that StorageClass, through `volumeClaimTemplates`.
    """
    if kind not in ("Deployment", "StatefulSet", "DaemonSet"):
        raise ConfigError(f"unknown workload kind {kind!r}: Deployment, StatefulSet or DaemonSet")
    if storage_class is not None and kind != "StatefulSet":
        raise ConfigError(
            f"storage_class={storage_class!r} needs kind='StatefulSet' (a claim per replica "
            f"from volumeClaimTemplates), not {kind!r}"
        )
    template = pod_template(
        name, image=image, labels=labels, termination_grace_period=termination_grace_period
    )
    pod_labels = dict(template["metadata"]["labels"])
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": name}}, "template": template}
    if kind != "DaemonSet":
        spec["replicas"] = replicas
    if kind == "StatefulSet":
        spec["serviceName"] = name
        spec["podManagementPolicy"] = pod_management_policy
    if storage_class is not None:
        template["spec"]["containers"][0]["volumeMounts"] = [
            {"name": CLAIM_TEMPLATE, "mountPath": "/data"}
        ]
        spec["volumeClaimTemplates"] = [
            {
                "metadata": {"name": CLAIM_TEMPLATE},
                "spec": {
                    "storageClassName": storage_class,
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": storage_size}},
                },
            }
        ]
    body = {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": spec,
    }
    create = {
        "Deployment": cluster.apps.create_namespaced_deployment,
        "StatefulSet": cluster.apps.create_namespaced_stateful_set,
        "DaemonSet": cluster.apps.create_namespaced_daemon_set,
    }[kind]
    cluster.call(create, namespace, body, _preload_content=False)
    workload = Workload(cluster, kind, name, namespace, replicas, labels=pod_labels)
    if service:
        svc_spec: JSON = {
            "type": service,
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": CONTAINER_PORT}],
        }
        svc = cluster.call(
            cluster.core.create_namespaced_service,
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": namespace},
                "spec": svc_spec,
            },
        )
        workload.service = name
        ports = svc.spec.ports or []
        workload.node_port = ports[0].node_port if ports else None
    if kind == "DaemonSet":
        workload.replicas = sum(
            1 for n in cluster.nodes() if not any(t.effect == "NoSchedule" for t in n.taints)
        )
    if wait:
        workload.wait_ready(timeout=timeout)
    return workload
