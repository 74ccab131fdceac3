"""The undo stack and the disruption registry, without a cluster: order, failures, frames.

The kinds here write what their undo does to a file named in their record, so that every undo
runs from the record alone, as in the plugin.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_k8sdr import ApiUnavailable, UndoError, UndoStack
from pytest_k8sdr.journal import JournalRecord
from pytest_k8sdr.undo import Disruption, Registry, UndoEnv, UnknownKind

KINDS = Registry()


@KINDS.register
@dataclass(frozen=True)
class Note(Disruption):
    """Undone by appending its name to `log`; `fail` makes the undo fail."""

    kind = "note"
    log: str
    name: str
    node: str | None = None
    fail: bool = False

    def summary(self) -> str:
        return f"note {self.name}"

    def undoing(self) -> str:
        return f"unnote {self.name}"

    def undo(self, env: UndoEnv) -> None:
        if self.fail:
            raise RuntimeError(f"{self.name} would not start")
        with open(self.log, "a") as fh:
            fh.write(self.name + "\n")


@KINDS.register
@dataclass(frozen=True)
class Machine(Note):
    kind = "machine"


@KINDS.register
@dataclass(frozen=True)
class Isolate(Note):
    """Waits for the older machine entries of its node, as the plugin's `isolate` does."""

    kind = "isolate"
    after = frozenset({"machine"})


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "undone.log"


