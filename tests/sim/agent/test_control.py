"""The control socket (partition, kubelet and runtime stops), agentctl and the command line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_k8sdr.sim.node import control
from tests.sim.agent.agentsim import (
    Server,
    create_pod,
    http_get,
    is_ready,
    make_pod,
    not_serving,
    pod_ready,
    wait_for,
)


def _running_pod(sim_server: Server, agent: Any) -> Any:
    name = f"{agent.name}-ctl"
    create_pod(sim_server, make_pod(name, agent.name))
    return wait_for(
        sim_server.core.list_namespaced_pod,
        pod_ready,
        namespace="default",
        field_selector=f"metadata.name={name}",
    )


def _renew_time(sim_server: Server, name: str) -> Any:
    return sim_server.coord.read_namespaced_lease(name, "kube-node-lease").spec.renew_time


def test_partition_stops_api_traffic_but_keeps_serving(sim_server: Server, make_agent: Any) -> None:
    agent = make_agent()
    wait_for(sim_server.core.list_node, is_ready, field_selector=f"metadata.name={agent.name}")
    pod = _running_pod(sim_server, agent)
    state = agent.ctl("partition")
    assert state["partitioned"] is True
    time.sleep(0.5)  # a renewal in flight may still land
    frozen = _renew_time(sim_server, agent.name)
    time.sleep(2.5)  # two and a half renew periods
    assert _renew_time(sim_server, agent.name) == frozen
    assert http_get(f"http://{pod.status.pod_ip}:8080/")[0] == 200
    assert http_get(f"http://{agent.address}:10256/healthz")[0] == 200

    # Someone marks the pod not ready meanwhile (as the node lifecycle controller would).
    sim_server.core.patch_namespaced_pod_status(
        pod.metadata.name,
        "default",
        {"status": {"conditions": [{"type": "Ready", "status": "False"}]}},
    )
    agent.ctl("heal")
    wait_for(
        sim_server.coord.list_namespaced_lease,
        lambda lease: lease.spec.renew_time > frozen,
        namespace="kube-node-lease",
        field_selector=f"metadata.name={agent.name}",
        timeout=3,
    )
    # The kubelet reconciles the pod's status with what it knows once it can talk again.
    wait_for(
        sim_server.core.list_namespaced_pod,
        pod_ready,
        namespace="default",
        field_selector=f"metadata.name={pod.metadata.name}",
        timeout=4,
    )


def test_stop_runtime_turns_node_and_pods_not_ready(sim_server: Server, make_agent: Any) -> None:
    agent = make_agent()
    wait_for(sim_server.core.list_node, is_ready, field_selector=f"metadata.name={agent.name}")
    pod = _running_pod(sim_server, agent)
    url = f"http://{pod.status.pod_ip}:8080/"
    state = agent.ctl("stop-runtime")
    assert state["runtime"] == "stopped"
    assert not_serving(url)
    not_ready = wait_for(
        sim_server.core.list_namespaced_pod,
        lambda p: not pod_ready(p),
        namespace="default",
        field_selector=f"metadata.name={pod.metadata.name}",
        timeout=4,
    )
    assert not_ready.status.phase == "Running"
    assert not not_ready.status.container_statuses[0].ready
    node = sim_server.core.read_node(agent.name)
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    assert (ready.status, ready.message) == ("False", "container runtime is down")

    agent.ctl("start-runtime")
    wait_for(
        sim_server.core.list_namespaced_pod,
        pod_ready,
        namespace="default",
        field_selector=f"metadata.name={pod.metadata.name}",
        timeout=4,
    )
    assert http_get(url)[0] == 200
    wait_for(
        sim_server.core.list_node, is_ready, field_selector=f"metadata.name={agent.name}", timeout=4
    )


def test_stop_kubelet_keeps_pods_and_start_registers_again(
    sim_server: Server, make_agent: Any
) -> None:
    agent = make_agent()
    node = wait_for(
        sim_server.core.list_node, is_ready, field_selector=f"metadata.name={agent.name}"
    )
    pod = _running_pod(sim_server, agent)
    assert agent.ctl("stop-kubelet")["kubelet"] == "stopped"
    time.sleep(0.3)
    frozen = _renew_time(sim_server, agent.name)
    time.sleep(2)
    assert _renew_time(sim_server, agent.name) == frozen
    assert http_get(f"http://{pod.status.pod_ip}:8080/")[0] == 200
    # Deleted while the kubelet is stopped: starting it registers a fresh Node.
    sim_server.core.delete_node(agent.name)
    agent.ctl("start-kubelet")
    fresh = wait_for(
        sim_server.core.list_node, is_ready, field_selector=f"metadata.name={agent.name}"
    )
    assert fresh.metadata.uid != node.metadata.uid
    assert pod_ready(sim_server.core.read_namespaced_pod(pod.metadata.name, "default"))


def test_agentctl_errors_name_the_problem(
    tmp_path: Path, sim_server: Server, make_agent: Any
) -> None:
    with pytest.raises(control.AgentControlError, match="does not exist"):
        control.send(tmp_path / "nope.sock", "status")
    with pytest.raises(ValueError, match="unknown agent op 'explode'"):
        control.send(tmp_path / "nope.sock", "explode")
    agent = make_agent()
    state = control.send(agent.socket, "status", timeout=5)
    assert state["node"] == agent.name
    assert state["pid"] == agent.proc.pid
    with pytest.raises(control.AgentControlError, match="unknown node"):
        control.send(agent.socket, "stop-runtime", node="other")
    agent.kill()
    with pytest.raises(control.AgentControlError, match=r"refused|does not exist"):
        control.send(agent.socket, "status")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--node-labels", "node-role.kubernetes.io/worker="],
            "unknown 'kubernetes.io' or 'k8s.io' label",
        ),
        (["--node-labels", "novalue"], "not a valid key=value label"),
        (["--register-with-taints", "a=b:Sometimes"], "Effect one of NoSchedule"),
        (["--address", "10.0.0.1"], "not a loopback address"),
        (["--pod-cidr", "10.1.0.0/24"], "not inside 127.0.0.0/8"),
        (["--kubeconfig", "/nonexistent/kubeconfig"], "cannot read kubeconfig"),
    ],
)
def test_bad_command_line_is_refused_before_starting(
    sim_server: Server, args: list[str], message: str
) -> None:
    argv = {
        "--kubeconfig": str(sim_server.kubeconfig),
        "--node-name": "bad-node",
        "--address": "127.1.99.1",
        "--pod-cidr": "127.99.1.0/24",
        "--profile": "fast",
    }
    argv.update(dict(zip(args[::2], args[1::2], strict=False)))
    flat = [x for kv in argv.items() for x in kv]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_k8sdr.sim.node", *flat],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert sim_server.core.list_node(field_selector="metadata.name=bad-node").items == []
