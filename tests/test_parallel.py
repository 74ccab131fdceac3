"""Turns at a shared cluster: one worker at a time, a waiter says for whom, a dead holder frees it.

The journal file takes lines from many processes at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pytest_k8sdr.journal import Journal, JournalRecord, read_journal, read_sessions
from pytest_k8sdr.parallel import Holder, Turns

HOLD = """
import sys
from pathlib import Path
from pytest_k8sdr.parallel import Turns

turns = Turns(Path(sys.argv[1]), "gw0", on_wait=print)
with turns.turn("test_a.py::test_a"):
    print("held", flush=True)
    sys.stdin.read()  # until killed, or told to let go
"""


def _holder(directory: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_waiting_worker_names_the_holder_and_runs_once_it_lets_go(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    said: list[str] = []
    waiting = threading.Event()
    ran = threading.Event()

    def on_wait(text: str) -> None:
        said.append(text)
        waiting.set()

    turns = Turns(tmp_path, "gw1", on_wait=on_wait, on_waited=said.append)
    assert turns.holder() == Holder("gw0", "test_a.py::test_a", holder.pid)

    def run() -> None:
        with turns.turn("test_b.py::test_b"):
            ran.set()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert waiting.wait(30)
        assert said == [
            "waiting for worker gw0's disruptive test test_a.py::test_a before test_b.py::test_b"
        ]
        assert turns.waiting() == [Holder("gw1", "test_b.py::test_b", os.getpid())]
        # The holder still holds: the waiter has not run (and cannot, whatever the timing).
        assert not ran.is_set()
        holder.communicate("", timeout=30)  # lets go
        thread.join(30)
        assert ran.is_set()
        assert said[1].startswith("waited ")
        assert said[1].endswith("; running test_b.py::test_b")
        assert turns.waiting() == []
        assert turns.holder() is None
    finally:
        if holder.returncode is None:
            holder.kill()
            holder.communicate(timeout=30)
        thread.join(30)


def test_a_killed_holder_frees_the_turn(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=30)
    turns = Turns(tmp_path, "gw1", on_wait=pytest.fail)
    with turns.turn("test_b"):  # no wait: the kernel dropped the dead holder's flock
        assert turns.holder() == Holder("gw1", "test_b", os.getpid())


def test_a_turn_is_reentrant_within_a_worker(tmp_path: Path) -> None:
    turns = Turns(tmp_path, "gw0", on_wait=pytest.fail)
    with turns.turn("test_a"), turns.turn("the health check"):
        assert turns.holder() == Holder("gw0", "test_a", os.getpid())
    assert turns.holder() is None


def test_turns_need_the_sessions_directory_on_this_host(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not on this host"):
        Turns(tmp_path / "elsewhere", "gw0", on_wait=print)


APPEND = """
import sys
from pathlib import Path
from pytest_k8sdr.journal import Journal, JournalRecord

journal = Journal(Path(sys.argv[1]), run=sys.argv[2])
for i in range(int(sys.argv[3])):
    entry = journal.open(f"cordon w{i}", JournalRecord("cordon", {"node": "x" * 300}, None))
    if i % 2:
        journal.close(entry)
journal.close_file()
"""


def test_many_workers_journal_into_one_file_without_tearing_a_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    count = 300
    procs = [
        subprocess.Popen([sys.executable, "-c", APPEND, str(path), f"s-gw{n}", str(count)])
        for n in range(3)
    ]
    for proc in procs:
        assert proc.wait(120) == 0
    # Every line parses; each worker's even entries are still open, under its own run.
    left = read_journal(path)
    assert len(left) == 3 * count // 2
    assert {e.id.rpartition("-")[0] for e in left} == {"s-gw0", "s-gw1", "s-gw2"}
    assert set(read_sessions(path)) == {"s-gw0", "s-gw1", "s-gw2"}


def test_a_journal_run_may_be_named() -> None:
    journal = Journal(run="abc-gw3")
    assert journal.open("cordon w1", JournalRecord("cordon", {}, None)) == "abc-gw3-1"
