"""Kubelet probes on a whole simulated cluster: readiness, liveness, startup, and pod faults.

One cluster (two workers, every controller) for the module; each test has its own namespace.
NodePort traffic goes through the node agents' kube-proxy, which is what an external load
balancer in front of the nodes forwards to.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from pytest_k8sdr.sim.launcher import SimCluster
from tests.sim.agent.agentsim import http_get, pod_ready, wait_for
from tests.sim.simapi_support import make_api_client

TIMEOUT = 30.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    sim = SimCluster.start(tmp_path_factory.mktemp("probes"), workers=2)
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="module")
def core(cluster: SimCluster) -> Iterator[client.CoreV1Api]:
    api = make_api_client(cluster)
    try:
        yield client.CoreV1Api(api)
    finally:
        api.close()


@pytest.fixture(scope="module")
def discovery(cluster: SimCluster, core: client.CoreV1Api) -> client.DiscoveryV1Api:
    return client.DiscoveryV1Api(core.api_client)


@pytest.fixture
def ns(core: client.CoreV1Api) -> str:
    name = f"p-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    return name


@pytest.fixture
def faults(cluster: SimCluster) -> Iterator[Callable[[str, str, str, str], None]]:
    """Set a pod fault; every fault set is cleared at teardown."""
    made: list[tuple[str, str, str]] = []

    def set_fault(node: str, namespace: str, pod: str, mode: str) -> None:
        made.append((node, namespace, pod))
        cluster.set_pod_fault(node, namespace, pod, mode)

    yield set_fault
    for node, namespace, pod in made:
        cluster.clear_pod_fault(node, namespace, pod)


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
    cluster: SimCluster,
    core: client.CoreV1Api,
    discovery: client.DiscoveryV1Api,
    ns: str,
    faults: Callable[[str, str, str, str], None],
) -> None:
    workers = [n for n in cluster.node_names() if "worker" in n]
    for name, node in zip(("a", "b"), workers, strict=False):
        core.create_namespaced_pod(ns, _pod(name, node, **READINESS))
    svc = core.create_namespaced_service(
        ns,
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
    _wait_endpoints(discovery, ns, {"a": True, "b": True})

    faults(workers[0], ns, "a", "http-500")
    pod = _wait_pod(core, ns, "a", lambda p: not pod_ready(p), "not ready")
    assert _status(pod).state.running is not None, "a readiness failure does not restart"
    assert _status(pod).restart_count == 0
    ready = next(c for c in pod.status.conditions if c.type == "Ready")
    assert (ready.reason, ready.message) == (
        "ContainersNotReady",
        "containers with unready status: [web]",
    )
    assert _wait_endpoints(discovery, ns, {"a": False, "b": True}) == {"a": False, "b": True}
    # Traffic through either node's NodePort reaches only the ready pod.
    answered = {
        http_get(f"http://{cluster.node_address(node)}:{node_port}/")[2]["pod"]
        for node in workers
        for _ in range(10)
    }
    assert answered == {"b"}
    assert (
        "Unhealthy",
        "Readiness probe failed: HTTP probe failed with statuscode: 500",
    ) in _events(core, ns, "a")

    assert cluster.pod_faults(workers[0]) == [{"namespace": ns, "pod": "a", "mode": "http-500"}]
    cluster.clear_pod_fault(workers[0], ns, "a")
    assert cluster.pod_faults(workers[0]) == []
    _wait_pod(core, ns, "a", pod_ready, "ready again")
    _wait_endpoints(discovery, ns, {"a": True, "b": True})


def test_liveness_failure_restarts_the_container_with_back_off(
    cluster: SimCluster,
    core: client.CoreV1Api,
    ns: str,
    faults: Callable[[str, str, str, str], None],
) -> None:
    node = next(n for n in cluster.node_names() if "worker" in n)
    liveness = {"tcpSocket": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 2}
    core.create_namespaced_pod(ns, _pod("live", node, livenessProbe=liveness))
    _wait_pod(core, ns, "live", pod_ready, "ready")

    faults(node, ns, "live", "refuse")
    pod = _wait_pod(
        core,
        ns,
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
    assert f"restarting failed container=web pod=live_{ns}(" in status.state.waiting.message
    assert not pod_ready(pod)
    events = _events(core, ns, "live")
    assert ("Killing", "Container web failed liveness probe, will be restarted") in events
    assert any(
        reason == "Unhealthy"
        and message.startswith("Liveness probe failed: dial tcp ")
        and message.endswith(":8080: connect: connection refused")
        for reason, message in events
    ), events
    assert any(reason == "BackOff" for reason, _ in events), events

    restarts = status.restart_count
    cluster.clear_pod_fault(node, ns, "live")
    pod = _wait_pod(core, ns, "live", pod_ready, "ready after the fault ends")
    assert _status(pod).restart_count >= restarts
    assert _status(pod).last_state.terminated is not None


def test_startup_probe_holds_readiness_until_it_passes(
    cluster: SimCluster, core: client.CoreV1Api, ns: str
) -> None:
    node = next(n for n in cluster.node_names() if "worker" in n)
    body = _pod(
        "slow",
        node,
        startupProbe={"exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 1000},
        **READINESS,
    )
    body["metadata"]["annotations"] = {"sim.k8sdr.io/exec-probe": "startup=failure"}
    core.create_namespaced_pod(ns, body)
    pod = _wait_pod(
        core,
        ns,
        "slow",
        lambda p: p.status.phase == "Running" and _status(p).state.running is not None,
        "running",
    )
    # Its readiness probe would pass (the server answers), but it waits for the startup probe.
    assert not pod_ready(pod)
    assert _status(pod).started is False
    wait_for(
        core.list_namespaced_event,
        lambda e: (
            (e.involved_object.name, e.reason, e.message)
            == ("slow", "Unhealthy", "Startup probe failed: ")
        ),
        namespace=ns,
        timeout=TIMEOUT,
        what="a startup probe failure event",
    )
    pod = core.read_namespaced_pod("slow", ns)
    assert not pod_ready(pod)
    assert _status(pod).restart_count == 0

    core.patch_namespaced_pod(
        "slow", ns, {"metadata": {"annotations": {"sim.k8sdr.io/exec-probe": "success"}}}
    )
    pod = _wait_pod(core, ns, "slow", pod_ready, "ready once started")
    assert _status(pod).started is True
    assert _status(pod).restart_count == 0


def test_a_bad_pod_fault_is_refused_before_anything_changes(
    cluster: SimCluster, tmp_path: Path
) -> None:
    node = next(n for n in cluster.node_names() if "worker" in n)
    with pytest.raises(ValueError, match="unknown pod fault 'slow'; accepted: http-500, refuse"):
        cluster.set_pod_fault(node, "default", "x", "slow")
    with pytest.raises(ValueError, match="unknown node 'nope'"):
        cluster.set_pod_fault("nope", "default", "x", "refuse")
