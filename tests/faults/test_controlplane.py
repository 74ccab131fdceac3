"""Control-plane loss as a fault: journaled before it is made, undone by starting it again."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_k8sdr.errors import ConfigError
from pytest_k8sdr.faults.controlplane import ControlPlane, ControlPlaneError, ControlPlaneStopped
from pytest_k8sdr.sim import SimCluster
from pytest_k8sdr.undo import REGISTRY, UndoEnv, UndoStack


@pytest.fixture
def stack() -> Iterator[UndoStack]:
    undo = UndoStack()
    yield undo
    undo.unwind()


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    started = SimCluster.start(tmp_path_factory.mktemp("cp"), workers=1, profile="fast")
    try:
        yield started
    finally:
        SimCluster.attach(started.state_dir).stop()


def test_stopping_the_sim_control_plane_is_undone_at_teardown(
    sim: SimCluster, stack: UndoStack
) -> None:
    plane = ControlPlane.for_backend("sim", stack, sim=sim)
    plane.stop()
    assert not sim.running()
    (entry,) = stack.pending
    assert entry.record.kind == "control-plane"
    assert REGISTRY.load(entry.record).summary() == f"stop the control plane (sim, {sim.state_dir})"
    assert entry.description == "start the control plane (sim)"
    stack.unwind()
    assert sim.running()
    sim.wait_nodes_ready(sim.node_names(), timeout=30)


def test_recover_starts_it_from_the_record_alone(sim: SimCluster, stack: UndoStack) -> None:
    plane = ControlPlane.for_backend("sim", stack, sim=sim)
    plane.stop()
    (entry,) = stack.pending
    assert isinstance(REGISTRY.load(entry.record), ControlPlaneStopped)
    REGISTRY.undo(entry.record, UndoEnv())  # another process: attach from the state dir
    assert SimCluster.attach(sim.state_dir).running()
    plane.start()  # idempotent, and drops the undo
    assert len(stack) == 0


def test_inventory_commands_stop_and_start_it(tmp_path: Path, stack: UndoStack) -> None:
    flag = tmp_path / "down"
    commands = {"stop": f"touch {flag}", "start": f"rm -f {flag}"}
    plane = ControlPlane.for_backend("kubeconfig", stack, commands=commands)
    plane.stop()
    assert flag.exists()
    (entry,) = stack.pending
    REGISTRY.undo(entry.record, UndoEnv())  # `k8sdr recover` runs the recorded start command
    assert not flag.exists()
    stack.discard(entry)


def test_missing_or_failing_commands_are_clear_errors(stack: UndoStack) -> None:
    with pytest.raises(ConfigError, match=re.escape("control_plane: {stop: CMD, start: CMD}")):
        ControlPlane.for_backend("kubeconfig", stack, commands={"stop": "true"})
    with pytest.raises(ConfigError, match=r"control_plane\.stop: unknown placeholder"):
        ControlPlane.for_backend("kubeconfig", stack, commands={"stop": "x {node}", "start": "y"})
    plane = ControlPlane.for_backend(
        "kubeconfig", stack, commands={"stop": "false", "start": "true"}
    )
    with pytest.raises(ControlPlaneError, match="control plane stop: /bin/sh exited with 1"):
        plane.stop()
    assert len(stack) == 1  # it may have acted: the start stays registered (and is harmless)
