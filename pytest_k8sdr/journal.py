"""The undo stack: every disruption registers how to undo it before it is made.

A fixture owns one `UndoStack` per test and unwinds it at teardown; `stack.context()` opens a
nested frame that unwinds when the `with` block ends, like `MonkeyPatch.context()`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pytest_k8sdr.errors import UndoError

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """Raised by an undo that must wait for older undos (e.g. relabel after the machine starts).

    The entry is retried once, after every older entry has been undone.
    """


@dataclass
class UndoEntry:
    """One registered undo: what was done, and the call that reverses it."""

    description: str
    undo: Callable[[], object]
    done: bool = field(default=False)


class UndoStack:
    """Undo actions, run in reverse order of registration.

    Register with `push` *before* making the change; if the change then fails, the undo runs
    anyway at teardown, so undo actions must be idempotent (reverting something never made is a
    no-op). `discard` forgets an entry whose change was reverted by the test itself.
    """

    def __init__(self) -> None:
        self._entries: list[UndoEntry] = []
        self._lock = threading.RLock()

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for e in self._entries if not e.done)

    @property
    def pending(self) -> list[UndoEntry]:
        """Entries not yet undone, oldest first."""
        with self._lock:
            return [e for e in self._entries if not e.done]

    def push(self, description: str, undo: Callable[[], object]) -> UndoEntry:
        """Register `undo` for a change about to be made, described for reports."""
        entry = UndoEntry(description, undo)
        with self._lock:
            self._entries.append(entry)
        log.debug("undo registered: %s", description)
        return entry

    def discard(self, entry: UndoEntry) -> None:
        """Forget `entry` without running it (the change was reverted already)."""
        with self._lock:
            entry.done = True

    def run(self, entry: UndoEntry) -> None:
        """Run one entry's undo now and mark it done (it is not run again)."""
        with self._lock:
            if entry.done:
                return
            entry.done = True
        entry.undo()

    def unwind(self, *, down_to: int = 0) -> None:
        """Undo every pending entry above index `down_to`, newest first.

        Every undo is attempted even when one fails; the failures are raised together as
        `UndoError` afterwards.
        """
        failures: list[tuple[str, BaseException]] = []
        later: list[UndoEntry] = []
        while True:
            with self._lock:
                pending = [e for e in self._entries[down_to:] if not e.done]
                if not pending:
                    break
                entry = pending[-1]
                entry.done = True
            try:
                log.info("undo: %s", entry.description)
                entry.undo()
            except RetryLater:
                later.append(entry)
            except Exception as exc:  # every undo is attempted; failures are reported together
                log.error("undo failed: %s: %s", entry.description, exc)
                failures.append((entry.description, exc))
        for entry in later:
            try:
                log.info("undo (retried after older undos): %s", entry.description)
                entry.undo()
            except Exception as exc:
                log.error("undo failed: %s: %s", entry.description, exc)
                failures.append((entry.description, exc))
        with self._lock:
            del self._entries[down_to:]
        if failures:
            names = "; ".join(f"{d}: {e}" for d, e in failures)
            raise UndoError(f"{len(failures)} undo action(s) failed: {names}", failures)

    @contextmanager
    def context(self) -> Iterator[UndoStack]:
        """A nested frame: what is pushed inside the block is undone when it ends."""
        with self._lock:
            mark = len(self._entries)
        try:
            yield self
        finally:
            self.unwind(down_to=mark)
