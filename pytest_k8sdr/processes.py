"""Local server processes a run starts (nginx, Prometheus, an exporter), known by pid and command.

An undo that stops one has only its journal record: a pid and something its command line must
contain, so that a pid reused by another process since is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path


def cmdline(pid: int) -> str:
    """The command line of `pid`, space-separated; empty when there is no such process."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def running(pid: int) -> bool:
    """Whether `pid` exists and has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait for `pid` to exit (reaping it when it is our child); False after `timeout`."""
    deadline = time.monotonic() + timeout
    delay = threading.Event()
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return True
        except ChildProcessError:  # not our child: look at /proc instead
            if not cmdline(pid):
                return True
        delay.wait(0.02)
    return False


def stop_process(pid: int, marker: str, timeout: float = 10.0) -> None:
    """SIGTERM `pid` if its command line still contains `marker`; SIGKILL after `timeout`."""
    if marker not in cmdline(pid):
        return  # gone, and the pid perhaps reused by someone else
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_gone(pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_gone(pid, timeout)


def free_port(address: str) -> int:
    """A TCP port free on `address` right now."""
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def spawn_daemon(argv: list[str], log: Path, pid_file: Path) -> int:
    """Start `argv` as a daemon: in a session of its own, not our child, output to `log`.

    As nginx daemonizes itself: the process is the undo stack's to stop, by the pid written to
    `pid_file` (and its command line, checked before it is signalled); no child object of ours
    is left to be reaped or to warn when collected. Returns the pid.
    """
    subprocess.run(
        [
            "/bin/sh",
            "-c",
            '"$@" </dev/null >>"$K8SDR_DAEMON_LOG" 2>&1 & echo $! >"$K8SDR_DAEMON_PID"',
            "sh",
            *argv,
        ],
        env={**os.environ, "K8SDR_DAEMON_LOG": str(log), "K8SDR_DAEMON_PID": str(pid_file)},
        start_new_session=True,  # Ctrl-C goes to pytest, whose undo stops it
        check=True,
        timeout=10,
    )
    return int(pid_file.read_text().strip())


def stop_daemon(pid_file: Path, marker: str, timeout: float = 10.0) -> None:
    """Stop the daemon `spawn_daemon` wrote to `pid_file`, if it still runs `marker`.

    No pid file (never started, or stopped already): nothing to do. The file is removed once
    the process is gone, so undoing it again changes nothing.
    """
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    stop_process(pid, marker, timeout)
    pid_file.unlink(missing_ok=True)
