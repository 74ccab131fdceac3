"""One undo: disruption kinds, their registry, and the undo stack that goes through it.

A disruption is a frozen dataclass of one registered kind (`cordon`, `machine`, `nginx-drain`,
...). It describes itself (`summary`, `undoing`) and undoes itself from its fields alone, which
are exactly its journal record's `data`: nothing else travels from the code that made it to the
code that undoes it. `UndoStack.push` journals the record, and every undo, at teardown, in
`undo.context()`, after Ctrl-C or SIGTERM and in `k8sdr recover`, rebuilds the disruption from
that JSON through the `REGISTRY` and calls its `undo(env)`. The `UndoEnv` says how to reach
things (the cluster's API, a machine inventory), never what to do.

The registry owns two policies:

- order: newest first, except that a kind may name kinds it must wait for on the same node
  (`after`): an isolated node is relabelled only once an older fault of its machine is undone;
- scope: an entry whose undo also undoes others (`contains`: stopping a simulated cluster a
  run launched ends every disruption made inside it) makes them moot: they are closed, not
  undone, which is also all that can be done once that cluster is gone;
- retries: an undo failing for a passing reason (the API or a machine not back yet, as its
  kind's `retryable` says) is retried with backoff until the env's `retry_deadline`.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import logging
import threading
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import tenacity

from pytest_k8sdr.errors import ApiUnavailable, ConfigError, UndoError
from pytest_k8sdr.journal import Journal, JournalRecord

if TYPE_CHECKING:  # the kubernetes client is slow to import; `import pytest_k8sdr` stays light
    from pytest_k8sdr.cluster import Cluster

log = logging.getLogger(__name__)

D = TypeVar("D", bound="type[Disruption]")

# Set while an unwind runs on this thread: a stop condition must not interrupt an undo.
_unwinding: contextvars.ContextVar[bool] = contextvars.ContextVar("k8sdr_unwinding", default=False)


def unwinding() -> bool:
    """Whether an undo stack is being unwound in this context right now."""
    return _unwinding.get()


class SpecSource(Protocol):
    """Where a machine's spec (which may hold secrets, so is never journaled) is found again."""

    def spec_for(self, node: str) -> Any:
        """The machine spec of `node`; ConfigError when there is none."""
        ...


@dataclass
class UndoEnv:
    """How an undo reaches what it must put back: the API, machines. Never what to do.

    `cluster` for node, namespace and lock kinds; `inventory` for machines whose spec is not in
    their record (ssh, command); `sim` a running simulated cluster for sim machines recorded
    without a state directory; `connections` the live connections a record can name but not
    open again (an SSH session to a load balancer), by the name recorded. `rejoin_timeout`
    bounds the wait for an isolated node to re-register; `retry_deadline` bounds the
    registry's retries of one undo.
    """

    cluster: Cluster | None = None
    inventory: SpecSource | None = None
    sim: Any = None
    connections: Mapping[str, Any] = field(default_factory=dict)
    rejoin_timeout: float = 120.0
    retry_deadline: float = 30.0

    def require_cluster(self, what: str) -> Cluster:
        """The cluster, or ConfigError saying that `what` needs it."""
        if self.cluster is None:
            raise ConfigError(f"{what} needs the cluster: give a kubeconfig")
        return self.cluster


