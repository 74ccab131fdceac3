"""Kubelet probes on a whole simulated cluster: readiness, liveness, startup, and pod faults.

One cluster (two workers, every controller) for the module; each test has its own namespace.
NodePort traffic goes through the node agents' kube-proxy, which is what an external load
balancer in front of the nodes forwards to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from pytest_k8sdr.sim.launcher import SimCluster
from tests.sim.agent.agentsim import http_get, pod_ready, wait_for

TIMEOUT = 30.0


@pytest.fixture(scope="module")
def discovery(full_cluster: SimCluster, full_core: client.CoreV1Api) -> client.DiscoveryV1Api:
    return client.DiscoveryV1Api(full_core.api_client)


@pytest.fixture
def faults(full_cluster: SimCluster) -> Iterator[Callable[[str, str, str, str], None]]:
    """Set a pod fault; every fault set is cleared at teardown."""
    made: list[tuple[str, str, str]] = []

    def set_fault(node: str, namespace: str, pod: str, mode: str) -> None:
        made.append((node, namespace, pod))
        full_cluster.set_pod_fault(node, namespace, pod, mode)

    yield set_fault
    for node, namespace, pod in made:
        full_cluster.clear_pod_fault(node, namespace, pod)


def _pod(name: str, node: str, **probes: Any) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "web",
        "image": "sim",
        "ports": [{"name": "http", "containerPort": 8080}],
    }
    container.update(probes)
    return {
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"nodeName": node, "containers": [container]},
    }


def _wait_pod(
    core: client.CoreV1Api, ns: str, name: str, predicate: Callable[[Any], bool], what: str
) -> Any:
    return wait_for(
        core.list_namespaced_pod,
        predicate,
        namespace=ns,
        field_selector=f"metadata.name={name}",
        timeout=TIMEOUT,
        what=f"pod {name}: {what}",
    )


def _status(pod: Any) -> Any:
    return (pod.status.container_statuses or [None])[0]


def _events(core: client.CoreV1Api, ns: str, pod: str) -> list[tuple[str, str]]:
    items = core.list_namespaced_event(ns).items
    return [(e.reason, e.message) for e in items if e.involved_object.name == pod]


def _endpoints(discovery: client.DiscoveryV1Api, ns: str) -> dict[str, bool]:
    """Pod name -> ready, over the Service's EndpointSlices."""
    out: dict[str, bool] = {}
    for slice_ in discovery.list_namespaced_endpoint_slice(ns).items:
        for ep in slice_.endpoints or []:
            if ep.target_ref is not None:
                out[ep.target_ref.name] = bool(ep.conditions.ready)
    return out


def _wait_endpoints(
    discovery: client.DiscoveryV1Api, ns: str, wanted: dict[str, bool]
) -> dict[str, bool]:
    def done(_: Any) -> bool:
        return _endpoints(discovery, ns) == wanted

    wait_for(
        discovery.list_namespaced_endpoint_slice,
        done,
        namespace=ns,
        timeout=TIMEOUT,
        what=f"endpoints {wanted}",
    )
    return _endpoints(discovery, ns)


READINESS = {
    "readinessProbe": {
        "httpGet": {"path": "/healthz", "port": "http"},
        "periodSeconds": 1,
        "failureThreshold": 1,
    }
}


def test_failing_readiness_takes_the_pod_out_of_endpoints_and_traffic(
    full_cluster: SimCluster,
    full_core: client.CoreV1Api,
    discovery: client.DiscoveryV1Api,
    full_ns: str,
    faults: Callable[[str, str, str, str], None],
) -> None:
    workers = [n for n in full_cluster.node_names() if "worker" in n]
    for name, node in zip(("a", "b"), workers, strict=False):
        full_core.create_namespaced_pod(full_ns, _pod(name, node, **READINESS))
    svc = full_core.create_namespaced_service(
        full_ns,
        {
            "metadata": {"name": "web"},
            "spec": {
                "type": "NodePort",
                "selector": {"app": "web"},
                "ports": [{"port": 80, "targetPort": 8080}],
            },
        },
    )
    node_port = svc.spec.ports[0].node_port
    _wait_endpoints(discovery, full_ns, {"a": True, "b": True})

    faults(workers[0], full_ns, "a", "http-500")
    pod = _wait_pod(full_core, full_ns, "a", lambda p: not pod_ready(p), "not ready")
    assert _status(pod).state.running is not None, "a readiness failure does not restart"
    assert _status(pod).restart_count == 0
    ready = next(c for c in pod.status.conditions if c.type == "Ready")
    assert (ready.reason, ready.message) == (
        "ContainersNotReady",
        "containers with unready status: [web]",
    )
    assert _wait_endpoints(discovery, full_ns, {"a": False, "b": True}) == {"a": False, "b": True}
    # Traffic through either node's NodePort reaches only the ready pod.
    answered = {
        http_get(f"http://{full_cluster.node_address(node)}:{node_port}/")[2]["pod"]
        for node in workers
        for _ in range(10)
    }
    assert answered == {"b"}
    assert (
        "Unhealthy",
        "Readiness probe failed: HTTP probe failed with statuscode: 500",
    ) in _events(full_core, full_ns, "a")

    assert full_cluster.pod_faults(workers[0]) == [
        {"namespace": full_ns, "pod": "a", "mode": "http-500"}
    ]
    full_cluster.clear_pod_fault(workers[0], full_ns, "a")
    assert full_cluster.pod_faults(workers[0]) == []
    _wait_pod(full_core, full_ns, "a", pod_ready, "ready again")
    _wait_endpoints(discovery, full_ns, {"a": True, "b": True})


