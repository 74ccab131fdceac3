"""The hollow agent at scale: slimmed pod objects, bounded sync passes, many pods at once."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from typing import Any

import pytest

from pytest_k8sdr.sim.node import podstatus
from pytest_k8sdr.sim.node.nodespec import NodeSpec
from pytest_k8sdr.sim.node.podstatus import pod_signature, pod_status
from pytest_k8sdr.sim.node.podworkers import PassLimiter
from pytest_k8sdr.sim.node.slim import SHUTDOWN_ANNOTATION, slim_node, slim_pod
from tests.sim.agent.agentsim import JSON_HEADERS, Server, is_ready, make_pod, wait_for


def _full_pod() -> dict[str, Any]:
    """A pod as the API returns it after a kubelet reported it Running, with extra fields."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-1",
            "namespace": "default",
            "uid": "0123456789abcdef-uid",
            "resourceVersion": "42",
            "labels": {"app": "web"},
            "annotations": {SHUTDOWN_ANNOTATION: "2", "other": "x" * 500},
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
            "deletionTimestamp": "2026-11-24T21:00:05Z",
            "deletionGracePeriodSeconds": 5,
        },
        "spec": {
            "nodeName": "n1",
            "terminationGracePeriodSeconds": 5,
            "volumes": [{"name": "v", "emptyDir": {}}],
            "containers": [
                {
                    "name": "web",
                    "image": "sim",
                    "env": [{"name": "A", "value": "b"}],
                    "ports": [{"containerPort": 8080}, {"containerPort": 53, "protocol": "UDP"}],
                },
                {"name": "side", "image": "sim2"},
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": "127.16.1.7",
            "podIPs": [{"ip": "127.16.1.7"}],
            "hostIP": "127.1.0.2",
            "startTime": "2026-11-24T20:59:00Z",
            "qosClass": "BestEffort",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "lastTransitionTime": "2026-11-24T20:59:01Z",
                    "lastProbeTime": None,
                },
                {
                    "type": "ContainersReady",
                    "status": "False",
                    "reason": "ContainersNotReady",
                    "message": "containers with unready status: [web side]",
                    "lastTransitionTime": "2026-11-24T20:59:00Z",
                },
            ],
            "containerStatuses": [
                {
                    "name": "web",
                    "ready": True,
                    "image": "sim",
                    "state": {"running": {"startedAt": "2026-11-24T20:59:01Z"}},
                },
                {
                    "name": "side",
                    "ready": False,
                    "image": "sim2",
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "startedAt": "2026-11-24T20:59:02Z",
                            "finishedAt": "2026-11-24T20:59:03Z",
                        }
                    },
                },
            ],
        },
    }


def test_slim_pod_yields_the_same_kubelet_status_as_the_full_object(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(podstatus, "rfc3339", lambda ts=None: "2026-11-24T21:00:00Z")
    spec = NodeSpec("n1", "127.1.0.2", "127.16.1.0/24")
    full = _full_pod()
    slim = slim_pod(full)
    for state in ("pending", "running", "down", "terminated"):
        assert pod_status(spec, slim, "127.16.1.7", state) == pod_status(
            spec, full, "127.16.1.7", state
        ), state
    assert pod_signature(slim["status"]) == pod_signature(full["status"])
    meta = slim["metadata"]
    # What the lifecycle reads survives; labels, managed fields, other annotations do not.
    assert meta["deletionTimestamp"] == "2026-11-24T21:00:05Z"
    assert meta["deletionGracePeriodSeconds"] == 5
    assert meta["annotations"] == {SHUTDOWN_ANNOTATION: "2"}
    assert meta["resourceVersion"] == "42"
    assert "labels" not in meta
    assert "managedFields" not in meta
    assert "volumes" not in slim["spec"]
    assert "env" not in slim["spec"]["containers"][0]
    assert slim["spec"]["containers"][0]["ports"] == [
        {"containerPort": 8080, "protocol": "TCP"},
        {"containerPort": 53, "protocol": "UDP"},
    ]


def test_slim_node_keeps_identity_and_compared_status() -> None:
    node = {
        "metadata": {"name": "n1", "uid": "u1", "resourceVersion": "7", "labels": {"a": "b"}},
        "spec": {"podCIDR": "127.16.1.0/24"},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "addresses": [{"type": "InternalIP", "address": "127.1.0.2"}],
            "allocatable": {"pods": "110"},
            "capacity": {"pods": "110"},
            "nodeInfo": {"bootID": "b"},
            "images": [{"names": ["x"] * 50}],
        },
    }
    slim = slim_node(node)
    assert slim["metadata"] == {"name": "n1", "uid": "u1", "resourceVersion": "7"}
    assert slim["status"]["conditions"][0]["reason"] == "KubeletReady"
    assert slim["status"]["nodeInfo"] == {"bootID": "b"}
    assert "images" not in slim["status"]
    assert "spec" not in slim


