"""Fixtures for the node agent tests: one API server per module, agents as real processes.

Every controller is disabled, so the tests play scheduler (pods POSTed with spec.nodeName)
and endpoints controller (EndpointSlices written by hand): what is asserted is the agent.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from pytest_k8sdr.sim.addresses import node_address, node_pod_cidr
from tests.sim.agent.agentsim import INDEX, AgentProc, Server

SERVER_START_TIMEOUT = 20.0


def _all_controllers() -> list[str]:
    try:
        from pytest_k8sdr.sim.controllers import CONTROLLERS
    except Exception:  # the controllers are being written in parallel
        return []
    return sorted(CONTROLLERS)


@pytest.fixture(scope="module")
def server_args() -> list[str]:
    """Extra API server flags; a test module overrides this (e.g. with injected faults)."""
    return []


@pytest.fixture(scope="module")
def sim_server(
    tmp_path_factory: pytest.TempPathFactory, server_args: list[str]
) -> Iterator[Server]:
    state_dir = tmp_path_factory.mktemp("apiserver")
    args = [sys.executable, "-m", "pytest_k8sdr.sim.controlplane", "--state-dir", str(state_dir)]
    args += ["--profile", "fast", *server_args]
    for name in _all_controllers():
        args += ["--disable-controller", name]
    log = (state_dir / "server.log").open("wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while not (state_dir / "apiserver.json").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"API server did not start: {(state_dir / 'server.log').read_text()}")
        time.sleep(0.05)
    kubeconfig = state_dir / "kubeconfig"
    api = config.new_client_from_config(str(kubeconfig))
    try:
        yield Server(
            state_dir,
            kubeconfig,
            proc,
            client.CoreV1Api(api),
            client.CoordinationV1Api(api),
            client.DiscoveryV1Api(api),
        )
    finally:
        api.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def make_agent(sim_server: Server, tmp_path: Path) -> Iterator[Callable[..., AgentProc]]:
    agents: list[AgentProc] = []

    def make(
        *,
        labels: str = "",
        taints: str = "",
        zone: str | None = None,
        hollow: int | None = None,
        start: bool = True,
        extra: list[str] | None = None,
    ) -> AgentProc:
        index = next(INDEX)
        name = f"agent-{index}"
        sock = tmp_path / f"{name}.sock"
        argv = [
            sys.executable, "-m", "pytest_k8sdr.sim.node",
            "--kubeconfig", str(sim_server.kubeconfig),
            "--node-name", name,
            "--profile", "fast",
            "--control-socket", str(sock),
            "--log-level", "INFO",
        ]  # fmt: skip
        if hollow is None:
            argv += ["--address", node_address(index), "--pod-cidr", node_pod_cidr(index)]
        else:
            # Hollow nodes take the indexes after this one.
            argv += ["--hollow", str(hollow), "--hollow-first-index", str(index + 1)]
            for _ in range(hollow):
                next(INDEX)
        if labels:
            argv += ["--node-labels", labels]
        if taints:
            argv += ["--register-with-taints", taints]
        if zone:
            argv += ["--zone", zone]
        argv += extra or []
        agent = AgentProc(
            name, node_address(index), node_pod_cidr(index), sock, argv, tmp_path / f"{name}.log"
        )
        agents.append(agent)
        if start:
            agent.start()
        return agent

    yield make
    for agent in agents:
        for proc in agent.history:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
