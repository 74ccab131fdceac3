"""`kill -9` of `pytest experiments/` on the embedded simulator: recover leaves nothing running.

The run launches its own simulated cluster (API server, one process per node agent) and a
managed nginx in front of it. SIGKILLed mid-runbook it undoes nothing; `k8sdr recover` then
finds the simulator and the nginx in the journal and stops them. This holds whether or not the
simulator's processes end by themselves when their parent dies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from safety_helpers import REPO, processes_mentioning, recover

from pytest_k8sdr.journal import read_journal


def opened_kinds(journal: Path) -> list[str]:
    if not journal.exists():
        return []
    kinds = []
    for line in journal.read_text().splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue  # a line being written
        if obj.get("event") == "opened":
            kinds.append(obj["kind"])
    return kinds


def test_sigkill_of_an_embedded_run_then_recover_leaves_no_process(tmp_path: Path) -> None:
    base = tmp_path / "run"
    journal = tmp_path / "journal.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(REPO / "experiments" / "test_runbook.py"),
            f"--basetemp={base}",
            f"--k8sdr-journal={journal}",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("K8SDR_")},
    )
    try:
        # Killed once the machine of a node is down and the Node deleted: mid-runbook.
        deadline = time.monotonic() + 120
        while "isolate" not in opened_kinds(journal):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the runbook never isolated a node"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
    assert {"sim-cluster", "managed-nginx", "machine"} <= set(opened_kinds(journal)), out
    left_by_the_kill = processes_mentioning(str(base))
    done = recover("--journal", str(journal))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stop the simulated cluster" in done.stdout
    assert read_journal(journal) == []
    still = processes_mentioning(str(base))
    assert still == [], f"left after recover: {still}\n(after the kill: {left_by_the_kill})\n{done}"
