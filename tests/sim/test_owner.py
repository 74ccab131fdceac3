"""A simulated cluster never outlives the process that owns it; `k8sdr sim up` owns none."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pytest_k8sdr.sim import SimCluster

# Far above the time the watchdog takes (the owner's exit is a pidfd event, the agents are
# killed at once); only a cluster that does not notice its owner at all takes longer.
BOUND = 30.0

LAUNCH = """
import sys
from pathlib import Path
from pytest_k8sdr.sim import SimCluster

cluster = SimCluster.start(Path(sys.argv[1]), workers=1)
print("up", flush=True)
sys.stdin.read()  # until killed
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _sim_pids(state: Path) -> list[int]:
    data = json.loads((state / "state.json").read_text())
    return [int(data["server"]["pid"]), *(int(a["pid"]) for a in data["agents"].values())]


def _wait_all_gone(pids: list[int], bound: float) -> list[int]:
    deadline = time.monotonic() + bound
    left = [p for p in pids if _alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if _alive(p)]
    return left


def test_cluster_ends_when_its_launching_process_is_killed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    pids: list[int] = []
    with subprocess.Popen(
        [sys.executable, "-c", LAUNCH, str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as owner:
        try:
            _kill_owner_and_check(owner, state, pids)
        finally:
            owner.kill()
            for pid in pids:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)


def _kill_owner_and_check(owner: subprocess.Popen[str], state: Path, pids: list[int]) -> None:
    assert owner.stdout is not None
    assert owner.stdout.readline().strip() == "up"
    pids.extend(_sim_pids(state))
    assert len(pids) == 3  # control plane, its node, one worker
    data = json.loads((state / "state.json").read_text())
    assert data["owner_pid"] == owner.pid
    assert data["state_dir"] == str(state)
    # A frozen node cannot run its own watchdog: the control plane ends it.
    os.kill(pids[-1], signal.SIGSTOP)
    owner.kill()
    owner.wait()
    assert _wait_all_gone(pids, BOUND) == []


def test_cli_up_leaves_a_cluster_owned_by_nobody(tmp_path: Path) -> None:
    state = tmp_path / "state"
    up = subprocess.run(
        [*(sys.executable, "-m", "pytest_k8sdr.cli", "sim", "up"), "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert up.returncode == 0, up.stderr
    cluster = SimCluster.attach(state)
    pids = _sim_pids(state)
    try:
        assert cluster.owner_pid is None
        # The process that launched it is gone; a watchdog would have ended it at once.
        assert all(_alive(p) for p in pids)
        assert not cluster.orphaned()
        assert cluster.running()
        status = subprocess.run(
            [
                *(sys.executable, "-m", "pytest_k8sdr.cli", "sim", "status"),
                "--state-dir",
                str(state),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert "owner:      none: it runs until `k8sdr sim down`" in status
    finally:
        cluster.stop()
    assert _wait_all_gone(pids, BOUND) == []
