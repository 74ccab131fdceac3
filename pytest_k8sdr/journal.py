"""The undo stack and the journal: every disruption is recorded before it is made.

A fixture owns one `UndoStack` per test and unwinds it at teardown; `stack.context()` opens a
nested frame that unwinds when the `with` block ends, like `MonkeyPatch.context()`.

With a `Journal`, every push that carries a `JournalRecord` is first written durably (a JSON
line, fsync'ed) to a local file and, when the record names a node, as the `k8sdr.io/journal`
annotation of that Node; only then does the caller make the change. An undone entry is closed in
both places. `k8sdr recover` reads what is still open and undoes it without the original Python
objects, so a record's `data` must say everything its undo needs (and never a secret).

The file, one JSON object per line::

    {"event": "session", "run": "...", "pid": 123, "at": "...", ...}
    {"event": "opened", "id": "run-1", "kind": "cordon", "node": "w1", "data": {...}, ...}
    {"event": "closed", "id": "run-1", "how": "undone", "at": "..."}
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pytest_k8sdr.errors import ConfigError, Conflict, K8sdrError, NotFound, UndoError

if TYPE_CHECKING:  # the kubernetes client is slow to import; `import pytest_k8sdr` stays light
    from pytest_k8sdr.cluster import Cluster

log = logging.getLogger(__name__)

#: The Node annotation listing the journal entries still open on that node.
ANNOTATION = "k8sdr.io/journal"


class RetryLater(Exception):
    """Raised by an undo that must wait for older undos (e.g. relabel after the machine starts).

    The entry is retried once, after every older entry has been undone.
    """


class JournalError(ConfigError):
    """A journal file cannot be read or written; names the file (and the line)."""


class DisruptionPlanned(K8sdrError):
    """Raised instead of making a disruption in a dry run (`--k8sdr-plan`); nothing was touched."""

    def __init__(self, description: str, record: JournalRecord) -> None:
        super().__init__(f"planned, not made: {description}")
        self.description = description
        self.record = record


@dataclass(frozen=True)
class JournalRecord:
    """What a disruption is, in JSON-able terms sufficient to undo it from another process.

    `kind` names the recover handler ("cordon", "uncordon", "taint", "untaint", "isolate",
    "machine", "lb-drain", ...); `node` is the Node it touches (annotated), if any.
    """

    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)
    node: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object."""
        return {"kind": self.kind, "node": self.node, "data": dict(self.data)}

    def summary(self) -> str:
        """The disruption in words, e.g. ``cordon node w1`` (for dry runs and `--check`)."""
        d, node = self.data, self.node or self.data.get("node")

        def taint(t: Mapping[str, Any]) -> str:
            value = f"={t['value']}" if t.get("value") else ""
            return f"{t.get('key')}{value}:{t.get('effect')}"

        if self.kind in ("cordon", "uncordon"):
            return f"{self.kind} node {node}"
        if self.kind in ("taint", "out-of-service"):
            return f"taint node {node} with {taint(d.get('taint') or {})}"
        if self.kind == "untaint":
            return f"remove {', '.join(taint(t) for t in d.get('taints') or [])} from node {node}"
        if self.kind == "isolate":
            return f"delete the Node {node} (isolate; its labels and taints are saved)"
        if self.kind == "machine":
            return f"{d.get('fault')} the {d.get('driver')} machine of node {node}"
        if self.kind == "lb-drain":
            pool = d.get("upstream") or d.get("backend")
            who = f" (node {node})" if node else ""
            return f"drain {d.get('address')}{who} from {d.get('lb')} {pool!r}"
        if self.kind == "lock":
            return f"take the game-day lock {d.get('namespace')}/{d.get('name')}"
        return f"{self.kind} {node or ''}".strip()

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> JournalRecord:
        """Build from `to_json`'s output; ValueError when it is not one."""
        kind, data, node = raw.get("kind"), raw.get("data", {}), raw.get("node")
        if not isinstance(kind, str) or not isinstance(data, dict):
            raise ValueError("a record needs a string 'kind' and an object 'data'")
        if node is not None and not isinstance(node, str):
            raise ValueError("a record's 'node' must be a string")
        return cls(kind, data, node)


