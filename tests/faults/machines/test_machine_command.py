"""The command driver with real local commands, and the undo bookkeeping every driver shares."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from machines_helpers import FakeNode, wait_dead

from pytest_k8sdr.errors import UndoError
from pytest_k8sdr.faults.machines import (
    CommandMachine,
    MachineError,
    MachineState,
    parse_inventory,
)
from pytest_k8sdr.faults.machines.inventory import CommandSpec
from pytest_k8sdr.undo import UndoStack


def machine(stack: UndoStack, commands: dict[str, Any], **extra: Any) -> CommandMachine:
    entry = {"driver": "command", "address": "127.1.0.2", "commands": commands, **extra}
    spec = parse_inventory({"nodes": {"worker-1": entry}}).spec_for("worker-1")
    assert isinstance(spec, CommandSpec)
    return CommandMachine(spec, stack)


def full(fakenode: FakeNode) -> dict[str, Any]:
    return {
        **fakenode.systemd_commands(),
        "start": fakenode.shell("boot"),
        "health": fakenode.shell("systemctl", "is-active", "kubelet", "containerd"),
    }


def test_kill_registers_its_undo_first_and_start_discards_it(
    stack: UndoStack, fakenode: FakeNode
) -> None:
    m = machine(stack, full(fakenode))
    assert m.health().healthy

    m.kill()

    assert fakenode.status() == {"kubelet": "stopped", "containerd": "stopped"}
    assert [e.description for e in stack.pending] == [
        "command machine of node 'worker-1': start (undoes kill)"
    ]
    health = m.health()
    assert health.state is MachineState.UNREACHABLE
    assert health.services == {"kubelet": False, "runtime": False}

    m.start()

    assert fakenode.status() == {"kubelet": "running", "containerd": "running"}
    assert stack.pending == []
    assert m.health().healthy


def test_unwinding_restores_every_fault_newest_first(stack: UndoStack, fakenode: FakeNode) -> None:
    m = machine(stack, full(fakenode))
    m.freeze()
    m.stop_runtime()
    assert fakenode.status() == {"kubelet": "frozen", "containerd": "stopped"}
    assert [e.description.split(": ")[1] for e in stack.pending] == [
        "thaw (undoes freeze)",
        "start_runtime (undoes stop_runtime)",
    ]

    stack.unwind()

    assert fakenode.status() == {"kubelet": "running", "containerd": "running"}
    # Restore actions are idempotent: running them again changes nothing.
    m.thaw()
    m.start_runtime()
    assert fakenode.status() == {"kubelet": "running", "containerd": "running"}


def test_a_failing_fault_names_node_driver_action_and_keeps_its_undo(
    stack: UndoStack, tmp_path: Path
) -> None:
    restored = tmp_path / "restored"
    m = machine(
        stack,
        {"stop_kubelet": "echo oops >&2; exit 3", "start_kubelet": f"touch {restored}"},
    )
    with pytest.raises(MachineError) as caught:
        m.stop_kubelet()
    error = caught.value
    assert (error.node, error.driver, error.action) == ("worker-1", "command", "stop_kubelet")
    assert "exited with 3: oops" in str(error)
    assert "worker-1" in str(error)
    # The command ran and failed: it may have done part of its work, so the undo stays.
    assert len(stack) == 1
    stack.unwind()
    assert restored.exists()


def test_a_fault_that_cannot_be_undone_is_refused_before_anything_runs(
    stack: UndoStack, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    m = machine(stack, {"kill": f"touch {ran}"})
    with pytest.raises(
        MachineError, match=r"kill failed: it could not be undone: no command configured for start"
    ):
        m.kill()
    assert not ran.exists()
    assert len(stack) == 0
    with pytest.raises(MachineError, match="no command configured for partition"):
        m.partition()


def test_a_program_that_does_not_exist_touches_nothing_and_drops_its_undo(
    stack: UndoStack,
) -> None:
    m = machine(stack, {"kill": ["/nonexistent/ipmitool", "{address}"], "start": ["true"]})
    with pytest.raises(MachineError) as caught:
        m.kill()
    assert caught.value.may_have_acted is False
    assert "cannot run /nonexistent/ipmitool" in str(caught.value)
    assert len(stack) == 0


def test_a_hanging_command_is_killed_with_its_children_at_the_timeout(
    stack: UndoStack, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    m = machine(
        stack,
        {"stop_kubelet": f"sleep 30 & echo $! > {pidfile}; wait", "start_kubelet": "true"},
        timeout=0.5,
    )
    started = time.monotonic()
    with pytest.raises(MachineError, match=r"ran longer than 0.5s and was killed"):
        m.stop_kubelet()
    assert time.monotonic() - started < 20  # not the command's sleep 30
    pid = int(pidfile.read_text())
    # The background sleep was in the command's process group: it was killed too.
    assert wait_dead(pid)
    assert len(stack) == 1  # timed out after starting: the undo stays


def test_values_are_quoted_into_shell_templates(stack: UndoStack, tmp_path: Path) -> None:
    out = tmp_path / "out"
    pwned = tmp_path / "pwned"
    m = machine(
        stack,
        {
            "stop_kubelet": f"printf '%s|%s|%s' {{node}} {{address}} {{site}} > {out}",
            "start_kubelet": "true",
        },
        vars={"site": f"a b; touch {pwned}"},
    )
    m.stop_kubelet()
    assert out.read_text() == f"worker-1|127.1.0.2|a b; touch {pwned}"
    assert not pwned.exists()


def test_undo_failures_are_reported_together(stack: UndoStack) -> None:
    m = machine(stack, {"freeze": "true", "thaw": "exit 7"})
    m.freeze()
    with pytest.raises(UndoError, match=r"thaw failed: command exited with 7") as caught:
        stack.unwind()
    assert len(caught.value.failures) == 1
    assert len(stack) == 0


def test_health_without_a_health_command_is_unknown(stack: UndoStack) -> None:
    health = machine(stack, {}).health()
    assert health.state is MachineState.UNKNOWN
    assert not health.healthy
