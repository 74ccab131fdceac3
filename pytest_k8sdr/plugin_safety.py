"""pytest hooks and fixtures that keep a cluster safe: journal, guards, lock, dry run."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_k8sdr.backends import Backend
from pytest_k8sdr.errors import ConfigError, LockHeld, ReadOnlyCluster
from pytest_k8sdr.guards import Guards, health_problems, refuse_unless_healthy
from pytest_k8sdr.journal import (
    ClusterAnnotator,
    DisruptionPlanned,
    Journal,
    JournalRecord,
    UndoStack,
)
from pytest_k8sdr.lock import DEFAULT_NAME, GameDayLock
from pytest_k8sdr.plugin import SETTINGS_KEY

PLAN_KEY = pytest.StashKey[dict[str, list[str]]]()
JOURNAL_KEY = pytest.StashKey[Journal]()


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


def _planning(config: pytest.Config) -> bool:
    return bool(config.getoption("k8sdr_plan", False))


def pytest_configure(config: pytest.Config) -> None:
    """Prepare the dry run's report."""
    config.stash[PLAN_KEY] = {}


def _holder(journal: Journal) -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name (a container without passwd entry)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()} pid {os.getpid()} run {journal.run}"


@pytest.fixture(scope="session")
def k8sdr_journal(request: pytest.FixtureRequest, k8sdr_backend: Backend) -> Iterator[Journal]:
    """The session's journal, with guards, the health check and the game-day lock in force.

    Set up before the first disruption of the session: a cluster that is not healthy, a
    protected-node selector that is invalid or a lock held by another run stop the session
    before anything is touched.
    """
    config = request.config
    settings = config.stash[SETTINGS_KEY]
    cluster = k8sdr_backend.cluster
    plan = _planning(config)
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
            refuse_unless_healthy(cluster)
        sim = k8sdr_backend.sim
        session: dict[str, Any] = {
            "backend": k8sdr_backend.name,
            "kubeconfig": str(Path(k8sdr_backend.kubeconfig).expanduser().absolute()),
            "context": k8sdr_backend.context,
            "machines": str(settings.machines) if settings.machines else None,
            "sim_state_dir": str(sim.state_dir) if sim is not None else None,
        }
        journal = Journal(
            settings.journal.absolute() if settings.journal else None,
            annotator=ClusterAnnotator(cluster),
            guard=guards,
            plan=plan,
            session=session,
        )
    except ConfigError as exc:
        pytest.exit(f"k8sdr: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    config.stash[JOURNAL_KEY] = journal
    lock: GameDayLock | None = None
    lock_id: str | None = None
    if settings.lock == "on" and not plan:
        lock = GameDayLock(
            cluster,
            settings.lock_holder or _holder(journal),
            namespace=settings.lock_namespace or "default",
            duration=settings.lock_duration or 60,
        )
        record = JournalRecord(
            "lock", {"namespace": lock.namespace, "name": DEFAULT_NAME, "holder": lock.holder}
        )
        lock_id = journal.open(f"release the game-day lock held by {lock.holder}", record)
        try:
            lock.acquire()
        except (ConfigError, LockHeld) as exc:
            journal.close(lock_id, "not-made")
            journal.close_file()
            pytest.exit(f"k8sdr: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
        except BaseException:
            journal.close(lock_id, "not-made")
            raise
    try:
        yield journal
    finally:
        if lock is not None and lock_id is not None:
            lock.release()
            journal.close(lock_id, "undone")
        journal.close_file()


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
    lines = item.config.stash[PLAN_KEY].setdefault(item.nodeid, [])
    if isinstance(exc, DisruptionPlanned):
        lines.append(f"would {exc.record.summary()}")
        lines.append("then stops: what follows depends on that disruption")
    else:
        lines.append(f"stops: {exc}; a dry run stops here")
    report.outcome = "skipped"
    report.longrepr = (str(item.path), item.location[1] or 0, f"k8sdr plan: {lines[0]}")
    return report


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
    journal = config.stash.get(JOURNAL_KEY, None)
    if journal is not None and journal.open_records and not journal.plan:
        terminalreporter.write_sep("=", "k8sdr: disruptions still open", red=True)
        for entry_id, record in journal.open_records:
            terminalreporter.write_line(f"{entry_id} {record.kind} {record.node or ''}")
        terminalreporter.write_line(
            f"undo them with: k8sdr recover --journal {journal.path or '<no journal file>'}"
        )
