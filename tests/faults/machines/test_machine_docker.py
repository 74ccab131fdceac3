"""The docker driver against a real Docker engine, with containers that look like kind nodes."""

from __future__ import annotations

import sys
import uuid
from typing import Any

import pytest
from machines_helpers import FAKENODE, KindNodes, docker

from pytest_k8sdr.errors import UndoError
from pytest_k8sdr.faults.machines import DockerMachine, MachineError, MachineState, parse_inventory
from pytest_k8sdr.faults.machines.inventory import DockerSpec
from pytest_k8sdr.undo import UndoStack

STATE = "/run/fakenode"
INIT = [sys.executable, str(FAKENODE), STATE, "init"]
SYSTEMCTL = f'exec {sys.executable} {FAKENODE} {STATE} systemctl "$@"'


@pytest.fixture
def cluster() -> str:
    return f"m6-{uuid.uuid4().hex[:6]}"


def machine(stack: UndoStack, node: str, cluster: str | None, **extra: Any) -> DockerMachine:
    entry = {"driver": "docker", "cluster": cluster, "stop_timeout": 2, **extra}
    spec = parse_inventory({"nodes": {node: entry}}).spec_for(node)
    assert isinstance(spec, DockerSpec)
    return DockerMachine(spec, stack)


def start_cluster(kind_nodes: KindNodes, cluster: str) -> str:
    """A control plane and one worker; returns the worker's node name."""
    kind_nodes.run(f"{cluster}-control-plane", cluster, INIT, role="control-plane",
                   systemctl=SYSTEMCTL)  # fmt: skip
    worker = f"{cluster}-worker"
    kind_nodes.run(worker, cluster, INIT, systemctl=SYSTEMCTL)
    return worker


def test_kill_and_start_the_node_container(
    kind_nodes: KindNodes, cluster: str, stack: UndoStack
) -> None:
    worker = start_cluster(kind_nodes, cluster)
    m = machine(stack, worker, cluster)
    assert m.health().healthy
    assert m.health().services == {"kubelet": True, "runtime": True}

    m.kill()

    assert kind_nodes.status(worker) == "exited"
    assert m.health().state is MachineState.STOPPED
    assert len(stack) == 1

    m.start()

    assert kind_nodes.status(worker) == "running"
    assert m.health().healthy
    assert len(stack) == 0


def test_freeze_stop_and_service_actions_unwind(
    kind_nodes: KindNodes, cluster: str, stack: UndoStack
) -> None:
    worker = start_cluster(kind_nodes, cluster)
    m = machine(stack, worker, cluster)

    m.stop_kubelet()
    m.stop_runtime()
    assert m.health().services == {"kubelet": False, "runtime": False}
    m.freeze()
    assert kind_nodes.status(worker) == "paused"
    assert m.health().state is MachineState.FROZEN

    stack.unwind()  # thaw, then start the runtime, then the kubelet

    assert kind_nodes.status(worker) == "running"
    assert m.health().healthy
    m.stop()
    assert kind_nodes.status(worker) == "exited"
    # Restores are idempotent; on a stopped node the services come back with the container.
    m.start_kubelet()
    m.thaw()
    m.start()
    m.start()
    assert m.health().healthy


def test_nodes_are_found_by_kinds_labels_not_by_name(
    kind_nodes: KindNodes, cluster: str, stack: UndoStack
) -> None:
    worker = start_cluster(kind_nodes, cluster)
    impostor = f"{cluster}-worker2"
    kind_nodes.run(impostor, cluster, INIT, labels=False)  # kind's name, no kind labels

    with pytest.raises(MachineError) as caught:
        machine(stack, impostor, cluster).kill()
    error = caught.value
    assert (error.node, error.driver, error.action) == (impostor, "docker", "kill")
    assert f"no kind node container named {impostor!r} in cluster {cluster!r}" in str(error)
    assert worker in str(error)  # the nodes it did find
    assert kind_nodes.status(impostor) == "running"
    assert len(stack) == 0

    with pytest.raises(MachineError, match="no kind node containers"):
        machine(stack, worker, "no-such-cluster").kill()
    # Without a cluster, every kind cluster on the engine is searched.
    assert machine(stack, worker, None).health().healthy


def test_an_unreachable_engine_is_a_clear_error(
    kind_nodes: KindNodes, cluster: str, stack: UndoStack
) -> None:
    worker = start_cluster(kind_nodes, cluster)
    m = machine(stack, worker, cluster, docker_host="unix:///nonexistent/docker.sock")
    with pytest.raises(MachineError, match=r"kill failed: the Docker engine cannot be reached"):
        m.kill()
    assert len(stack) == 0
    assert kind_nodes.status(worker) == "running"
    health = m.health()
    assert health.state is MachineState.UNREACHABLE
    assert "cannot be reached" in health.detail

    with pytest.raises(MachineError, match=r"cannot run the docker CLI '/nonexistent/docker'"):
        machine(stack, worker, cluster, docker="/nonexistent/docker").freeze()


def test_a_command_failing_inside_the_node(
    kind_nodes: KindNodes, cluster: str, stack: UndoStack
) -> None:
    worker = start_cluster(kind_nodes, cluster)
    m = machine(
        stack,
        worker,
        cluster,
        commands={"partition": "echo no iptables >&2; exit 4", "heal": "true"},
    )
    with pytest.raises(MachineError) as caught:
        m.partition()
    assert f"command in container {worker} exited with 4: no iptables" in str(caught.value)
    assert caught.value.action == "partition"
    assert len(stack) == 1  # it ran: the (idempotent) heal stays registered


def test_a_container_removed_under_the_driver(
    kind_nodes: KindNodes, cluster: str, stack: UndoStack
) -> None:
    worker = start_cluster(kind_nodes, cluster)
    m = machine(stack, worker, cluster)
    m.stop_kubelet()
    kind_nodes.remove_all()
    with pytest.raises(UndoError, match="start_kubelet failed: no kind node containers") as caught:
        stack.unwind()
    [(_, error)] = caught.value.failures
    assert isinstance(error, MachineError)
    assert (error.node, error.action) == (worker, "start_kubelet")
    assert len(stack) == 0


def test_partition_fills_the_api_server_address(
    kind_nodes: KindNodes, cluster: str, stack: UndoStack
) -> None:
    worker = start_cluster(kind_nodes, cluster)
    # The kind preset's iptables rules need the API server; these nodes are on the host
    # network, so kind's control-plane address cannot be found: refused before acting.
    with pytest.raises(MachineError, match=r"partition failed: cannot fill api_host, api_port"):
        machine(stack, worker, cluster).partition()
    assert len(stack) == 0

    m = machine(
        stack,
        worker,
        cluster,
        api_server="127.0.0.1:6443",
        commands={"partition": "echo {api_host}:{api_port} > /tmp/cut", "heal": "rm -f /tmp/cut"},
    )
    m.partition()
    assert docker("exec", worker, "cat", "/tmp/cut").stdout == "127.0.0.1:6443\n"
    m.heal()
    # Only /tmp/cut matters: a checkout under /tmp is bind-mounted into the node as well.
    assert "cut" not in docker("exec", worker, "ls", "/tmp").stdout.split()
    assert len(stack) == 0
