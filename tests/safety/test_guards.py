"""Guards, the game-day lock, the dry run and bad input, as a user meets them.

Every inner run reaches the simulated cluster through a proxy that counts the API writes, so
"nothing was touched" is measured, not assumed.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from safety_helpers import WriteCounter, attach_and_stop, inner_pytest, recover, wait_all_ready

from pytest_k8sdr import Cluster, NotFound
from pytest_k8sdr.journal import ANNOTATION, read_journal
from pytest_k8sdr.lock import DEFAULT_NAME
from pytest_k8sdr.sim import SimCluster

CORDON = """
import pytest

@pytest.mark.disruptive
def test_it(node_faults):
    node_faults.cordon("{node}")
"""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    cluster = SimCluster.start(tmp_path_factory.mktemp("guard-sim"), workers=3, profile="fast")
    try:
        yield cluster
    finally:
        attach_and_stop(cluster)


@pytest.fixture(scope="module")
def api(sim: SimCluster) -> Iterator[Cluster]:
    cluster = Cluster.from_kubeconfig(sim.kubeconfig_path)
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def proxy(sim: SimCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WriteCounter]:
    counter = WriteCounter(sim, tmp_path_factory.mktemp("proxy"))
    yield counter
    counter.close()


@pytest.fixture
def counter(proxy: WriteCounter, api: Cluster) -> Iterator[WriteCounter]:
    proxy.writes.clear()
    yield proxy
    # Every test leaves the cluster as it found it.
    for node in api.nodes():
        assert not node.unschedulable, node.name
        assert ANNOTATION not in node.annotations, node.name


def run(
    tmp_path: Path, counter: WriteCounter, body: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(body)
    proc = inner_pytest(
        test_file, counter.kubeconfig, f"--k8sdr-journal={tmp_path / 'journal.jsonl'}", *extra
    )
    out, _ = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


# -- bad input -------------------------------------------------------------------------------


def test_a_misspelled_node_is_named_and_nothing_is_disrupted(
    tmp_path: Path, counter: WriteCounter
) -> None:
    result = run(tmp_path, counter, CORDON.format(node="k8sdr-wroker"))
    assert result.returncode == 1, result.stdout
    assert "unknown node 'k8sdr-wroker'" in result.stdout
    assert "k8sdr-worker2" in result.stdout  # the nodes that do exist are listed
    assert counter.disruptive_writes() == []


def test_a_wrong_kubeconfig_is_a_usage_error_before_any_request(
    tmp_path: Path, counter: WriteCounter
) -> None:
    missing = tmp_path / "no-such.kubeconfig"
    result = run(
        tmp_path, counter, CORDON.format(node="k8sdr-worker"), f"--k8sdr-kubeconfig={missing}"
    )
    assert result.returncode == 4, result.stdout
    assert f"no kubeconfig found (looked at {missing})" in result.stdout
    assert counter.writes == []


def test_an_unknown_context_is_named_with_the_ones_that_exist(
    tmp_path: Path, counter: WriteCounter
) -> None:
    result = run(tmp_path, counter, CORDON.format(node="k8sdr-worker"), "--k8sdr-context=stagign")
    assert result.returncode == 4, result.stdout
    assert "context 'stagign' does not exist (available: k8sdr-sim)" in result.stdout
    assert counter.writes == []


def test_an_inventory_with_a_missing_key_names_node_and_key(
    tmp_path: Path, counter: WriteCounter
) -> None:
    inventory = tmp_path / "machines.yaml"
    inventory.write_text("defaults:\n  driver: ssh\nnodes:\n  k8sdr-worker:\n    user: ops\n")
    body = """
import pytest

@pytest.mark.disruptive
def test_it(machines):
    machines["k8sdr-worker"].kill()
