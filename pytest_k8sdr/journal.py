"""The journal: every disruption is recorded, durably, before it is made.

`Journal.open` writes a record (a JSON line, fsync'ed) to a local file and, when the record
names a node, into the `k8sdr.io/journal` annotation of that Node; only then does the caller
make the change. An undone entry is closed in both places. `k8sdr recover` reads what is still
open and undoes it through the disruption registry (`pytest_k8sdr.undo`), from the record
alone, so a record's `data` says everything its undo needs (and never a secret).

The file, one JSON object per line (a run may add `session` lines as it learns more)::

    {"event": "session", "run": "...", "pid": 123, "host": "...", "started": ..., "at": "..."}
    {"event": "opened", "id": "run-1", "kind": "cordon", "node": "w1", "data": {...}, ...}
    {"event": "closed", "id": "run-1", "how": "undone", "at": "..."}
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pytest_k8sdr.errors import ConfigError, Conflict, NotFound

if TYPE_CHECKING:  # the kubernetes client is slow to import; `import pytest_k8sdr` stays light
    from pytest_k8sdr.cluster import Cluster

log = logging.getLogger(__name__)

#: The Node annotation listing the journal entries still open on that node.
ANNOTATION = "k8sdr.io/journal"


class JournalError(ConfigError):
    """A journal file cannot be read or written; names the file (and the line)."""


@dataclass(frozen=True)
class JournalRecord:
    """What a disruption is, in JSON-able terms sufficient to undo it from another process.

    `kind` names its registered disruption kind (`pytest_k8sdr.undo.REGISTRY`); `data` holds
    the kind's fields; `node` is the Node it touches (annotated), if any.
    """

    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)
    node: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object."""
        return {"kind": self.kind, "node": self.node, "data": dict(self.data)}

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


@dataclass(frozen=True)
class ProcessIdentity:
    """Who runs a session: enough to tell later whether that very process still lives.

    A pid alone is not: pids are reused. `started` is the process's start time in clock ticks
    since boot (`/proc/PID/stat`, field 22) and `boot` the kernel's boot id, so a live pid is
    that run only if both match. Off Linux both are None and only the pid is compared.
    """

    pid: int
    host: str
    started: int | None
    boot: str | None

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        """The identity of a live process on this host; None when there is no such process."""
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # another user's process: it exists
        started = _start_ticks(pid)
        if started is None and os.path.exists("/proc/self/stat"):
            return None  # gone between the two looks, or a zombie
        return cls(pid, socket.gethostname(), started, _boot_id())

    @classmethod
    def current(cls) -> ProcessIdentity:
        """The identity of the running process."""
        found = cls.of(os.getpid())
        assert found is not None
        return found

    def to_json(self) -> dict[str, Any]:
        """As the fields of a `session` line."""
        return {"pid": self.pid, "host": self.host, "started": self.started, "boot": self.boot}

    @classmethod
    def from_session(cls, session: Mapping[str, Any]) -> ProcessIdentity | None:
        """From a `session` line; None when it does not say (an older journal)."""
        pid, host = session.get("pid"), session.get("host")
        if not isinstance(pid, int) or not isinstance(host, str):
            return None
        started, boot = session.get("started"), session.get("boot")
        return cls(
            pid,
            host,
            started if isinstance(started, int) else None,
            boot if isinstance(boot, str) else None,
        )

    def alive(self) -> bool | None:
        """True when this very process still runs, False when it does not, None if unknowable.

        Unknowable from another host (or after the host rebooted under another boot id, which
        means it does not run: False).
        """
        if self.host != socket.gethostname():
            return None
        if self.boot is not None and _boot_id() not in (None, self.boot):
            return False
        now = ProcessIdentity.of(self.pid)
        if now is None:
            return False
        return self.started is None or now.started == self.started


def _start_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the command name: state is field 3, starttime field 22.
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return None


class Journal:
    """The durable record of a session's disruptions: a JSON-lines file and Node annotations.

    `path` None keeps the journal in memory (annotations only). `guard(record, open_records)`
    runs before anything is written and refuses a disruption by raising. `annotator` and
    `guard` may be set after construction
    (a session journals the simulator it launches before it can reach a cluster). `run` names
    the run (a fresh id by default; a pytest-xdist worker's names its session and itself).

    Several processes may journal into one file (the workers of a pytest-xdist session): each
    line is appended whole, under an flock, so lines never interleave.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        annotator: NodeAnnotator | None = None,
        guard: Guard | None = None,
        session: Mapping[str, Any] | None = None,
        run: str | None = None,
    ) -> None:
        self.path = path
        self.annotator = annotator
        self.guard = guard
        self.run = run or uuid.uuid4().hex[:12]
        self._open: dict[str, JournalRecord] = {}
        self._count = 0
        self._lock = threading.RLock()
        self._fd: int | None = None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as exc:
                raise JournalError(f"journal {path}: cannot open for writing: {exc}") from exc
            self._write(
                {"event": "session", "run": self.run, "at": _now()}
                | ProcessIdentity.current().to_json()
                | dict(session or {})
            )

    def describe(self, **facts: Any) -> None:
        """Add facts about the session (kubeconfig, context, inventory) as a `session` line."""
        with self._lock:
            self._write({"event": "session", "run": self.run, **facts})

    @property
    def open_records(self) -> list[tuple[str, JournalRecord]]:
        """(id, record) of every entry opened and not yet closed, oldest first."""
        with self._lock:
            return list(self._open.items())

    def open(self, description: str, record: JournalRecord) -> str | None:
        """Journal a disruption about to be made; returns its id.

        The guard runs first (and may refuse); then the file line is fsync'ed, then the node
        annotation is written. If the annotation cannot be written, the entry is closed again
        and the error raised: the disruption must not be made.
        """
        with self._lock:
            if self.guard is not None:
                self.guard(record, list(self._open.values()))
            self._count += 1
            entry_id = f"{self.run}-{self._count}"
            self._write(
                {"event": "opened", "id": entry_id, "at": _now(), "description": description}
                | record.to_json()
            )
            self._open[entry_id] = record
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
            record = self._open.get(entry_id)
        if record is None:
            return
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
        if self._fd is None:
            return
        try:
            _append_line(self._fd, obj)
        except OSError as exc:
            raise JournalError(f"journal {self.path}: cannot write: {exc}") from exc

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_file()

    def close_file(self) -> None:
        """Close the file (entries still open stay open in it, for `k8sdr recover`)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _append_line(fd: int, obj: Mapping[str, Any]) -> None:
    """Append `obj` as one JSON line to the O_APPEND file `fd`, whole and fsync'ed."""
    data = (json.dumps(obj, sort_keys=True) + "\n").encode("utf-8")
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.fsync(fd)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


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
    """The facts of each run's `session` lines, by run id (after `read_journal` validated it)."""
    sessions: dict[str, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            obj = json.loads(line)
            if obj.get("event") == "session":
                sessions.setdefault(str(obj.get("run")), {}).update(obj)
    return sessions


def run_of(entry_id: str) -> str:
    """The run id an entry id belongs to."""
    return entry_id.rpartition("-")[0]


def append_closed(path: Path, entry_id: str, how: str) -> None:
    """Append a `closed` line for `entry_id` to an existing journal (fsync'ed)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            _append_line(fd, {"event": "closed", "id": entry_id, "how": how, "at": _now()})
        finally:
            os.close(fd)
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
