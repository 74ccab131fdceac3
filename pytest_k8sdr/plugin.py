"""pytest hooks and fixtures of pytest-k8sdr; the logic lives in the modules they call."""

from __future__ import annotations

import functools
import json
import os
import signal
from collections.abc import Callable, Generator, Iterator
from types import FrameType
from typing import Any

import pytest
from kubernetes import client as k8s_client

from pytest_k8sdr import config as cfg
from pytest_k8sdr.backends import Backend, open_backend, require_kind
from pytest_k8sdr.cluster import Cluster
from pytest_k8sdr.errors import ConfigError, ToolError
from pytest_k8sdr.factories import MakeLB, MakePDB, MakeWorkload
from pytest_k8sdr.faults.backup import Backups, BackupSpec
from pytest_k8sdr.faults.controlplane import ControlPlane
from pytest_k8sdr.faults.machines.factory import Machines
from pytest_k8sdr.faults.machines.inventory import Inventory, load_inventory, parse_inventory
from pytest_k8sdr.faults.node import NodeFaults
from pytest_k8sdr.lb.frontend import Frontend, open_frontend
from pytest_k8sdr.lb.managed import ManagedNginx
from pytest_k8sdr.namespaces import create_test_namespace, namespace_name
from pytest_k8sdr.plan import Rehearsal, twin_lb_settings
from pytest_k8sdr.recorder import Recorder
from pytest_k8sdr.report import (
    SUMMARY_FILE,
    AllureSteps,
    Progress,
    RunReport,
    allure_module,
    junit_properties,
    traffic_properties,
    write_allure_environment,
    write_timeline,
)
from pytest_k8sdr.report_html import HTML_FILE, render_html
from pytest_k8sdr.runbook import DEFAULT_SLOS, Runbook
from pytest_k8sdr.undo import UndoStack
from pytest_k8sdr.workloads import DisruptionBudget, Workload, create_pdb, delete_pdb, deploy

# Journal, guards, game-day lock, turns and dry run live in their own hook module, and so do
# the pytest-xdist controller's side and the steady state (Prometheus).
pytest_plugins = (
    "pytest_k8sdr.plugin_safety",
    "pytest_k8sdr.plugin_xdist",
    "pytest_k8sdr.plugin_steadystate",
)

SETTINGS_KEY = pytest.StashKey[cfg.Settings]()
#: Told of every managed nginx `make_lb` starts, with its workload and the test's undo stack
#: (the session's managed Prometheus scrapes it through an exporter).
MANAGED_NGINX_LISTENERS_KEY = pytest.StashKey[
    list[Callable[[ManagedNginx, Workload, UndoStack], None]]
]()
ITEM_SETTINGS_KEY = pytest.StashKey[cfg.Settings]()
PREVIOUS_SIGTERM_KEY = pytest.StashKey[Any]()
REPORT_KEY = pytest.StashKey[RunReport]()
FACTS_KEY = pytest.StashKey[dict[str, str]]()
# A test's runbook phases, from its runbook's teardown to its teardown report.
PHASES_KEY = pytest.StashKey[list[dict[str, Any]]]()
# Its recorder's events and traffic, the same way.
RECORD_KEY = pytest.StashKey[dict[str, Any]]()
# The test's runbook, its allure steps and its recorder, and whether its attachments were made.
ALLURE_KEY = pytest.StashKey[tuple[Runbook, AllureSteps, Recorder]]()
ATTACHED_KEY = pytest.StashKey[bool]()
# A dry run's rehearsal: the target (read-only) and its twin, where the session's tests run.
REHEARSAL_KEY = pytest.StashKey[Rehearsal]()


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; raised like Ctrl-C so that every fixture's teardown (and undo) runs."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register one command-line option and one ini key per setting."""
    group = parser.getgroup("k8sdr", "Kubernetes disaster-recovery experiments (pytest-k8sdr)")
    for option in cfg.OPTIONS:
        group.addoption(
            option.cli_flag,
            dest=f"k8sdr_{option.name}",
            default=None,
            help=f"{option.help} [env {option.env_var}, ini {option.ini_key}]",
        )
        parser.addini(option.ini_key, option.help, default=None)


