"""An experiment's steady-state hypothesis: refused before it starts, a stop condition during.

An inner session runs on this session's cluster, querying this session's managed Prometheus:
a hypothesis that does not hold refuses the experiment before its first disruption; one that
breaks mid-phase stops the experiment at once, its disruptions undone, and the next test runs.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from pytest_k8sdr import Prometheus, SteadyStateBreached
from pytest_k8sdr.backends import Backend
from pytest_k8sdr.cluster import Cluster
from pytest_k8sdr.config import load_kubeconfig
from pytest_k8sdr.lock import StopCondition
from pytest_k8sdr.plugin_safety import _Interrupts

INNER = """
import json, time, urllib.request
from pathlib import Path
import pytest

POSTS = 'sum(http_requests_total{namespace="$namespace",method="POST"} or vector(0))'

@pytest.mark.k8sdr(steady_state=["impossible: vector(1) < 0.5"])
@pytest.mark.disruptive
def test_1_not_met(node_faults):
    node_faults.cordon("k8sdr-worker")
    print("CORDONED-ANYWAY")

@pytest.mark.k8sdr(steady_state=[f"no posts: {POSTS} < 1"])
@pytest.mark.disruptive
def test_2_breached(request, node_faults, make_workload, runbook):
    web = make_workload("web", replicas=1)
    request.addfinalizer(lambda: Path("timeline.json").write_text(runbook.to_json()))
    (pod,) = web.pods()
    with runbook.phase("fail"):
        node_faults.cordon("k8sdr-worker2")
        post = urllib.request.Request(f"http://{pod.ip}:{web.port}/", data=b"x", method="POST")
        with urllib.request.urlopen(post, timeout=5) as resp:
            assert resp.status == 200
        for _ in range(600):
            time.sleep(0.1)
    print("SLEPT-THROUGH")

@pytest.mark.disruptive
def test_3_after(node_faults):
    node_faults.cordon("k8sdr-worker3")
"""


def test_a_hypothesis_not_met_refuses_and_a_breach_stops_the_experiment(
    pytester: pytest.Pytester,
    k8sdr_backend: Backend,
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
) -> None:
    kubeconfig = Path(k8sdr_backend.kubeconfig)
    _, context = load_kubeconfig([kubeconfig])
    pytester.makepyfile(test_inner=INNER)
    journal = pytester.path / "journal.jsonl"
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-rfEs",
        "--k8sdr-backend=kubeconfig",
        f"--k8sdr-kubeconfig={kubeconfig}",
        f"--k8sdr-allowed-contexts={context}",
        f"--k8sdr-lock-namespace={namespace}",
        f"--k8sdr-journal={journal}",
        f"--k8sdr-prometheus={prometheus.url}",
        "--k8sdr-steady-state-interval=0.5s",
        timeout=240,
    )
    result.assert_outcomes(passed=1, failed=2)
    out = result.stdout.str()
    # Not met: refused before its first disruption, which was never made.
    result.stdout.fnmatch_lines(
        [
            "_*test_1_not_met*_",
            "E*SteadyStateNotMet: refusing to start: the steady state does not hold*",
            "E*impossible: vector(1) < 0.5: value = 1",
        ]
    )
    assert "CORDONED-ANYWAY" not in out
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    opened = {(r["kind"], r.get("node")) for r in records if r.get("event") == "opened"}
    assert ("cordon", "k8sdr-worker") not in opened  # refused before it was journaled
    assert ("cordon", "k8sdr-worker2") in opened
    # Breached mid-phase: stopped at once (in its sleep), with what broke.
    result.stdout.fnmatch_lines(
        [
            "_*test_2_breached*_",
            ">*time.sleep(0.1)",
            "E*SteadyStateBreached: the steady state broke during the experiment: no posts:*"
            "value = 1; the experiment stopped and its disruptions are undone",
        ]
    )
    assert "SLEPT-THROUGH" not in out
    # Its values are on the timeline: 0 before the POST, 1 after.
    timeline = json.loads((pytester.path / "timeline.json").read_text())
    (series,) = [s for s in timeline["series"] if s["name"] == "no posts"]
    values = [p["value"] for p in series["points"]]
    assert values[0] == 0.0
    assert values[-1] == 1.0
    # Its cordon was undone; the session went on, and the next test disrupted (and undid).
    for node in ("k8sdr-worker", "k8sdr-worker2", "k8sdr-worker3"):
        assert not cluster.node(node).unschedulable, node
    assert ("cordon", "k8sdr-worker3") in opened


def test_releasing_the_lock_keeps_a_steady_state_interrupting() -> None:
    # The lock and a test's steady state both need the interrupt: the lock's release at the
    # end of a session must not silence the breach of a steady state still watched.
    stop = StopCondition()
    interrupts = _Interrupts(stop)
    before = signal.getsignal(signal.SIGUSR1)
    interrupts.install()  # the game-day lock
    interrupts.install()  # a test's steady state
    interrupts.uninstall()  # the lock is released
    assert interrupts.installed
    interrupts.in_call = True
    with pytest.raises(SteadyStateBreached, match="broke"):
        # The listener signals this (main) thread, whose handler raises the stop's error.
        stop.trip("the steady state broke", error=SteadyStateBreached, scope="test")
    interrupts.in_call = False
    interrupts.uninstall()  # the steady state's test ends
    assert not interrupts.installed
    assert signal.getsignal(signal.SIGUSR1) is before


UNCHECKED = """
import pytest

@pytest.mark.k8sdr(steady_state=["impossible: vector(1) < 0.5"])
@pytest.mark.disruptive
def test_hypothesis_without_prometheus(node_faults):
    node_faults.cordon("k8sdr-worker")
"""


def test_an_experiments_hypothesis_without_a_prometheus_is_reported_unchecked(
    pytester: pytest.Pytester, k8sdr_backend: Backend, cluster: Cluster, namespace: str
) -> None:
    # kind in CI has no Prometheus: the experiment runs, its report says what was not checked.
    kubeconfig = Path(k8sdr_backend.kubeconfig)
    _, context = load_kubeconfig([kubeconfig])
    pytester.makepyfile(test_inner=UNCHECKED)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--k8sdr-backend=kubeconfig",
        f"--k8sdr-kubeconfig={kubeconfig}",
        f"--k8sdr-allowed-contexts={context}",
        f"--k8sdr-lock-namespace={namespace}",
        f"--k8sdr-journal={pytester.path / 'journal.jsonl'}",
        f"--junitxml={junit}",
        timeout=120,
    )
    result.assert_outcomes(passed=1)
    assert 'name="k8sdr_steady_state" value="not checked: no Prometheus' in junit.read_text()
    assert not cluster.node("k8sdr-worker").unschedulable
