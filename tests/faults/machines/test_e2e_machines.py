"""Each driver end to end on the simulator, through the plugin's API.

Kill a node hosting pods, see it go Unknown and its pods replaced elsewhere, restore it, see
it Ready again (fast profile).

The simulated cluster is this module's own (its agents are restarted from other processes
here, by the CLI and over SSH), so it is stopped by re-reading its state directory.
"""

from __future__ import annotations

import shlex
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from machines_helpers import KindNodes, Sshd

from pytest_k8sdr import assert_pods_rescheduled
from pytest_k8sdr.cluster import MANAGED_BY, Cluster
from pytest_k8sdr.faults.machines import (
    CommandMachine,
    DockerMachine,
    MachineBase,
    MachineError,
    Machines,
    MachineState,
    SimMachine,
    SshMachine,
    parse_inventory,
)
from pytest_k8sdr.faults.machines.inventory import SimSpec
from pytest_k8sdr.sim import SimCluster
from pytest_k8sdr.sim.addresses import node_address, node_pod_cidr
from pytest_k8sdr.undo import UndoStack
from pytest_k8sdr.workloads import Workload, pod_template

K8SDR = str(Path(sys.executable).with_name("k8sdr"))
NODECTL = Path(__file__).with_name("nodectl.py")
# A node index far from the launcher's (0..workers), for the container's node agent.
DOCKER_INDEX = 200


@dataclass
class Sim:
    state_dir: Path
    cluster: Cluster

    def node_cli(self, op: str) -> str:
        """`k8sdr sim node OP {node}` against this cluster, as a command template."""
        return f"{shlex.quote(K8SDR)} sim node {op} {{node}} --state-dir {self.state_dir}"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    state_dir = tmp_path_factory.mktemp("sim")
    started = SimCluster.start(state_dir, workers=3, profile="fast")
    cluster = Cluster.from_kubeconfig(started.kubeconfig_path)
    try:
        yield Sim(state_dir, cluster)
    finally:
        cluster.close()
        # Agents restarted by other processes are only in the state file: read it afresh.
        SimCluster.attach(state_dir).stop()


@pytest.fixture
def namespace(sim: Sim) -> Iterator[str]:
    name = f"machines-{uuid.uuid4().hex[:8]}"
    body = {"metadata": {"name": name, "labels": {MANAGED_BY[0]: MANAGED_BY[1]}}}
    sim.cluster.call(sim.cluster.core.create_namespace, body, _preload_content=False)
    yield name
    sim.cluster.call(sim.cluster.core.delete_namespace, name, _preload_content=False)


def deploy_quickly_evicted(cluster: Cluster, namespace: str, replicas: int = 6) -> Workload:
    """A Deployment whose pods tolerate an unreachable node for 1s, not the default 10s.

    The eviction comes sooner; nothing else changes.
    """
    template = pod_template("web")
    template["spec"]["tolerations"] = [
        {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}
        for key in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")
    ]
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template,
        },
    }
    cluster.call(cluster.apps.create_namespaced_deployment, namespace, body, _preload_content=False)
    web = Workload(
        cluster, "Deployment", "web", namespace, replicas, labels=template["metadata"]["labels"]
    )
    web.wait_ready(timeout=60)
    return web


def kill_and_restore(
    sim: Sim, namespace: str, machine: MachineBase, stack: UndoStack, *, check_health: bool = True
) -> None:
    victim = machine.node
    web = deploy_quickly_evicted(sim.cluster, namespace)
    on_victim = [p.uid for p in web.pods() if p.node == victim]
    assert on_victim, f"no pod landed on {victim}: {web.placement()}"
    if check_health:
        assert machine.health().healthy

    machine.kill()

    assert len(stack) == 1
    sim.cluster.wait_node_unreachable(victim, timeout=30)
    if check_health:
        assert machine.health().state is MachineState.STOPPED
    assert_pods_rescheduled(web, away_from=victim, replaced_uids=on_victim, timeout=60)

    machine.start()

    assert len(stack) == 0
    sim.cluster.wait_node_ready(victim, timeout=30)
    if check_health:
        assert machine.health().healthy


def machine_of(entry: Mapping[str, object], node: str, stack: UndoStack) -> MachineBase:
    """The node's machine as the plugin's `machines` fixture hands it out."""
    return Machines(parse_inventory({"nodes": {node: entry}}), stack)[node]