def _session_settings(config: pytest.Config) -> cfg.Settings:
    cli = {o.name: config.getoption(f"k8sdr_{o.name}") for o in cfg.OPTIONS}
    return cfg.resolve(ini=config.getini, env=os.environ, cli=cli)


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"received signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    """Register markers, resolve and validate the session's settings, trap SIGTERM."""
    config.addinivalue_line(
        "markers", "disruptive: the test disrupts nodes (needs an allowed context on kubeconfig)"
    )
    config.addinivalue_line(
        "markers",
        "k8sdr(**settings): per-test pytest-k8sdr settings, e.g. k8sdr(namespace='web')",
    )
    config.stash[REPORT_KEY] = report = RunReport()
    config.pluginmanager.register(_RunbookReports(report), "k8sdr-runbook-reports")
    config.stash[FACTS_KEY] = {}
    try:
        settings = _session_settings(config)
        _validate_session(settings)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from exc
    config.stash[SETTINGS_KEY] = settings
    # The default SIGTERM action kills the process without teardown; a KeyboardInterrupt lets
    # pytest run every finalizer (runner.pytest_sessionfinish tears the setup state down).
    if hasattr(signal, "SIGTERM") and _main_thread():
        config.stash[PREVIOUS_SIGTERM_KEY] = signal.signal(signal.SIGTERM, _raise_on_sigterm)


class _RunbookReports:
    """Gathers each test's phases from its teardown report: an xdist controller gets them all."""

    def __init__(self, report: RunReport) -> None:
        self.report = report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Keep the phases a report carries, with the xdist worker that ran the test."""
        phases = getattr(report, "k8sdr_phases", None)
        if phases:
            worker = getattr(report, "worker_id", None)
            self.report.add(report.nodeid, phases, worker, getattr(report, "k8sdr_record", None))


def _validate_session(settings: cfg.Settings) -> None:
    """Everything checkable before the cluster is reached; ConfigError naming the option."""
    cfg.validate(settings)
    if settings.machines is not None:
        load_inventory(settings.machines)  # parsed again by the machines fixture: it is cheap
    if settings.backend == "kind":
        require_kind()
    if settings.backend == "kubeconfig":
        cfg.target_context(settings, os.environ)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Put back the SIGTERM handler that was there before."""
    previous = config.stash.get(PREVIOUS_SIGTERM_KEY, None)
    if previous is not None and _main_thread():
        signal.signal(signal.SIGTERM, previous)


def pytest_report_header(config: pytest.Config) -> str:
    """Show the settings in force at the top of the run."""
    return f"k8sdr: {config.stash[SETTINGS_KEY].describe()}"


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Resolve each test's settings and refuse what may not run, before anything is touched."""
    session_settings = config.stash[SETTINGS_KEY]
    disruptive: list[str] = []
    for item in items:
        marker_kwargs: dict[str, Any] = {}
        # Closest marker last, so a function's marker overrides its class's and module's.
        for marker in reversed(list(item.iter_markers("k8sdr"))):
            if marker.args:
                raise pytest.UsageError(
                    f"{item.nodeid}: k8sdr(...) takes keyword arguments only, got {marker.args!r}"
                )
            marker_kwargs.update(marker.kwargs)
        try:
            settings = cfg.resolve(marker=marker_kwargs, base=session_settings)
            cfg.validate(settings)
        except ConfigError as exc:
            raise pytest.UsageError(f"{item.nodeid}: {exc}") from exc
        item.stash[ITEM_SETTINGS_KEY] = settings
        why = cfg.session_mismatch(session_settings, settings)
        if why:
            item.add_marker(pytest.mark.skip(reason=why))
        elif item.get_closest_marker("disruptive") is not None:
            disruptive.append(item.nodeid)
    if session_settings.backend == "kubeconfig" and disruptive:
        try:
            context = cfg.target_context(session_settings, os.environ)
            # Each test is judged by its own allowlist (a marker may narrow it).
            refused = [
                item.nodeid
                for item in items
                if item.nodeid in disruptive
                and context not in item.stash[ITEM_SETTINGS_KEY].allowed_contexts
            ]
            if refused:
                allowed = session_settings.allowed_contexts
                if context in allowed:
                    # Allowed for the session, narrowed away by the tests' own markers.
                    allowed = ()
                cfg.refuse_unless_allowed(context, allowed, refused)
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from exc


