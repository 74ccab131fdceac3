"""The dry run rehearses a game day on a twin of a simulated "staging" and predicts it.

"Staging" is a simulated cluster reached only through its kubeconfig, with a machine inventory
of `command` machines (`k8sdr sim node kill ...` on its state directory), as a site would
drive IPMI or a cloud CLI. `k8sdr plan` runs two experiments (and a drain a PodDisruptionBudget
blocks) on a twin; then the same two run for real on staging, one after the other on the same
machine, and the plan's predictions are held against what the real run measured.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_k8sdr import Cluster
from pytest_k8sdr.cluster import USER_AGENT
from pytest_k8sdr.config import load_kubeconfig
from pytest_k8sdr.journal import JournalRecord
from pytest_k8sdr.plan import PLAN_FILE
from pytest_k8sdr.sim import SimCluster
from pytest_k8sdr.twin import wait_workloads_ready

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ("test_node_failure.py", "test_maintenance.py")
REAL = {"test_worker_loss_is_healed", "test_drain_respects_the_disruption_budget"}
DRAIN_TARGET = "k8sdr-worker3"
#: A drain the shop's budget blocks: the node is picked by its label, as the twin copied it.
DRAIN_SHOP = """
import pytest


@pytest.mark.disruptive
def test_drain_the_shop_node(cluster, node_faults, runbook):
    (node,) = cluster.nodes(label_selector="gameday/drain=yes")
    with runbook.phase("isolate"):
        node_faults.drain(node.name, timeout=3)