"""
    result = run(tmp_path, counter, body, f"--k8sdr-machines={inventory}")
    assert result.returncode != 0, result.stdout
    assert "node 'k8sdr-worker': host: required, missing" in result.stdout
    assert counter.disruptive_writes() == []


def test_a_corrupt_journal_is_refused_naming_the_line(
    tmp_path: Path, counter: WriteCounter
) -> None:
    journal = tmp_path / "journal.jsonl"
    journal.write_text(
        f'{{"event": "session", "run": "r", "kubeconfig": "{counter.kubeconfig}"}}\n'
        '{"event": "opened", "id": "r-1", "kind": "cordon", "node": "k8sdr-worker", "data": {\n'
    )
    for extra in ((), ("--check",)):
        result = recover("--journal", str(journal), *extra)
        assert result.returncode == 2, result
        assert f"journal {journal} is corrupt at line 2" in result.stderr
    assert counter.writes == []


# -- guards ----------------------------------------------------------------------------------


def test_protected_nodes_are_refused_before_anything_is_written(
    tmp_path: Path, counter: WriteCounter, api: Cluster
) -> None:
    label = {"metadata": {"labels": {"example.com/protected": "yes"}}}
    api.call(api.core.patch_node, "k8sdr-worker2", label)
    try:
        counter.writes.clear()
        result = run(
            tmp_path,
            counter,
            CORDON.format(node="k8sdr-worker2"),
            "--k8sdr-protected-nodes=example.com/protected",
        )
    finally:
        unlabel = {"metadata": {"labels": {"example.com/protected": None}}}
        api.call(api.core.patch_node, "k8sdr-worker2", unlabel)
    assert result.returncode == 1, result.stdout
    assert "refusing cordon of node 'k8sdr-worker2': it is protected" in result.stdout
    assert counter.disruptive_writes() == []


def test_the_control_plane_is_protected(tmp_path: Path, counter: WriteCounter) -> None:
    result = run(tmp_path, counter, CORDON.format(node="k8sdr-control-plane"))
    assert result.returncode == 1, result.stdout
    assert "control-plane node" in result.stdout
    assert counter.disruptive_writes() == []


def test_no_more_nodes_than_allowed_are_disrupted_at_once(
    tmp_path: Path, counter: WriteCounter
) -> None:
    body = """
import pytest

@pytest.mark.disruptive
def test_it(node_faults):
    node_faults.cordon("k8sdr-worker")
    node_faults.cordon("k8sdr-worker")  # the same node again: still one
    node_faults.cordon("k8sdr-worker2")
"""
    result = run(tmp_path, counter, body, "--k8sdr-max-disrupted=1")
    assert result.returncode == 1, result.stdout
    assert "refusing cordon of node 'k8sdr-worker2'" in result.stdout
    assert "--k8sdr-max-disrupted is 1" in result.stdout
    touched = {w.rsplit("/", 1)[-1] for w in counter.disruptive_writes()}
    assert touched == {"k8sdr-worker"}


def test_a_run_never_starts_from_a_broken_cluster(
    tmp_path: Path, counter: WriteCounter, sim: SimCluster, api: Cluster
) -> None:
    sim.kill_node("k8sdr-worker3")
    try:
        api.wait_node_unreachable("k8sdr-worker3", timeout=30)
        counter.writes.clear()
        result = run(tmp_path, counter, CORDON.format(node="k8sdr-worker"))
    finally:
        sim.start_node("k8sdr-worker3")
        wait_all_ready(api, ["k8sdr-worker3"])
    assert result.returncode == 4, result.stdout
    assert "the cluster is not healthy" in result.stdout
    assert "node k8sdr-worker3 is not Ready (Ready=Unknown)" in result.stdout
    assert counter.writes == []


# -- the game-day lock -----------------------------------------------------------------------


def _lease(api: Cluster, holder: str, renewed: datetime) -> None:
    stamp = renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {
        "metadata": {"name": DEFAULT_NAME, "namespace": "default"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 30, "renewTime": stamp},
    }
    api.call(api.coordination.create_namespaced_lease, "default", body, _preload_content=False)


def _drop_lease(api: Cluster) -> None:
    with contextlib.suppress(NotFound):
        api.call(api.coordination.delete_namespaced_lease, DEFAULT_NAME, "default")


def test_a_held_lock_refuses_the_run_naming_its_holder(
    tmp_path: Path, counter: WriteCounter, api: Cluster
) -> None:
    _lease(api, "ci pipeline 4711 on runner-7", datetime.now(UTC))
    try:
        counter.writes.clear()
        result = run(tmp_path, counter, CORDON.format(node="k8sdr-worker"))
    finally:
        _drop_lease(api)
    assert result.returncode == 4, result.stdout
    assert "locked for a game day by 'ci pipeline 4711 on runner-7'" in result.stdout
    assert counter.writes == []


def test_a_stale_lock_expires(tmp_path: Path, counter: WriteCounter, api: Cluster) -> None:
    _lease(api, "a runner that died", datetime.now(UTC) - timedelta(minutes=5))
    try:
        result = run(tmp_path, counter, CORDON.format(node="k8sdr-worker"))
    finally:
        _drop_lease(api)
    assert result.returncode == 0, result.stdout
    assert any(w.startswith("PUT") and DEFAULT_NAME in w for w in counter.writes)
    assert not api.node("k8sdr-worker").unschedulable


# -- dry run ---------------------------------------------------------------------------------


def test_a_dry_run_prints_the_plan_and_writes_nothing(
    tmp_path: Path, counter: WriteCounter
) -> None:
    body = """
