"""Every disruption kind is undone from its journal record alone, by a fresh `k8sdr recover`.

Each test makes its disruption the way the plugin does (journaled on an `UndoStack`), then
abandons the stack, as a killed run would: no closure, no object of its maker survives. A new
process, `k8sdr recover --journal`, must put everything back from the file; undoing it all a
second time (the abandoned stack, unwound afterwards) must change nothing. The test process is
the journal's run and still alive, so recover needs `--force` here (the refusal itself is tested
in test_recover_refuses.py).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from safety_helpers import free_port, processes_mentioning, recover, start_nginx

from pytest_k8sdr.cluster import Cluster, Taint
from pytest_k8sdr.faults.controlplane import ControlPlane
from pytest_k8sdr.faults.machines import ZONE_LABEL, Machines, SimMachine, SimSpec, parse_inventory
from pytest_k8sdr.faults.node import OUT_OF_SERVICE, NodeFaults, OutOfService
from pytest_k8sdr.journal import ANNOTATION, ClusterAnnotator, Journal, read_journal
from pytest_k8sdr.lb import HAProxyLB
from pytest_k8sdr.lb.managed import ManagedNginx
from pytest_k8sdr.lock import GameDayLock, GameDayLockHeld, read_lease
from pytest_k8sdr.namespaces import create_test_namespace
from pytest_k8sdr.recover import registry
from pytest_k8sdr.results import Satisfied
from pytest_k8sdr.sim import SimCluster, SimLaunchError
from pytest_k8sdr.undo import UndoEnv, UndoStack

W1, W2, W3 = "k8sdr-worker", "k8sdr-worker2", "k8sdr-worker3"
CHAOS = Taint("example.com/chaos", "NoSchedule", "x")
LB_NODES = {"node-1": "127.89.2.2", "node-2": "127.89.2.3", "node-3": "127.89.2.4"}

# The kind each test below makes; a kind registered without a test here fails the last test.
COVERED = {
    "cordon": "test_cordon",
    "uncordon": "test_uncordon",
    "taint": "test_taint",
    "untaint": "test_untaint",
    "out-of-service": "test_out_of_service",
    "isolate": "test_kill_and_isolate",
    "machine": "test_kill_and_isolate, test_freeze",
    "nginx-drain": "test_nginx_drain",
    "haproxy-drain": "test_haproxy_drain",
    "managed-nginx": "test_managed_nginx",
    "managed-prometheus": "test_managed_prometheus",
    "nginx-exporter": "test_nginx_exporter",
    "namespace": "test_namespace",
    "lock": "test_lock",
    "sim-cluster": "test_sim_cluster",
    "sim-pod-fault": "test_sim_pod_fault",
    "zone": "test_zone",
    "control-plane": "test_control_plane",
    "backup": "test_backup",
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    cluster = SimCluster.start(tmp_path_factory.mktemp("kinds-sim"), workers=3, profile="fast")
    try:
        yield cluster
    finally:
        SimCluster.attach(cluster.state_dir).stop()  # agents restarted by recover included


@pytest.fixture(scope="module")
def api(sim: SimCluster) -> Iterator[Cluster]:
    cluster = Cluster.from_kubeconfig(sim.kubeconfig_path)
    yield cluster
    cluster.close()


class Abandoned:
    """A journaled undo stack that is never unwound: only its journal file is left."""

    def __init__(self, path: Path, api: Cluster | None, kubeconfig: Path | None) -> None:
        self.path = path
        self.journal = Journal(path, annotator=ClusterAnnotator(api) if api else None)
        if kubeconfig is not None:
            self.journal.describe(kubeconfig=str(kubeconfig))
        self.stack = UndoStack(self.journal)

    def recover(self, *extra: str) -> str:
        """Run `k8sdr recover` in a new process; it must undo everything.

        Then the abandoned stack is unwound here too: every undo runs a second time, on what
        is already put back, and must be a no-op.
        """
        self.journal.close_file()
        kinds = [e.record.kind for e in read_journal(self.path)]
        assert kinds, "the test journaled nothing"
        done = recover("--journal", str(self.path), "--force", *extra)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"{len(kinds)} of {len(kinds)} disruption(s) undone" in done.stdout, done.stdout
        assert read_journal(self.path) == []
        self.stack.unwind()
        return done.stdout


@pytest.fixture
def abandoned(tmp_path: Path, api: Cluster, sim: SimCluster) -> Abandoned:
    return Abandoned(tmp_path / "journal.jsonl", api, sim.kubeconfig_path)


def no_annotations(api: Cluster) -> None:
    for node in api.nodes():
        assert ANNOTATION not in node.annotations, node.name


def test_cordon(abandoned: Abandoned, api: Cluster) -> None:
    NodeFaults(api, abandoned.stack).cordon(W1)
    assert api.node(W1).unschedulable
    abandoned.recover()
    assert not api.node(W1).unschedulable
    no_annotations(api)


def test_uncordon(abandoned: Abandoned, api: Cluster) -> None:
    api.call(api.core.patch_node, W2, {"spec": {"unschedulable": True}})
    try:
        NodeFaults(api, abandoned.stack).uncordon(W2)
        assert not api.node(W2).unschedulable
        abandoned.recover()
        assert api.node(W2).unschedulable  # cordoned again, as the operator had it
    finally:
        api.call(api.core.patch_node, W2, {"spec": {"unschedulable": None}})
    no_annotations(api)


def test_taint(abandoned: Abandoned, api: Cluster) -> None:
    NodeFaults(api, abandoned.stack).taint(W1, CHAOS)
    assert api.node(W1).has_taint(CHAOS.key, CHAOS.effect)
    abandoned.recover()
    assert not api.node(W1).has_taint(CHAOS.key)


def test_untaint(abandoned: Abandoned, api: Cluster) -> None:
    api.call(api.core.patch_node, W2, {"spec": {"taints": [CHAOS.to_json()]}})
    try:
        NodeFaults(api, abandoned.stack).untaint(W2, CHAOS.key)
        assert not api.node(W2).has_taint(CHAOS.key)
        abandoned.recover()
        assert api.node(W2).has_taint(CHAOS.key, CHAOS.effect)  # put back
    finally:
        api.call(api.core.patch_node, W2, {"spec": {"taints": None}})


def test_out_of_service(abandoned: Abandoned, api: Cluster) -> None:
    # The fault needs a node that is really down; its record is what matters here: journaled,
    # then the taint applied as `out_of_service` applies it.
    abandoned.stack.push(OutOfService(W1, OUT_OF_SERVICE.to_json()), UndoEnv(cluster=api))
    api.call(api.core.patch_node, W1, {"spec": {"taints": [OUT_OF_SERVICE.to_json()]}})
    abandoned.recover()
    assert not api.node(W1).has_taint(OUT_OF_SERVICE.key)


def test_kill_and_isolate(abandoned: Abandoned, api: Cluster, sim: SimCluster) -> None:
    # Hand-set state that re-registration loses and the relabel must put back.
    api.call(
        api.core.patch_node,
        W3,
        {"metadata": {"labels": {"example.com/team": "sre"}}, "spec": {"unschedulable": True}},
    )
    try:
        SimMachine(SimSpec(W3, sim.state_dir), abandoned.stack).kill()
        snapshot = NodeFaults(api, abandoned.stack).isolate(W3)
        assert api.get_raw("nodes", W3) is None
        out = abandoned.recover("--rejoin-timeout", "60")
        # The machine is started before the relabel waits for the node (an older entry).
        assert out.index("start (undoes kill)") < out.index("put back labels/taints"), out
        node = api.wait_node_ready(W3, timeout=30).value
        assert node is not None
        assert node.uid != snapshot.uid  # it re-registered
        assert node.labels["example.com/team"] == "sre"
        assert node.unschedulable
    finally:
        api.call(api.core.patch_node, W3, {"spec": {"unschedulable": None}})
    no_annotations(api)


def test_freeze(abandoned: Abandoned, sim: SimCluster) -> None:
    SimMachine(SimSpec(W2, sim.state_dir), abandoned.stack).freeze()
    assert sim.node_state(W2) == "frozen"
    abandoned.recover()
    assert sim.node_state(W2) == "running"


def test_sim_pod_fault(abandoned: Abandoned, sim: SimCluster) -> None:
    SimMachine(SimSpec(W3, sim.state_dir), abandoned.stack).fail_pod("default", "web-0", "refuse")
    assert sim.pod_faults(W3) == [{"namespace": "default", "pod": "web-0", "mode": "refuse"}]
    abandoned.recover()
    assert sim.pod_faults(W3) == []


def test_nginx_drain(tmp_path: Path) -> None:
    nginx = start_nginx(tmp_path / "nginx", list(LB_NODES.values()))
    if nginx is None:
        pytest.skip("nginx is not installed")
    try:
        original = nginx.conf.read_bytes()
        abandoned = Abandoned(tmp_path / "journal.jsonl", None, None)
        lb = nginx.lb(LB_NODES)
        lb.undo = abandoned.stack
        lb.drain("node-2")
        lb.drain("node-3")
        assert [m.address for m in lb.members()] == ["127.89.2.2"]
        abandoned.recover()  # no cluster at all: the record says where nginx is
        assert nginx.conf.read_bytes() == original
        assert len(lb.members()) == 3
    finally:
        nginx.stop()


def test_haproxy_drain(tmp_path: Path) -> None:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed")
    sock = tmp_path / "admin.sock"
    servers = "\n".join(f"    server {n} {a}:30080" for n, a in LB_NODES.items())
    conf = tmp_path / "haproxy.cfg"
    conf.write_text(
        f"global\n    stats socket {sock} mode 600 level admin\n"
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n"
        f"    timeout server 5s\nfrontend fe\n    bind 127.89.2.1:{free_port('127.89.2.1')}\n"
        f"    default_backend web\nbackend web\n{servers}\n"
    )
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(conf)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline, "haproxy did not start"
            time.sleep(0.02)
        abandoned = Abandoned(tmp_path / "journal.jsonl", None, None)
        lb = HAProxyLB("web", runtime=str(sock), nodes=LB_NODES, undo=abandoned.stack)
        lb.drain("node-1")
        assert {m.name: m.state for m in lb.members()}["node-1"] == "maint"
        abandoned.recover()
        assert {m.name: m.state for m in lb.members()} == {n: "ready" for n in LB_NODES}
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_managed_nginx(tmp_path: Path) -> None:
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed")
    abandoned = Abandoned(tmp_path / "journal.jsonl", None, None)
    managed = ManagedNginx(tmp_path / "lb", {"node-1": "127.89.2.2:30080"}, undo=abandoned.stack)
    managed.start()
    pid = int((tmp_path / "lb" / "nginx.pid").read_text())
    try:
        abandoned.recover()
        # Stopped by another process: here it is a zombie child until reaped, or gone.
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    finally:
        managed.stop()  # reaps it; nothing left to stop


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_managed_prometheus(tmp_path: Path) -> None:
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed")
    from pytest_k8sdr.prometheus.managed import ManagedPrometheus

    abandoned = Abandoned(tmp_path / "journal.jsonl", None, None)
    managed = ManagedPrometheus(tmp_path / "prom", abandoned.stack).start()
    # The pid spawn_daemon wrote, and journaled: what recover stops.
    pid = int((tmp_path / "prom" / "prometheus.pid").read_text())
    assert f"--config.file={managed.config}" in Path(f"/proc/{pid}/cmdline").read_text()
    assert _alive(pid)
    abandoned.recover()
    assert not _alive(pid)
    assert not (tmp_path / "prom" / "prometheus.pid").exists()
    managed.close()  # nothing left to stop


def test_nginx_exporter(tmp_path: Path) -> None:
    if shutil.which("prometheus") is None or shutil.which("prometheus-nginx-exporter") is None:
        pytest.skip("prometheus or prometheus-nginx-exporter is not installed")
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed")
    from pytest_k8sdr.prometheus.managed import ManagedPrometheus

    session = UndoStack()
    with session.context():
        prometheus = ManagedPrometheus(tmp_path / "prom", session).start()
        abandoned = Abandoned(tmp_path / "journal.jsonl", None, None)
        nginx = ManagedNginx(tmp_path / "lb", {"node-1": "127.89.2.2:30080"}, undo=abandoned.stack)
        nginx.start()
        listen = prometheus.scrape_nginx(nginx.status_url, {"lb": "web"}, abandoned.stack)
        (targets,) = (tmp_path / "prom" / "targets").glob("nginx-*.json")
        assert listen in targets.read_text()
        pid_file = next((tmp_path / "prom").glob("nginx-*.pid"))
        pid = int(pid_file.read_text())
        assert _alive(pid)
        abandoned.recover()
        assert not _alive(pid)
        assert not targets.exists()  # no longer scraped
        nginx.stop()  # nothing left to stop


def test_namespace(abandoned: Abandoned, api: Cluster) -> None:
    name = create_test_namespace(api, "k8sdr-kinds-namespace", abandoned.stack)
    assert api.get_raw("namespaces", name) is not None
    abandoned.recover()
    api.wait(
        "namespaces",
        lambda s: None if name in s.objects else Satisfied(None),
        timeout=30,
        description=f"namespace {name} to be deleted",
    )


def test_lock(abandoned: Abandoned, api: Cluster) -> None:
    lock = GameDayLock(api, "a run about to die", duration=30)
    entry = abandoned.stack.push(
        GameDayLockHeld(lock.namespace, lock.name, lock.holder), UndoEnv(cluster=api)
    )
    assert entry.journal_id
    lock.acquire()
    lock.stop()  # it stops renewing, as a killed run does
    lease = read_lease(api, lock.namespace, lock.name)
    assert lease is not None
    assert lease.holder == "a run about to die"
    abandoned.recover()
    assert read_lease(api, lock.namespace, lock.name) is None


def test_sim_cluster(tmp_path: Path) -> None:
    from pytest_k8sdr.backends import SimClusterLaunched

    abandoned = Abandoned(tmp_path / "journal.jsonl", None, None)
    state_dir = tmp_path / "launched"
    abandoned.stack.push(SimClusterLaunched(str(state_dir)))
    launched = SimCluster.start(state_dir, workers=1, profile="fast")
    try:
        assert processes_mentioning(str(state_dir))  # its API server and agents
        abandoned.recover()
        with pytest.raises(SimLaunchError):
            SimCluster.attach(state_dir)
        assert processes_mentioning(str(state_dir)) == []
    finally:
        launched.stop()


def test_zone(abandoned: Abandoned, api: Cluster, sim: SimCluster) -> None:
    zone = {W1: "zone-a", W2: "zone-a"}
    for node, name in zone.items():
        api.call(api.core.patch_node, node, {"metadata": {"labels": {ZONE_LABEL: name}}})
    try:
        nodes = {n: {"driver": "sim", "state_dir": str(sim.state_dir)} for n in zone}
        machines = Machines(parse_inventory({"nodes": nodes}), abandoned.stack, cluster=api)
        machines.zone("zone-a").freeze()
        assert [sim.node_state(n) for n in zone] == ["frozen", "frozen"]
        abandoned.recover()
        assert [sim.node_state(n) for n in zone] == ["running", "running"]
    finally:
        for node in zone:
            api.call(api.core.patch_node, node, {"metadata": {"labels": {ZONE_LABEL: None}}})


def test_control_plane(tmp_path: Path) -> None:
    # Its own cluster: the module's stays up for the other tests. No annotator: the API server
    # the annotations would go to is what the fault stops.
    abandoned = Abandoned(tmp_path / "journal.jsonl", None, None)
    started = SimCluster.start(tmp_path / "cp", workers=1, profile="fast")
    try:
        ControlPlane.for_backend("sim", abandoned.stack, sim=started).stop()
        assert not started.running()
        abandoned.recover()
        assert SimCluster.attach(started.state_dir).running()
        started.wait_nodes_ready(started.node_names(), timeout=30)
    finally:
        SimCluster.attach(started.state_dir).stop()


def test_backup(tmp_path: Path) -> None:
    from pytest_k8sdr.faults.backup import Backups, parse_backup

    abandoned = Abandoned(tmp_path / "journal.jsonl", None, None)
    store = tmp_path / "store"
    store.mkdir()
    spec = parse_backup(
        {
            "save": "touch {store}/{name}",
            "restore": "true",
            "delete": "rm -f {store}/{name}",
            "vars": {"store": str(store)},
        },
        "inventory",
    )
    assert spec is not None
    Backups(spec, abandoned.stack, tmp_path / "files").save(name="drill")
    assert (store / "drill").exists()  # what a velero Backup would leave in its bucket
    abandoned.recover()
    assert not (store / "drill").exists()


def test_every_registered_kind_is_recovered_by_a_test_here() -> None:
    assert set(registry().kinds) == set(COVERED)
