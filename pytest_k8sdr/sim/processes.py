"""The simulator's own processes: who is alive, waiting for them, address slots, owners.

The launcher starts the control plane and one agent per node as children in their own
sessions and records their pids in DIR/state.json; pids get reused, so a recorded pid counts
as ours only while its command line still names our module and state dir.

A cluster never outlives the process that owns it: the control plane and every agent watch
the owner's pid (a pidfd, so the exit is an event, not a poll) and end when it ends; the
control plane also kills the agents recorded in the state dir, frozen ones included. A cluster
owned by nobody (`k8sdr sim up`) runs until it is stopped. PR_SET_PDEATHSIG is not used: it
fires when the parent *thread* exits, and agents are restarted by other processes (the CLI, a
machine driver) than the one that owns the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pytest_k8sdr.sim.errors import SimLaunchError

__all__ = [
    "AGENT_MODULE",
    "CHILDREN",
    "CONTROL_PLANE_MODULE",
    "STATE_FILE",
    "alive",
    "check_port_free",
    "claim_slot",
    "end_slot_keeper",
    "is_ours",
    "keep_slot",
    "kill_recorded_agents",
    "reclaim_slot",
    "start_control_plane",
    "wait_gone",
    "watch_owner",
]

log = logging.getLogger("pytest_k8sdr.sim")

STATE_FILE = "state.json"
CONTROL_PLANE_MODULE = "pytest_k8sdr.sim.controlplane"
AGENT_MODULE = "pytest_k8sdr.sim.node"

# Our children, kept so they are waited for (never garbage-collected while running).
CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


# Every launched cluster takes its own block of loopback addresses (an address slot), so two
# simulated clusters on one machine never bind the same pod or node address. Slot 0 is left to
# agents started by hand (tests, benchmarks). A slot is held by an flock that the API server
# process inherits: it is free again the moment that server exits, however it exits.
SLOTS = range(1, 15)


def _slot_dir() -> Path:
    directory = Path(tempfile.gettempdir()) / "k8sdr-address-slots"
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory


SLOT_KEEPER_MODULE = "pytest_k8sdr.sim.slotkeeper"


def keep_slot(slot_fd: int, state_dir: Path, owner_pid: int | None) -> int:
    """Start a keeper process holding `slot_fd` (a stopped control plane's slot); its pid."""
    cmd = [sys.executable, "-m", SLOT_KEEPER_MODULE, "--state-dir", str(state_dir)]
    cmd += ["--slot-fd", str(slot_fd)]
    if owner_pid is not None:
        cmd += ["--owner-pid", str(owner_pid)]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(slot_fd,),
        start_new_session=True,
    )
    CHILDREN[proc.pid] = proc
    return proc.pid


