"""pytest-xdist: workers get clusters of their own, or take turns at a shared one.

A killed worker's disruptions are listed by the controller and undone by `k8sdr recover`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_k8sdr.backends import Backend
from pytest_k8sdr.cluster import Cluster
from pytest_k8sdr.config import load_kubeconfig
from pytest_k8sdr.journal import ANNOTATION, read_journal, run_of
from pytest_k8sdr.lock import DEFAULT_NAME

OWN_CLUSTERS = """
import json, os
import pytest

@pytest.fixture(scope="session")
def k8sdr_sim_options():
    return {"workers": 1}

def test_each_worker_has_a_cluster(k8sdr_backend, cluster, runbook):
    with runbook.phase("fail"):
        nodes = cluster.nodes()
    record = {
        "worker": os.environ["PYTEST_XDIST_WORKER"],
        "slot": k8sdr_backend.sim.slot,
        "url": k8sdr_backend.sim.server_url,
        "addresses": sorted(n.internal_ip for n in nodes),
    }
    with open("RECORDS", "a") as fh:
        fh.write(json.dumps(record) + "\\n")
"""


def _two_workers(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """The inner session, under pytest-xdist with two workers."""
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", *args, timeout=240)


def test_each_worker_gets_a_simulated_cluster_on_its_own_address_block(
    pytester: pytest.Pytester, k8sdr_backend: Backend
) -> None:
    records = pytester.path / "records.jsonl"
    reports = pytester.path / "reports"
    pytester.makepyfile(test_inner=OWN_CLUSTERS.replace("RECORDS", str(records)))
    result = _two_workers(
        pytester,
        "--dist",
        "each",
        f"--k8sdr-report-dir={reports}",
        f"--k8sdr-journal={pytester.path / 'journal.jsonl'}",
    )
    result.assert_outcomes(passed=2)
    seen = [json.loads(line) for line in records.read_text().splitlines()]
    assert sorted(r["worker"] for r in seen) == ["gw0", "gw1"]
    # Two clusters: two API servers, two address slots, no node address in common, and
    # neither on the slot of this suite's own simulated cluster (another session here).
    assert len({r["url"] for r in seen}) == 2
    slots = {r["slot"] for r in seen}
    assert len(slots) == 2
    assert k8sdr_backend.sim.slot not in slots
    first, second = (set(r["addresses"]) for r in seen)
    assert first
    assert second
    assert not first & second
    # The controller's table and the report dir's summary hold both workers' experiments.
    result.stdout.fnmatch_lines(["*k8sdr runbook phases*", "test_each_worker_has_a_cluster *ok"])
    summary = json.loads((reports / "k8sdr-summary.json").read_text())
    assert sorted(e["worker"] for e in summary["experiments"]) == ["gw0", "gw1"]
    assert all(e["phases"][0]["verdict"] == "ok" for e in summary["experiments"])


TURNS = """
import json, os, time
from pathlib import Path
import pytest

SHARED = Path("@SHARED@")

def take_turn(request, name, other, node, node_faults):
    start = time.time()
    node_faults.cordon(node)
    if not (SHARED / f"done-{other}").exists():
        # First: hold the turn until the other worker is seen waiting for it.
        directory = Path(request.config.workerinput["k8sdr"]["directory"])
        for _ in range(1200):
            if list(directory.glob("waiting-*")):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the other worker never waited for its turn")
    end = time.time()
    record = {"test": name, "worker": os.environ["PYTEST_XDIST_WORKER"], "start": start,
              "end": end}
    (SHARED / f"done-{name}").write_text(json.dumps(record))

@pytest.mark.disruptive
@pytest.mark.xdist_group("a")
def test_a(request, node_faults):
    take_turn(request, "a", "b", "k8sdr-worker", node_faults)

@pytest.mark.disruptive
@pytest.mark.xdist_group("b")
def test_b(request, node_faults):
    take_turn(request, "b", "a", "k8sdr-worker2", node_faults)
