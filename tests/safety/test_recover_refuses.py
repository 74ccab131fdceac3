"""`k8sdr recover` refuses the entries of a run that is still alive, unless `--force`.

Alive means, on the same host, that the journal's pid runs and is that very process (same start
time: pids are reused); from another host, that the run still renews its game-day Lease.
"""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from safety_helpers import inner_pytest, recover

from pytest_k8sdr.cluster import Cluster
from pytest_k8sdr.errors import NotFound
from pytest_k8sdr.faults.node import NodeFaults
from pytest_k8sdr.journal import (
    ANNOTATION,
    ClusterAnnotator,
    Journal,
    ProcessIdentity,
    read_journal,
)
from pytest_k8sdr.lock import DEFAULT_NAME, read_lease
from pytest_k8sdr.sim import SimCluster
from pytest_k8sdr.undo import UndoStack

W1 = "k8sdr-worker"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    cluster = SimCluster.start(tmp_path_factory.mktemp("refuse-sim"), workers=2, profile="fast")
    try:
        yield cluster
    finally:
        SimCluster.attach(cluster.state_dir).stop()


@pytest.fixture(scope="module")
def api(sim: SimCluster) -> Iterator[Cluster]:
    cluster = Cluster.from_kubeconfig(sim.kubeconfig_path)
    yield cluster
    cluster.close()


@pytest.fixture
def cordoned(tmp_path: Path, api: Cluster, sim: SimCluster) -> Iterator[Path]:
    """A journal, by this (live) process, with a cordon of W1 left open."""
    path = tmp_path / "journal.jsonl"
    journal = Journal(path, annotator=ClusterAnnotator(api))
    journal.describe(kubeconfig=str(sim.kubeconfig_path))
    NodeFaults(api, UndoStack(journal)).cordon(W1)
    journal.close_file()
    yield path
    # What a refused recover left: the cordon and its annotation.
    api.call(
        api.core.patch_node,
        W1,
        {"metadata": {"annotations": {ANNOTATION: None}}, "spec": {"unschedulable": None}},
    )
    with contextlib.suppress(NotFound):
        api.call(api.coordination.delete_namespaced_lease, DEFAULT_NAME, "default")


