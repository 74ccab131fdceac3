"""Peers' tools against a simulated cluster with nodes: kr8s and chaostoolkit-kubernetes.

chaostoolkit-kubernetes reads the cluster from KUBECONFIG (its `secrets` may name a context),
which the official client reads once, at import; so each action runs as `chaos run` runs it,
in a process started with KUBECONFIG pointing at the simulator. Its node actions cordon, drain
(Eviction API) and delete the simulated nodes, its pod actions and probes act on a
Deployment's pods.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import kr8s
import pytest
from kr8s.objects import ConfigMap, Deployment
from kubernetes import client

from pytest_k8sdr.sim.launcher import SimCluster

_ACTIVITY = """
import importlib, json, sys
module, func, kwargs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
result = getattr(importlib.import_module(module), func)(secrets={}, **kwargs)
print(json.dumps(result))
"""


@pytest.fixture
def chaos(full_cluster: SimCluster) -> Callable[..., Any]:
    """Run one chaostoolkit-kubernetes activity ("chaosk8s.node.actions.drain_nodes", ...)."""

    def activity(path: str, expect_error: str = "", **kwargs: Any) -> Any:
        module, func = path.rsplit(".", 1)
        env = {**os.environ, "KUBECONFIG": str(full_cluster.kubeconfig_path)}
        proc = subprocess.run(
            [sys.executable, "-c", _ACTIVITY, module, func, json.dumps(kwargs)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if expect_error:
            assert proc.returncode != 0, proc.stdout
            assert expect_error in proc.stderr, proc.stderr[-3000:]
            return None
        assert proc.returncode == 0, f"{path}({kwargs}) failed: {proc.stderr[-3000:]}"
        return json.loads(proc.stdout.strip().splitlines()[-1])

    return activity


def _until(what: str, fn: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)
    return value


def _web(name: str, ns: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 8080}]}
                    ],
                },
            },
        },
    }


def _ready_pods(core: client.CoreV1Api, ns: str, app: str, n: int) -> list[Any]:
    pods = [
        p
        for p in core.list_namespaced_pod(ns, label_selector=f"app={app}").items
        if p.metadata.deletion_timestamp is None and p.status.phase == "Running"
    ]
    return pods if len(pods) == n else []


@pytest.mark.timeout(120)
def test_kr8s_crud_list_watch_and_scale(full_cluster: SimCluster, full_ns: str) -> None:
    api = kr8s.api(kubeconfig=str(full_cluster.kubeconfig_path))
    cm = ConfigMap({"metadata": {"name": "k", "namespace": full_ns}, "data": {"a": "1"}}, api=api)
    cm.create()
    assert ConfigMap.get("k", namespace=full_ns, api=api).raw["data"] == {"a": "1"}
    cm.patch({"data": {"b": "2"}})
    cm.refresh()
    assert cm.raw["data"] == {"a": "1", "b": "2"}
    # Every namespace also holds kube-root-ca.crt (the root CA publisher's).
    assert sorted(o.name for o in api.get("configmaps", namespace=full_ns)) == [
        "k",
        "kube-root-ca.crt",
    ]
    for event, obj in api.watch("configmaps", namespace=full_ns):
        if obj.name == "k":
            assert event == "ADDED"
            assert obj.raw["data"] == {"a": "1", "b": "2"}
            break
    dep = Deployment(_web("kweb", full_ns, 1), api=api)
    dep.create()
    dep.scale(3)
    dep.refresh()
    assert dep.replicas == 3
    _until(
        "3 pods",
        lambda: len(list(api.get("pods", namespace=full_ns, label_selector="app=kweb"))) == 3,
    )
    cm.delete()
    _until("configmap gone", lambda: not cm.exists())


@pytest.mark.timeout(120)
def test_chaostoolkit_pod_actions_and_probes(
    full_core: client.CoreV1Api, full_ns: str, chaos: Callable[..., Any]
) -> None:
    apps = client.AppsV1Api(full_core.api_client)
    apps.create_namespaced_deployment(full_ns, _web("chaos", full_ns, 3))
    before = _until("3 running", lambda: _ready_pods(full_core, full_ns, "chaos", 3))
    assert (
        chaos("chaosk8s.pod.probes.pods_in_phase", label_selector="app=chaos", ns=full_ns) is True
    )
    assert (
        chaos(
            "chaosk8s.pod.probes.count_pods",
            label_selector="app=chaos",
            phase="Running",
            ns=full_ns,
        )
        == 3
    )
    chaos(
        "chaosk8s.pod.actions.terminate_pods",
        label_selector="app=chaos",
        ns=full_ns,
        grace_period=0,
    )
    names = {p.metadata.name for p in before}
    after = _until(
        "a replacement",
        lambda: (
            (pods := _ready_pods(full_core, full_ns, "chaos", 3))
            and len(names & {p.metadata.name for p in pods}) == 2
            and pods
        ),
    )
    assert len(after) == 3


@pytest.mark.timeout(120)
def test_kubectl_drain_dry_run_server_changes_nothing(
    full_cluster: SimCluster, full_core: client.CoreV1Api, full_ns: str
) -> None:
    apps = client.AppsV1Api(full_core.api_client)
    apps.create_namespaced_deployment(full_ns, _web("kept", full_ns, 2))
    pods = _until("2 running", lambda: _ready_pods(full_core, full_ns, "kept", 2))
    node = pods[0].spec.node_name
    proc = subprocess.run(
        [
            "/usr/bin/kubectl",
            "--kubeconfig",
            str(full_cluster.kubeconfig_path),
            "drain",
            node,
            "--dry-run=server",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # kubectl sends each eviction (and the cordon) with dryRun=All.
    assert f"evicting pod {full_ns}/{pods[0].metadata.name} (server dry run)" in proc.stdout or (
        f"evicting pod {full_ns}/{pods[1].metadata.name} (server dry run)" in proc.stdout
    ), proc.stdout + proc.stderr
    assert f"node/{node} drained (server dry run)" in proc.stdout
    assert not full_core.read_node(node).spec.unschedulable
    now = full_core.list_namespaced_pod(full_ns, label_selector="app=kept").items
    assert {p.metadata.uid for p in now} == {p.metadata.uid for p in pods}
    assert all(p.metadata.deletion_timestamp is None for p in now)


@pytest.mark.timeout(180)
def test_chaostoolkit_node_actions(
    full_core: client.CoreV1Api, full_ns: str, chaos: Callable[..., Any]
) -> None:
    apps = client.AppsV1Api(full_core.api_client)
    apps.create_namespaced_deployment(full_ns, _web("drained", full_ns, 4))
    pods = _until("4 running", lambda: _ready_pods(full_core, full_ns, "drained", 4))
    victim = pods[0].spec.node_name
    chaos("chaosk8s.node.actions.cordon_node", name=victim)
    assert full_core.read_node(victim).spec.unschedulable is True
    chaos("chaosk8s.node.actions.uncordon_node", name=victim)
    assert not full_core.read_node(victim).spec.unschedulable
    # Iterates every pod's spec.volumes (each pod has its kube-api-access volume), evicts.
    chaos(
        "chaosk8s.node.actions.drain_nodes",
        name=victim,
        delete_pods_with_local_storage=True,
        timeout=60,
    )
    assert full_core.read_node(victim).spec.unschedulable is True
    moved = _until("4 pods elsewhere", lambda: _ready_pods(full_core, full_ns, "drained", 4))
    assert all(p.spec.node_name != victim for p in moved)
    # delete_nodes deletes the Node, then reads `.status` of what delete_node returned: the
    # official client >= 32 returns a dict there (its delete methods are typed `object`), so
    # chaostoolkit-kubernetes 0.39 raises after the delete, against any cluster.
    chaos(
        "chaosk8s.node.actions.delete_nodes",
        label_selector=f"kubernetes.io/hostname={victim}",
        expect_error="'dict' object has no attribute 'status'",
    )
    _until(
        "node gone",
        lambda: victim not in {n.metadata.name for n in full_core.list_node().items},
    )