class Disruption(ABC):
    """A disruption of one registered kind; its dataclass fields are its journal record's data.

    Subclasses are frozen dataclasses whose fields are JSON values (str, int, float, bool, None,
    lists and dicts of them), set `kind`, and implement `summary`, `undoing` and `undo`. `undo`
    must be idempotent: undoing what is already undone, or was never made, is a no-op.
    """

    kind: ClassVar[str]
    #: False for what a run sets up rather than disrupts (its namespace, its simulator, its
    #: lock): a dry run lets it through, and a stop condition does not refuse it.
    disruptive: ClassVar[bool] = True
    #: Whether `undo` needs `UndoEnv.cluster`.
    needs_cluster: ClassVar[bool] = False
    #: Kinds whose entries on the same node are undone before this one, even when older.
    after: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def summary(self) -> str:
        """The disruption in words, e.g. ``cordon node w1``."""

    @abstractmethod
    def undoing(self) -> str:
        """Its undo in words, e.g. ``uncordon w1``."""

    @abstractmethod
    def undo(self, env: UndoEnv) -> None:
        """Put back what the disruption changed (idempotent)."""

    def contains(self, other: JournalRecord, kind: type[Disruption] | None) -> bool:
        """Whether undoing this also ends `other` (of class `kind`), so undoing it is moot."""
        return False

    def retryable(self, exc: BaseException) -> bool:
        """Whether `exc` may pass (retried until the deadline): by default, the API was down."""
        return isinstance(exc, ApiUnavailable)

    def node_name(self) -> str | None:
        """The Node it touches (whose annotation lists it), if any."""
        node = getattr(self, "node", None)
        return node if isinstance(node, str) else None

    def to_data(self) -> dict[str, Any]:
        """The record's data: the dataclass fields that differ from their defaults, as JSON."""
        data: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.default is not dataclasses.MISSING and value == f.default:
                continue
            data[f.name] = value
        loaded: dict[str, Any] = json.loads(json.dumps(data))
        return loaded

    def record(self) -> JournalRecord:
        """The journal record: kind, node and data, everything `undo` needs."""
        return JournalRecord(self.kind, self.to_data(), node=self.node_name())

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Disruption:
        """Rebuild from a record's data; ValueError naming the field that is wrong."""
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        for f in fields:
            if f.name not in data:
                required = f.default is dataclasses.MISSING
                if required and f.default_factory is dataclasses.MISSING:
                    raise ValueError(f"{cls.kind} record without {f.name!r}")
                continue
            value = data[f.name]
            if not _is_a(value, hints[f.name]):
                raise ValueError(f"{cls.kind} record: {f.name!r} is not a {hints[f.name]}")
            values[f.name] = value
        unknown = set(data) - {f.name for f in fields}
        if unknown:
            raise ValueError(f"{cls.kind} record: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**values)


def _is_a(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a field's type (str, int, float, bool, None, list, dict)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is_a(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(value, list) and all(_is_a(v, item) for v in value)
    if origin is dict:
        _, item = typing.get_args(hint) or (str, Any)
        return isinstance(value, dict) and all(_is_a(v, item) for v in value.values())
    return isinstance(value, origin or hint)


class UnknownKind(ConfigError):
    """A record names a kind no module registered (a newer version wrote the journal?)."""


class Registry:
    """The disruption kinds by name, and the policies every undo goes through."""

    def __init__(self) -> None:
        self._kinds: dict[str, type[Disruption]] = {}

    def register(self, cls: D) -> D:
        """Class decorator: register a disruption kind (its `kind` must be new)."""
        name = cls.kind
        known = self._kinds.get(name)
        if known is not None and known is not cls:
            raise ValueError(f"disruption kind {name!r} is registered twice")
        self._kinds[name] = cls
        return cls

    @property
    def kinds(self) -> Mapping[str, type[Disruption]]:
        """Every registered kind by name."""
        return types.MappingProxyType(self._kinds)

    def kind_of(self, record: JournalRecord) -> type[Disruption]:
        """The class of a record's kind; UnknownKind when none is registered."""
        cls = self._kinds.get(record.kind)
        if cls is None:
            known = ", ".join(sorted(self._kinds)) or "none"
            raise UnknownKind(f"unknown disruption kind {record.kind!r} (known: {known})")
        return cls

    def load(self, record: JournalRecord) -> Disruption:
        """The disruption a record describes; UnknownKind or ValueError when it is not one."""
        return self.kind_of(record).from_data(record.data)

    def undo(self, record: JournalRecord, env: UndoEnv) -> None:
        """Undo the disruption of `record` under the retry policy (until env.retry_deadline)."""
        disruption = self.load(record)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(disruption.retryable),
            wait=tenacity.wait_exponential_jitter(multiplier=0.2, max=2.0),
            stop=tenacity.stop_after_delay(env.retry_deadline),
            before_sleep=lambda state: log.warning(
                "undo of %s not possible yet, retrying: %s",
                disruption.summary(),
                state.outcome.exception() if state.outcome else "?",
            ),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                disruption.undo(env)

    def moot(self, records: Sequence[JournalRecord]) -> dict[int, int]:
        """Entries made moot by another in `records`: {index: index of the one containing it}."""
        found: dict[int, int] = {}
        for i, record in enumerate(records):
            cls = self._kinds.get(record.kind)
            if cls is None:
                continue
            try:
                container = cls.from_data(record.data)
            except ValueError:
                continue
            for j, other in enumerate(records):
                # Of several containers, the newest opened before it: a run works in the cluster
                # it launched last (a dry run's twin, launched after its simulated target).
                contained = j != i and container.contains(other, self._kinds.get(other.kind))
                if contained and (j not in found or i < j):
                    found[j] = i
        return found

    def order(self, records: Sequence[JournalRecord]) -> list[int]:
        """Indexes of `records` (oldest first) in the order to undo them.

        Newest first; an entry whose kind names others in `after` is preceded by the older
        entries of those kinds on its node (and what they wait for in turn). Unknown kinds keep
        their place.
        """
        placed: set[int] = set()
        order: list[int] = []

        def waits_for(i: int) -> frozenset[str]:
            cls = self._kinds.get(records[i].kind)
            return cls.after if cls is not None else frozenset()

        def place(i: int) -> None:
            if i in placed:
                return
            placed.add(i)
            wanted = waits_for(i)
            for j in range(i - 1, -1, -1):
                if (
                    j not in placed
                    and records[j].kind in wanted
                    and records[j].node is not None
                    and records[j].node == records[i].node
                ):
                    place(j)
            order.append(i)

        for i in range(len(records) - 1, -1, -1):
            place(i)
        return order


#: The registry every undo goes through; kinds register with `@disruption_kind`.
REGISTRY = Registry()
disruption_kind = REGISTRY.register


def through_json(record: JournalRecord) -> JournalRecord:
    """`record` after a trip through JSON: no Python object of its maker survives."""
    return JournalRecord.from_json(json.loads(json.dumps(record.to_json())))


@dataclass
class UndoEntry:
    """One registered undo: the disruption's record (JSON) and how to reach what it changed."""

    description: str
    record: JournalRecord
    env: UndoEnv
    done: bool = field(default=False)
    journal_id: str | None = field(default=None)


class UndoStack:
    """Disruptions, undone in reverse order of registration, each from its record.

    Push *before* making the change; if the change then fails, the undo runs anyway at
    teardown, which is why undos are idempotent. `discard` forgets an entry whose change the
    test reverted itself. With a `journal`, each push is journaled first (and may be refused by
    the journal's guards, or stopped by a dry run, before anything is touched).

    `observers` are told `("made", entry)` once an entry is pushed (its change is about to be
    made) and `("ended", entry)` once it is undone, discarded or moot: a report's timeline of
    what the run disrupted. An observer must not raise.
    """

    def __init__(self, journal: Journal | None = None, *, registry: Registry = REGISTRY) -> None:
        self._entries: list[UndoEntry] = []
        self._lock = threading.RLock()
        self.journal = journal
        self.registry = registry
        self.observers: list[Callable[[str, UndoEntry], None]] = []

    def _tell(self, what: str, entry: UndoEntry) -> None:
        for observer in list(self.observers):
            try:
                observer(what, entry)
            except Exception:  # a report must never stop an undo
                log.exception("undo observer failed on %s", entry.description)

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for e in self._entries if not e.done)

    @property
    def pending(self) -> list[UndoEntry]:
        """Entries not yet undone, oldest first."""
        with self._lock:
            return [e for e in self._entries if not e.done]

    def push(self, disruption: Disruption, env: UndoEnv | None = None) -> UndoEntry:
        """Register the undo of a disruption about to be made; journaled before this returns."""
        cls = self.registry.kind_of(disruption.record())
        if type(disruption) is not cls:
            # Its undo would not be the one that runs: the registry rebuilds `cls` from JSON.
            raise TypeError(f"{type(disruption).__name__} is not the registered {cls.kind!r}")
        record = through_json(disruption.record())
        entry = UndoEntry(disruption.undoing(), record, env if env is not None else UndoEnv())
        journal = self.journal
        if journal is not None:
            entry.journal_id = journal.open(disruption.summary(), record)
        with self._lock:
            self._entries.append(entry)
        log.debug("undo registered: %s", entry.description)
        self._tell("made", entry)
        return entry

    def _close(self, entry: UndoEntry, how: str) -> None:
        if entry.journal_id is not None and self.journal is not None:
            self.journal.close(entry.journal_id, how)
        self._tell("ended", entry)

    def discard(self, entry: UndoEntry) -> None:
        """Forget `entry` without undoing it (the change was reverted already)."""
        with self._lock:
            entry.done = True
        self._close(entry, "discarded")

    def run(self, entry: UndoEntry) -> None:
        """Undo one entry now and mark it done (it is not undone again)."""
        with self._lock:
            if entry.done:
                return
            entry.done = True
        token = _unwinding.set(True)
        try:
            self.registry.undo(entry.record, entry.env)
        finally:
            _unwinding.reset(token)
        self._close(entry, "undone")

    def unwind(self, *, down_to: int = 0) -> None:
        """Undo every pending entry above index `down_to`, in the registry's order.

        Every undo is attempted even when one fails; the failures are raised together as
        `UndoError` afterwards. A failed undo stays open in the journal, for `k8sdr recover`.
        """
        token = _unwinding.set(True)
        failures: list[tuple[str, BaseException]] = []
        try:
            while True:
                with self._lock:
                    pending = [e for e in self._entries[down_to:] if not e.done]
                    if not pending:
                        break
                    records = [e.record for e in pending]
                    moot = self.registry.moot(records)
                    for i in moot:
                        pending[i].done = True
                    live = [i for i in self.registry.order(records) if i not in moot]
                    entry = pending[live[0]] if live else None
                    if entry is not None:
                        entry.done = True
                for i, container in moot.items():
                    log.info(
                        "moot: %s (%s)", pending[i].description, pending[container].description
                    )
                    self._close(pending[i], "moot")
                if entry is None:
                    continue
                try:
                    log.info("undo: %s", entry.description)
                    self.registry.undo(entry.record, entry.env)
                    self._close(entry, "undone")
                except Exception as exc:  # every undo is attempted; failures reported together
                    log.error("undo failed: %s: %s", entry.description, exc)
                    failures.append((entry.description, exc))
            with self._lock:
                del self._entries[down_to:]
        finally:
            _unwinding.reset(token)
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
