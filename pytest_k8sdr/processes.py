"""Local server processes a run starts (nginx, Prometheus, an exporter), known by pid and command.

An undo that stops one has only its journal record: a pid and something its command line must
contain, so that a pid reused by another process since is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from pathlib import Path


def cmdline(pid: int) -> str:
    """The command line of `pid`, space-separated; empty when there is no such process."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


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