@pytest.fixture
def k8sdr_settings(request: pytest.FixtureRequest) -> cfg.Settings:
    """The settings in force for this test (session settings plus its k8sdr marker)."""
    node = request.node
    if isinstance(node, pytest.Item) and ITEM_SETTINGS_KEY in node.stash:
        return node.stash[ITEM_SETTINGS_KEY]
    return request.config.stash[SETTINGS_KEY]


@pytest.fixture
def undo() -> Iterator[UndoStack]:
    """The test's undo stack: every disruption registers its undo here before it is made.

    Unwound newest-first at teardown, also after a failure, Ctrl-C or SIGTERM, each entry from
    its journal record, exactly as `k8sdr recover` would.
    """
    stack = UndoStack()
    try:
        yield stack
    finally:
        stack.unwind()


@pytest.fixture(scope="session")
def k8sdr_sim_options() -> dict[str, Any]:
    """Options for the simulated cluster (override in a conftest): workers, disabled controllers.

    Keys: `workers` (int, default 3) and any keyword of `SimCluster.start`, such as
    `disabled_controllers` or `faults`.
    """
    return {"workers": 3}


@pytest.fixture(scope="session")
def k8sdr_backend(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    k8sdr_sim_options: dict[str, Any],
    k8sdr_session_undo: UndoStack,
) -> Iterator[Backend]:
    """The session's cluster: started once (sim, kind) or connected to (kubeconfig).

    A simulator it launches is journaled first, so `k8sdr recover` stops it after a crash. In
    a dry run (--k8sdr-plan) it is the target's simulated twin (`pytest_k8sdr.plan`): the
    target itself is only read.
    """
    settings = request.config.stash[SETTINGS_KEY]
    options = dict(k8sdr_sim_options)
    workers = int(options.pop("workers", 3))
    workdir = tmp_path_factory.mktemp("k8sdr")
    rehearsal: Rehearsal | None = None
    try:
        if request.config.getoption("k8sdr_plan", False):
            rehearsal = Rehearsal.start(
                settings, workdir, functools.partial(_inventory, settings), k8sdr_session_undo
            )
            request.config.stash[REHEARSAL_KEY] = rehearsal
            backend = rehearsal.backend()
        else:
            backend = open_backend(
                settings,
                workdir,
                sim_workers=workers,
                sim_options=options,
                undo=k8sdr_session_undo,
            )
    except (ToolError, ConfigError) as exc:  # no cluster: end the session once, with its reason
        pytest.exit(f"k8sdr: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    facts = request.config.stash[FACTS_KEY]
    facts["backend"] = backend.name if backend.target is None else f"twin of {backend.target.name}"
    try:
        version = backend.cluster.call(k8s_client.VersionApi(backend.cluster.api_client).get_code)
        facts["cluster.version"] = str(version.git_version)
        facts["cluster.nodes"] = str(len(backend.cluster.nodes()))
    except Exception as exc:  # the report must not fail the session
        facts["cluster.version"] = f"unknown ({type(exc).__name__})"
    facts["profile"] = settings.profile
    try:
        yield backend
    finally:
        if rehearsal is not None:
            rehearsal.stop()
        else:
            backend.close()


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, k8sdr_backend: Backend) -> Cluster:
    """The typed facade over the session's cluster.

    Long waits show a live line on a terminal (what, how many of how many, elapsed); in CI logs
    at most one line every 10 seconds, and none with -q.
    """
    facade = k8sdr_backend.cluster
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None and request.config.get_verbosity() >= 0 and facade.progress is None:
        progress = Progress(
            functools.partial(terminal.write, flush=True), tty=bool(terminal.isatty())
        )
        capman = request.config.pluginmanager.get_plugin("capturemanager")

        def uncaptured(call: Callable[..., None]) -> Callable[..., None]:
            # Waits run inside tests, whose output pytest captures: step outside it.
            def run(*args: Any) -> None:
                if capman is None:
                    call(*args)
                    return
                with capman.global_and_fixture_disabled():
                    call(*args)

            return run

        facade.progress = uncaptured(progress.update)
        facade.progress_done = uncaptured(progress.done)
    return facade


