"""A game-day lock taken from a running session stops it disrupting (a stop condition).

The test that was running fails at once with the reason, its disruptions are undone, every
disruptive test after it is skipped with the reason, and any disruption still attempted is
refused. Other tests still run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_k8sdr.backends import Backend
from pytest_k8sdr.cluster import Cluster
from pytest_k8sdr.config import load_kubeconfig
from pytest_k8sdr.lock import DEFAULT_NAME

INNER = """
import json, time
import pytest

def steal_the_lock(cluster):
    lease = json.loads(cluster.call(
        cluster.coordination.read_namespaced_lease, "k8sdr-game-day", "LOCK_NS",
        _preload_content=False).data)
    lease["spec"]["holderIdentity"] = "operator@laptop"
    cluster.call(cluster.coordination.replace_namespaced_lease, "k8sdr-game-day", "LOCK_NS",
                 lease, _preload_content=False)

@pytest.mark.disruptive
def test_1_running_when_the_lock_is_taken(node_faults, cluster):
    node_faults.cordon("k8sdr-worker")
    steal_the_lock(cluster)
    for _ in range(300):
        time.sleep(0.1)
    print("SLEPT-THROUGH")

@pytest.mark.disruptive
def test_2_disruptive_afterwards(node_faults):
    node_faults.cordon("k8sdr-worker2")

def test_3_reads_only(cluster):
    assert cluster.nodes()

def test_4_unmarked_but_disrupts(node_faults):
    node_faults.cordon("k8sdr-worker2")
"""


def test_a_lost_lock_stops_the_session(
    pytester: pytest.Pytester, k8sdr_backend: Backend, cluster: Cluster, namespace: str
) -> None:
    # The lock lives in this test's own namespace: the suite's session may hold the default one.
    kubeconfig = Path(k8sdr_backend.kubeconfig)
    _, context = load_kubeconfig([kubeconfig])
    pytester.makepyfile(test_inner=INNER.replace("LOCK_NS", namespace))
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-rfEs",
        "--k8sdr-backend=kubeconfig",
        f"--k8sdr-kubeconfig={kubeconfig}",
        f"--k8sdr-allowed-contexts={context}",
        "--k8sdr-lock-duration=3",
        f"--k8sdr-lock-namespace={namespace}",
        f"--k8sdr-journal={pytester.path / 'journal.jsonl'}",
        timeout=120,
    )
    result.assert_outcomes(passed=1, failed=2, skipped=1)
    out = result.stdout.str()
    taken = f"the game-day lock {namespace}/{DEFAULT_NAME} was taken by 'operator@laptop'"
    # The running test: stopped at once (in its sleep), with the reason.
    result.stdout.fnmatch_lines(
        [
            "_*test_1_running_when_the_lock_is_taken*_",
            ">*time.sleep(0.1)",
            f"E*LockLost: {taken}*",
            "_*test_4_unmarked_but_disrupts*_",
        ]
    )
    result.stdout.fnmatch_lines(["FAILED test_inner.py::test_1_running_when_the_lock_is_taken*"])
    assert "SLEPT-THROUGH" not in out
    # The following disruptive test: skipped, saying why.
    result.stdout.fnmatch_lines(
        [f"SKIPPED [[]1[]] test_inner.py:*: k8sdr: the session stopped disrupting: {taken}*"]
    )
    # A disruption attempted anyway: refused before anything is touched.
    result.stdout.fnmatch_lines(
        ["_*test_4_unmarked_but_disrupts*_", ">*node_faults.cordon*", f"E*LockLost: {taken}*"]
    )
    result.stdout.fnmatch_lines(["*k8sdr: the session stopped disrupting*"])
    # Its cordon was undone; nothing else was ever cordoned.
    assert not cluster.node("k8sdr-worker").unschedulable
    assert not cluster.node("k8sdr-worker2").unschedulable
    # The lock is someone else's now: the session did not delete it on its way out.
    lease = cluster.get_raw("leases", DEFAULT_NAME, namespace)
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "operator@laptop"
    cluster.call(cluster.coordination.delete_namespaced_lease, DEFAULT_NAME, namespace)
