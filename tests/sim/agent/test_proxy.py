"""kube-proxy stand-in: NodePorts to ready endpoints, health endpoints (reference §7)."""

from __future__ import annotations

import functools
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.sim.agent.agentsim import (
    JSON_HEADERS,
    Server,
    create_pod,
    http_get,
    is_ready,
    make_pod,
    next_node_port,
    not_serving,
    pod_ready,
    wait_for,
)


def _eventually(check: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Probe traffic until `check` holds (traffic has no watch to wait on)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _answer(url: str) -> str | None:
    """The serving pod's name, or None when the connection is refused or reset."""
    try:
        status, headers, _ = http_get(url, timeout=1)
    except OSError:
        return None
    return headers.get("X-K8sdr-Pod") if status == 200 else f"status {status}"


def _answers(url: str) -> bool:
    return _answer(url) is not None


def _service(
    name: str, node_port: int, *, local: bool = False, hc_port: int | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "LoadBalancer" if local else "NodePort",
        "selector": {"app": name},
        "ports": [
            {
                "name": "http",
                "port": 80,
                "targetPort": 8080,
                "nodePort": node_port,
                "protocol": "TCP",
            }
        ],
    }
    if local:
        spec["externalTrafficPolicy"] = "Local"
        spec["healthCheckNodePort"] = hc_port
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def _slice(service: str, endpoints: list[tuple[str, str, bool]]) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{service}-abc", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [ip],
                "nodeName": node,
                "conditions": {"ready": ready, "serving": ready, "terminating": False},
            }
            for ip, node, ready in endpoints
        ],
    }


@pytest.fixture
def two_pods(sim_server: Server, make_agent: Any) -> tuple[Any, Any, dict[str, str]]:
    a, b = make_agent(), make_agent()
    for agent in (a, b):
        wait_for(sim_server.core.list_node, is_ready, field_selector=f"metadata.name={agent.name}")
    ips: dict[str, str] = {}
    for agent in (a, b):
        name = f"{agent.name}-np"
        create_pod(sim_server, make_pod(name, agent.name))
    for agent in (a, b):
        name = f"{agent.name}-np"
        pod = wait_for(
            sim_server.core.list_namespaced_pod,
            pod_ready,
            namespace="default",
            field_selector=f"metadata.name={name}",
        )
        ips[agent.name] = pod.status.pod_ip
    return a, b, ips


def test_nodeport_forwards_only_to_ready_endpoints(sim_server: Server, two_pods: Any) -> None:
    a, b, ips = two_pods
    svc = f"svc-{a.name}"
    port = next_node_port()
    sim_server.core.create_namespaced_service(
        "default", _service(svc, port), _headers=dict(JSON_HEADERS)
    )
    # b's pod is listed but not ready: traffic through either node only reaches a's pod.
    body = _slice(svc, [(ips[a.name], a.name, True), (ips[b.name], b.name, False)])
    sim_server.discovery.create_namespaced_endpoint_slice(
        "default", body, _headers=dict(JSON_HEADERS)
    )
    for node in (a, b):
        url = f"http://{node.address}:{port}/"
        _eventually(functools.partial(_answers, url), what=f"NodePort {url}")
        answers = {_answer(url) for _ in range(8)}
        assert answers == {f"default/{a.name}-np"}, answers

    # Both ready: round robin reaches both pods.
    body["endpoints"][1]["conditions"]["ready"] = True
    sim_server.discovery.replace_namespaced_endpoint_slice(
        f"{svc}-abc", "default", body, _headers=dict(JSON_HEADERS)
    )
    url = f"http://{a.address}:{port}/"
    _eventually(lambda: len({_answer(url) for _ in range(6)}) == 2, what="both endpoints")

    # No ready endpoint: the connection is refused or reset, as kube-proxy's REJECT.
    for endpoint in body["endpoints"]:
        endpoint["conditions"]["ready"] = False
    sim_server.discovery.replace_namespaced_endpoint_slice(
        f"{svc}-abc", "default", body, _headers=dict(JSON_HEADERS)
    )
    _eventually(lambda: _answer(url) is None, what="rejection")
    assert not_serving(url)


def test_kube_proxy_healthz_and_local_health_check(sim_server: Server, two_pods: Any) -> None:
    a, b, ips = two_pods
    status, headers, body = http_get(f"http://{a.address}:10256/healthz")
    assert status == 200
    assert body["nodeEligible"] is True

    # Marked for deletion by the autoscaler: 503 (pkg/proxy/healthcheck/proxy_health.go).
    sim_server.core.patch_node(
        a.name,
        {"spec": {"taints": [{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]}},
    )
    _eventually(lambda: http_get(f"http://{a.address}:10256/healthz")[0] == 503, what="healthz 503")
    sim_server.core.patch_node(a.name, {"spec": {"taints": None}})
    _eventually(lambda: http_get(f"http://{a.address}:10256/healthz")[0] == 200, what="healthz 200")

    svc = f"lb-{a.name}"
    port, hc_port = next_node_port(), next_node_port()
    sim_server.core.create_namespaced_service(
        "default", _service(svc, port, local=True, hc_port=hc_port), _headers=dict(JSON_HEADERS)
    )
    sim_server.discovery.create_namespaced_endpoint_slice(
        "default", _slice(svc, [(ips[a.name], a.name, True)]), _headers=dict(JSON_HEADERS)
    )
    url_a, url_b = f"http://{a.address}:{hc_port}/healthz", f"http://{b.address}:{hc_port}/healthz"
    _eventually(
        lambda: _probe(url_a) is not None and _probe(url_b) is not None, what="health check ports"
    )
    status, headers, body = http_get(url_a)
    assert status == 200
    assert headers["X-Load-Balancing-Endpoint-Weight"] == "1"
    assert body == {
        "service": {"namespace": "default", "name": svc},
        "localEndpoints": 1,
        "serviceProxyHealthy": True,
    }
    status, headers, body = http_get(url_b)
    assert status == 503
    assert headers["X-Load-Balancing-Endpoint-Weight"] == "0"
    assert body["localEndpoints"] == 0
    # Local policy: b's NodePort has no local endpoint, so it does not forward.
    assert _answer(f"http://{a.address}:{port}/") == f"default/{a.name}-np"
    assert _answer(f"http://{b.address}:{port}/") is None


def _probe(url: str) -> int | None:
    try:
        return http_get(url, timeout=1)[0]
    except OSError:
        return None


def test_frozen_agent_answers_nothing(sim_server: Server, make_agent: Any) -> None:
    agent = make_agent()
    wait_for(sim_server.core.list_node, is_ready, field_selector=f"metadata.name={agent.name}")
    assert http_get(f"http://{agent.address}:10256/healthz")[0] == 200
    agent.proc.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises((TimeoutError, socket.timeout, OSError)):
            http_get(f"http://{agent.address}:10256/healthz", timeout=0.5)
    finally:
        agent.proc.send_signal(signal.SIGCONT)
    assert http_get(f"http://{agent.address}:10256/healthz")[0] == 200
