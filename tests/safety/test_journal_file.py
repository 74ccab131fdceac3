"""The journal file: written before each disruption, closed when undone, corrupt = clear error."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from pytest_k8sdr import UndoError, UndoStack
from pytest_k8sdr.journal import (
    DisruptionPlanned,
    Journal,
    JournalError,
    JournalRecord,
    read_journal,
)


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_record_is_on_disk_before_the_change_is_made(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    stack = UndoStack(journal := Journal(path))
    seen_when_changing: list[list[str]] = []

    def change() -> None:
        seen_when_changing.append([e.id for e in read_journal(path)])

    entry = stack.push("uncordon w1", lambda: None, JournalRecord("cordon", {"node": "w1"}))
    change()
    assert seen_when_changing == [[entry.journal_id]]
    stack.unwind()
    journal.close_file()
    assert read_journal(path) == []
    events = [(x["event"], x.get("how")) for x in lines(path)]
    assert events == [("session", None), ("opened", None), ("closed", "undone")]


def test_failed_undos_stay_open_and_discarded_ones_close(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    stack = UndoStack(journal := Journal(path))

    def boom() -> None:
        raise RuntimeError("kubelet would not start")

    kept = stack.push("start w1", boom, JournalRecord("machine", {"node": "w1"}))
    dropped = stack.push("uncordon w2", lambda: None, JournalRecord("cordon", {"node": "w2"}))
    stack.discard(dropped)
    with pytest.raises(UndoError):
        stack.unwind()
    journal.close_file()
    assert [e.id for e in read_journal(path)] == [kept.journal_id]
    assert read_journal(path)[0].record == JournalRecord("machine", {"node": "w1"})


def test_pushes_without_a_record_are_not_journaled(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        UndoStack(journal).push("something local", lambda: None)
    assert [x["event"] for x in lines(path)] == ["session"]


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
        stack = UndoStack(journal)
        stack.push("a", lambda: None, JournalRecord("cordon", {"node": "w1"}, node="w1"))
        with pytest.raises(RuntimeError, match="one at a time"):
            stack.push("b", lambda: None, JournalRecord("cordon", {"node": "w2"}, node="w2"))
    assert len(stack) == 1
    assert len(read_journal(path)) == 1


def test_a_dry_run_writes_nothing_and_stops_at_the_disruption(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path, plan=True)
    stack = UndoStack(journal)
    with pytest.raises(DisruptionPlanned, match="uncordon w1"):
        stack.push("uncordon w1", lambda: None, JournalRecord("cordon", {"node": "w1"}))
    assert not path.exists()
    assert [d for d, _ in journal.planned] == ["uncordon w1"]
    assert len(stack) == 0
