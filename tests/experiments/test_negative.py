"""Each experiment can fail: with self-healing broken, or an SLO the cluster cannot meet.

The experiments of `experiments/` run in a child pytest against a simulated cluster with one
controller switched off (as kube-controller-manager's `--controllers=-NAME` would), or with a
control-plane flag that departs from upstream where the experiment checks it; the run must
fail, and the failure must name the runbook phase that did not hold. The child's simulated
cluster has the shape experiments/conftest.py gives the experiments.

Controllers that place the workload in the first place (the scheduler, the ReplicaSet and
StatefulSet controllers) are switched off while the cluster runs, right after the experiment's
workload is Ready (what restarting kube-scheduler or kube-controller-manager without them
would do): with them off from the start the run would fail before its first phase.
"""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path
from typing import Any

import pytest

from pytest_k8sdr.runbook import PHASES

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


# The simulated cluster experiments/conftest.py gives the experiments (their shape).
SIM_OPTIONS: dict[str, Any] = runpy.run_path(str(EXPERIMENTS / "conftest.py"))["SIM_OPTIONS"]

ISOLATION = "test_isolation.py::test_deleting_the_node_releases_the_statefulset"
LOCAL_STORAGE = "test_local_storage.py::test_a_replica_on_local_storage_waits_for_its_node"

CASES = [
    # (experiment, disabled controller, phase that must fail, SLO overrides)
    ("test_node_failure.py", "nodelifecycle", "fail", "fail=8s"),
    ("test_node_failure.py", "taint-eviction-controller", "self-heal", "self-heal=15s"),
    ("test_node_failure.py", "endpointslice", "self-heal", "self-heal=15s"),
    (ISOLATION, "podgc", "isolate", "isolate=8s"),
    # Switched off once the workload is placed (RUNTIME below).
    ("test_node_failure.py", "scheduler", "self-heal", "self-heal=15s"),
    ("test_node_failure.py", "replicaset", "self-heal", "self-heal=15s"),
    (ISOLATION, "statefulset", "self-heal", "self-heal=8s"),
    # No scheduler, no verdict: the recreated replica never gets its "volume node affinity".
    (LOCAL_STORAGE, "scheduler", "self-heal", "self-heal=8s"),
    ("test_zone_outage.py", "taint-eviction-controller", "self-heal", "self-heal=15s"),
    ("test_majority_loss.py", "podgc", "isolate", "isolate=8s"),
]
RUNTIME = {"scheduler", "replicaset", "statefulset"}

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
    pytester: pytest.Pytester,
    target: str,
    disabled: str | None,
    slos: str,
    server_args: tuple[str, ...] = (),
) -> pytest.RunResult:
    file = target.split("::")[0]
    shutil.copy(EXPERIMENTS / file, pytester.path / file)
    options = {
        **SIM_OPTIONS,
        "disabled_controllers": [disabled] if disabled and disabled not in RUNTIME else [],
        "server_args": list(server_args),
    }
    conftest = f"""
import pytest

@pytest.fixture(scope="session")
def k8sdr_sim_options():
    return {options!r}
"""
    if disabled in RUNTIME:
        conftest += SWITCH_OFF_AFTER_PLACEMENT.format(name=disabled)
    pytester.makeconftest(conftest)
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", target, *([f"--k8sdr-slos={slos}"] if slos else []), timeout=240
    )


@pytest.mark.parametrize(("target", "disabled", "phase", "slos"), CASES)
def test_experiment_fails_naming_the_phase_when_self_healing_is_broken(
    pytester: pytest.Pytester, target: str, disabled: str, phase: str, slos: str
) -> None:
    result = run_experiment(pytester, target, disabled, slos)
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    assert f"phase {phase!r}" in out, out


# A control plane that departs from upstream where the experiment checks it, through the flags
# kube-controller-manager and kube-apiserver take.
DEVIATIONS = [
    # (experiment, control-plane flags, phase that must fail)
    # No Partial Disruption: a zone with 75% of its nodes down still counts as Normal, so its
    # nodes are tainted and their pods evicted, which the experiment says upstream does not do.
    ("test_majority_loss.py", ("--unhealthy-zone-threshold", "0.9"), "fail"),
    # A control plane that comes back without its store (an API server on an emptied etcd).
    ("test_control_plane_loss.py", ("--ephemeral",), "restore"),
]


@pytest.mark.parametrize(("experiment", "flags", "phase"), DEVIATIONS)
def test_experiment_fails_naming_the_phase_when_the_control_plane_departs_from_upstream(
    pytester: pytest.Pytester, experiment: str, flags: tuple[str, ...], phase: str
) -> None:
    result = run_experiment(pytester, experiment, None, "", flags)
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
    "test_control_plane_loss.py": "fail",
    "test_isolation.py": "fail",
    "test_load_balancer.py": "fail",
    "test_local_storage.py": "fail",
    "test_maintenance.py": "isolate",
    "test_majority_loss.py": "fail",
    "test_node_failure.py": "fail",
    "test_partition.py": "fail",
    "test_rebalance.py": "fail",
    "test_runbook.py": "fail",
    "test_zone_outage.py": "fail",
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
    assert f"phase {FIRST_PHASES[experiment]!r} exceeded its SLO" in out, out
