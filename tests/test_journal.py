from __future__ import annotations

import pytest

from pytest_k8sdr import UndoError, UndoStack


def test_unwind_runs_newest_first_and_only_once() -> None:
    done: list[str] = []
    stack = UndoStack()
    stack.push("cordon a", lambda: done.append("a"))
    stack.push("cordon b", lambda: done.append("b"))
    assert len(stack) == 2
    stack.unwind()
    stack.unwind()
    assert done == ["b", "a"]
    assert len(stack) == 0


def test_context_unwinds_only_its_own_frame() -> None:
    done: list[str] = []
    stack = UndoStack()
    stack.push("outer", lambda: done.append("outer"))
    with stack.context():
        stack.push("inner", lambda: done.append("inner"))
    assert done == ["inner"]
    assert [e.description for e in stack.pending] == ["outer"]


def test_every_undo_is_attempted_and_failures_are_reported_together() -> None:
    done: list[str] = []
    stack = UndoStack()

    def boom() -> None:
        raise RuntimeError("kubelet would not start")

    stack.push("first", lambda: done.append("first"))
    stack.push("start kubelet on w1", boom)
    stack.push("last", lambda: done.append("last"))
    with pytest.raises(UndoError, match="start kubelet on w1: kubelet would not start") as info:
        stack.unwind()
    assert done == ["last", "first"]
    assert [d for d, _ in info.value.failures] == ["start kubelet on w1"]


def test_discarded_and_run_entries_are_not_undone_again() -> None:
    done: list[str] = []
    stack = UndoStack()
    a = stack.push("a", lambda: done.append("a"))
    b = stack.push("b", lambda: done.append("b"))
    stack.discard(a)
    stack.run(b)
    stack.unwind()
    assert done == ["b"]


def test_retry_later_runs_after_older_undos() -> None:
    from pytest_k8sdr.journal import RetryLater

    done: list[str] = []
    machine_started = False

    def start_machine() -> None:
        nonlocal machine_started
        machine_started = True
        done.append("start")

    def relabel() -> None:
        if not machine_started:
            raise RetryLater
        done.append("relabel")

    stack = UndoStack()
    stack.push("start machine", start_machine)
    stack.push("relabel node", relabel)
    stack.unwind()
    assert done == ["start", "relabel"]
