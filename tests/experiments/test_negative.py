"""Each experiment can fail: with self-healing broken, or an SLO the cluster cannot meet.

The experiments of `experiments/` run in a child pytest against a simulated cluster with one
controller switched off (as kube-controller-manager's `--controllers=-NAME` would); the run must
fail, and the failure must name the runbook phase that did not hold.

Controllers that place the workload in the first place (the scheduler, the ReplicaSet and
StatefulSet controllers) are switched off while the cluster runs, right after the experiment's
workload is Ready (what restarting kube-scheduler or kube-controller-manager without them
would do): with them off from the start the run would fail before its first phase.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pytest_k8sdr.runbook import PHASES

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"

ISOLATION = "test_isolation.py::test_deleting_the_node_releases_the_statefulset"

CASES = [
    # (experiment, disabled controller, phase that must fail, SLO overrides)
    ("test_node_failure.py", "nodelifecycle", "fail", "fail=8s"),
    ("test_node_failure.py", "taint-eviction-controller", "self-heal", "self-heal=15s"),
    ("test_node_failure.py", "endpointslice", "self-heal", "self-heal=15s"),
    (ISOLATION, "podgc", "isolate", "isolate=8s"),
    # Deleting the namespace never finishes: the drill cannot destroy, so it cannot restore.
    ("test_data_loss.py", "namespace", "destroy", "destroy=8s"),
    # Switched off once the workload is placed (RUNTIME below).
    ("test_node_failure.py", "scheduler", "self-heal", "self-heal=15s"),
    ("test_node_failure.py", "replicaset", "self-heal", "self-heal=15s"),
    (ISOLATION, "statefulset", "self-heal", "self-heal=8s"),
    ("test_rollout_during_outage.py", "deployment", "rollout", "rollout=15s"),
]
RUNTIME = {"scheduler", "replicaset", "statefulset", "deployment"}

# The child's conftest: the plugin's make_workload, then the controller switched off.
SWITCH_OFF_AFTER_PLACEMENT = """

@pytest.fixture
def make_workload(make_workload, k8sdr_backend):
    def deploy_then_switch_off(*args, **kwargs):
        workload = make_workload(*args, **kwargs)
        assert k8sdr_backend.sim.set_controller({name!r}, enabled=False)
        return workload

    return deploy_then_switch_off
"""


def run_experiment(
    pytester: pytest.Pytester, target: str, disabled: str | None, slos: str
) -> pytest.RunResult:
    file = target.split("::")[0]
    shutil.copy(EXPERIMENTS / file, pytester.path / file)
    at_start = repr([disabled] if disabled and disabled not in RUNTIME else [])
    conftest = f"""
import pytest

@pytest.fixture(scope="session")
def k8sdr_sim_options():
    return {{"workers": 3, "disabled_controllers": {at_start}}}
"""
    if disabled in RUNTIME:
        conftest += SWITCH_OFF_AFTER_PLACEMENT.format(name=disabled)
    pytester.makeconftest(conftest)
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", target, f"--k8sdr-slos={slos}", timeout=240
    )


@pytest.mark.parametrize(("target", "disabled", "phase", "slos"), CASES)
def test_experiment_fails_naming_the_phase_when_self_healing_is_broken(
    pytester: pytest.Pytester, target: str, disabled: str, phase: str, slos: str
) -> None:
    result = run_experiment(pytester, target, disabled, slos)
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    assert f"phase {phase!r}" in out, out


def test_experiment_fails_when_its_slo_is_below_what_the_cluster_can_do(
    pytester: pytest.Pytester,
) -> None:
    # Noticing a dead node takes the grace period (4s on the fast profile): 1s cannot be met.
    result = run_experiment(pytester, "test_node_failure.py", None, "fail=1s")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    assert "phase 'fail' exceeded its SLO" in out, out


# Each experiment file and the phase it starts with.
FIRST_PHASES = {
    # The backup (one snapshot request) may beat 0.2 s; deleting a namespace cannot.
    "test_data_loss.py": "backup|destroy",
    "test_isolation.py": "fail",
    "test_load_balancer.py": "fail",
    "test_maintenance.py": "isolate",
    "test_node_failure.py": "fail",
    "test_partition.py": "fail",
    "test_rebalance.py": "fail",
    "test_rollout_during_outage.py": "fail",
    "test_runbook.py": "fail",
}
# Every phase at 0.2 s: nothing that waits on the cluster can meet it.
IMPOSSIBLE = ",".join(f"{phase}=0.2s" for phase in PHASES)


def test_every_experiment_is_listed() -> None:
    assert sorted(FIRST_PHASES) == sorted(p.name for p in EXPERIMENTS.glob("test_*.py"))


@pytest.mark.parametrize("experiment", sorted(FIRST_PHASES))
def test_every_experiment_fails_naming_its_phase_when_no_slo_can_be_met(
    pytester: pytest.Pytester, experiment: str
) -> None:
    result = run_experiment(pytester, experiment, None, IMPOSSIBLE)
    out = result.stdout.str()
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    assert outcomes.get("failed", 0) >= 1, outcomes
    assert not outcomes.get("passed"), outcomes
    phases = FIRST_PHASES[experiment].split("|")
    assert any(f"phase {phase!r} exceeded its SLO" in out for phase in phases), out