def test_pass_limiter_bounds_concurrent_passes_and_skips_stale_ones() -> None:
    async def scenario() -> tuple[int, list[int]]:
        limiter = PassLimiter(3)
        active = 0
        peak = 0
        ran: list[int] = []
        tasks: list[asyncio.Task[None]] = []

        async def run(i: int) -> None:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.01)
            active -= 1
            ran.append(i)

        def starter(i: int) -> Any:
            def start() -> bool:
                if i % 4 == 0:
                    return False  # stale: must not hold a slot
                task = asyncio.create_task(run(i))
                task.add_done_callback(lambda _: limiter.release())
                tasks.append(task)
                return True

            return start

        for i in range(20):
            limiter.submit(starter(i))
        while len(ran) < 15:
            await asyncio.sleep(0.01)
        assert limiter.active == 0
        return peak, ran

    peak, ran = asyncio.run(scenario())
    assert peak == 3
    assert sorted(ran) == [i for i in range(20) if i % 4]
    with pytest.raises(ValueError, match="limit"):
        PassLimiter(0)


def test_hollow_agent_runs_and_deletes_many_pods(sim_server: Server, make_agent: Any) -> None:
    nodes, per_node = 4, 40
    agent = make_agent(hollow=nodes)
    names = [f"{agent.name}-{i}" for i in range(nodes)]
    for name in names:
        wait_for(sim_server.core.list_node, is_ready, field_selector=f"metadata.name={name}")
    label = f"scale={agent.name}"
    for node in names:
        for i in range(per_node):
            body = make_pod(f"{node}-p{i}", node, grace=2)
            body["metadata"]["labels"] = {"scale": agent.name}
            sim_server.core.create_namespaced_pod("default", body, _headers=dict(JSON_HEADERS))

    def all_ready() -> list[Any]:
        pods = sim_server.core.list_namespaced_pod("default", label_selector=label).items
        ready = [
            p
            for p in pods
            if p.status.phase == "Running"
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        ]
        return ready if len(ready) == nodes * per_node else []

    deadline = time.monotonic() + 30
    while not (ready := all_ready()):
        assert time.monotonic() < deadline, "hollow pods not all Running and Ready in 30s"
        time.sleep(0.5)
    cidrs = {n: ipaddress.ip_network(sim_server.core.read_node(n).spec.pod_cidr) for n in names}
    by_node: dict[str, set[str]] = {n: set() for n in names}
    for pod in ready:
        assert ipaddress.ip_address(pod.status.pod_ip) in cidrs[pod.spec.node_name]
        by_node[pod.spec.node_name].add(pod.status.pod_ip)
    assert all(len(ips) == per_node for ips in by_node.values())  # no IP given twice
    state = agent.ctl("status")
    assert sum(n["runningPods"] for n in state["nodes"]) == nodes * per_node

    # Graceful delete: the kubelets report the containers terminated and make the final delete.
    sim_server.core.delete_collection_namespaced_pod(
        "default", label_selector=label, _headers=dict(JSON_HEADERS)
    )
    deadline = time.monotonic() + 30
    while sim_server.core.list_namespaced_pod("default", label_selector=label).items:
        assert time.monotonic() < deadline, "hollow pods not deleted by their kubelets in 30s"
        time.sleep(0.5)
    state = agent.ctl("status")
    assert sum(n["runningPods"] for n in state["nodes"]) == 0
    assert sum(n["pods"] for n in state["nodes"]) == 0