def test_liveness_failure_restarts_the_container_with_back_off(
    full_cluster: SimCluster,
    full_core: client.CoreV1Api,
    full_ns: str,
    faults: Callable[[str, str, str, str], None],
) -> None:
    node = next(n for n in full_cluster.node_names() if "worker" in n)
    liveness = {"tcpSocket": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 2}
    full_core.create_namespaced_pod(full_ns, _pod("live", node, livenessProbe=liveness))
    _wait_pod(full_core, full_ns, "live", pod_ready, "ready")

    faults(node, full_ns, "live", "refuse")
    pod = _wait_pod(
        full_core,
        full_ns,
        "live",
        lambda p: (
            _status(p).state.waiting is not None
            and _status(p).state.waiting.reason == "CrashLoopBackOff"
        ),
        "in CrashLoopBackOff",
    )
    status = _status(pod)
    assert status.restart_count >= 1
    assert status.last_state.terminated.exit_code == 137
    assert status.last_state.terminated.reason == "Error"
    assert status.state.waiting.message.startswith("back-off ")
    assert f"restarting failed container=web pod=live_{full_ns}(" in status.state.waiting.message
    assert not pod_ready(pod)
    events = _events(full_core, full_ns, "live")
    assert ("Killing", "Container web failed liveness probe, will be restarted") in events
    assert any(
        reason == "Unhealthy"
        and message.startswith("Liveness probe failed: dial tcp ")
        and message.endswith(":8080: connect: connection refused")
        for reason, message in events
    ), events
    assert any(reason == "BackOff" for reason, _ in events), events

    restarts = status.restart_count
    full_cluster.clear_pod_fault(node, full_ns, "live")
    pod = _wait_pod(full_core, full_ns, "live", pod_ready, "ready after the fault ends")
    assert _status(pod).restart_count >= restarts
    assert _status(pod).last_state.terminated is not None


def test_startup_probe_holds_readiness_until_it_passes(
    full_cluster: SimCluster, full_core: client.CoreV1Api, full_ns: str
) -> None:
    node = next(n for n in full_cluster.node_names() if "worker" in n)
    body = _pod(
        "slow",
        node,
        startupProbe={"exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 1000},
        **READINESS,
    )
    body["metadata"]["annotations"] = {"sim.k8sdr.io/exec-probe": "startup=failure"}
    full_core.create_namespaced_pod(full_ns, body)
    pod = _wait_pod(
        full_core,
        full_ns,
        "slow",
        lambda p: p.status.phase == "Running" and _status(p).state.running is not None,
        "running",
    )
    # Its readiness probe would pass (the server answers), but it waits for the startup probe.
    assert not pod_ready(pod)
    assert _status(pod).started is False
    wait_for(
        full_core.list_namespaced_event,
        lambda e: (
            (e.involved_object.name, e.reason, e.message)
            == ("slow", "Unhealthy", "Startup probe failed: ")
        ),
        namespace=full_ns,
        timeout=TIMEOUT,
        what="a startup probe failure event",
    )
    pod = full_core.read_namespaced_pod("slow", full_ns)
    assert not pod_ready(pod)
    assert _status(pod).restart_count == 0

    full_core.patch_namespaced_pod(
        "slow", full_ns, {"metadata": {"annotations": {"sim.k8sdr.io/exec-probe": "success"}}}
    )
    pod = _wait_pod(full_core, full_ns, "slow", pod_ready, "ready once started")
    assert _status(pod).started is True
    assert _status(pod).restart_count == 0


def test_a_bad_pod_fault_is_refused_before_anything_changes(
    full_cluster: SimCluster, tmp_path: Path
) -> None:
    node = next(n for n in full_cluster.node_names() if "worker" in n)
    with pytest.raises(ValueError, match="unknown pod fault 'slow'; accepted: http-500, refuse"):
        full_cluster.set_pod_fault(node, "default", "x", "slow")
    with pytest.raises(ValueError, match="unknown node 'nope'"):
        full_cluster.set_pod_fault("nope", "default", "x", "refuse")
