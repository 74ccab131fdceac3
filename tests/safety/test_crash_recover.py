"""SIGKILL a game day at a random moment, N times; `k8sdr recover` must bring the cluster back.

One simulated cluster (3 workers, fast profile) and one real nginx serve every run. Each run
cordons a node, taints another, drains the third from the load balancer, kills its machine and
deletes its Node; the inner pytest is SIGKILLed somewhere between 0.3s and 4s after it starts
(before, during or after the disruptions, or during its own teardown). Then `k8sdr recover
--journal` must restore the starting state: every node Ready and schedulable, labels, taints
and annotations as before, nginx's members and file as before, no journal annotation left, the
game-day lock released.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from safety_helpers import (
    WORKERS,
    Nginx,
    attach_and_stop,
    cluster_state,
    inner_pytest,
    recover,
    start_nginx,
    wait_all_ready,
)

from pytest_k8sdr.cluster import Cluster
from pytest_k8sdr.journal import read_journal
from pytest_k8sdr.sim import SimCluster

RUNS = int(os.environ.get("K8SDR_CRASH_RUNS", "20"))

# The kill moment is drawn from the start of the inner test's setup (python and pytest have
# started by then): the window covers the guards and lock, the disruptions, the test holding
# them, its teardown, and the end of the run.
INNER_CONFTEST = """
def pytest_runtest_setup(item):
    print("SETUP-START", flush=True)
"""

INNER = """
import os, time
from pathlib import Path
import pytest
from pytest_k8sdr.cluster import Taint
from pytest_k8sdr.faults.machines import SimMachine, SimSpec
from pytest_k8sdr.lb import NginxLB

STATE_DIR = Path(os.environ["CRASH_SIM_STATE_DIR"])
ADDRESSES = dict(item.split("=") for item in os.environ["CRASH_NODES"].split(","))


@pytest.mark.disruptive
def test_game_day(node_faults, undo, cluster):
    # A pause between steps, so that some kills land half way through the disruptions.
    pause = float(os.environ.get("CRASH_PAUSE", "0.3"))
    node_faults.cordon("k8sdr-worker")
    time.sleep(pause)
    node_faults.taint("k8sdr-worker2", Taint("example.com/chaos", "NoSchedule", "crash"))
    time.sleep(pause)
    conf = os.environ.get("CRASH_NGINX_CONF")
    if conf:
        nginx = ("nginx", "-e", os.environ["CRASH_NGINX_ERRLOG"])
        lb = NginxLB("web", config=conf, nodes=ADDRESSES, nginx=nginx, undo=undo)
        lb.drain("k8sdr-worker3")
        time.sleep(pause)
    machine = SimMachine(SimSpec("k8sdr-worker3", STATE_DIR), undo)
    machine.kill()
    time.sleep(pause)
    node_faults.isolate("k8sdr-worker3")
    print("ALL-DISRUPTED", flush=True)
    time.sleep(float(os.environ.get("CRASH_HOLD", "1")))
"""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    cluster = SimCluster.start(tmp_path_factory.mktemp("crash-sim"), workers=3, profile="fast")
    try:
        yield cluster
    finally:
        attach_and_stop(cluster)


@pytest.fixture(scope="module")
def sim_cluster(sim: SimCluster) -> Iterator[Cluster]:
    cluster = Cluster.from_kubeconfig(sim.kubeconfig_path)
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def nginx(sim: SimCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx | None]:
    server = start_nginx(
        tmp_path_factory.mktemp("crash-nginx"), [sim.node_address(n) for n in WORKERS]
    )
    yield server
    if server is not None:
        server.stop()


def test_sigkilled_runs_are_all_recovered(
    sim: SimCluster, sim_cluster: Cluster, nginx: Nginx | None, tmp_path: Path
) -> None:
    cluster = sim_cluster
    # Hand-set state the recovery must put back on the node that gets deleted.
    cluster.call(
        cluster.core.patch_node,
        "k8sdr-worker3",
        {
            "metadata": {"labels": {"example.com/team": "sre"}},
            "spec": {
                "taints": [{"key": "example.com/dedicated", "value": "sre", "effect": "NoSchedule"}]
            },
        },
    )
    addresses = {n: sim.node_address(n) for n in WORKERS}
    before = cluster_state(cluster)
    lb_before = nginx.lb(addresses).members() if nginx else None
    conf_before = nginx.conf.read_bytes() if nginx else None
    test_file = tmp_path / "test_game_day.py"
    test_file.write_text(INNER)
    (tmp_path / "conftest.py").write_text(INNER_CONFTEST)
    env = {
        "CRASH_SIM_STATE_DIR": str(sim.state_dir),
        "CRASH_NODES": ",".join(f"{k}={v}" for k, v in addresses.items()),
    }
    if nginx is not None:
        env["CRASH_NGINX_CONF"] = str(nginx.conf)
        env["CRASH_NGINX_ERRLOG"] = str(nginx.directory / "error.log")
    rng = random.Random(int(os.environ.get("K8SDR_CRASH_SEED", str(time.time_ns()))))
    recovered = 0
    failures: list[str] = []
    # Killed before any disruption, half way through them, or after all were made.
    phases = {"before": 0, "during": 0, "after": 0}
    for run in range(RUNS):
        journal = tmp_path / f"journal-{run}.jsonl"
        proc = inner_pytest(test_file, sim.kubeconfig_path, f"--k8sdr-journal={journal}", env=env)
        moment = rng.uniform(0.3, 4.0)
        assert proc.stdout is not None
        head = ""
        for line in proc.stdout:
            head += line
            if "SETUP-START" in line:
                break
        try:
            proc.wait(timeout=moment)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        out = head + out
        text = journal.read_text() if journal.exists() else ""
        if "ALL-DISRUPTED" in out:
            phases["after"] += 1
        elif '"node": "k8sdr-' in text:
            phases["during"] += 1
        else:
            phases["before"] += 1
        result = recover("--journal", str(journal), "--rejoin-timeout", "60")
        problems = []
        if journal.exists() and result.returncode != 0:
            problems.append(f"recover exited {result.returncode}: {result.stdout}{result.stderr}")
        try:
            wait_all_ready(cluster, [*WORKERS, "k8sdr-control-plane"], timeout=30)
        except AssertionError as exc:
            problems.append(str(exc))
        after = cluster_state(cluster)
        if after != before:
            for key in before:
                if before[key] != after[key]:
                    problems.append(f"{key}: before {before[key]}\n  after {after[key]}")
        if nginx is not None:
            if nginx.lb(addresses).members() != lb_before:
                problems.append(f"nginx members: {nginx.lb(addresses).members()}")
            if nginx.conf.read_bytes() != conf_before:
                problems.append("nginx.conf differs from the original")
        left = read_journal(journal) if journal.exists() else []
        if left:
            problems.append(f"the journal still has open entries: {left}")
        if problems:
            failures.append(f"run {run} (killed at {moment:.2f}s): " + "\n".join(problems))
        else:
            recovered += 1
    print(f"\ncrash test: {recovered}/{RUNS} runs recovered; killed {phases}")
    assert recovered == RUNS, "\n\n".join(failures)