@dataclass(frozen=True)
class OpenEntry:
    """A journal entry opened and not closed: what `k8sdr recover` must undo."""

    id: str
    description: str
    record: JournalRecord
    at: str
    line: int = 0


class NodeAnnotator(Protocol):
    """Keeps the open entries of a Node in its `k8sdr.io/journal` annotation."""

    def add(self, node: str, entry_id: str, record: JournalRecord) -> None:
        """Add an entry to the node's annotation (before the disruption is made)."""

    def remove(self, node: str, entry_id: str) -> None:
        """Remove an entry from the node's annotation; no error if it (or the node) is gone."""


Guard = Callable[[JournalRecord, Sequence[JournalRecord]], None]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Journal:
    """The durable record of a session's disruptions: a JSON-lines file and Node annotations.

    `path` None keeps the journal in memory (annotations only). `guard(record, open_records)`
    runs before anything is written and refuses a disruption by raising. With `plan=True`
    nothing is written or touched: each record is collected in `planned` and the push raises
    `DisruptionPlanned`.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        annotator: NodeAnnotator | None = None,
        guard: Guard | None = None,
        plan: bool = False,
        session: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.annotator = annotator
        self.guard = guard
        self.plan = plan
        self.run = uuid.uuid4().hex[:12]
        self.planned: list[tuple[str, JournalRecord]] = []
        self._open: dict[str, tuple[str, JournalRecord]] = {}
        self._count = 0
        self._lock = threading.RLock()
        self._file: Any = None
        if path is not None and not plan:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - held for the run
            except OSError as exc:
                raise JournalError(f"journal {path}: cannot open for writing: {exc}") from exc
            self._write(
                {"event": "session", "run": self.run, "pid": os.getpid(), "at": _now()}
                | dict(session or {})
            )

    @property
    def open_records(self) -> list[tuple[str, JournalRecord]]:
        """(id, record) of every entry opened and not yet closed, oldest first."""
        with self._lock:
            return list(self._open.values())

    def open(self, description: str, record: JournalRecord) -> str:
        """Journal a disruption about to be made; returns its id.

        The guard runs first (and may refuse); then the file line is fsync'ed, then the node
        annotation is written. If the annotation cannot be written, the entry is closed again
        and the error raised: the disruption must not be made.
        """
        with self._lock:
            if self.guard is not None:
                self.guard(record, [r for _, r in self._open.values()])
            if self.plan:
                self.planned.append((description, record))
                raise DisruptionPlanned(description, record)
            self._count += 1
            entry_id = f"{self.run}-{self._count}"
            self._write(
                {"event": "opened", "id": entry_id, "at": _now(), "description": description}
                | record.to_json()
            )
            self._open[entry_id] = (description, record)
        if record.node and self.annotator is not None:
            try:
                self.annotator.add(record.node, entry_id, record)
            except BaseException:
                self.close(entry_id, "not-made")
                raise
        return entry_id

    def close(self, entry_id: str, how: str = "undone") -> None:
        """Close an entry (undone, discarded, not-made, recovered): annotation, then file line.

        In that order: a process killed in between leaves the entry open in the file, and
        `k8sdr recover` undoes it again (a no-op) rather than leaving an annotation behind.
        """
        with self._lock:
            found = self._open.get(entry_id)
        if found is None:
            return
        record = found[1]
        if record.node and self.annotator is not None:
            try:
                self.annotator.remove(record.node, entry_id)
            except Exception as exc:  # the undo is done; recover removes what is left
                log.warning("cannot remove journal annotation from node %s: %s", record.node, exc)
        with self._lock:
            if self._open.pop(entry_id, None) is None:
                return
            self._write({"event": "closed", "id": entry_id, "how": how, "at": _now()})

    def _write(self, obj: Mapping[str, Any]) -> None:
        if self._file is None:
            return
        try:
            self._file.write(json.dumps(obj, sort_keys=True) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise JournalError(f"journal {self.path}: cannot write: {exc}") from exc

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_file()

    def close_file(self) -> None:
        """Close the file (entries still open stay open in it, for `k8sdr recover`)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read_journal(path: Path) -> list[OpenEntry]:
    """The entries of a journal file still open, oldest first.

    A missing, unreadable or corrupt file is a `JournalError` naming the file and the line.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JournalError(f"journal {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JournalError(f"journal {path} cannot be read: {exc}") from exc
    opened: dict[str, OpenEntry] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            event = obj.get("event")
            if event == "opened":
                entry_id = obj["id"]
                if not isinstance(entry_id, str):
                    raise ValueError("'id' must be a string")
                opened[entry_id] = OpenEntry(
                    entry_id,
                    str(obj.get("description", "")),
                    JournalRecord.from_json(obj),
                    str(obj.get("at", "")),
                    number,
                )
            elif event == "closed":
                opened.pop(str(obj["id"]), None)
            elif event != "session":
                raise ValueError(f"unknown event {event!r}")
        except (ValueError, KeyError, TypeError) as exc:
            raise JournalError(
                f"journal {path} is corrupt at line {number}: {exc}: {line[:120]!r}"
            ) from None
    return list(opened.values())


def read_sessions(path: Path) -> dict[str, dict[str, Any]]:
    """The `session` lines of a journal by run id (call after `read_journal` validated it)."""
    sessions: dict[str, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            obj = json.loads(line)
            if obj.get("event") == "session":
                sessions[str(obj.get("run"))] = obj
    return sessions


def run_of(entry_id: str) -> str:
    """The run id an entry id belongs to."""
    return entry_id.rpartition("-")[0]


def append_closed(path: Path, entry_id: str, how: str) -> None:
    """Append a `closed` line for `entry_id` to an existing journal (fsync'ed)."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(
                json.dumps({"event": "closed", "id": entry_id, "how": how, "at": _now()}) + "\n"
            )
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise JournalError(f"journal {path}: cannot write: {exc}") from exc


