"""The ssh driver against a real OpenSSH server on loopback, acting on a stand-in machine."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from machines_helpers import FakeNode, Sshd, keygen, wait_dead

from pytest_k8sdr.faults.machines import MachineError, MachineState, SshMachine, parse_inventory
from pytest_k8sdr.faults.machines.inventory import SshSpec
from pytest_k8sdr.undo import UndoStack


def spec(sshd: Sshd, fakenode: FakeNode | None = None, **extra: Any) -> SshSpec:
    entry: dict[str, Any] = {**sshd.login(), "connect_timeout": 5, "command_timeout": 10}
    if fakenode is not None:
        entry["commands"] = fakenode.systemd_commands()
        entry["power_on"] = fakenode.shell("boot")
    commands = extra.pop("commands", {})
    entry.update(extra)
    entry["commands"] = {**entry.get("commands", {}), **commands}
    parsed = parse_inventory({"nodes": {"worker-1": entry}}).spec_for("worker-1")
    assert isinstance(parsed, SshSpec)
    return parsed


def test_kill_over_ssh_and_power_on_out_of_band(
    sshd: Sshd, fakenode: FakeNode, stack: UndoStack
) -> None:
    m = SshMachine(spec(sshd, fakenode), stack)
    assert m.health().healthy

    m.kill()

    assert fakenode.status() == {"kubelet": "stopped", "containerd": "stopped"}
    assert len(stack) == 1
    assert m.health().services == {"kubelet": False, "runtime": False}

    m.start()  # the local power_on command, not SSH

    assert fakenode.status() == {"kubelet": "running", "containerd": "running"}
    assert len(stack) == 0


def test_service_actions_run_with_sudo_and_unwind(
    sshd: Sshd, fakenode: FakeNode, stack: UndoStack
) -> None:
    m = SshMachine(spec(sshd, fakenode, sudo=True), stack)
    m.stop_kubelet()
    m.stop_runtime()
    assert fakenode.status() == {"kubelet": "stopped", "containerd": "stopped"}
    assert "-n sh -c" in sshd.sudo_log()
    stack.unwind()
    assert fakenode.status() == {"kubelet": "running", "containerd": "running"}


def test_freeze_and_thaw(sshd: Sshd, fakenode: FakeNode, stack: UndoStack) -> None:
    m = SshMachine(spec(sshd, fakenode), stack)
    m.freeze()
    assert fakenode.status()["kubelet"] == "frozen"
    m.thaw()
    assert fakenode.status()["kubelet"] == "running"
    assert len(stack) == 0


def test_power_off_cannot_go_without_an_out_of_band_power_on(
    sshd: Sshd, fakenode: FakeNode, stack: UndoStack
) -> None:
    m = SshMachine(spec(sshd, fakenode, power_on=None), stack)
    with pytest.raises(
        MachineError, match=r"kill failed: it could not be undone: power-on cannot go over SSH"
    ):
        m.kill()
    assert fakenode.status()["kubelet"] == "running"
    assert len(stack) == 0


def test_an_unknown_host_key_is_refused(
    sshd: Sshd, fakenode: FakeNode, stack: UndoStack, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    m = SshMachine(spec(sshd, fakenode, known_hosts=str(empty)), stack)
    with pytest.raises(MachineError) as caught:
        m.stop_kubelet()
    error = caught.value
    assert (error.node, error.driver, error.action) == ("worker-1", "ssh", "stop_kubelet")
    assert f"unknown host key for 127.0.0.1:{sshd.port}: not in {empty}" in str(error)
    assert error.may_have_acted is False
    assert len(stack) == 0  # nothing was touched: no undo left behind
    assert fakenode.status()["kubelet"] == "running"
    health = m.health()
    assert health.state is MachineState.UNREACHABLE
    assert "unknown host key" in health.detail


def test_a_changed_host_key_is_refused(
    sshd: Sshd, fakenode: FakeNode, stack: UndoStack, tmp_path: Path
) -> None:
    other = tmp_path / "known_hosts"
    other.write_text(f"[127.0.0.1]:{sshd.port} {sshd.other_key.with_suffix('.pub').read_text()}")
    m = SshMachine(spec(sshd, fakenode, known_hosts=str(other)), stack)
    with pytest.raises(MachineError, match=r"does not match known_hosts"):
        m.stop_kubelet()
    assert len(stack) == 0


def test_the_insecure_option_accepts_an_unknown_key_loudly(
    sshd: Sshd,
    fakenode: FakeNode,
    stack: UndoStack,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    m = SshMachine(
        spec(sshd, fakenode, known_hosts=str(empty), accept_unknown_host_keys_INSECURE=True),
        stack,
    )
    with caplog.at_level(logging.WARNING):
        m.stop_kubelet()
    assert fakenode.status()["kubelet"] == "stopped"
    assert "accepting UNVERIFIED ssh-ed25519 host key" in caplog.text
    assert empty.read_text() == ""  # nothing was written to known_hosts


def test_a_wrong_user_key_fails_authentication(
    sshd: Sshd, fakenode: FakeNode, stack: UndoStack
) -> None:
    m = SshMachine(spec(sshd, fakenode, key=str(sshd.other_key)), stack)
    with pytest.raises(MachineError, match=r"authentication as root on 127.0.0.1:\d+ failed"):
        m.stop_kubelet()
    assert len(stack) == 0
    assert fakenode.status()["kubelet"] == "running"


def test_a_hanging_command_is_abandoned_at_the_timeout(
    sshd: Sshd, stack: UndoStack, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    m = SshMachine(
        spec(
            sshd,
            command_timeout=1,
            commands={
                "stop_kubelet": f"echo $$ > {pidfile}; exec sleep 60",
                "start_kubelet": "true",
            },
        ),
        stack,
    )
    started = time.monotonic()
    with pytest.raises(MachineError, match=r"ran longer than command_timeout=1s") as caught:
        m.stop_kubelet()
    # Bounds far below what the failure would take (sleep 60), so a loaded machine passes.
    assert time.monotonic() - started < 30
    assert caught.value.may_have_acted is True
    assert len(stack) == 1  # the command was sent: its undo stays
    # The remote command ran on a pty; closing the session hung it up.
    assert wait_dead(int(pidfile.read_text()))


def test_a_connection_dropped_mid_command_is_an_error(sshd: Sshd, stack: UndoStack) -> None:
    m = SshMachine(
        spec(
            sshd,
            commands={
                # $PPID is the sshd process serving this session: killing it drops the link.
                "stop_kubelet": "echo started; sleep 0.5; kill -9 $PPID; sleep 60",
                "start_kubelet": "true",
            },
        ),
        stack,
    )
    started = time.monotonic()
    with pytest.raises(MachineError, match=r"connection dropped while the command ran") as caught:
        m.stop_kubelet()
    assert time.monotonic() - started < 30  # not the command's sleep 60
    assert "started" in str(caught.value)
    assert len(stack) == 1


def test_a_power_action_that_ends_the_session_succeeded(
    sshd: Sshd, fakenode: FakeNode, stack: UndoStack
) -> None:
    crash = f"{fakenode.shell('crash')}; kill -9 $PPID"
    m = SshMachine(spec(sshd, fakenode, commands={"kill": crash}), stack)
    m.kill()
    assert fakenode.status()["kubelet"] == "stopped"
    assert len(stack) == 1
    stack.unwind()
    assert fakenode.status()["kubelet"] == "running"


def test_a_remote_command_failing_names_its_exit_status(sshd: Sshd, stack: UndoStack) -> None:
    m = SshMachine(
        spec(sshd, commands={"stop_runtime": "echo no unit >&2; exit 5", "start_runtime": "true"}),
        stack,
    )
    with pytest.raises(MachineError, match=r"stop_runtime failed: remote command exited with 5"):
        m.stop_runtime()


def test_connect_timeout_bounds_a_server_that_never_answers(stack: UndoStack, sshd: Sshd) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts the TCP connection, never sends an SSH banner
        port = silent.getsockname()[1]
        m = SshMachine(
            spec(
                sshd,
                port=port,
                connect_timeout=0.5,
                commands={"stop_kubelet": "true", "start_kubelet": "true"},
            ),
            stack,
        )
        started = time.monotonic()
        with pytest.raises(MachineError, match=r"took longer than connect_timeout=0.5s"):
            m.stop_kubelet()
        assert time.monotonic() - started < 20  # the server never answers: no bound but ours


def test_a_refused_connection_is_an_error_naming_the_address(stack: UndoStack, sshd: Sshd) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    m = SshMachine(
        spec(sshd, port=port, commands={"stop_kubelet": "true", "start_kubelet": "true"}), stack
    )
    with pytest.raises(MachineError, match=rf"cannot connect to 127.0.0.1:{port}"):
        m.stop_kubelet()
    assert len(stack) == 0


def test_through_a_jump_host(sshd: Sshd, fakenode: FakeNode, stack: UndoStack) -> None:
    jump = {
        "host": "127.0.0.1",
        "port": sshd.port,
        "user": "root",
        "key": str(sshd.user_key),
        "agent": False,
    }
    m = SshMachine(spec(sshd, fakenode, jump=jump), stack)
    m.stop_kubelet()
    assert fakenode.status()["kubelet"] == "stopped"
    m.start_kubelet()
    assert fakenode.status()["kubelet"] == "running"


def test_a_passphrase_protected_key(
    sshd: Sshd,
    fakenode: FakeNode,
    stack: UndoStack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    locked = keygen(tmp_path / "locked_key", passphrase="open sesame")
    sshd.authorize(locked)
    monkeypatch.setenv("TEST_KEY_PASSPHRASE", "open sesame")
    m = SshMachine(
        spec(sshd, fakenode, key=str(locked), key_passphrase_env="TEST_KEY_PASSPHRASE"), stack
    )
    m.stop_kubelet()
    assert fakenode.status()["kubelet"] == "stopped"

    wrong = SshMachine(spec(sshd, fakenode, key=str(locked), key_passphrase="guess"), stack)
    with pytest.raises(MachineError) as caught:
        wrong.start_kubelet()
    assert caught.value.may_have_acted is False
    assert f"cannot load key {locked} (wrong key_passphrase?)" in str(caught.value)
    assert "guess" not in str(caught.value)
    unlocked = SshMachine(spec(sshd, fakenode, key=str(locked)), stack)
    with pytest.raises(MachineError, match=rf"key {locked} is encrypted: set key_passphrase"):
        unlocked.start_kubelet()
    assert fakenode.status()["kubelet"] == "stopped"


def test_keys_from_an_ssh_agent(
    sshd: Sshd,
    fakenode: FakeNode,
    stack: UndoStack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent_socket = tmp_path / "agent.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(agent_socket)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        env = {**os.environ, "SSH_AUTH_SOCK": str(agent_socket)}
        deadline = time.monotonic() + 10
        while not agent_socket.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        subprocess.run(["ssh-add", "-q", str(sshd.user_key)], env=env, check=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(agent_socket))
        m = SshMachine(spec(sshd, fakenode, key=None, agent=True), stack)
        m.stop_runtime()
        assert fakenode.status()["containerd"] == "stopped"
        stack.unwind()  # while the agent still holds the key
        assert fakenode.status()["containerd"] == "running"
    finally:
        agent.terminate()
        agent.wait(10)
