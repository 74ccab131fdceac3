"""The workers of one pytest-xdist session: who they are, and their turns at a shared cluster.

Under pytest-xdist every worker is a pytest process of its own. The controller hands each one
the session's identity (`WorkerSession`): a session id all of them share, the worker's id, the
controller's pid and a directory on this host where the workers coordinate.

On the simulator every worker launches a cluster of its own (on its own address slot), so
workers never meet. On kind and kubeconfig backends they share one cluster, and `Turns` lets
one worker at a time run a disruptive test on it: a worker waiting for its turn says for whom
it waits. A turn is an flock, so a worker that dies (SIGKILL) frees it at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The key of the controller's message in each worker's `workerinput` (and `workeroutput`).
WORKERINPUT_KEY = "k8sdr"


@dataclass(frozen=True)
class WorkerSession:
    """One worker of a pytest-xdist session, as the controller described it."""

    session: str
    worker: str
    controller_pid: int
    host: str
    directory: Path

    @property
    def run(self) -> str:
        """The worker's run id in the journal: the session's id and the worker's."""
        return f"{self.session}-{self.worker}"

    def to_json(self) -> dict[str, Any]:
        """The message the controller puts in the worker's `workerinput`."""
        return {
            "session": self.session,
            "worker": self.worker,
            "controller_pid": self.controller_pid,
            "host": self.host,
            "directory": str(self.directory),
        }

    @classmethod
    def from_workerinput(cls, workerinput: Mapping[str, Any] | None) -> WorkerSession | None:
        """The worker's session from xdist's `workerinput`; None outside a worker."""
        if workerinput is None or WORKERINPUT_KEY not in workerinput:
            return None
        raw = workerinput[WORKERINPUT_KEY]
        return cls(
            str(raw["session"]),
            str(raw["worker"]),
            int(raw["controller_pid"]),
            str(raw["host"]),
            Path(raw["directory"]),
        )

    def journal_facts(self) -> dict[str, Any]:
        """What the worker's `session` line in the journal says of the xdist session."""
        return {
            "xdist_session": self.session,
            "xdist_worker": self.worker,
            "xdist_controller_pid": self.controller_pid,
        }


class Controller:
    """The controller's side: the session's id and the directory its workers coordinate in."""

    def __init__(self) -> None:
        self.session = uuid.uuid4().hex[:12]
        self.directory = Path(tempfile.mkdtemp(prefix=f"k8sdr-xdist-{self.session}-"))
        self.pid = os.getpid()
        self.host = socket.gethostname()

    def worker(self, worker: str) -> WorkerSession:
        """The session as worker `worker` gets it."""
        return WorkerSession(self.session, worker, self.pid, self.host, self.directory)

    def runs(self) -> str:
        """The prefix of the journal run ids of this session's workers."""
        return f"{self.session}-"

    def close(self) -> None:
        """Remove the coordination directory."""
        for path in self.directory.iterdir():
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            self.directory.rmdir()


@dataclass(frozen=True)
class Holder:
    """Who holds a turn (or waits for one): the worker and its test."""

    worker: str
    test: str
    pid: int

    def to_text(self) -> str:
        """As written into the turn file."""
        return json.dumps({"worker": self.worker, "test": self.test, "pid": self.pid})

    @classmethod
    def from_text(cls, text: str) -> Holder | None:
        """From the turn file; None when it is empty (being taken, or free)."""
        try:
            raw = json.loads(text)
            return cls(str(raw["worker"]), str(raw["test"]), int(raw["pid"]))
        except (ValueError, KeyError, TypeError):
            return None


class Turns:
    """One worker at a time runs a disruptive test on the shared cluster.

    `turn(test)` blocks while another worker holds the turn, after telling `on_wait` for whom
    it waits (and `on_waited` how long it did). It is re-entrant within the process, so a
    disruptive test whose setup needs a turn (the session's health check) does not wait for
    itself. `waiting()` lists the workers waiting right now.
    """

    def __init__(
        self,
        directory: Path,
        worker: str,
        *,
        on_wait: Callable[[str], None],
        on_waited: Callable[[str], None] | None = None,
    ) -> None:
        if not directory.is_dir():
            raise FileNotFoundError(
                f"the pytest-xdist session's directory {directory} is not on this host"
            )
        self.directory = directory
        self.worker = worker
        self.on_wait = on_wait
        self.on_waited = on_waited
        self.path = directory / "disruptive.turn"
        self._depth = 0

    def waiting(self) -> list[Holder]:
        """The workers waiting for a turn now, with the test each wants to run."""
        found = []
        for path in sorted(self.directory.glob("waiting-*")):
            with contextlib.suppress(OSError):
                holder = Holder.from_text(path.read_text())
                if holder is not None:
                    found.append(holder)
        return found

    def holder(self) -> Holder | None:
        """Who holds the turn now, if anyone says so."""
        try:
            return Holder.from_text(self.path.read_text())
        except OSError:
            return None

    @contextlib.contextmanager
    def turn(self, test: str) -> Iterator[None]:
        """Hold the turn for `test` (waiting for it if another worker has it)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            self._acquire(fd, test)
            try:
                me = Holder(self.worker, test, os.getpid())
                os.ftruncate(fd, 0)
                os.pwrite(fd, me.to_text().encode(), 0)
                self._depth = 1
                yield
            finally:
                self._depth = 0
                # Emptied before it is unlocked: a waiter never reads a holder that left.
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _acquire(self, fd: int, test: str) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        holder = self._current_holder(fd)
        if holder is not None:
            whom = f"worker {holder.worker}'s disruptive test {holder.test}"
        else:
            whom = "another worker's disruptive test"
        waiting = self.directory / f"waiting-{self.worker}"
        waiting.write_text(Holder(self.worker, test, os.getpid()).to_text())
        started = time.monotonic()
        try:
            self.on_wait(f"waiting for {whom} before {test}")
            # Blocks until the holder lets go, or dies: the kernel drops a dead process's flock.
            fcntl.flock(fd, fcntl.LOCK_EX)
        finally:
            with contextlib.suppress(OSError):
                waiting.unlink()
        if self.on_waited is not None:
            self.on_waited(f"waited {time.monotonic() - started:.1f}s for {whom}; running {test}")

    def _current_holder(self, fd: int) -> Holder | None:
        # The holder writes itself in right after taking the lock: give it a moment.
        for _ in range(20):
            holder = Holder.from_text(os.pread(fd, 4096, 0).decode(errors="replace"))
            if holder is not None:
                return holder
            time.sleep(0.01)
        return None