def parse_annotation(value: str | None) -> list[tuple[str, JournalRecord]]:
    """The (id, record) pairs held in a `k8sdr.io/journal` annotation value."""
    if not value:
        return []
    try:
        items = json.loads(value)
        if not isinstance(items, list):
            raise ValueError("not a JSON list")
        return [(str(i["id"]), JournalRecord.from_json(i)) for i in items]
    except (ValueError, KeyError, TypeError) as exc:
        raise JournalError(f"annotation {ANNOTATION} is corrupt: {exc}: {value[:120]!r}") from None


def format_annotation(entries: Sequence[tuple[str, JournalRecord]]) -> str | None:
    """The annotation value for these entries (None removes the annotation)."""
    if not entries:
        return None
    return json.dumps(
        [{"id": i, **r.to_json()} for i, r in entries], sort_keys=True, separators=(",", ":")
    )


class ClusterAnnotator:
    """Writes open entries into the `k8sdr.io/journal` annotation of Nodes, through the API.

    Read-modify-write guarded by the Node's resourceVersion: a concurrent writer (the kubelet,
    a controller) makes the patch fail with 409 and it is retried on a fresh read.
    """

    def __init__(self, cluster: Cluster, *, attempts: int = 10) -> None:
        self.cluster = cluster
        self.attempts = attempts

    def add(self, node: str, entry_id: str, record: JournalRecord) -> None:
        """Add the entry to the node's annotation."""
        self._edit(node, lambda entries: [*entries, (entry_id, record)])

    def remove(self, node: str, entry_id: str) -> None:
        """Remove the entry from the node's annotation (no error if it or the node is gone)."""
        self._edit(node, lambda entries: [(i, r) for i, r in entries if i != entry_id])

    def _edit(
        self,
        node: str,
        change: Callable[[list[tuple[str, JournalRecord]]], list[tuple[str, JournalRecord]]],
    ) -> None:
        for _ in range(self.attempts):
            raw = self.cluster.get_raw("nodes", node)
            if raw is None:
                return
            meta = raw["metadata"]
            current = (meta.get("annotations") or {}).get(ANNOTATION)
            try:
                entries = parse_annotation(current)
            except JournalError:
                entries = []  # a corrupt annotation of ours is replaced, never kept
            wanted = format_annotation(change(entries))
            if wanted == current:
                return
            patch = {
                "metadata": {
                    "resourceVersion": meta["resourceVersion"],
                    "annotations": {ANNOTATION: wanted},
                }
            }
            try:
                self.cluster.call(
                    self.cluster.core.patch_node,
                    node,
                    patch,
                    _content_type="application/merge-patch+json",
                    _preload_content=False,
                )
                return
            except NotFound:
                return
            except Conflict:
                continue
        raise JournalError(
            f"cannot update annotation {ANNOTATION} of node {node}: kept conflicting"
        )


