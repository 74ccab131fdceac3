"""A stand-in machine for the driver tests: two real processes playing kubelet and containerd.

    python fakenode.py DIR boot | crash | init | status
    python fakenode.py DIR systemctl stop|start|is-active [--quiet] kubelet|containerd
    python fakenode.py DIR systemctl kill --signal=SIGSTOP|SIGCONT kubelet

Each service is a `sleep` process whose pid sits in DIR/<service>.pid; `status` prints JSON
{service: running|frozen|stopped}. `init` boots and then waits (PID 1 of a test container).
Stdlib only, so it runs under any Python (inside a container, over SSH).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SERVICES = ("kubelet", "containerd")


def _pid(state: Path, service: str) -> int | None:
    try:
        pid = int((state / f"{service}.pid").read_text())
    except (OSError, ValueError):
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # A zombie (Z) or dead (X) process is not running.
    return None if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X") else pid


def status(state: Path, service: str) -> str:
    pid = _pid(state, service)
    if pid is None:
        return "stopped"
    stat = Path(f"/proc/{pid}/stat").read_text()
    return "frozen" if stat.rsplit(")", 1)[1].split()[0] in ("T", "t") else "running"


def start(state: Path, service: str) -> None:
    if _pid(state, service) is not None:
        return
    proc = subprocess.Popen(
        ["sleep", "infinity"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    (state / f"{service}.pid").write_text(str(proc.pid))


def stop(state: Path, service: str, sig: int = signal.SIGKILL) -> None:
    pid = _pid(state, service)
    if pid is not None:
        os.kill(pid, signal.SIGCONT)
        os.kill(pid, sig)
        # Reap it when it is our child (init); elsewhere its parent is gone and init reaps it.
        deadline = time.monotonic() + 5
        while _pid(state, service) is not None and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.01)


def systemctl(state: Path, args: list[str]) -> int:
    args = [a for a in args if a != "--quiet"]
    verb, *rest = args
    if verb == "kill":
        signame = rest[0].split("=", 1)[1]
        pid = _pid(state, rest[1])
        if pid is None:
            return 1
        os.kill(pid, getattr(signal, signame))
        return 0
    for service in rest:
        if service not in SERVICES:
            print(f"Unit {service}.service not found.", file=sys.stderr)
            return 5
        if verb == "start":
            start(state, service)
        elif verb == "stop":
            stop(state, service)
        elif verb == "is-active":
            if status(state, service) != "running":
                return 3
        else:
            print(f"unknown verb {verb}", file=sys.stderr)
            return 1
    return 0


def main(argv: list[str]) -> int:
    state = Path(argv[0])
    state.mkdir(parents=True, exist_ok=True)
    command, args = argv[1], argv[2:]
    if command == "boot":
        for service in SERVICES:
            start(state, service)
        return 0
    if command == "crash":
        for service in SERVICES:
            stop(state, service)
        return 0
    if command == "status":
        print(json.dumps({s: status(state, s) for s in SERVICES}))
        return 0
    if command == "systemctl":
        return systemctl(state, args)
    if command == "init":
        for service in SERVICES:
            start(state, service)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while True:
            try:
                os.wait()  # reap the services and anything docker exec leaves behind
            except ChildProcessError:
                time.sleep(0.2)
    print(f"unknown command {command}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