"""
SHOP = {
    "metadata": {"name": "web"},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "shop"}},
        "template": {
            "metadata": {"labels": {"app": "shop"}},
            "spec": {
                "nodeSelector": {"gameday/drain": "yes"},
                "containers": [{"name": "web", "image": "shop:1"}],
            },
        },
    },
}


@dataclass
class Staging:
    sim: SimCluster
    workdir: Path
    inventory: Path
    context: str

    def kill_command(self, node: str) -> str:
        return shlex.join(_sim_node("kill", node, self.sim.state_dir))

    def writes(self) -> dict[str, int]:
        reads = {"get", "watch"}
        return {
            verb: n
            for (agent, verb), n in self.sim.request_counts().items()
            if agent == USER_AGENT and verb not in reads
        }


def _sim_node(op: str, node: str, state_dir: Path) -> list[str]:
    return [sys.executable, "-m", "pytest_k8sdr.cli", "sim", "node", op, node,
            "--state-dir", str(state_dir)]  # fmt: skip


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Staging]:
    workdir = tmp_path_factory.mktemp("gameday")
    sim = SimCluster.start(workdir / "staging", workers=3, profile="fast")
    try:
        api = Cluster.from_kubeconfig(sim.kubeconfig_path)
        try:
            api.core.patch_node(DRAIN_TARGET, {"metadata": {"labels": {"gameday/drain": "yes"}}})
            api.core.create_namespace({"metadata": {"name": "shop"}})
            api.apps.create_namespaced_deployment("shop", SHOP)
            api.policy.create_namespaced_pod_disruption_budget(
                "shop",
                {
                    "metadata": {"name": "web"},
                    "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "shop"}}},
                },
            )
            # Healthy before the game day, or the real run's health check refuses it.
            assert wait_workloads_ready(api, 60) == []
        finally:
            api.close()
        commands = {
            op: [part.replace("NODE", "{node}") for part in _sim_node(op, "NODE", sim.state_dir)]
            for op in ("kill", "start", "stop", "freeze", "thaw", "partition", "heal")
        }
        inventory = workdir / "machines.yaml"
        workers = {f"k8sdr-worker{n}": {} for n in ("", "2", "3")}
        inventory.write_text(
            yaml.safe_dump({"defaults": {"driver": "command", "commands": commands},
                            "nodes": workers})
        )  # fmt: skip
        _, context = load_kubeconfig([sim.kubeconfig_path])
        assert context is not None
        for name in EXPERIMENTS:
            (workdir / name).write_text((ROOT / "experiments" / name).read_text())
        (workdir / "test_drain_shop.py").write_text(DRAIN_SHOP)
        yield Staging(sim, workdir, inventory, context)
    finally:
        sim.stop()


def _run(staging: Staging, argv: list[str], report: str, *files: str) -> str:
    proc = subprocess.run(
        [
            *argv,
            "-p",
            "no:cacheprovider",
            f"--rootdir={staging.workdir}",
            *files,
            "--k8sdr-backend=kubeconfig",
            f"--k8sdr-kubeconfig={staging.sim.kubeconfig_path}",
            f"--k8sdr-allowed-contexts={staging.context}",
            f"--k8sdr-machines={staging.inventory}",
            f"--k8sdr-report-dir={staging.workdir / report}",
            f"--k8sdr-journal={staging.workdir / report / 'journal.jsonl'}",
        ],
        cwd=staging.workdir,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def rehearsed(staging: Staging) -> tuple[dict[str, Any], str, dict[str, int], dict[str, int]]:
    """`k8sdr plan` on staging, then the two experiments for real, one after the other."""
    before = staging.writes()
    out = _run(
        staging,
        [sys.executable, "-m", "pytest_k8sdr.cli", "plan", "-q"],
        "plan",
        *EXPERIMENTS,
        "test_drain_shop.py",
    )
    after = staging.writes()
    plan_file = staging.workdir / "plan" / PLAN_FILE
    assert plan_file.exists(), out
    return json.loads(plan_file.read_text()), out, before, after


@pytest.fixture(scope="module")
def real(staging: Staging, rehearsed: Any) -> dict[str, Any]:
    """The same experiments on staging itself: the game day the plan predicted."""
    out = _run(staging, [sys.executable, "-m", "pytest", "-q"], "real", *EXPERIMENTS)
    summary = staging.workdir / "real" / "k8sdr-summary.json"
    assert "2 passed" in out, out
    return {"summary": json.loads(summary.read_text()), "out": out}


def _test(plan: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [t for t in plan["tests"] if t["test"].endswith(name)]
    return found


def test_the_plan_writes_nothing_to_the_target(rehearsed: Any) -> None:
    plan, out, before, after = rehearsed
    assert "k8sdr plan (dry run: nothing was touched)" in out, out
    # Every write went to the twin: staging's own counter saw none from the plugin.
    assert after == before, out
    assert plan["target"]["backend"] == "kubeconfig"
    assert plan["twin"]["objects"]["copied"] == {
        "deployments": 1,
        "namespaces": 1,
        "poddisruptionbudgets": 1,
    }
    assert sorted(plan["target"]["nodes"])[-1] == DRAIN_TARGET


def test_the_plan_names_the_targets_machine_commands(rehearsed: Any, staging: Staging) -> None:
    plan, out, _, _ = rehearsed
    workers = {"k8sdr-worker", "k8sdr-worker2", "k8sdr-worker3"}
    loss = _test(plan, "test_worker_loss_is_healed")
    assert loss["outcome"] == "would pass", out
    (kill,) = [d for d in loss["disruptions"] if d["kind"] == "machine"]
    assert kill["node"] in workers
    assert kill["driver"] == "command"
    # The exact command the inventory runs on the target (not the twin's sim machine).
    assert kill["command"] == staging.kill_command(kill["node"])
    assert kill["undo"] == shlex.join(_sim_node("start", kill["node"], staging.sim.state_dir))
    assert f"run: {kill['command']}" in out
    drain = _test(plan, "test_drain_respects_the_disruption_budget")
    (cordon,) = [d for d in drain["disruptions"] if d["kind"] == "cordon"]
    assert cordon["node"] in workers
    assert cordon["command"] == f"PATCH /api/v1/nodes/{cordon['node']} (spec.unschedulable: true)"
    assert loss["outcome"] == drain["outcome"] == "would pass"


def test_the_plan_reports_a_drain_the_budget_blocks(rehearsed: Any) -> None:
    plan, out, _, _ = rehearsed
    shop = _test(plan, "test_drain_the_shop_node")
    assert [d["node"] for d in shop["disruptions"] if d["kind"] == "cordon"] == [DRAIN_TARGET]
    assert shop["outcome"] == "would fail"
    (blocked,) = [b for b in shop["blockers"] if "PodDisruptionBudget" in b]
    assert "shop/web-" in blocked
    assert f"would block or fail: {blocked}" in out


def test_the_plan_predicts_the_real_runs_phases(rehearsed: Any, real: dict[str, Any]) -> None:
    plan = rehearsed[0]
    measured = {
        e["test"].rsplit("::", 1)[-1]: {p["phase"]: p["seconds"] for p in e["phases"]}
        for e in real["summary"]["experiments"]
    }
    assert set(measured) == {
        "test_worker_loss_is_healed",
        "test_drain_respects_the_disruption_budget",
    }
    for name, phases in measured.items():
        predicted = {p["phase"]: p["predicted_seconds"] for p in _test(plan, name)["phases"]}
        assert set(predicted) == set(phases), name
        # Within 20 % of the real run, each test as a whole and each phase (a phase of a
        # second or less gets a second of slack: scheduling jitter, not the prediction).
        total, real_total = sum(predicted.values()), sum(phases.values())
        assert abs(total - real_total) <= 0.2 * real_total, (name, predicted, phases)
        for phase, seconds in phases.items():
            assert abs(predicted[phase] - seconds) <= max(0.2 * seconds, 1.0), (name, phase)


def test_the_plan_makes_the_disruptions_the_real_run_made(
    rehearsed: Any, real: dict[str, Any], staging: Staging
) -> None:
    plan = rehearsed[0]
    journal = staging.workdir / "real" / "journal.jsonl"
    made = sorted((r.kind, r.data.get("driver")) for r in _opened(journal))
    planned = sorted(
        (d["kind"], d.get("driver"))
        for name in sorted(REAL)
        for d in _test(plan, name)["disruptions"]
        if not d.get("setup")
    )
    assert planned == [k for k in made if k[0] in {"machine", "cordon"}]


def _opened(journal: Path) -> list[JournalRecord]:
    """Every disruption the real run journaled before making it (all closed since)."""
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    return [JournalRecord.from_json(x) for x in lines if x.get("event") == "opened"]