def end_slot_keeper(pid: int | None, state_dir: Path) -> None:
    """End the keeper `keep_slot` started for the cluster of `state_dir`, if it still runs."""
    if pid and is_ours(pid, SLOT_KEEPER_MODULE, state_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        wait_gone(pid, 5.0)


def reclaim_slot(slot: int, timeout: float) -> int:
    """The fd holding the lock of `slot`, waiting up to `timeout` for its holder to exit.

    For a control plane that stopped: its cluster keeps the slot while it is down (held by
    its keeper, `keep_slot`, ended first by whoever starts it again). SimLaunchError when
    another cluster took it meanwhile.
    """
    fd = os.open(_slot_dir() / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise SimLaunchError(
                    f"address slot {slot} is held by another process: another simulated "
                    "cluster took this cluster's addresses while its control plane was down"
                ) from None
            time.sleep(0.02)


def claim_slot() -> tuple[int, int]:
    """An address slot and the fd holding its lock; SimLaunchError when all are taken."""
    directory = _slot_dir()
    for slot in SLOTS:
        fd = os.open(directory / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return slot, fd
    raise SimLaunchError(
        f"all {len(SLOTS)} address slots are taken: that many simulated clusters already run "
        "here (k8sdr sim down stops one)"
    )


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own exited child not yet reaped) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def is_ours(pid: int, module: str, state_dir: Path) -> bool:
    """The pid is alive and still runs `module` for this state dir (pids get reused)."""
    if not pid or not alive(pid):
        return False
    cmd = _cmdline(pid)
    # Both command lines name the state dir (the agent through its kubeconfig path).
    return not cmd or (module in cmd and str(state_dir) in cmd)


def check_port_free(host: str, port: int) -> None:
    """ValueError when host:port cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ValueError(f"port {port} on {host} is in use ({exc.strerror})") from None


def _reap(pid: int) -> None:
    proc = CHILDREN.get(pid)
    if proc is not None:
        if proc.poll() is not None:
            del CHILDREN[pid]
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_gone(pid: int, timeout: float) -> None:
    """Wait for a process to exit; SIGKILL it after `timeout`."""
    proc = CHILDREN.get(pid)
    if proc is not None:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        del CHILDREN[pid]
        return
    deadline = time.monotonic() + timeout
    delay = 0.01
    while alive(pid):
        try:
            # Our own child: waitpid blocks efficiently until it exits.
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:
            pass
        if time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _reap(pid)
            return
        time.sleep(delay)  # not our child: nothing to block on
        delay = min(delay * 2, 0.1)
    _reap(pid)


def watch_owner(owner_pid: int, gone: Callable[[], None]) -> None:
    """Call `gone` on the running loop once process `owner_pid` has ended (at once if it has)."""
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(owner_pid)
    except ProcessLookupError:
        loop.call_soon(gone)
        return
    except OSError:  # no pidfd (a kernel before 5.3): look once a second instead
        _poll_owner(loop, owner_pid, gone)
        return

    def ended() -> None:
        loop.remove_reader(fd)
        os.close(fd)
        gone()

    loop.add_reader(fd, ended)


def _poll_owner(loop: asyncio.AbstractEventLoop, owner_pid: int, gone: Callable[[], None]) -> None:
    if alive(owner_pid):
        loop.call_later(1.0, _poll_owner, loop, owner_pid, gone)
    else:
        gone()


def kill_recorded_agents(state_dir: Path) -> list[int]:
    """SIGKILL every agent DIR/state.json records that still runs for it; their pids."""
    try:
        data = json.loads((state_dir / STATE_FILE).read_text())
        pids = [int(a["pid"]) for a in (data.get("agents") or {}).values()]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    killed = [p for p in pids if is_ours(p, AGENT_MODULE, state_dir)]
    for pid in killed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return killed


def start_control_plane(
    state_dir: Path, args: Sequence[str], deadline: float, slot_fd: int
) -> tuple[int, dict[str, Any]]:
    """Start the control-plane process; its pid and DIR/apiserver.json once it answers.

    It inherits `slot_fd` (its address slot's lock). SimLaunchError, with the end of its log,
    when it exits first or does not answer by `deadline` (monotonic).
    """
    read_fd, write_fd = os.pipe()
    cmd = [
        sys.executable,
        "-m",
        CONTROL_PLANE_MODULE,
        "--state-dir",
        str(state_dir),
        "--ready-fd",
        str(write_fd),
        *args,
    ]
    log_path = state_dir / "apiserver.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd, slot_fd),
            start_new_session=True,
        )
    os.close(write_fd)
    CHILDREN[proc.pid] = proc
    try:
        # The server writes one line to the pipe when it answers; EOF means it died.
        buf = b""
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                proc.kill()
                proc.wait()
                CHILDREN.pop(proc.pid, None)
                raise SimLaunchError(f"the API server did not come up in time; see {log_path}")
            ready, _, _ = select.select([read_fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(read_fd, 4096)
            if not chunk:
                code = proc.wait()
                CHILDREN.pop(proc.pid, None)
                tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
                raise SimLaunchError(
                    f"the API server exited with code {code} before answering: "
                    + (" | ".join(tail) or f"see {log_path}")
                )
            buf += chunk
    finally:
        os.close(read_fd)
    info = json.loads((state_dir / "apiserver.json").read_text())
    return proc.pid, info
