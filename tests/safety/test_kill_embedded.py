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

import pytest
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


PLANNED = """
import time
import pytest


@pytest.mark.disruptive
def test_it(node_faults):
    node_faults.cordon("k8sdr-worker")
    print("REHEARSING", flush=True)
    time.sleep(120)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_a_killed_plan_leaves_no_twin_running(tmp_path: Path, sig: signal.Signals) -> None:
    """A dry run launches two simulators (the simulated target and its twin), both journaled.

    SIGTERMed mid-rehearsal it stops both itself. SIGKILLed it undoes nothing; `k8sdr recover`
    then finds both in the journal and stops them (whether or not they already ended with
    their owner, the killed run).
    """
    base = tmp_path / "run"
    journal = tmp_path / "journal.jsonl"
    (tmp_path / "test_planned.py").write_text(PLANNED)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest_k8sdr.cli",
            "plan",
            "-q",
            "-s",
            "-p",
            "no:cacheprovider",
            str(tmp_path / "test_planned.py"),
            f"--rootdir={tmp_path}",
            f"--basetemp={base}",
            f"--k8sdr-journal={journal}",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("K8SDR_")},
    )
    assert proc.stdout is not None
    head = ""
    try:
        for line in proc.stdout:  # the rehearsal has cordoned a node of the twin
            head += line
            if "REHEARSING" in line:
                break
    finally:
        proc.send_signal(sig if "REHEARSING" in head else signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
    out = head + out
    assert "REHEARSING" in out, out
    if sig == signal.SIGTERM:  # torn down as after Ctrl-C: every entry closed, nothing left
        assert "sim-cluster" in journal.read_text(), out
        assert read_journal(journal) == [], out
        assert processes_mentioning(str(base)) == [], out
        return
    launched = [
        e.record.data["state_dir"] for e in read_journal(journal) if e.record.kind == "sim-cluster"
    ]
    assert sorted(Path(d).name for d in launched) == ["sim", "twin"], out  # target/sim, twin
    done = recover("--journal", str(journal))
    assert done.returncode == 0, done.stdout + done.stderr
    for state_dir in launched:
        assert f"stop the simulated cluster in {state_dir}" in done.stdout, done.stdout
    # What the rehearsal did (the twin's cordon) ended with the twin, not with the target.
    moot = [line for line in done.stdout.splitlines() if line.startswith("moot")]
    assert moot, done.stdout
    assert all(line.endswith(f"{os.sep}twin") for line in moot), done.stdout
    assert read_journal(journal) == []
    still = processes_mentioning(str(base))
    assert still == [], f"left after recover: {still}\n{done}"