"""


def _kubeconfig_args(backend: Backend, namespace: str, journal: Path) -> list[str]:
    kubeconfig = Path(backend.kubeconfig)
    _, context = load_kubeconfig([kubeconfig])
    # The lock lives in the test's own namespace: the suite's session may hold the default one.
    return [
        "--k8sdr-backend=kubeconfig",
        f"--k8sdr-kubeconfig={kubeconfig}",
        f"--k8sdr-allowed-contexts={context}",
        f"--k8sdr-lock-namespace={namespace}",
        f"--k8sdr-journal={journal}",
    ]


def test_disruptive_tests_on_a_shared_cluster_take_turns(
    pytester: pytest.Pytester, k8sdr_backend: Backend, cluster: Cluster, namespace: str
) -> None:
    shared = pytester.path / "shared"
    shared.mkdir()
    journal = pytester.path / "journal.jsonl"
    pytester.makepyfile(test_inner=TURNS.replace("@SHARED@", str(shared)))
    result = _two_workers(
        pytester, "--dist", "loadgroup", *_kubeconfig_args(k8sdr_backend, namespace, journal)
    )
    # Both workers joined the one game-day lock: neither refused the other.
    result.assert_outcomes(passed=2)
    a, b = (json.loads((shared / f"done-{n}").read_text()) for n in "ab")
    assert a["worker"] != b["worker"]
    first, second = sorted((a, b), key=lambda r: r["start"])
    assert first["end"] <= second["start"], f"disruptive tests overlapped: {first} {second}"
    # The one that waited said for whom, on the controller's terminal (a worker's stderr).
    waiter = second["worker"]
    holder = first["worker"]
    result.stderr.fnmatch_lines(
        [
            f"[[]{waiter}[]] k8sdr: waiting for worker {holder}'s disruptive test "
            f"test_inner.py::test_{first['test']} before test_inner.py::test_{second['test']}",
            f"[[]{waiter}[]] k8sdr: waited *s for worker {holder}'s disruptive test*",
        ]
    )
    # Each worker journaled its own run in the one file, and closed everything it opened.
    assert read_journal(journal) == []
    runs = {
        json.loads(line)["run"]
        for line in journal.read_text().splitlines()
        if json.loads(line)["event"] == "session"
    }
    assert len(runs) == 2
    # The last worker to leave the lock deleted it; both cordons were undone.
    assert cluster.get_raw("leases", DEFAULT_NAME, namespace) is None
    assert not cluster.node("k8sdr-worker").unschedulable
    assert not cluster.node("k8sdr-worker2").unschedulable


KILLED = """
import os, signal
import pytest

@pytest.mark.disruptive
def test_killed_mid_disruption(node_faults):
    node_faults.cordon("k8sdr-worker3")
    os.kill(os.getpid(), signal.SIGKILL)

def test_reads(cluster):
    assert cluster.nodes()
"""


def test_a_worker_killed_mid_disruption_leaves_what_recover_undoes(
    pytester: pytest.Pytester, k8sdr_backend: Backend, cluster: Cluster, namespace: str
) -> None:
    journal = pytester.path / "journal.jsonl"
    pytester.makepyfile(test_inner=KILLED)
    try:
        result = _two_workers(pytester, *_kubeconfig_args(k8sdr_backend, namespace, journal))
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(["*worker 'gw*' crashed while running*test_killed*"])
        # The controller lists what the killed worker left open, with the command to undo it.
        left = read_journal(journal)
        assert {e.record.kind for e in left} == {"cordon", "lock"}
        (cordon,) = [e for e in left if e.record.kind == "cordon"]
        result.stdout.fnmatch_lines(
            [
                "*k8sdr: disruptions still open*",
                f"{cordon.id} cordon k8sdr-worker3",
                f"undo them with: k8sdr recover --journal {journal}",
            ]
        )
        assert run_of(cordon.id).endswith("-gw0") or run_of(cordon.id).endswith("-gw1")
        node = cluster.node("k8sdr-worker3")
        assert node.unschedulable
        assert ANNOTATION in node.annotations
        recovered = subprocess.run(
            [sys.executable, "-m", "pytest_k8sdr.cli", "recover", "--journal", str(journal)],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
        assert read_journal(journal) == []
        node = cluster.node("k8sdr-worker3")
        assert not node.unschedulable
        assert ANNOTATION not in node.annotations
        # The killed worker was the lock's only member: leaving it deleted the Lease.
        assert cluster.get_raw("leases", DEFAULT_NAME, namespace) is None
    finally:
        if cluster.node("k8sdr-worker3").unschedulable:
            cluster.call(
                cluster.core.patch_node, "k8sdr-worker3", {"spec": {"unschedulable": False}}
            )