@pytest.fixture
def k8sdr_recorder(k8sdr_settings: cfg.Settings, undo: UndoStack) -> Iterator[Recorder]:
    """The test's recorder: the cluster's transitions, its faults, LB changes and traffic.

    It watches once the test has a namespace (nodes, and the namespace's pods, EndpointSlices
    and Events), hears the undo stack and every load balancer and probe of `make_lb`; the
    runbook's reports carry what it saw. `k8sdr_recorder=off` opens no watch.
    """
    recorder = Recorder(undo, enabled=k8sdr_settings.recorder == "on")
    try:
        yield recorder
    finally:
        recorder.stop()


@pytest.fixture
def namespace(
    request: pytest.FixtureRequest,
    cluster: Cluster,
    k8sdr_settings: cfg.Settings,
    undo: UndoStack,
    k8sdr_recorder: Recorder,
) -> str:
    """The test's own namespace, labelled as ours and deleted by the undo stack afterwards.

    With the `namespace` setting, that existing namespace is used and left in place.
    """
    if k8sdr_settings.namespace:
        name = k8sdr_settings.namespace
    else:
        name = create_test_namespace(cluster, namespace_name(request.node.nodeid), undo)
    k8sdr_recorder.watch(cluster, name)
    return name


@pytest.fixture
def make_workload(cluster: Cluster, namespace: str) -> MakeWorkload:
    """Factory: `make_workload("web", replicas=6, kind="Deployment", service="NodePort")`.

    Creates the workload in the test's namespace and waits until it is Ready.
    """
    return functools.partial(deploy, cluster, namespace)


@pytest.fixture
def make_pdb() -> Iterator[MakePDB]:
    """Factory: `make_pdb(web, min_available=3)`, a PodDisruptionBudget deleted at teardown."""
    made: list[tuple[Workload, DisruptionBudget]] = []

    def make(
        workload: Workload,
        *,
        min_available: int | str | None = None,
        max_unavailable: int | str | None = None,
        name: str | None = None,
    ) -> DisruptionBudget:
        budget = create_pdb(
            workload, min_available=min_available, max_unavailable=max_unavailable, name=name
        )
        made.append((workload, budget))
        return budget

    yield make
    for workload, budget in reversed(made):
        delete_pdb(workload.cluster, budget)


@pytest.fixture
def node_faults(cluster: Cluster, undo: UndoStack) -> NodeFaults:
    """Cordon, drain, isolate, taint and relabel nodes; every change undone at teardown."""
    return NodeFaults(cluster, undo)


def _allure_active(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "allure_report_dir", None)) and allure_module() is not None


@pytest.fixture
def runbook(
    request: pytest.FixtureRequest,
    k8sdr_settings: cfg.Settings,
    k8sdr_recorder: Recorder,
    record_testsuite_property: Callable[[str, object], None],
) -> Iterator[Runbook]:
    """The test's runbook: timed phases with the profile's default SLOs.

    At teardown its phases, with the recorder's events and traffic figures, go to the terminal
    table, the JUnit properties, the report directory (timeline JSON and SVG, the run's HTML
    page) and, with allure, steps and attachments.
    """
    slos: dict[str, float | str] = dict(DEFAULT_SLOS[k8sdr_settings.profile])
    slos.update(k8sdr_settings.slos)
    book = Runbook(request.node.name, slos=slos)
    steps = AllureSteps(allure_module()) if _allure_active(request.config) else None
    if steps is not None:
        book.listeners.append(steps)
        request.node.stash[ALLURE_KEY] = (book, steps, k8sdr_recorder)
    try:
        yield book
    finally:
        k8sdr_recorder.stop()
        record = k8sdr_recorder.to_json()
        record["marks"] = book.timeline()
        request.node.stash[PHASES_KEY] = book.summary()
        request.node.stash[RECORD_KEY] = record
        properties = junit_properties(book) + traffic_properties(record["traffic"])
        _record_junit(request, record_testsuite_property, properties)
        if k8sdr_settings.report_dir is not None and book.phases:
            write_timeline(book, k8sdr_settings.report_dir, request.node.nodeid, record)
        if steps is not None and book.phases and not request.node.stash.get(ATTACHED_KEY, False):
            steps.attach(book, record)


