"""pytest hooks and fixtures that keep a cluster safe: journal, guards, lock, turns, dry run.

Under pytest-xdist each worker journals its own run (into the session's one journal file) and
is a member of the session's one game-day lock; on a cluster the workers share (kind,
kubeconfig) a worker runs a disruptive test only in its turn (`pytest_k8sdr.parallel`).
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from pytest_k8sdr.backends import Backend
from pytest_k8sdr.cluster import Cluster
from pytest_k8sdr.errors import ConfigError, LockHeld
from pytest_k8sdr.guards import Guards, refuse_unless_healthy
from pytest_k8sdr.journal import ClusterAnnotator, Journal, JournalRecord
from pytest_k8sdr.lock import GameDayLock, GameDayLockHeld, StopCondition
from pytest_k8sdr.parallel import Turns, WorkerSession
from pytest_k8sdr.plan import HEALTH, plan_lines, write_plan
from pytest_k8sdr.plugin import (
    PHASES_KEY,
    RECORD_KEY,
    REHEARSAL_KEY,
    SETTINGS_KEY,
)
from pytest_k8sdr.report import allure_module
from pytest_k8sdr.undo import REGISTRY, UndoEntry, UndoEnv, UndoStack, unwinding

log = logging.getLogger("pytest_k8sdr")

# The dry run's plan: each test's (its JSON, by node id) and the health check's findings.
PLAN_KEY = pytest.StashKey[dict[str, Any]]()
# A test's outcome on the twin so far: "passed", "failed" or "skipped", and why.
OUTCOME_KEY = pytest.StashKey[tuple[str, str | None]]()
JOURNAL_KEY = pytest.StashKey[Journal]()
STOP_KEY = pytest.StashKey[StopCondition]()
DISRUPTIVE_KEY = pytest.StashKey[bool]()
INTERRUPTS_KEY = pytest.StashKey["_Interrupts"]()
WORKER_KEY = pytest.StashKey[WorkerSession | None]()
TURNS_KEY = pytest.StashKey[Turns | None]()
#: What the running test asks to be done before its first disruption (its steady state is
#: checked, then watched); it may refuse by raising.
BEFORE_DISRUPTION_KEY = pytest.StashKey[Callable[[], None] | None]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--k8sdr-plan`: rehearse the selected tests on a twin of the target, touching nothing."""
    group = parser.getgroup("k8sdr")
    group.addoption(
        "--k8sdr-plan",
        dest="k8sdr_plan",
        action="store_true",
        default=os.environ.get("K8SDR_PLAN", "").lower() in ("1", "true", "yes", "on"),
        help="dry run: rehearse the selected tests on a simulated twin of the target and print "
        "what each would do to it (nodes, machines and their commands, LB entries), the "
        "predicted phase durations and what would block; the target is only read "
        "[env K8SDR_PLAN]",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Note whether the session has disruptive tests (it then takes the lock up front)."""
    config.stash[DISRUPTIVE_KEY] = any(i.get_closest_marker("disruptive") for i in items)


def _planning(config: pytest.Config) -> bool:
    return bool(config.getoption("k8sdr_plan", False))


@pytest.hookimpl(trylast=True)  # after the plugin's own, which resolves the settings
def pytest_configure(config: pytest.Config) -> None:
    """Prepare the dry run's report, the stop condition and, in an xdist worker, its turns."""
    plan: dict[str, Any] = {}
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
        # A dry run journals too: its twin (and a simulated target) are simulators it launches,
        # which `k8sdr recover` stops after a crash; what it did on the twin ends with the twin.
        journal = Journal(
            settings.journal.absolute() if settings.journal else None,
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
        rehearsal = config.stash.get(REHEARSAL_KEY, None)
        if plan and rehearsal is not None:
            # The session runs on the target's twin; the target was read for its health.
            if rehearsal.health and settings.require_healthy == "on":
                problems = ["the health check would refuse the run:", *rehearsal.health]
                config.stash[PLAN_KEY][HEALTH] = problems
            elif rehearsal.health:
                config.stash[PLAN_KEY][HEALTH] = rehearsal.health
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
            before = config.stash.get(BEFORE_DISRUPTION_KEY, None)
            if before is not None:
                before()
        if rehearsal is not None:
            # Before it is made on the twin: what it would be on the target (or why not).
            rehearsal.planned(record)

    journal.annotator = ClusterAnnotator(cluster)
    journal.guard = guard
    journal.describe(
        backend=k8sdr_backend.name,
        kubeconfig=str(Path(k8sdr_backend.kubeconfig).expanduser().absolute()),
        context=k8sdr_backend.context,
        # A dry run's twin has sim machines: the target's inventory is for the plan only.
        machines=str(settings.machines.absolute()) if settings.machines and not plan else None,
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
        # Who needs it (the game-day lock, a test's steady state): each `install` is matched
        # by an `uninstall`, and the handler stays while anyone still needs it, so releasing
        # the lock does not silence a steady state's breach.
        self._users = 0

    @property
    def installed(self) -> bool:
        """Whether a trip interrupts the running test now."""
        return self._users > 0

    def install(self) -> None:
        """Handle SIGUSR1 and be told when the stop condition trips (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._users += 1
        if self._users == 1:
            self._previous = signal.signal(signal.SIGUSR1, self._handle)
            self.stop.listeners.append(self._interrupt)

    def uninstall(self) -> None:
        """Undo one `install`; the last one puts back the SIGUSR1 handler that was there."""
        if self._users == 0 or threading.current_thread() is not threading.main_thread():
            return
        self._users -= 1
        if self._users == 0:
            with contextlib.suppress(ValueError):
                self.stop.listeners.remove(self._interrupt)
            signal.signal(signal.SIGUSR1, self._previous)

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
    reason = item.config.stash[STOP_KEY].session_reason
    if reason is not None and item.get_closest_marker("disruptive") is not None:
        # A skip marker (before pytest's own setup hook reads them) reports the test's location.
        item.add_marker(pytest.mark.skip(reason=f"k8sdr: the session stopped disrupting: {reason}"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test during which the stop condition tripped fails with the stop's error.

    `LockLost` when the game-day lock was lost, `SteadyStateBreached` when its steady state
    broke; whatever the interrupted test raised is chained.
    """
    stop = item.config.stash[STOP_KEY]
    interrupts = item.config.stash[INTERRUPTS_KEY]
    before = stop.reason
    interrupts.in_call = True
    try:
        outcome = yield
    except Exception as exc:
        tripped = stop.stop
        if before is None and tripped is not None and not isinstance(exc, tripped.error):
            raise tripped.exception() from exc
        raise
    finally:
        interrupts.in_call = False
    if before is None:
        stop.check()
    return outcome


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Once a stopped test's disruptions are undone, the next test may disrupt again."""
    try:
        return (yield)
    finally:
        item.config.stash[STOP_KEY].clear_test()


@pytest.fixture(autouse=True)
def _k8sdr_journal_undo(request: pytest.FixtureRequest) -> None:
    """Journal the test's undo stack: every disruption is written down before it is made.

    In a dry run, every test that reaches the cluster starts its plan before anything else.
    """
    if _planning(request.config) and "k8sdr_backend" in request.fixturenames:
        request.getfixturevalue("k8sdr_journal")
        rehearsal = request.config.stash.get(REHEARSAL_KEY, None)
        if rehearsal is not None:
            rehearsal.begin(request.node.nodeid)
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
    """In a dry run, the teardown report carries the test's plan (to an xdist controller too)."""
    report = yield
    rehearsal = item.config.stash.get(REHEARSAL_KEY, None)
    if rehearsal is None or rehearsal.current is None or rehearsal.current.nodeid != item.nodeid:
        return report
    if report.failed or (report.skipped and call.when != "teardown"):
        if OUTCOME_KEY not in item.stash or item.stash[OUTCOME_KEY][0] == "passed":
            item.stash[OUTCOME_KEY] = (report.outcome, _reason(report))
    elif call.when == "call":
        item.stash[OUTCOME_KEY] = ("passed", None)
    if call.when != "teardown":
        return report
    outcome, failure = item.stash.get(OUTCOME_KEY, ("passed", None))
    record = item.stash.get(RECORD_KEY, {})
    phases: list[dict[str, Any]] = item.stash.get(PHASES_KEY, [])
    said = {"passed": "would pass", "failed": "would fail", "skipped": "would be skipped"}
    plan = rehearsal.end(
        said.get(outcome, outcome) + (f": {failure}" if failure and outcome == "skipped" else ""),
        failure if outcome == "failed" else None,
        phases,
        record.get("events") or [],
    )
    if plan is not None:
        planned = plan.to_json()
        report.k8sdr_plan = planned  # type: ignore[attr-defined]
        _attach_plan(item, planned)
    return report


def _reason(report: pytest.TestReport) -> str:
    """A failed or skipped report's one-line reason."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0] if crash.message else "failed"
    text = str(longrepr or "").strip().splitlines()
    return text[-1] if text else report.outcome


def _attach_plan(item: pytest.Item, plan: dict[str, Any]) -> None:
    """With allure, the test's plan is an attachment of the test."""
    allure = allure_module() if getattr(item.config.option, "allure_report_dir", None) else None
    if allure is not None:
        allure.attach(
            json.dumps(plan, indent=2),
            name="k8sdr-plan.json",
            attachment_type=allure.attachment_type.JSON,
        )


class _PlanReports:
    """Gathers each test's plan from its report: an xdist controller gets every worker's."""

    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Keep the plan a report carries."""
        plan = getattr(report, "k8sdr_plan", None)
        if plan:
            self.plan[report.nodeid] = plan


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In a dry run, write the plan (`k8sdr-plan.json`) to the report directory, once."""
    config = session.config
    settings = config.stash.get(SETTINGS_KEY, None)
    if not _planning(config) or hasattr(config, "workerinput") or settings is None:
        return
    if settings.report_dir is None:
        return
    header, tests = _plan_parts(config)
    write_plan(settings.report_dir, header, tests)


def _plan_parts(config: pytest.Config) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    plan = config.stash.get(PLAN_KEY, {})
    rehearsal = config.stash.get(REHEARSAL_KEY, None)
    header = rehearsal.header() if rehearsal is not None else {}
    header["health"] = list(plan.get(HEALTH, []))
    return header, [v for k, v in plan.items() if k != HEALTH]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print the dry run's plan, and any disruption the session could not undo."""
    if _planning(config):
        header, tests = _plan_parts(config)
        terminalreporter.write_sep("=", "k8sdr plan (dry run: nothing was touched)")
        target = header.get("target")
        if target:
            twin = header["twin"]
            copied = ", ".join(f"{k} {n}" for k, n in twin["objects"]["copied"].items())
            terminalreporter.write_line(
                f"rehearsed on a simulated twin of the {target['backend']} target "
                f"{target['context'] or ''} ({len(target['nodes'])} nodes, profile "
                f"{twin['profile']}; copied: {copied or 'nothing'})".replace("  ", " ")
            )
        for line in header.get("health") or []:
            terminalreporter.write_line(f"{HEALTH} {line}")
        if not tests:
            terminalreporter.write_line("no test of the selection reached the cluster")
        for test in tests:
            terminalreporter.write_line(test["test"])
            for line in plan_lines(test):
                terminalreporter.write_line(f"    {line}")
    stopped = config.stash[STOP_KEY].session_reason if STOP_KEY in config.stash else None
    if stopped is not None:
        write_stopped(terminalreporter, [stopped])
    journal = config.stash.get(JOURNAL_KEY, None)
    if journal is not None and journal.open_records and not _planning(config):
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
