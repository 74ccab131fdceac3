"""kubectl itself against the simulated API server, verb by verb."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from simapi_support import node_body

from pytest_k8sdr.sim.launcher import SimCluster

Kubectl = Callable[..., Any]

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{containerPort: 80}]
"""


def _json(kubectl: Kubectl, *args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json").stdout)


def test_apply_create_get_describe_delete(kubectl: Kubectl, sim_ns: str) -> None:
    out = kubectl("apply", "-n", sim_ns, "-f", "-", stdin=DEPLOYMENT).stdout
    assert "deployment.apps/web created" in out
    assert "unchanged" in kubectl("apply", "-n", sim_ns, "-f", "-", stdin=DEPLOYMENT).stdout
    changed = DEPLOYMENT.replace("replicas: 2", "replicas: 3")
    assert "configured" in kubectl("apply", "-n", sim_ns, "-f", "-", stdin=changed).stdout
    dep = _json(kubectl, "get", "deploy", "web", "-n", sim_ns)
    assert dep["spec"]["replicas"] == 3
    assert dep["metadata"]["generation"] == 2
    table = kubectl("get", "deploy", "-n", sim_ns).stdout
    assert table.split()[:5] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert "web" in table
    described = kubectl("describe", "deploy", "web", "-n", sim_ns).stdout
    assert "Replicas:" in described
    assert "3 desired" in described
    created = kubectl(
        "create",
        "-n",
        sim_ns,
        "-f",
        "-",
        stdin=DEPLOYMENT.replace("name: web\n", "name: web2\n", 1),
    )
    assert "deployment.apps/web2 created" in created.stdout
    again = kubectl("create", "-n", sim_ns, "-f", "-", stdin=DEPLOYMENT, check=False)
    assert again.returncode != 0
    assert "AlreadyExists" in again.stderr
    assert (
        'deployment.apps "web" deleted' in kubectl("delete", "deploy", "web", "-n", sim_ns).stdout
    )
    missing = kubectl("get", "deploy", "web", "-n", sim_ns, check=False)
    assert missing.returncode != 0
    assert 'deployments.apps "web" not found' in missing.stderr


def test_create_generators_send_protobuf(kubectl: Kubectl, sim_ns: str) -> None:
    kubectl("create", "configmap", "cm", "--from-literal=a=b", "-n", sim_ns)
    assert _json(kubectl, "get", "cm", "cm", "-n", sim_ns)["data"] == {"a": "b"}
    kubectl(
        "create", "deployment", "gen", "--image=nginx:1", "--replicas=2", "--port=80", "-n", sim_ns
    )
    dep = _json(kubectl, "get", "deploy", "gen", "-n", sim_ns)
    assert dep["spec"]["replicas"] == 2
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1"
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    kubectl("create", "namespace", f"{sim_ns}-x")
    assert _json(kubectl, "get", "ns", f"{sim_ns}-x")["status"]["phase"] == "Active"


def test_label_annotate_scale(kubectl: Kubectl, sim_ns: str) -> None:
    kubectl("apply", "-n", sim_ns, "-f", "-", stdin=DEPLOYMENT)
    kubectl("label", "deploy", "web", "tier=front", "-n", sim_ns)
    kubectl("annotate", "deploy", "web", "note=hi", "-n", sim_ns)
    dep = _json(kubectl, "get", "deploy", "web", "-n", sim_ns)
    assert dep["metadata"]["labels"]["tier"] == "front"
    assert dep["metadata"]["annotations"]["note"] == "hi"
    kubectl("label", "deploy", "web", "tier-", "-n", sim_ns)
    assert "tier" not in _json(kubectl, "get", "deploy", "web", "-n", sim_ns)["metadata"]["labels"]
    assert "scaled" in kubectl("scale", "deploy", "web", "--replicas=5", "-n", sim_ns).stdout
    assert _json(kubectl, "get", "deploy", "web", "-n", sim_ns)["spec"]["replicas"] == 5
    names = kubectl("get", "deploy", "-n", sim_ns, "-l", "app=web", "-o", "name").stdout.split()
    assert names == ["deployment.apps/web"]


def test_taint_cordon_uncordon_drain(kubectl: Kubectl, core: client.CoreV1Api, sim_ns: str) -> None:
    node = f"node-{sim_ns}"
    core.create_node(node_body(node))
    kubectl("taint", "node", node, "dedicated=db:NoSchedule")
    assert core.read_node(node).spec.taints[0].key == "dedicated"
    kubectl("taint", "node", node, "dedicated=db:NoSchedule-")
    assert not core.read_node(node).spec.taints
    kubectl("cordon", node)
    assert core.read_node(node).spec.unschedulable is True
    assert "SchedulingDisabled" in kubectl("get", "node", node).stdout
    kubectl("uncordon", node)
    assert not core.read_node(node).spec.unschedulable
    for name in ("a", "b"):
        core.create_namespaced_pod(
            sim_ns,
            {
                "metadata": {"name": name},
                "spec": {
                    "nodeName": node,
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "c", "image": "nginx:1"}],
                },
            },
        )
    out = kubectl("drain", node, "--force", "--timeout=20s")
    assert "node/" + node + " drained" in out.stdout
    assert core.read_node(node).spec.unschedulable is True
    assert core.list_namespaced_pod(sim_ns, field_selector=f"spec.nodeName={node}").items == []
    # --disable-eviction deletes instead: a protobuf DeleteOptions body.
    kubectl("uncordon", node)
    core.create_namespaced_pod(
        sim_ns,
        {
            "metadata": {"name": "c"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx:1"}]},
        },
    )
    out = kubectl(
        "drain", node, "--force", "--disable-eviction", "--grace-period=0", "--timeout=20s"
    )
    assert "pod/c deleted" in out.stdout, out.stdout
    assert core.list_namespaced_pod(sim_ns, field_selector=f"spec.nodeName={node}").items == []
    core.delete_node(node)


def test_wait_and_rollout_status(
    kubectl: Kubectl, apps: client.AppsV1Api, sim_api: SimCluster, sim_ns: str
) -> None:
    kubectl("apply", "-n", sim_ns, "-f", "-", stdin=DEPLOYMENT)
    # No controllers run here: report the rollout as a deployment controller would.
    apps.patch_namespaced_deployment_status(
        "web",
        sim_ns,
        {
            "status": {
                "observedGeneration": 1,
                "replicas": 2,
                "updatedReplicas": 2,
                "readyReplicas": 2,
                "availableReplicas": 2,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}
                ],
            }
        },
    )
    out = kubectl("rollout", "status", "deployment/web", "-n", sim_ns, "--timeout=10s")
    assert "successfully rolled out" in out.stdout
    waited = kubectl(
        "wait", "--for=condition=Available", "deploy/web", "-n", sim_ns, "--timeout=10s"
    )
    assert "condition met" in waited.stdout
    kubectl("create", "configmap", "gone", "-n", sim_ns)
    waiter = subprocess.Popen(
        [
            "/usr/bin/kubectl",
            "--kubeconfig",
            str(sim_api.kubeconfig_path),
            "wait",
            "--for=delete",
            "configmap/gone",
            "-n",
            sim_ns,
            "--timeout=20s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    kubectl("delete", "configmap", "gone", "-n", sim_ns)
    out_text, err_text = waiter.communicate(timeout=20)
    assert waiter.returncode == 0, err_text
    # kubectl prints "condition met" when it saw the delete, nothing when it came too late.
    assert out_text in ("", "configmap/gone condition met\n")


def test_get_watch_streams_changes(kubectl: Kubectl, sim_api: SimCluster, sim_ns: str) -> None:
    kubectl("create", "configmap", "first", "-n", sim_ns)
    proc = subprocess.Popen(
        [
            "/usr/bin/kubectl",
            "--kubeconfig",
            str(sim_api.kubeconfig_path),
            "get",
            "configmaps",
            "-n",
            sim_ns,
            "--watch",
            "--request-timeout=8s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        header = proc.stdout.readline()
        assert header.split()[:2] == ["NAME", "DATA"] or header.split()[0] == "NAME"
        assert proc.stdout.readline().split()[0] == "first"
        kubectl("create", "configmap", "second", "-n", sim_ns)
        assert proc.stdout.readline().split()[0] == "second"
    finally:
        proc.kill()
        proc.communicate()


def test_errors_reach_kubectl(kubectl: Kubectl, sim_ns: str) -> None:
    bad = kubectl("get", "pods", "-n", sim_ns, "--field-selector", "spec.nope=1", check=False)
    assert bad.returncode != 0
    assert "field label not supported" in bad.stderr
    gone = kubectl("delete", "pod", "ghost", "-n", sim_ns, check=False)
    assert gone.returncode != 0
    assert 'pods "ghost" not found' in gone.stderr


@pytest.mark.parametrize(
    "resource",
    [
        "pods",
        "nodes",
        "services",
        "endpointslices",
        "leases",
        "pdb",
        "sts",
        "ds",
        "events",
        "sa",
        "secrets",
        "ep",
    ],
)
def test_get_every_served_resource(kubectl: Kubectl, resource: str) -> None:
    assert kubectl("get", resource, "-A").returncode == 0
