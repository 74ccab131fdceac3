"""pytest hooks and fixtures of pytest-k8sdr; the logic lives in the modules they call."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

from pytest_k8sdr import config as cfg
from pytest_k8sdr.errors import ConfigError
from pytest_k8sdr.journal import UndoStack

SETTINGS_KEY = pytest.StashKey[cfg.Settings]()
ITEM_SETTINGS_KEY = pytest.StashKey[cfg.Settings]()
PREVIOUS_SIGTERM_KEY = pytest.StashKey[Any]()


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
    try:
        config.stash[SETTINGS_KEY] = _session_settings(config)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from exc
    # The default SIGTERM action kills the process without teardown; a KeyboardInterrupt lets
    # pytest run every finalizer (runner.pytest_sessionfinish tears the setup state down).
    if hasattr(signal, "SIGTERM") and _main_thread():
        config.stash[PREVIOUS_SIGTERM_KEY] = signal.signal(signal.SIGTERM, _raise_on_sigterm)


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

    Unwound newest-first at teardown, also after a failure, Ctrl-C or SIGTERM.
    """
    stack = UndoStack()
    try:
        yield stack
    finally:
        stack.unwind()
