"""Pod lifecycle on a simulated node: start, serve, graceful delete, kill, restart."""

from __future__ import annotations

import ipaddress
import time
import urllib.request
from typing import Any

from kubernetes import watch

from tests.sim.agent.agentsim import (
    Server,
    create_pod,
    delete_pod,
    http_get,
    is_ready,
    make_pod,
    not_serving,
    pod_ready,
    wait_for,
    wait_gone,
)


def _ready_node(sim_server: Server, make_agent: Any, **kw: Any) -> Any:
    agent = make_agent(**kw)
    wait_for(sim_server.core.list_node, is_ready, field_selector=f"metadata.name={agent.name}")
    return agent


def _wait_pod(sim_server: Server, name: str, predicate: Any, timeout: float = 10.0) -> Any:
    return wait_for(
        sim_server.core.list_namespaced_pod,
        predicate,
        namespace="default",
        field_selector=f"metadata.name={name}",
        timeout=timeout,
        what=f"pod {name}",
    )


def test_pod_goes_pending_then_running_ready_and_serves(
    sim_server: Server, make_agent: Any
) -> None:
    agent = _ready_node(sim_server, make_agent, extra=["--pod-start-delay", "0.5"])
    name = f"{agent.name}-web"
    seen: list[tuple[str, str | None, bool]] = []
    w = watch.Watch()
    stream = w.stream(
        sim_server.core.list_namespaced_pod,
        "default",
        field_selector=f"metadata.name={name}",
        timeout_seconds=10,
    )
    created = time.monotonic()
    create_pod(sim_server, make_pod(name, agent.name))
    running_at = None
    pod: Any = None
    for event in stream:
        pod = event["object"]
        entry = (pod.status.phase, pod.status.pod_ip, pod_ready(pod))
        if not seen or seen[-1] != entry:
            seen.append(entry)
        if pod_ready(pod):
            running_at = time.monotonic()
            w.stop()
    assert running_at is not None, seen
    assert running_at - created >= 0.5
    pending = [s for s in seen if s[0] == "Pending" and s[1]]
    assert pending, f"no Pending status with a podIP before Running: {seen}"
    assert seen[-1][0] == "Running"
    ip = pod.status.pod_ip
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(agent.pod_cidr)
    assert pod.status.host_ip == agent.address
    types = {c.type: c.status for c in pod.status.conditions}
    assert types == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }
    assert all(c.reason is None for c in pod.status.conditions if c.status == "True")
    cs = pod.status.container_statuses[0]
    assert cs.ready
    assert cs.started
    assert cs.state.running is not None

    status, headers, body = http_get(f"http://{ip}:8080/any/path")
    assert status == 200
    assert headers["X-K8sdr-Pod"] == f"default/{name}"
    assert headers["X-K8sdr-Node"] == agent.name
    assert body == {"pod": name, "namespace": "default", "node": agent.name, "podIP": ip}


def test_pod_serves_its_request_counters_at_metrics(sim_server: Server, make_agent: Any) -> None:
    agent = _ready_node(sim_server, make_agent)
    name = f"{agent.name}-metrics"
    create_pod(sim_server, make_pod(name, agent.name))
    pod = _wait_pod(sim_server, name, lambda p: pod_ready(p))
    base = f"http://{pod.status.pod_ip}:8080"
    for path in ("/", "/a", "/b"):
        assert http_get(base + path)[0] == 200
    with urllib.request.urlopen(base + "/metrics", timeout=2) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    # Three answered requests; the scrape itself is not counted.
    assert samples['http_requests_total{code="200",method="GET"}'] == "3"
    assert samples['http_request_duration_seconds_bucket{le="+Inf"}'] == "3"
    assert samples["http_request_duration_seconds_count"] == "3"
    assert float(samples["http_request_duration_seconds_sum"]) >= 0.0
    assert "# TYPE http_request_duration_seconds histogram" in text


def test_graceful_delete_stops_serving_and_kubelet_finishes_the_delete(
    sim_server: Server, make_agent: Any
) -> None:
    agent = _ready_node(sim_server, make_agent)
    slow, capped = f"{agent.name}-slow", f"{agent.name}-capped"
    create_pod(
        sim_server,
        make_pod(slow, agent.name, grace=10, annotations={"sim.k8sdr.io/shutdown-seconds": "1.5"}),
    )
    create_pod(
        sim_server,
        make_pod(capped, agent.name, grace=1, annotations={"sim.k8sdr.io/shutdown-seconds": "60"}),
    )
    ips = {n: _wait_pod(sim_server, n, pod_ready).status.pod_ip for n in (slow, capped)}

    started = time.monotonic()
    delete_pod(sim_server, slow)
    delete_pod(sim_server, capped)
    assert http_get(f"http://{ips[slow]}:8080/")[0] == 200  # still shutting down
    # The shutdown is capped by the 1s grace period, then the kubelet deletes with grace 0.
    # Bounds far below the 60 s shutdown the grace period caps, so a loaded machine passes.
    wait_gone(sim_server.core.list_namespaced_pod, capped, namespace="default", timeout=30)
    assert time.monotonic() - started < 30
    assert not_serving(f"http://{ips[capped]}:8080/")
    wait_gone(sim_server.core.list_namespaced_pod, slow, namespace="default", timeout=30)
    assert time.monotonic() - started >= 1.4
    assert not_serving(f"http://{ips[slow]}:8080/")


def test_sigkill_leaves_pods_and_restart_adopts_them(sim_server: Server, make_agent: Any) -> None:
    agent = _ready_node(sim_server, make_agent)
    name = f"{agent.name}-kept"
    create_pod(sim_server, make_pod(name, agent.name))
    pod = _wait_pod(sim_server, name, pod_ready)
    agent.kill()
    time.sleep(1)
    after = sim_server.core.read_namespaced_pod(name, "default")
    assert after.metadata.resource_version == pod.metadata.resource_version
    assert after.metadata.deletion_timestamp is None
    assert after.status.phase == "Running"
    assert not_serving(f"http://{pod.status.pod_ip}:8080/")

    agent.start()
    status, _, body = http_get_eventually(f"http://{pod.status.pod_ip}:8080/")
    assert status == 200
    assert body["pod"] == name
    again = sim_server.core.read_namespaced_pod(name, "default")
    assert again.metadata.uid == pod.metadata.uid
    assert again.status.pod_ip == pod.status.pod_ip
    assert pod_ready(again)

    # SIGTERM is a clean kubelet stop: it exits 0 and deletes nothing.
    assert agent.terminate() == 0
    assert sim_server.core.read_namespaced_pod(name, "default").metadata.deletion_timestamp is None


def test_restart_finishes_deletes_started_while_down(sim_server: Server, make_agent: Any) -> None:
    agent = _ready_node(sim_server, make_agent)
    name = f"{agent.name}-doomed"
    create_pod(sim_server, make_pod(name, agent.name, grace=30))
    _wait_pod(sim_server, name, pod_ready)
    agent.kill()
    delete_pod(sim_server, name)
    time.sleep(0.5)
    assert sim_server.core.read_namespaced_pod(name, "default").metadata.deletion_timestamp
    agent.start()
    wait_gone(sim_server.core.list_namespaced_pod, name, namespace="default", timeout=5)


def http_get_eventually(url: str, timeout: float = 5.0) -> tuple[int, dict[str, str], Any]:
    """The first answer within `timeout` (the agent is starting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return http_get(url, timeout=1)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