def test_sim_driver(sim: Sim, namespace: str, stack: UndoStack) -> None:
    machine = machine_of({"driver": "sim", "state_dir": str(sim.state_dir)}, "k8sdr-worker", stack)
    assert isinstance(machine, SimMachine)
    kill_and_restore(sim, namespace, machine, stack)


def test_command_driver(sim: Sim, namespace: str, stack: UndoStack) -> None:
    entry = {
        "driver": "command",
        "commands": {"kill": sim.node_cli("kill"), "start": sim.node_cli("start")},
    }
    machine = machine_of(entry, "k8sdr-worker2", stack)
    assert isinstance(machine, CommandMachine)
    kill_and_restore(sim, namespace, machine, stack, check_health=False)


def test_ssh_driver(sim: Sim, sshd: Sshd, namespace: str, stack: UndoStack) -> None:
    entry = {
        **sshd.login(),
        "sudo": True,
        # Runs on the machine over SSH; power-on is local (out of band), as for IPMI.
        "commands": {"kill": sim.node_cli("kill")},
        "power_on": sim.node_cli("start"),
    }
    machine = machine_of(entry, "k8sdr-worker3", stack)
    assert isinstance(machine, SshMachine)
    kill_and_restore(sim, namespace, machine, stack, check_health=False)
    assert "sim node kill k8sdr-worker3" in sshd.sudo_log()


@pytest.fixture
def docker_node(sim: Sim, kind_nodes: KindNodes, stack: UndoStack) -> Iterator[str]:
    """A kind-labelled container whose process is a simulated node agent (host network)."""
    name = f"m6-{uuid.uuid4().hex[:6]}-worker"
    kubeconfig = sim.state_dir / "kubeconfig"
    socket_path = "/run/agent.sock"
    agent = [
        sys.executable,
        "-m",
        "pytest_k8sdr.sim.node",
        "--kubeconfig",
        str(kubeconfig),
        "--node-name",
        name,
        "--address",
        node_address(DOCKER_INDEX),
        "--pod-cidr",
        node_pod_cidr(DOCKER_INDEX),
        "--profile",
        "fast",
        "--control-socket",
        socket_path,
    ]
    systemctl = f'exec {sys.executable} {NODECTL} {socket_path} "$@"'
    kind_nodes.run(name, "k8sdr-m6", agent, systemctl=systemctl, mounts=(sim.state_dir,))
    sim.cluster.wait_node_ready(name, timeout=30)
    yield name
    stack.unwind()  # undo on the container while it is still there
    kind_nodes.remove_all()
    sim.cluster.call(sim.cluster.core.delete_node, name, _preload_content=False)


def test_docker_driver(sim: Sim, docker_node: str, namespace: str, stack: UndoStack) -> None:
    machine = machine_of({"driver": "docker", "cluster": "k8sdr-m6"}, docker_node, stack)
    assert isinstance(machine, DockerMachine)
    assert machine.health().services == {"kubelet": True, "runtime": True}
    kill_and_restore(sim, namespace, machine, stack)


def test_sim_driver_errors_keep_the_undo_stack_consistent(sim: Sim, stack: UndoStack) -> None:
    spec = SimSpec("k8sdr-nope", sim.state_dir)
    with pytest.raises(MachineError) as caught:
        SimMachine(spec, stack).kill()
    assert (caught.value.node, caught.value.driver, caught.value.action) == (
        "k8sdr-nope",
        "sim",
        "kill",
    )
    assert "unknown node 'k8sdr-nope'" in str(caught.value)
    assert len(stack) == 0

    victim = SimMachine(SimSpec("k8sdr-worker", sim.state_dir), stack)
    with stack.context():
        victim.kill()
        # Nothing runs to partition: refused before anything is touched, no undo left.
        with pytest.raises(MachineError, match="partition failed: the node's agent is stopped"):
            victim.partition()
        assert [e.description.split(": ")[1] for e in stack.pending] == ["start (undoes kill)"]
        # A frozen-then-killed node thaws as a no-op: restores are idempotent.
        victim.thaw()
    assert victim.health().healthy
    sim.cluster.wait_node_ready("k8sdr-worker", timeout=30)
