"""pytest hooks and fixtures of the steady state: the session's Prometheus, each test's hypothesis.

A disruptive test with a `steady_state` setting (ini, environment, command line or its marker)
has it checked before its first disruption, watched as a stop condition while it runs (the
session's one `StopCondition`, scoped to the test) and required again after its body.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_k8sdr import config as cfg
from pytest_k8sdr.backends import Backend
from pytest_k8sdr.errors import ConfigError, PrometheusError
from pytest_k8sdr.lb.managed import ManagedNginx
from pytest_k8sdr.plugin import MANAGED_NGINX_LISTENERS_KEY, SETTINGS_KEY
from pytest_k8sdr.plugin_safety import BEFORE_DISRUPTION_KEY, INTERRUPTS_KEY, STOP_KEY
from pytest_k8sdr.prometheus.client import Prometheus
from pytest_k8sdr.prometheus.managed import PROMETHEUS, ManagedPrometheus
from pytest_k8sdr.steadystate import SteadyState
from pytest_k8sdr.undo import UndoStack
from pytest_k8sdr.workloads import Workload

STEADY_KEY = pytest.StashKey[SteadyState]()


def _managed(settings: cfg.Settings) -> bool:
    return settings.prometheus == "managed" or (
        settings.prometheus == "auto" and settings.backend == "sim"
    )


@pytest.hookimpl(trylast=True)  # after the plugin's own, which resolves the settings
def pytest_configure(config: pytest.Config) -> None:
    """Refuse bad Prometheus credentials, or a managed Prometheus that cannot run, at once."""
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None:
        return
    try:
        cfg.prometheus_auth(os.environ)
    except ConfigError as exc:
        raise pytest.UsageError(f"k8sdr: {exc}") from exc
    if settings.prometheus == "managed" and shutil.which(PROMETHEUS) is None:
        raise pytest.UsageError(
            "k8sdr: --k8sdr-prometheus=managed needs Debian's prometheus (the package "
            "prometheus; see ci/setup)"
        )


@pytest.fixture(scope="session")
def prometheus(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    k8sdr_backend: Backend,
    k8sdr_session_undo: UndoStack,
) -> Iterator[Prometheus]:
    """The session's Prometheus: the one `prometheus` names, or a managed one on the simulator.

    A managed Prometheus runs on a free loopback port for the session, scraping every pod
    (job `pods`) and, through Debian's nginx exporter, every managed nginx `make_lb` starts
    while it runs (job `nginx`, labels `namespace` and `lb`: the workload's).
    Skips the test when no Prometheus is configured.
    """
    config = request.config
    settings = config.stash[SETTINGS_KEY]
    if settings.prometheus not in ("auto", "managed", "none"):
        yield Prometheus(settings.prometheus, cfg.prometheus_auth(os.environ))
        return
    if not _managed(settings) or settings.prometheus == "none":
        pytest.skip(
            f"no Prometheus configured for the {k8sdr_backend.name} backend: set "
            "--k8sdr-prometheus (K8SDR_PROMETHEUS, ini k8sdr_prometheus) to its URL"
        )
    if shutil.which(PROMETHEUS) is None:
        pytest.skip("no managed Prometheus: Debian's prometheus is not installed (see ci/setup)")
    try:
        managed = ManagedPrometheus(tmp_path_factory.mktemp("prometheus"), k8sdr_session_undo)
        managed.start()
    except PrometheusError as exc:
        pytest.exit(f"k8sdr: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    managed.discover(k8sdr_backend.cluster)

    def scrape(nginx: ManagedNginx, workload: Workload, undo: UndoStack) -> None:
        labels = {"namespace": workload.namespace, "lb": workload.name}
        managed.scrape_nginx(nginx.status_url, labels, undo)

    listeners = config.stash.setdefault(MANAGED_NGINX_LISTENERS_KEY, [])
    listeners.append(scrape)
    try:
        yield Prometheus(managed.url)
    finally:
        listeners.remove(scrape)
        managed.close()


@pytest.fixture(autouse=True)
def _k8sdr_steady_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """A disruptive test's hypothesis, armed to be checked before its first disruption."""
    item = request.node
    settings: cfg.Settings = request.getfixturevalue("k8sdr_settings")
    if not settings.steady_state or item.get_closest_marker("disruptive") is None:
        yield
        return
    config = request.config
    if (
        settings.prometheus == "auto"
        and not _managed(settings)
        and settings.sources.get("steady_state") == "marker"
    ):
        # An experiment's own hypothesis, on a backend with no Prometheus configured (kind in
        # CI): the experiment still runs, and its report says the hypothesis was not checked.
        item.user_properties.append(
            (
                "k8sdr_steady_state",
                f"not checked: no Prometheus for the {settings.backend} backend "
                "(set --k8sdr-prometheus to its URL)",
            )
        )
        yield
        return
    client: Prometheus = request.getfixturevalue("prometheus")
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})

    def sink() -> Any:
        book = funcargs.get("runbook")
        return book.sample if book is not None else None

    steady = SteadyState(
        client,
        settings.steady_state,
        stop=config.stash[STOP_KEY],
        interval=settings.steady_state_interval,
        recovery=settings.steady_state_recovery,
        namespace=lambda: settings.namespace or funcargs.get("namespace"),
        sink=sink,
    )
    # A breach interrupts the test at once, whether or not the session holds a lock.
    interrupts = config.stash[INTERRUPTS_KEY]
    interrupts.install()
    item.stash[STEADY_KEY] = steady
    config.stash[BEFORE_DISRUPTION_KEY] = steady.before_first_disruption
    try:
        yield
    finally:
        config.stash[BEFORE_DISRUPTION_KEY] = None
        steady.stop_watching()
        interrupts.uninstall()


@pytest.hookimpl(wrapper=True, trylast=True)  # inside the safety wrapper, which reports stops
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """After an experiment that disrupted, its steady state must hold again (it came back)."""
    outcome = yield
    steady = item.stash.get(STEADY_KEY, None)
    if steady is not None and steady.started and item.config.stash[STOP_KEY].reason is None:
        steady.stop_watching()
        steady.require_recovered()
    return outcome