def _record_junit(
    request: pytest.FixtureRequest,
    suite_property: Callable[[str, object], None],
    properties: list[tuple[str, str]],
) -> None:
    """Put a test's figures in the JUnit XML in the form its `junit_family` allows.

    xunit1 (and legacy) has properties per testcase. xunit2, pytest's default, has none on a
    testcase (pytest's record_property warns there): the figures go to the testsuite's
    properties, each name carrying the test's node id.
    """
    if request.config.getini("junit_family") in ("xunit1", "legacy"):
        request.node.user_properties.extend(properties)
        return
    for key, value in properties:
        suite_property(f"k8sdr.{request.node.nodeid}.{key.removeprefix('k8sdr.')}", value)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """After the test body, pass or fail: attach its timeline, events, traffic and chart.

    The runbook's timeline goes to the test's own allure body, not its fixture teardown (the
    runbook fixture attaches only what this missed).
    """
    try:
        return (yield)
    finally:
        held = item.stash.get(ALLURE_KEY, None)
        if held is not None and held[0].phases:
            book, steps, recorder = held
            # What the recorder has seen so far: the test's own doing, not its teardown's.
            steps.attach(book, recorder.to_json())
            item.stash[ATTACHED_KEY] = True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """The teardown report carries the test's runbook phases (to an xdist controller too)."""
    report = yield
    phases = item.stash.get(PHASES_KEY, None) if call.when == "teardown" else None
    if phases:
        report.k8sdr_phases = phases  # type: ignore[attr-defined]
        report.k8sdr_record = item.stash.get(RECORD_KEY, {})  # type: ignore[attr-defined]
    return report


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print experiments by phases: durations against SLOs and verdicts."""
    table = config.stash[REPORT_KEY].table() if REPORT_KEY in config.stash else ""
    if table:
        terminalreporter.write_sep("=", "k8sdr runbook phases (duration/SLO verdict)")
        terminalreporter.write_line(table)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the session's summary and allure's environment, once: never from an xdist worker.

    The report directory's `k8sdr-summary.json` holds every experiment's phases, whichever
    worker ran it (the controller has them all); allure's environment.properties and
    categories.json carry the facts the workers gathered.
    """
    config = session.config
    if hasattr(config, "workerinput"):
        return  # the controller writes them, with every worker's results
    settings = config.stash.get(SETTINGS_KEY, None)
    report = config.stash.get(REPORT_KEY, None)
    if settings is not None and settings.report_dir is not None and report and report.results:
        settings.report_dir.mkdir(parents=True, exist_ok=True)
        summary = report.to_json()
        (settings.report_dir / SUMMARY_FILE).write_text(summary)
        (settings.report_dir / HTML_FILE).write_text(render_html(json.loads(summary)))
    if _allure_active(config) and FACTS_KEY in config.stash:
        from pathlib import Path

        facts: dict[str, str] = config.stash[FACTS_KEY]
        write_allure_environment(Path(config.option.allure_report_dir), facts)


def _inventory(settings: cfg.Settings, backend: Backend) -> Inventory:
    # A dry run's twin has sim machines; the target's inventory is for the plan to describe.
    if settings.machines is not None and backend.target is None:
        return load_inventory(settings.machines)
    if backend.name == "sim":
        return parse_inventory({"defaults": {"driver": "sim"}}, source="the simulated cluster")
    if backend.name == "kind":
        name = settings.kind_cluster or "k8sdr"
        return parse_inventory(
            {"defaults": {"driver": "docker", "cluster": name}}, source=f"kind cluster {name}"
        )
    return parse_inventory({}, source="settings (no --k8sdr-machines inventory given)")


@pytest.fixture
def machines(k8sdr_backend: Backend, k8sdr_settings: cfg.Settings, undo: UndoStack) -> Machines:
    """`machines[node]`: the node's machine (kill, stop, freeze, partition, start, ...).

    `machines.zone(name)`: every machine of a zone at once, undone as one disruption.

    Sim nodes by default on the simulator, kind node containers on kind, the inventory of
    `--k8sdr-machines` otherwise. Every fault is undone at teardown.
    """
    try:
        inventory = _inventory(k8sdr_settings, k8sdr_backend)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from exc
    return Machines(inventory, undo, sim=k8sdr_backend.sim, cluster=k8sdr_backend.cluster)


