"""pytest-xdist hooks: the controller tells each worker its session and gathers what they leave.

The controller has no cluster: the workers run the tests. It hands every worker the session's
identity (`pytest_k8sdr.parallel.WorkerSession`), takes back each worker's facts and stop
reason when it finishes, and at the end lists the disruptions any worker left open (read from
the session's journal file: a worker killed mid-disruption tells nothing itself). Runbook
phases and dry-run plans come in each test's report, as they do without xdist.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_k8sdr.errors import ConfigError
from pytest_k8sdr.journal import read_journal, run_of
from pytest_k8sdr.parallel import WORKERINPUT_KEY, Controller
from pytest_k8sdr.plan import HEALTH
from pytest_k8sdr.plugin import FACTS_KEY, SETTINGS_KEY
from pytest_k8sdr.plugin_safety import PLAN_KEY, STOP_KEY, write_open, write_stopped

CONTROLLER_KEY = pytest.StashKey[Controller]()
STOPPED_KEY = pytest.StashKey[list[str]]()


def _is_controller(config: pytest.Config) -> bool:
    return getattr(config.option, "dist", "no") != "no" and not hasattr(config, "workerinput")


@pytest.hookimpl(trylast=True)  # after the plugin's own, which resolves the settings
def pytest_configure(config: pytest.Config) -> None:
    """On the controller: refuse what workers cannot share, and prepare the session."""
    if not _is_controller(config):
        return
    settings = config.stash[SETTINGS_KEY]
    if settings.backend == "kind" and settings.kind_cluster is None:
        raise pytest.UsageError(
            "k8sdr: with pytest-xdist every worker would create the kind cluster 'k8sdr': "
            "create it once (kind create cluster --name k8sdr --config ci/kind-config.yaml) "
            "and pass --k8sdr-kind-cluster=k8sdr, which the workers then share"
        )
    config.stash[CONTROLLER_KEY] = Controller()
    config.stash[STOPPED_KEY] = []


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the directory the workers coordinated in."""
    controller = config.stash.get(CONTROLLER_KEY, None)
    if controller is not None:
        controller.close()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Tell a worker which session it belongs to, and where the workers coordinate."""
    controller = node.config.stash[CONTROLLER_KEY]
    node.workerinput[WORKERINPUT_KEY] = controller.worker(node.gateway.id).to_json()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object | None) -> None:
    """Take in what a finished worker left: its facts, why it stopped disrupting, its plan."""
    config = node.config
    left = (getattr(node, "workeroutput", None) or {}).get(WORKERINPUT_KEY)
    if not left:
        return  # killed: what it left open is in the journal file
    config.stash[FACTS_KEY].update(left.get("facts", {}))
    stopped = left.get("stopped")
    if stopped:
        config.stash[STOPPED_KEY].append(f"[{node.gateway.id}] {stopped}")
    health = left.get("health")
    if health:
        config.stash[PLAN_KEY].setdefault(HEALTH, [])
        for line in health:
            if line not in config.stash[PLAN_KEY][HEALTH]:
                config.stash[PLAN_KEY][HEALTH].append(line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On a worker: leave the facts, stop reason and health of its run for the controller."""
    config = session.config
    output = getattr(config, "workeroutput", None)
    if output is None:
        return
    reason = config.stash[STOP_KEY].session_reason if STOP_KEY in config.stash else None
    facts: dict[str, str] = config.stash.get(FACTS_KEY, {})
    output[WORKERINPUT_KEY] = {
        "facts": dict(facts),
        "stopped": reason,
        "health": config.stash.get(PLAN_KEY, {}).get(HEALTH, []),
    }


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """On the controller: why workers stopped disrupting, and what any of them left open."""
    controller = config.stash.get(CONTROLLER_KEY, None)
    if controller is None:
        return
    stopped: list[str] = config.stash[STOPPED_KEY]
    if stopped:
        write_stopped(terminalreporter, stopped)
    path = config.stash[SETTINGS_KEY].journal
    if path is None or config.getoption("k8sdr_plan", False):
        return
    if not path.absolute().exists():
        return  # no worker journaled anything: nothing left open
    try:
        entries = read_journal(path.absolute())
    except ConfigError as exc:
        terminalreporter.write_sep("=", "k8sdr: the journal cannot be read", red=True)
        terminalreporter.write_line(str(exc))
        return
    mine = [e for e in entries if run_of(e.id).startswith(controller.runs())]
    if mine:
        write_open(terminalreporter, [(e.id, e.record) for e in mine], path.absolute())