def rewrite_session(path: Path, **facts: object) -> None:
    """Change what the journal says of its run (as another host or an earlier process would)."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:
        if line["event"] == "session" and "pid" in line:
            line.update(facts)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_a_live_run_is_refused_naming_it_and_force_overrides(cordoned: Path, api: Cluster) -> None:
    me = ProcessIdentity.current()
    run = read_journal(cordoned)[0].id.rpartition("-")[0]
    refused = recover("--journal", str(cordoned))
    assert refused.returncode == 3, refused
    assert f"run {run} (pid {me.pid} on host {me.host}; no game-day lock)" in refused.stderr
    assert "is still running" in refused.stderr
    assert "--force" in refused.stderr
    assert api.node(W1).unschedulable  # nothing touched
    check = recover("--journal", str(cordoned), "--check")
    assert check.returncode == 1, check
    assert f"run {run} (pid {me.pid} on host {me.host}" in check.stdout
    assert "refuses these entries while it runs" in check.stdout
    forced = recover("--journal", str(cordoned), "--force")
    assert forced.returncode == 0, forced
    assert "1 of 1 disruption(s) undone" in forced.stdout
    assert not api.node(W1).unschedulable


def test_a_reused_pid_is_not_the_run(cordoned: Path, api: Cluster) -> None:
    me = ProcessIdentity.current()
    # This process's pid, but a start time of another process: the run's process is gone.
    rewrite_session(cordoned, started=(me.started or 0) + 12345)
    done = recover("--journal", str(cordoned))
    assert done.returncode == 0, done
    assert not api.node(W1).unschedulable


def _lease(api: Cluster, holder: str, renewed: datetime, duration: int = 60) -> None:
    body = {
        "metadata": {"name": DEFAULT_NAME, "namespace": "default"},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration,
            "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
    }
    api.call(api.coordination.create_namespaced_lease, "default", body, _preload_content=False)


def _with_lock_entry(path: Path, holder: str) -> None:
    run = read_journal(path)[0].id.rpartition("-")[0]
    line = {
        "event": "opened",
        "id": f"{run}-0",
        "at": "",
        "description": "take the game-day lock",
        "kind": "lock",
        "node": None,
        "data": {"namespace": "default", "name": DEFAULT_NAME, "holder": holder},
    }
    lines = path.read_text().splitlines()
    lines.insert(1, json.dumps(line))  # opened before the cordon, as a session does
    path.write_text("\n".join(lines) + "\n")


def test_a_run_on_another_host_renewing_its_lock_is_refused(cordoned: Path, api: Cluster) -> None:
    rewrite_session(cordoned, host="runner-7.example", pid=4711)
    _with_lock_entry(cordoned, "ci on runner-7")
    renewed = datetime.now(UTC) - timedelta(seconds=5)
    _lease(api, "ci on runner-7", renewed)
    refused = recover("--journal", str(cordoned))
    assert refused.returncode == 3, refused
    assert "pid 4711 on host runner-7.example" in refused.stderr
    stamp = renewed.isoformat(timespec="seconds")
    assert f"game-day lock default/{DEFAULT_NAME} last renewed {stamp}" in refused.stderr
    assert "it still renews its game-day lock" in refused.stderr
    assert api.node(W1).unschedulable
    assert read_lease(api, "default", DEFAULT_NAME) is not None


def test_a_lock_no_longer_renewed_means_the_run_is_gone(cordoned: Path, api: Cluster) -> None:
    rewrite_session(cordoned, host="runner-7.example", pid=4711)
    _with_lock_entry(cordoned, "ci on runner-7")
    # Not expired (60s), but a renewal (every 20s) was missed: nobody renews it any more.
    _lease(api, "ci on runner-7", datetime.now(UTC) - timedelta(seconds=45))
    done = recover("--journal", str(cordoned))
    assert done.returncode == 0, done
    assert "2 of 2 disruption(s) undone" in done.stdout
    assert not api.node(W1).unschedulable
    assert read_lease(api, "default", DEFAULT_NAME) is None


INNER = """
import time
import pytest

@pytest.mark.disruptive
def test_holds_a_cordon(node_faults):
    node_faults.cordon("k8sdr-worker")
    print("CORDONED", flush=True)
    for _ in range(300):
        time.sleep(0.1)
    print("SLEPT-THROUGH", flush=True)
"""


def test_a_live_game_day_is_refused_then_forced_and_stops_disrupting(
    tmp_path: Path, sim: SimCluster, api: Cluster
) -> None:
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(INNER)
    journal = tmp_path / "journal.jsonl"
    proc = inner_pytest(
        test_file, sim.kubeconfig_path, f"--k8sdr-journal={journal}", "--k8sdr-lock-duration=3"
    )
    try:
        assert proc.stdout is not None
        head = ""
        for line in proc.stdout:
            head += line
            if "CORDONED" in line:
                break
        assert "CORDONED" in head, head
        refused = recover("--journal", str(journal))
        assert refused.returncode == 3, refused
        assert f"pid {proc.pid} on host" in refused.stderr
        assert f"game-day lock default/{DEFAULT_NAME} last renewed" in refused.stderr
        assert api.node(W1).unschedulable
        forced = recover("--journal", str(journal), "--force")
        assert forced.returncode == 0, forced
        assert not api.node(W1).unschedulable
        # The run finds its lock gone: its test fails at once, saying why.
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
    out = head + out
    assert proc.returncode == 1, out
    assert "LockLost" in out, out
    assert f"the game-day lock default/{DEFAULT_NAME} was released by someone else" in out
    assert "SLEPT-THROUGH" not in out
    assert not api.node(W1).unschedulable
    assert read_journal(journal) == []
