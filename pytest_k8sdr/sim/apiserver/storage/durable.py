"""The durable store: a snapshot plus an append-only log in the cluster's directory.

What etcd is to kube-apiserver: the control-plane process writes every commit here, and a
restarted process reads it back, so objects, uids and the resourceVersion counter continue
where they stopped. Layout of DIR (the cluster's `store/`):

    snapshot    line 1: {"format": 1, "rv": N}; then one line per object:
                plural TAB namespace TAB name TAB the object's JSON
    log         one line per commit after the snapshot's rv:
                rv TAB A|M|D TAB plural TAB namespace TAB name [TAB the object's JSON]

Committed JSON is compact and never holds a raw newline or tab outside strings (JSON escapes
both inside strings), so a line is one record. A torn last line (a crash mid-write) is
ignored, as etcd's WAL drops a torn tail.

fsync policy: every commit is handed to the kernel with one write(2) before the commit
returns, so before any client hears of it: killing the control-plane process (SIGKILL, the
fault the simulator injects) loses nothing. fsync(2) runs at most once per `fsync_interval`
seconds (at the first commit after it elapsed) and at close, so a machine crash loses at
most that much; etcd fsyncs every batch, which the simulator does not need since it never
outlives its machine. The log is compacted into a new snapshot when it outgrows
`compact_bytes` and twice the snapshot (written to a temporary file, fsynced, renamed).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DurableLog",
    "Record",
    "read_snapshot",
    "read_store",
    "snapshot_lines",
    "write_snapshot",
]

FORMAT = 1
SNAPSHOT = "snapshot"
LOG = "log"


@dataclass(frozen=True)
class Record:
    """One object as the store holds it."""

    plural: str
    namespace: str
    name: str
    raw: bytes


def read_store(directory: Path) -> tuple[int, dict[tuple[str, str, str], bytes]]:
    """The last committed resourceVersion and every object, from the snapshot and the log.

    (0, {}) when the directory holds no store yet. A damaged snapshot is a ValueError naming
    the file and line: the process must not serve from a store it could only half read.
    """
    rv = 0
    objects: dict[tuple[str, str, str], bytes] = {}
    snap = directory / SNAPSHOT
    if snap.exists():
        rv, objects = read_snapshot(snap)
    log = directory / LOG
    if log.exists():
        rv = _replay(log, rv, objects)
    return rv, objects


def read_snapshot(path: Path) -> tuple[int, dict[tuple[str, str, str], bytes]]:
    """The resourceVersion and objects of one snapshot file; ValueError naming a damaged line."""
    objects: dict[tuple[str, str, str], bytes] = {}
    with path.open("rb") as fh:
        head = fh.readline()
        try:
            meta = json.loads(head)
            rv = int(meta["rv"])
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT}")
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: line 1 is not a snapshot header: {exc}") from None
        for n, line in enumerate(fh, start=2):
            parts = line.rstrip(b"\n").split(b"\t", 3)
            if len(parts) != 4 or not line.endswith(b"\n"):
                raise ValueError(f"{path}: line {n} is not a snapshot record")
            objects[(parts[0].decode(), parts[1].decode(), parts[2].decode())] = parts[3]
    return rv, objects


def _replay(path: Path, rv: int, objects: dict[tuple[str, str, str], bytes]) -> int:
    with path.open("rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break  # torn tail: the write that was cut never returned
            parts = line[:-1].split(b"\t", 5)
            if len(parts) < 5:
                break
            at = int(parts[0])
            if at <= rv:
                continue  # already in the snapshot (a crash between snapshot and truncate)
            key = (parts[2].decode(), parts[3].decode(), parts[4].decode())
            if parts[1] == b"D":
                objects.pop(key, None)
            else:
                objects[key] = parts[5]
            rv = at
    return rv


def snapshot_lines(rv: int, records: Iterable[Record]) -> Iterator[bytes]:
    """A snapshot at `rv`, line by line: the header, then one line per record."""
    yield json.dumps({"format": FORMAT, "rv": rv}).encode() + b"\n"
    for r in records:
        yield b"\t".join((r.plural.encode(), r.namespace.encode(), r.name.encode(), r.raw)) + b"\n"


def write_snapshot(path: Path, rv: int, records: Iterable[Record]) -> int:
    """Write a snapshot atomically (temporary file, fsync, rename); its size in bytes."""
    tmp = path.with_name(path.name + ".tmp")
    size = 0
    with tmp.open("wb") as fh:
        for line in snapshot_lines(rv, records):
            fh.write(line)
            size += len(line)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)
    return size


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DurableLog:
    """The append-only log of one store directory (see the module doc for the policy)."""

    def __init__(
        self,
        directory: Path,
        *,
        fsync_interval: float = 1.0,
        compact_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.fsync_interval = fsync_interval
        self.compact_bytes = compact_bytes
        self._fd = os.open(directory / LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.size = os.fstat(self._fd).st_size
        snap = directory / SNAPSHOT
        self.snapshot_size = snap.stat().st_size if snap.exists() else 0
        self._synced = time.monotonic()
        self._dirty = False

    def append(self, rv: int, op: bytes, plural: str, ns: str, name: str, raw: bytes) -> None:
        """Write one commit (op A, M or D; raw is ignored for D)."""
        head = b"%d\t%s\t%s\t%s\t%s" % (rv, op, plural.encode(), ns.encode(), name.encode())
        line = head + b"\n" if op == b"D" else head + b"\t" + raw + b"\n"
        os.write(self._fd, line)
        self.size += len(line)
        self._dirty = True
        now = time.monotonic()
        if now - self._synced >= self.fsync_interval:
            os.fsync(self._fd)
            self._synced = now
            self._dirty = False

    def wants_compaction(self) -> bool:
        """Whether the log has outgrown its bound and twice the snapshot."""
        return self.size > self.compact_bytes and self.size > 2 * self.snapshot_size

    def compact(self, rv: int, records: Iterator[Record]) -> None:
        """Replace snapshot + log by a snapshot at `rv` and an empty log."""
        self.snapshot_size = write_snapshot(self.directory / SNAPSHOT, rv, records)
        # A crash before this truncate leaves records <= rv in the log: replay skips them.
        os.ftruncate(self._fd, 0)
        os.fsync(self._fd)
        self.size = 0
        self._dirty = False

    def sync(self) -> None:
        """Flush what was written to disk (fsync)."""
        if self._dirty:
            os.fsync(self._fd)
            self._synced = time.monotonic()
            self._dirty = False

    def close(self) -> None:
        """Flush to disk and close; idempotent."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                self.sync()
            os.close(self._fd)
            self._fd = -1