import pytest
from pytest_k8sdr.cluster import Taint

@pytest.mark.disruptive
def test_cordon(node_faults):
    node_faults.cordon("k8sdr-worker")

@pytest.mark.disruptive
def test_taint(node_faults):
    node_faults.taint("k8sdr-worker2", Taint("example.com/chaos", "NoSchedule", "x"))

@pytest.mark.disruptive
def test_namespace_first(namespace, node_faults):
    node_faults.cordon("k8sdr-worker")
"""
    result = run(tmp_path, counter, body, "--k8sdr-plan")
    assert result.returncode == 0, result.stdout
    plan = result.stdout.split("k8sdr plan (dry run: nothing was touched)", 1)[1]
    assert "test_cordon\n    would cordon node k8sdr-worker" in plan
    assert (
        "test_taint\n    would taint node k8sdr-worker2 with example.com/chaos=x:NoSchedule" in plan
    )
    # Rehearsed on the twin: a test goes on past its namespace, which the plan names.
    first = plan.split("test_namespace_first\n", 1)[1]
    assert first.startswith("    would create the test namespace k8sdr-test-namespace-first")
    assert "    would cordon node k8sdr-worker\n" in first
    assert counter.writes == []
    # Journaled all the same: the twin it launched (and what it did there), all closed again.
    journal = tmp_path / "journal.jsonl"
    assert "sim-cluster" in journal.read_text()
    assert read_journal(journal) == []


# -- recover from the cluster's annotations --------------------------------------------------


def test_recover_from_the_cluster_after_sigkill(
    tmp_path: Path, counter: WriteCounter, api: Cluster
) -> None:
    body = """
import time
import pytest
from pytest_k8sdr.cluster import Taint

@pytest.mark.disruptive
def test_it(node_faults):
    node_faults.cordon("k8sdr-worker")
    node_faults.taint("k8sdr-worker2", Taint("example.com/chaos", "NoSchedule", "x"))
    print("DISRUPTED", flush=True)
    time.sleep(60)
"""
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(body)
    proc = inner_pytest(
        test_file,
        counter.kubeconfig,
        f"--k8sdr-journal={tmp_path / 'journal.jsonl'}",
        "--k8sdr-lock=off",  # a --cluster recovery knows the annotations, not the journal's lock
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "DISRUPTED" in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert api.node("k8sdr-worker").unschedulable
    counter.writes.clear()
    check = recover("--cluster", "--kubeconfig", str(counter.kubeconfig), "--check")
    assert check.returncode == 1, check
    assert "cordon" in check.stdout
    assert "k8sdr-worker2" in check.stdout
    assert counter.writes == []
    done = recover("--cluster", "--kubeconfig", str(counter.kubeconfig))
    assert done.returncode == 0, done
    assert "2 of 2 disruption(s) undone" in done.stdout
    assert not api.node("k8sdr-worker2").has_taint("example.com/chaos")
    again = recover("--cluster", "--kubeconfig", str(counter.kubeconfig))
    assert again.returncode == 0
    assert "no open disruption" in again.stdout
