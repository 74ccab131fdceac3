"""The sim driver's errors that need no running cluster (the e2e module runs one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_k8sdr.faults.machines import MachineError, MachineState, SimMachine, SimSpec
from pytest_k8sdr.undo import UndoStack


def test_no_cluster_in_the_state_dir_is_an_error_that_touches_nothing(
    tmp_path: Path, stack: UndoStack
) -> None:
    m = SimMachine(SimSpec("k8sdr-worker", tmp_path), stack)
    with pytest.raises(MachineError) as caught:
        m.kill()
    error = caught.value
    assert (error.node, error.driver) == ("k8sdr-worker", "sim")
    assert f"cannot attach to the simulator in {tmp_path}" in str(error)
    assert error.may_have_acted is False
    assert len(stack) == 0
    health = m.health()
    assert health.state is MachineState.UNKNOWN
    assert "no simulated cluster was started" in health.detail


def test_a_sim_machine_needs_a_cluster_or_a_state_dir(stack: UndoStack) -> None:
    with pytest.raises(MachineError, match="no simulated cluster given and no state_dir set"):
        SimMachine(SimSpec("k8sdr-worker"), stack).freeze()
    assert len(stack) == 0