@pytest.fixture
def control_plane(
    k8sdr_backend: Backend, k8sdr_settings: cfg.Settings, undo: UndoStack
) -> ControlPlane:
    """The control plane (API server, controllers): `stop()` it, `start()` it; undone at teardown.

    The simulator's control-plane process, kind's control-plane container, or the machine
    inventory's `control_plane: {stop, start}` commands on any other cluster.
    """
    try:
        inventory = _inventory(k8sdr_settings, k8sdr_backend)
        return ControlPlane.for_backend(
            k8sdr_backend.name,
            undo,
            sim=k8sdr_backend.sim,
            context=k8sdr_backend.context,
            commands=inventory.control_plane,
        )
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from exc


@pytest.fixture
def backup(
    k8sdr_backend: Backend, k8sdr_settings: cfg.Settings, undo: UndoStack, tmp_path: Any
) -> Backups:
    """`backup.save()` and `backup.restore(b)`: the simulator's snapshot of its store, or a CLI.

    The machine inventory's `backup:` commands (velero, etcdctl, ...) on any cluster; on the
    simulator its own snapshot and restore when none is given. Skips the test elsewhere.
    """
    try:
        inventory = _inventory(k8sdr_settings, k8sdr_backend)
        spec = inventory.backup
        if spec is None:
            if k8sdr_backend.name != "sim":
                pytest.skip(
                    f"no backup driver configured for the {k8sdr_backend.name} backend: add "
                    "`backup: {driver: command, save: CMD, restore: CMD}` to the machine "
                    "inventory (--k8sdr-machines)"
                )
            spec = BackupSpec("sim")
        plane = None
        if spec.driver == "sim" or spec.stop_control_plane:
            plane = ControlPlane.for_backend(
                k8sdr_backend.name,
                undo,
                sim=k8sdr_backend.sim,
                context=k8sdr_backend.context,
                commands=inventory.control_plane,
            )
        return Backups(
            spec,
            undo,
            tmp_path / "backups",
            sim=k8sdr_backend.sim,
            control_plane=plane,
            kubeconfig=str(k8sdr_backend.kubeconfig),
            context=k8sdr_backend.context,
        )
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from exc


@pytest.fixture
def make_lb(
    pytestconfig: pytest.Config,
    k8sdr_backend: Backend,
    k8sdr_settings: cfg.Settings,
    undo: UndoStack,
    k8sdr_recorder: Recorder,
    tmp_path: Any,
) -> MakeLB:
    """Factory: the external load balancer in front of a workload, with `.lb`, `.url`, `.probe()`.

    On the simulator a real nginx is started in front of the workers' NodePorts; elsewhere the
    `lb*` settings name an existing nginx or HAProxy. Skips the test when none is configured.
    """
    opened: list[Frontend] = []
    settings = k8sdr_settings
    if k8sdr_backend.target is not None:  # a dry run's twin: never the target's own LB
        settings = twin_lb_settings(settings, k8sdr_backend.target.name)

    def make(workload: Workload) -> Frontend:
        from pytest_k8sdr.lb.errors import LBConfigError

        try:
            frontend = open_frontend(
                settings,
                k8sdr_backend.cluster,
                workload,
                tmp_path / f"lb-{len(opened)}",
                undo,
                backend=k8sdr_backend.name,
            )
        except LBConfigError as exc:
            if settings.lb in ("auto", "none"):
                pytest.skip(str(exc))
            raise
        opened.append(frontend)
        if frontend.managed is not None:
            listeners = pytestconfig.stash.get(MANAGED_NGINX_LISTENERS_KEY, None) or []
            for listener in list(listeners):
                listener(frontend.managed, workload, undo)
        k8sdr_recorder.add_lb(frontend.lb)
        frontend.probe_listeners.append(k8sdr_recorder.add_probe)
        return frontend

    # A managed load balancer is stopped by the undo stack, after the drains made on it.
    return make
