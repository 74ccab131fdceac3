"""pytest hooks and fixtures that keep a cluster safe: journal, guards, lock, turns, dry run.

Under pytest-xdist each worker journals its own run (into the session's one journal file) and
is a member of the session's one game-day lock; on a cluster the workers share (kind,
kubeconfig) a worker runs a disruptive test only in its turn (`pytest_k8sdr.parallel`).
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from pytest_k8sdr.backends import Backend
from pytest_k8sdr.cluster import Cluster
from pytest_k8sdr.errors import ConfigError, LockHeld, LockLost, ReadOnlyCluster
from pytest_k8sdr.guards import Guards, health_problems, refuse_unless_healthy
from pytest_k8sdr.journal import ClusterAnnotator, DisruptionPlanned, Journal, JournalRecord
from pytest_k8sdr.lock import GameDayLock, GameDayLockHeld, StopCondition
from pytest_k8sdr.parallel import Turns, WorkerSession
from pytest_k8sdr.plugin import SETTINGS_KEY
from pytest_k8sdr.undo import REGISTRY, UndoEntry, UndoEnv, UndoStack, unwinding

log = logging.getLogger("pytest_k8sdr")

PLAN_KEY = pytest.StashKey[dict[str, list[str]]]()
JOURNAL_KEY = pytest.StashKey[Journal]()
STOP_KEY = pytest.StashKey[StopCondition]()
DISRUPTIVE_KEY = pytest.StashKey[bool]()
INTERRUPTS_KEY = pytest.StashKey["_Interrupts"]()
WORKER_KEY = pytest.StashKey[WorkerSession | None]()
TURNS_KEY = pytest.StashKey[Turns | None]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--k8sdr-plan`: print the disruptions the selected tests would make, touching nothing."""
    group = parser.getgroup("k8sdr")
    group.addoption(
        "--k8sdr-plan",
        dest="k8sdr_plan",
        action="store_true",
        default=os.environ.get("K8SDR_PLAN", "").lower() in ("1", "true", "yes", "on"),
        help="dry run: print the disruptions each selected test would make (nodes, machines, "
        "LB entries) and touch nothing [env K8SDR_PLAN]",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Note whether the session has disruptive tests (it then takes the lock up front)."""
    config.stash[DISRUPTIVE_KEY] = any(i.get_closest_marker("disruptive") for i in items)


def _planning(config: pytest.Config) -> bool:
    return bool(config.getoption("k8sdr_plan", False))


@pytest.hookimpl(trylast=True)  # after the plugin's own, which resolves the settings
def pytest_configure(config: pytest.Config) -> None:
    """Prepare the dry run's report, the stop condition and, in an xdist worker, its turns."""
    plan: dict[str, list[str]] = {}
    config.stash[PLAN_KEY] = plan
    config.pluginmanager.register(_PlanReports(plan), "k8sdr-plan-reports")
    config.stash[STOP_KEY] = stop = StopCondition()
    config.stash[DISRUPTIVE_KEY] = False
    config.stash[INTERRUPTS_KEY] = _Interrupts(stop)
    worker = WorkerSession.from_workerinput(getattr(config, "workerinput", None))
    config.stash[WORKER_KEY] = worker
    config.stash[TURNS_KEY] = None
    settings = config.stash.get(SETTINGS_KEY, None)
    # Workers on the simulator each have a cluster of their own; elsewhere they share one.
    shared = worker is not None and settings is not None and settings.backend != "sim"
    if worker is not None and settings is not None and shared and not _planning(config):
        try:
            config.stash[TURNS_KEY] = Turns(
                worker.directory,
                worker.worker,
                on_wait=functools.partial(_say, config, worker.worker),
                on_waited=functools.partial(_say, config, worker.worker),
            )
        except FileNotFoundError as exc:
            raise pytest.UsageError(
                f"k8sdr: {exc}: workers sharing a {settings.backend} cluster take turns "
                "through it, so they must run on this host (pytest -n N, not --tx ssh=...)"
            ) from exc


def _say(config: pytest.Config, worker: str, text: str) -> None:
    """Tell the user, from an xdist worker: its stderr is the controller's terminal; and log it."""
    log.warning("k8sdr [%s]: %s", worker, text)
    capman = config.pluginmanager.get_plugin("capturemanager")
    with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
        sys.stderr.write(f"\n[{worker}] k8sdr: {text}\n")
        sys.stderr.flush()


@contextlib.contextmanager
def _turn(config: pytest.Config, what: str) -> Iterator[None]:
    """Hold this worker's turn at the shared cluster for `what` (nothing to take elsewhere)."""
    turns = config.stash.get(TURNS_KEY, None)
    if turns is None:
        yield
        return
    with turns.turn(what):
        yield


def _holder(journal: Journal, worker: WorkerSession | None) -> str:
    """Who holds the lock: the run's user, host and pid; all xdist workers name their session."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name (a container without passwd entry)
        user = f"uid {os.getuid()}"
    if worker is not None:
        return f"{user}@{worker.host} pid {worker.controller_pid} run {worker.session}"
    return f"{user}@{socket.gethostname()} pid {os.getpid()} run {journal.run}"


@pytest.fixture(scope="session")
def k8sdr_session_undo(request: pytest.FixtureRequest) -> Iterator[UndoStack]:
    """The session's own undo stack, journaled: the simulator it launches, the game-day lock.

    Its journal is the session's (the `k8sdr_journal` setting), opened here, before the
    backend starts anything, so that a simulator launched by a run that is then killed is in
    the journal for `k8sdr recover` to stop.
    """
    config = request.config
    settings = config.stash[SETTINGS_KEY]
    worker = config.stash[WORKER_KEY]
    try:
        journal = Journal(
            settings.journal.absolute() if settings.journal else None,
            plan=_planning(config),
            run=worker.run if worker is not None else None,
            session=worker.journal_facts() if worker is not None else None,
        )
    except ConfigError as exc:
        pytest.exit(f"k8sdr: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    config.stash[JOURNAL_KEY] = journal
    stack = UndoStack(journal)
    try:
        yield stack
    finally:
        try:
            stack.unwind()
        finally:
            journal.close_file()


@pytest.fixture(scope="session")
def k8sdr_journal(
    request: pytest.FixtureRequest, k8sdr_backend: Backend, k8sdr_session_undo: UndoStack
) -> Iterator[Journal]:
    """The session's journal, with guards, the health check and the game-day lock in force.

    Set up before the first disruption of the session: a cluster that is not healthy, a
    protected-node selector that is invalid or a lock held by another run stop the session
    before anything is touched. A lock taken from the session later trips its stop condition:
    the running test fails, the following disruptive tests are skipped.
    """
    config = request.config
    settings = config.stash[SETTINGS_KEY]
    cluster = k8sdr_backend.cluster
    plan = _planning(config)
    journal = k8sdr_session_undo.journal
    assert journal is not None
    stop = config.stash[STOP_KEY]
    try:
        guards = Guards.for_cluster(
            cluster,
            protected_selector=settings.protected_nodes,
            max_disrupted=settings.max_disrupted,
        )
        if plan:
            # The backend opened the facade read-only (`k8sdr_backend` reads --k8sdr-plan): it
            # refuses every write itself, with `ReadOnlyCluster`.
            problems = health_problems(cluster)
            if problems:
                config.stash[PLAN_KEY]["(cluster health)"] = problems
        elif settings.require_healthy == "on" and k8sdr_backend.sim is None:
            # A simulated cluster was started by this session: it cannot predate the run.
            # On a cluster shared with fellow workers, judged in a turn: never mid-disruption.
            with _turn(config, "the health check"):
                refuse_unless_healthy(cluster)
    except ConfigError as exc:
        pytest.exit(f"k8sdr: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)

    lock = _SessionLock(config, cluster, journal, k8sdr_session_undo)

    def guard(record: JournalRecord, open_records: Sequence[JournalRecord]) -> None:
        guards(record, open_records)
        if REGISTRY.kind_of(record).disruptive:
            stop.check()
            lock.take()  # at once when the session has disruptive tests: see below

    journal.annotator = ClusterAnnotator(cluster)
    journal.guard = guard
    journal.describe(
        backend=k8sdr_backend.name,
        kubeconfig=str(Path(k8sdr_backend.kubeconfig).expanduser().absolute()),
        context=k8sdr_backend.context,
        machines=str(settings.machines.absolute()) if settings.machines else None,
    )
    if config.stash[DISRUPTIVE_KEY]:
        # A session with disruptive tests takes the lock before anything is touched; one that
        # only reads, or sets up namespaces and workloads, never takes it (nor blocks a game day).
        try:
            lock.take()
        except (ConfigError, LockHeld) as exc:
            pytest.exit(f"k8sdr: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    try:
        yield journal
    finally:
        lock.release()


class _SessionLock:
    """The session's game-day lock (`k8sdr_lock`), journaled before it is taken, taken once."""

    def __init__(
        self, config: pytest.Config, cluster: Cluster, journal: Journal, undo: UndoStack
    ) -> None:
        self.config = config
        self.cluster = cluster
        self.journal = journal
        self.undo = undo
        self.lock: GameDayLock | None = None
        self.entry: UndoEntry | None = None
        settings = config.stash[SETTINGS_KEY]
        self.wanted = settings.lock == "on" and not _planning(config)

    def take(self) -> None:
        """Take the lock unless held already; LockHeld (nothing journaled) when another has it."""
        if not self.wanted or self.lock is not None:
            return
        settings = self.config.stash[SETTINGS_KEY]
        lock = GameDayLock(
            self.cluster,
            settings.lock_holder or _holder(self.journal, self.config.stash[WORKER_KEY]),
            member=self.journal.run,
            namespace=settings.lock_namespace or "default",
            duration=settings.lock_duration or 60,
            stop_condition=self.config.stash[STOP_KEY],
        )
        entry = self.undo.push(
            GameDayLockHeld(lock.namespace, lock.name, lock.holder, lock.member),
            UndoEnv(cluster=self.cluster),
        )
        try:
            lock.acquire()
        except BaseException:
            self.undo.discard(entry)
            raise
        self.lock, self.entry = lock, entry
        self.config.stash[INTERRUPTS_KEY].install()

    def release(self) -> None:
        """Stop renewing, and release the Lease through its journal entry."""
        if self.lock is None or self.entry is None:
            return
        self.config.stash[INTERRUPTS_KEY].uninstall()
        self.lock.stop()
        self.undo.run(self.entry)


class _Interrupts:
    """Stops the running test at once when the stop condition trips (SIGUSR1 to the main thread).

    Only a test's call is interrupted, never an unwind: its disruptions are then undone at its
    teardown. Off the main thread (no signals there) the test fails when its call ends instead.
    """

    def __init__(self, stop: StopCondition) -> None:
        self.stop = stop
        self.in_call = False
        self._previous: Any = None
        self._installed = False

    def install(self) -> None:
        """Handle SIGUSR1 and be told when the stop condition trips (main thread only)."""
        if threading.current_thread() is not threading.main_thread() or self._installed:
            return
        self._previous = signal.signal(signal.SIGUSR1, self._handle)
        self.stop.listeners.append(self._interrupt)
        self._installed = True

    def uninstall(self) -> None:
        """Put back the SIGUSR1 handler that was there before."""
        if not self._installed:
            return
        with contextlib.suppress(ValueError):
            self.stop.listeners.remove(self._interrupt)
        signal.signal(signal.SIGUSR1, self._previous)
        self._installed = False

    def _interrupt(self, reason: str) -> None:
        main = threading.main_thread().ident
        if self.in_call and main is not None:
            signal.pthread_kill(main, signal.SIGUSR1)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.in_call and self.stop.reason is not None and not unwinding():
            self.in_call = False  # once: the test's own cleanup must not be interrupted
            self.stop.check()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """A disruptive test on a cluster shared with fellow xdist workers runs in its turn only.

    The turn spans its setup, call and teardown: its disruptions are undone before the next.
    """
    if item.get_closest_marker("disruptive") is None:
        return (yield)
    with _turn(item.config, item.nodeid):
        return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """After the stop condition tripped, a disruptive test is skipped, saying why."""
    reason = item.config.stash[STOP_KEY].reason
    if reason is not None and item.get_closest_marker("disruptive") is not None:
        # A skip marker (before pytest's own setup hook reads them) reports the test's location.
        item.add_marker(pytest.mark.skip(reason=f"k8sdr: the session stopped disrupting: {reason}"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test during which the stop condition tripped fails with the reason (`LockLost`)."""
    stop = item.config.stash[STOP_KEY]
    interrupts = item.config.stash[INTERRUPTS_KEY]
    before = stop.reason
    interrupts.in_call = True
    try:
        outcome = yield
    except Exception as exc:
        if before is None and stop.reason is not None and not isinstance(exc, LockLost):
            raise LockLost(f"{stop.reason}; this session makes no further disruption") from exc
        raise
    finally:
        interrupts.in_call = False
    if before is None:
        stop.check()
    return outcome


@pytest.fixture(autouse=True)
def _k8sdr_journal_undo(request: pytest.FixtureRequest) -> None:
    """Journal the test's undo stack: every disruption is written down before it is made.

    In a dry run, every test that reaches the cluster gets it read-only before anything else.
    """
    if _planning(request.config) and "cluster" in request.fixturenames:
        request.getfixturevalue("k8sdr_journal")
    # Only a test that reaches the session's cluster is journaled: a conftest may give its
    # own `undo` to tests that never touch a cluster (and must not start one).
    if "undo" not in request.fixturenames or "k8sdr_backend" not in request.fixturenames:
        return
    stack = request.getfixturevalue("undo")
    if isinstance(stack, UndoStack) and stack.journal is None:
        stack.journal = request.getfixturevalue("k8sdr_journal")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """In a dry run, a test stopped by its first disruption is reported as planned (skipped)."""
    report = yield
    if not _planning(item.config) or call.excinfo is None:
        return report
    exc = call.excinfo.value
    if not isinstance(exc, DisruptionPlanned | ReadOnlyCluster):
        return report
    lines: list[str] = []
    if isinstance(exc, DisruptionPlanned):
        lines.append(f"would {exc.description}")
        lines.append("then stops: what follows depends on that disruption")
    else:
        lines.append(f"stops: {exc}; a dry run stops here")
    report.outcome = "skipped"
    report.longrepr = (str(item.path), item.location[1] or 0, f"k8sdr plan: {lines[0]}")
    # Carried by the report, so an xdist controller gets it as this process does.
    report.k8sdr_plan = lines  # type: ignore[attr-defined]
    return report


class _PlanReports:
    """Gathers each test's plan from its report: an xdist controller gets every worker's."""

    def __init__(self, plan: dict[str, list[str]]) -> None:
        self.plan = plan

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Keep the plan a report carries."""
        lines = getattr(report, "k8sdr_plan", None)
        if lines:
            self.plan[report.nodeid] = list(lines)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print the dry run's plan, and any disruption the session could not undo."""
    if _planning(config):
        plan = config.stash.get(PLAN_KEY, {})
        terminalreporter.write_sep("=", "k8sdr plan (dry run: nothing was touched)")
        if not plan:
            terminalreporter.write_line("no disruption planned by the selected tests")
        for nodeid, lines in plan.items():
            terminalreporter.write_line(nodeid)
            for line in lines:
                terminalreporter.write_line(f"    {line}")
    stopped = config.stash[STOP_KEY].reason if STOP_KEY in config.stash else None
    if stopped is not None:
        write_stopped(terminalreporter, [stopped])
    journal = config.stash.get(JOURNAL_KEY, None)
    if journal is not None and journal.open_records and not journal.plan:
        write_open(terminalreporter, journal.open_records, journal.path)


def write_stopped(terminalreporter: Any, reasons: Sequence[str]) -> None:
    """The terminal section saying why the session (or some of its workers) stopped disrupting."""
    terminalreporter.write_sep("=", "k8sdr: the session stopped disrupting", red=True)
    for reason in reasons:
        terminalreporter.write_line(reason)


def write_open(
    terminalreporter: Any, entries: Sequence[tuple[str, JournalRecord]], path: Path | None
) -> None:
    """The terminal section listing the disruptions left open, and how to undo them."""
    terminalreporter.write_sep("=", "k8sdr: disruptions still open", red=True)
    for entry_id, record in entries:
        terminalreporter.write_line(f"{entry_id} {record.kind} {record.node or ''}")
    terminalreporter.write_line(
        f"undo them with: k8sdr recover --journal {path or '<no journal file>'}"
    )