def undone(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_unwind_runs_newest_first_and_only_once(log: Path) -> None:
    stack = UndoStack(registry=KINDS)
    stack.push(Note(str(log), "a"))
    stack.push(Note(str(log), "b"))
    assert len(stack) == 2
    stack.unwind()
    stack.unwind()
    assert undone(log) == ["b", "a"]
    assert len(stack) == 0


def test_context_unwinds_only_its_own_frame(log: Path) -> None:
    stack = UndoStack(registry=KINDS)
    stack.push(Note(str(log), "outer"))
    with stack.context():
        stack.push(Note(str(log), "inner"))
    assert undone(log) == ["inner"]
    assert [e.description for e in stack.pending] == ["unnote outer"]


def test_every_undo_is_attempted_and_failures_are_reported_together(log: Path) -> None:
    stack = UndoStack(registry=KINDS)
    stack.push(Note(str(log), "first"))
    stack.push(Note(str(log), "kubelet", fail=True))
    stack.push(Note(str(log), "last"))
    with pytest.raises(UndoError, match="unnote kubelet: kubelet would not start") as info:
        stack.unwind()
    assert undone(log) == ["last", "first"]
    assert [d for d, _ in info.value.failures] == ["unnote kubelet"]


def test_discarded_and_run_entries_are_not_undone_again(log: Path) -> None:
    stack = UndoStack(registry=KINDS)
    a = stack.push(Note(str(log), "a"))
    b = stack.push(Note(str(log), "b"))
    stack.discard(a)
    stack.run(b)
    stack.unwind()
    assert undone(log) == ["b"]


def test_an_entry_waits_for_the_older_machine_entries_of_its_node(log: Path) -> None:
    # kill w1, cordon w1, isolate w1, cordon w2: the machine is started before the relabel,
    # and the cordon made before the isolation is undone after it (the snapshot holds it).
    stack = UndoStack(registry=KINDS)
    stack.push(Machine(str(log), "start-w1", node="w1"))
    stack.push(Note(str(log), "uncordon-w1", node="w1"))
    stack.push(Isolate(str(log), "relabel-w1", node="w1"))
    stack.push(Note(str(log), "uncordon-w2", node="w2"))
    stack.unwind()
    assert undone(log) == ["uncordon-w2", "start-w1", "relabel-w1", "uncordon-w1"]


def test_another_nodes_machine_is_not_waited_for(log: Path) -> None:
    stack = UndoStack(registry=KINDS)
    stack.push(Machine(str(log), "start-w2", node="w2"))
    stack.push(Isolate(str(log), "relabel-w1", node="w1"))
    stack.unwind()
    assert undone(log) == ["relabel-w1", "start-w2"]


def test_only_the_registered_class_of_a_kind_may_be_pushed(log: Path) -> None:
    @dataclass(frozen=True)
    class Sneaky(Note):
        # The same record as a Note: the registry would rebuild a Note, never call this undo.

        def undo(self, env: UndoEnv) -> None:
            raise AssertionError("the pushed object's method ran")

    stack = UndoStack(registry=KINDS)
    with pytest.raises(TypeError, match="Sneaky is not the registered 'note'"):
        stack.push(Sneaky(str(log), "x"))
    assert len(stack) == 0


def test_an_undo_runs_from_a_copy_of_the_record_made_at_push(log: Path, tmp_path: Path) -> None:
    registry = Registry()

    @registry.register
    @dataclass(frozen=True)
    class Lines(Disruption):
        kind = "lines"
        log: str
        lines: list[str]

        def summary(self) -> str:
            return "lines"

        def undoing(self) -> str:
            return "unlines"

        def undo(self, env: UndoEnv) -> None:
            Path(self.log).write_text(" ".join(self.lines))

    lines = ["as", "pushed"]
    stack = UndoStack(registry=registry)
    stack.push(Lines(str(log), lines))
    lines.append("changed later")  # the object is gone by the time of a real undo
    stack.unwind()
    assert log.read_text() == "as pushed"


def test_records_are_validated_and_unknown_kinds_named() -> None:
    with pytest.raises(UnknownKind, match=r"unknown disruption kind 'cordon' \(known: isolate"):
        KINDS.load(JournalRecord("cordon", {"node": "w1"}))
    with pytest.raises(ValueError, match="note record without 'name'"):
        KINDS.load(JournalRecord("note", {"log": "/tmp/x"}))
    with pytest.raises(ValueError, match="'fail' is not a"):
        KINDS.load(JournalRecord("note", {"log": "/tmp/x", "name": "a", "fail": "yes"}))
    with pytest.raises(ValueError, match="unknown field"):
        KINDS.load(JournalRecord("note", {"log": "/tmp/x", "name": "a", "colour": 1}))


def test_a_passing_failure_is_retried_until_it_succeeds(tmp_path: Path) -> None:
    registry = Registry()

    @registry.register
    @dataclass(frozen=True)
    class Flaky(Disruption):
        """Fails with ApiUnavailable while its countdown file holds a positive number."""

        kind = "flaky"
        countdown: str

        def summary(self) -> str:
            return "flaky"

        def undoing(self) -> str:
            return "unflaky"

        def undo(self, env: UndoEnv) -> None:
            path = Path(self.countdown)
            left = int(path.read_text())
            path.write_text(str(left - 1))
            if left > 0:
                raise ApiUnavailable("API server unreachable")

    countdown = tmp_path / "countdown"
    countdown.write_text("2")
    stack = UndoStack(registry=registry)
    stack.push(Flaky(str(countdown)), UndoEnv(retry_deadline=30))
    stack.unwind()
    assert countdown.read_text() == "-1"  # two failures, then the undo that succeeded

    countdown.write_text("1000")
    stack.push(Flaky(str(countdown)), UndoEnv(retry_deadline=0.5))
    with pytest.raises(UndoError, match="API server unreachable"):
        stack.unwind()


@KINDS.register
@dataclass(frozen=True)
class World(Note):
    """Everything noted on its node ends with it (as a simulated cluster's disruptions do)."""

    kind = "world"

    def contains(self, other: JournalRecord, kind: type[Disruption] | None) -> bool:
        return other.node == self.node and other.kind != "world"


def test_what_ends_with_another_entry_is_closed_not_undone(log: Path, tmp_path: Path) -> None:
    from pytest_k8sdr.journal import Journal, read_journal

    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        stack = UndoStack(journal, registry=KINDS)
        stack.push(World(str(log), "stop-the-world", node="w"))
        stack.push(Note(str(log), "inside", node="w"))
        stack.push(Note(str(log), "elsewhere", node="v"))
        stack.unwind()
    assert undone(log) == ["elsewhere", "stop-the-world"]
    assert read_journal(path) == []
    hows = [
        line.split('"how": "')[1].split('"')[0]
        for line in path.read_text().splitlines()
        if '"closed"' in line
    ]
    assert sorted(hows) == ["moot", "undone", "undone"]
