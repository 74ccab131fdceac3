"""A flaky API server changes no verdict: the same experiments pass and fail with faults on.

The simulator's fault injection answers 5% of requests with 500 or 429 (Retry-After), adds
latency to every request and cuts every watch after a few seconds. An experiment whose cluster
heals must still pass; one whose cluster cannot heal must still fail, as a failure of the
cluster (an assertion), not as an error of the tool.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from safety_helpers import attach_and_stop, inner_pytest, recover

from pytest_k8sdr.sim import FaultConfig, SimCluster, SimLaunchError

EXPERIMENTS = """
import pytest
from pytest_k8sdr import assert_node_unreachable, assert_pods_rescheduled

WORKERS = ["k8sdr-worker", "k8sdr-worker2", "k8sdr-worker3"]


@pytest.mark.disruptive
def test_a_lost_node_heals(cluster, make_workload, machines, node_faults):
    web = make_workload("web", replicas=4, service=None)
    victim = web.busiest_node()
    machines[victim].kill()
    assert_node_unreachable(cluster, victim)
    node_faults.isolate(victim)
    assert_pods_rescheduled(web, away_from=victim, timeout=60)


@pytest.mark.disruptive
def test_a_cluster_with_no_room_does_not_heal(cluster, make_workload, machines, node_faults):
    web = make_workload("web", replicas=3, service=None)
    victim = web.busiest_node()
    for node in WORKERS:
        if node != victim:
            node_faults.cordon(node)  # nowhere for the replacements to go
    machines[victim].kill()
    assert_node_unreachable(cluster, victim)
    node_faults.isolate(victim)
    assert_pods_rescheduled(web, away_from=victim, timeout=8)
"""

FAULTS = FaultConfig(error_rate=0.05, latency_ms=15, watch_cut_seconds=3)


@pytest.fixture
def make_sim(tmp_path: Path) -> Iterator[Callable[[str, FaultConfig | None], SimCluster]]:
    started: list[SimCluster] = []

    def start(name: str, faults: FaultConfig | None) -> SimCluster:
        # The launcher's own readiness requests meet the injected faults too: retry a start.
        for attempt in range(3):
            try:
                sim = SimCluster.start(
                    tmp_path / f"{name}-{attempt}", workers=3, profile="fast", faults=faults
                )
            except SimLaunchError:
                if attempt == 2:
                    raise
                continue
            started.append(sim)
            return sim
        raise AssertionError("unreachable")

    yield start
    for sim in started:
        attach_and_stop(sim)


def verdicts(sim: SimCluster, directory: Path) -> dict[str, str]:
    directory.mkdir()
    (directory / "test_experiments.py").write_text(EXPERIMENTS)
    inventory = directory / "machines.yaml"
    inventory.write_text(f"defaults:\n  driver: sim\n  state_dir: {sim.state_dir}\n")
    junit = directory / "junit.xml"
    proc = inner_pytest(
        directory / "test_experiments.py",
        sim.kubeconfig_path,
        f"--k8sdr-machines={inventory}",
        f"--k8sdr-journal={directory / 'journal.jsonl'}",
        f"--junitxml={junit}",
    )
    out, _ = proc.communicate(timeout=300)
    assert junit.exists(), out
    found: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = child.tag
        found[case.attrib["name"]] = outcome
    return found


def test_fault_injection_changes_no_verdict(
    make_sim: Callable[[str, FaultConfig | None], SimCluster], tmp_path: Path
) -> None:
    clean = verdicts(make_sim("clean", None), tmp_path / "clean")
    faulty = verdicts(make_sim("faulty", FAULTS), tmp_path / "faulty")
    expected = {
        "test_a_lost_node_heals": "passed",
        "test_a_cluster_with_no_room_does_not_heal": "failure",
    }
    assert clean == expected
    assert faulty == expected


def test_an_api_server_that_stays_down_is_a_clear_failure_not_a_hang(tmp_path: Path) -> None:
    sim = SimCluster.start(tmp_path / "sim", workers=0, profile="fast")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_bytes(sim.kubeconfig_path.read_bytes())
    sim.stop()
    started = time.monotonic()
    result = recover("--cluster", "--kubeconfig", str(kubeconfig), "--api-deadline", "2")
    took = time.monotonic() - started
    assert result.returncode == 1, result
    assert "API server unreachable for 2s" in result.stderr
    assert took < 30, f"recover took {took:.1f}s to give up"
