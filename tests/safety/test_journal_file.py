"""The journal file: written before each disruption, closed when undone, corrupt = clear error."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_k8sdr import UndoError, UndoStack
from pytest_k8sdr.journal import (
    Journal,
    JournalError,
    JournalRecord,
    ProcessIdentity,
    read_journal,
    read_sessions,
)
from pytest_k8sdr.undo import Disruption, Registry, UndoEnv

KINDS = Registry()


@KINDS.register
@dataclass(frozen=True)
class Flag(Disruption):
    """A flag file made by the disruption; undone by removing it (`stuck` makes that fail)."""

    kind = "flag"
    path: str
    node: str | None = None
    stuck: bool = False

    def summary(self) -> str:
        return f"raise the flag {self.path}"

    def undoing(self) -> str:
        return f"lower the flag {self.path}"

    def undo(self, env: UndoEnv) -> None:
        if self.stuck:
            raise RuntimeError("kubelet would not start")
        Path(self.path).unlink(missing_ok=True)


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_record_is_on_disk_before_the_change_is_made(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    stack = UndoStack(journal := Journal(path), registry=KINDS)
    flag = tmp_path / "flag"
    entry = stack.push(Flag(str(flag)))
    seen_when_changing = [e.id for e in read_journal(path)]
    flag.touch()
    assert seen_when_changing == [entry.journal_id]
    assert read_journal(path)[0].record == JournalRecord("flag", {"path": str(flag)})
    stack.unwind()
    journal.close_file()
    assert not flag.exists()
    assert read_journal(path) == []
    events = [(x["event"], x.get("how")) for x in lines(path)]
    assert events == [("session", None), ("opened", None), ("closed", "undone")]


def test_failed_undos_stay_open_and_discarded_ones_close(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    stack = UndoStack(journal := Journal(path), registry=KINDS)
    kept = stack.push(Flag(str(tmp_path / "a"), node="w1", stuck=True))
    dropped = stack.push(Flag(str(tmp_path / "b"), node="w2"))
    stack.discard(dropped)
    with pytest.raises(UndoError):
        stack.unwind()
    journal.close_file()
    assert [e.id for e in read_journal(path)] == [kept.journal_id]
    assert read_journal(path)[0].record.node == "w1"


def test_the_session_says_which_process_runs_it(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.describe(kubeconfig="/somewhere/kubeconfig")
    session = read_sessions(path)[journal.run]
    assert session["pid"] == os.getpid()
    assert session["host"] == socket.gethostname()
    assert session["kubeconfig"] == "/somewhere/kubeconfig"
    me = ProcessIdentity.from_session(session)
    assert me is not None
    assert me.alive() is True
    # The same pid with another start time is another process (the pid was reused).
    assert ProcessIdentity(me.pid, me.host, (me.started or 0) + 1, me.boot).alive() is False
    assert ProcessIdentity(me.pid, "another-host", me.started, me.boot).alive() is None


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ('{"event": "session"}\n{"event": "opened", "id": "a-1"\n', 2),
        ('{"event": "session"}\n[1, 2]\n', 2),
        ("not json at all\n", 1),
        ('{"event": "session"}\n\n{"event": "exploded", "id": "a-1"}\n', 3),
        ('{"event": "opened", "id": "a-1", "kind": 7, "data": {}}\n', 1),
    ],
)
def test_a_corrupt_journal_is_an_error_naming_the_line(
    tmp_path: Path, content: str, line: int
) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text(content)
    with pytest.raises(JournalError, match=rf"{path} is corrupt at line {line}\b"):
        read_journal(path)


def test_a_missing_journal_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="does not exist"):
        read_journal(tmp_path / "nope.jsonl")


def test_a_guard_refuses_before_anything_is_written(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"

    def guard(record: JournalRecord, open_records: Sequence[JournalRecord]) -> None:
        if len(open_records) >= 1:
            raise RuntimeError(f"refusing {record.kind}: one at a time")

    with Journal(path, guard=guard) as journal:
        stack = UndoStack(journal, registry=KINDS)
        stack.push(Flag(str(tmp_path / "a"), node="w1"))
        with pytest.raises(RuntimeError, match="one at a time"):
            stack.push(Flag(str(tmp_path / "b"), node="w2"))
    assert len(stack) == 1
    assert len(read_journal(path)) == 1