@dataclass
class UndoEntry:
    """One registered undo: what was done, and the call that reverses it."""

    description: str
    undo: Callable[[], object]
    done: bool = field(default=False)
    record: JournalRecord | None = field(default=None)
    journal_id: str | None = field(default=None)


class UndoStack:
    """Undo actions, run in reverse order of registration.

    Register with `push` *before* making the change; if the change then fails, the undo runs
    anyway at teardown, so undo actions must be idempotent (reverting something never made is a
    no-op). `discard` forgets an entry whose change was reverted by the test itself.

    With a `journal`, a push that carries a `record` is journaled first (and may be refused by
    the journal's guards, or stopped by a dry run, before anything is touched).
    """

    def __init__(self, journal: Journal | None = None) -> None:
        self._entries: list[UndoEntry] = []
        self._lock = threading.RLock()
        self.journal = journal

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for e in self._entries if not e.done)

    @property
    def pending(self) -> list[UndoEntry]:
        """Entries not yet undone, oldest first."""
        with self._lock:
            return [e for e in self._entries if not e.done]

    def push(
        self,
        description: str,
        undo: Callable[[], object],
        record: JournalRecord | None = None,
    ) -> UndoEntry:
        """Register `undo` for a change about to be made, described for reports.

        `record` journals the change (file and node annotation) before this returns.
        """
        entry = UndoEntry(description, undo, record=record)
        journal = self.journal
        if record is not None and journal is not None:
            entry.journal_id = journal.open(description, record)
        with self._lock:
            self._entries.append(entry)
        log.debug("undo registered: %s", description)
        return entry

    def _close(self, entry: UndoEntry, how: str) -> None:
        if entry.journal_id is not None and self.journal is not None:
            self.journal.close(entry.journal_id, how)

    def discard(self, entry: UndoEntry) -> None:
        """Forget `entry` without running it (the change was reverted already)."""
        with self._lock:
            entry.done = True
        self._close(entry, "discarded")

    def run(self, entry: UndoEntry) -> None:
        """Run one entry's undo now and mark it done (it is not run again)."""
        with self._lock:
            if entry.done:
                return
            entry.done = True
        entry.undo()
        self._close(entry, "undone")

    def unwind(self, *, down_to: int = 0) -> None:
        """Undo every pending entry above index `down_to`, newest first.

        Every undo is attempted even when one fails; the failures are raised together as
        `UndoError` afterwards. A failed undo stays open in the journal, for `k8sdr recover`.
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
                self._close(entry, "undone")
            except RetryLater:
                later.append(entry)
            except Exception as exc:  # every undo is attempted; failures are reported together
                log.error("undo failed: %s: %s", entry.description, exc)
                failures.append((entry.description, exc))
        for entry in later:
            try:
                log.info("undo (retried after older undos): %s", entry.description)
                entry.undo()
                self._close(entry, "undone")
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
