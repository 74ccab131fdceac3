"""Fixtures for the simulator's API-server tests: one shared server, clients, kubectl."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from simapi_support import all_controllers, make_api_client

from pytest_k8sdr.sim.launcher import SimCluster

KUBECTL = "/usr/bin/kubectl"


@pytest.fixture(scope="session")
def sim_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    """An API server with no nodes and no controllers (objects change only when tests act)."""
    cluster = SimCluster.start(
        tmp_path_factory.mktemp("sim-api"), workers=0, disabled_controllers=all_controllers()
    )
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def sim_client(sim_api: SimCluster) -> Iterator[client.ApiClient]:
    api = make_api_client(sim_api)
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def core(sim_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(sim_client)


@pytest.fixture
def apps(sim_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(sim_client)


@pytest.fixture
def sim_ns(core: client.CoreV1Api) -> str:
    """A fresh namespace for one test."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    return name


@pytest.fixture
def kubectl(sim_api: SimCluster, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run kubectl against the simulator; `check=False` to inspect failures."""

    def run(*args: str, check: bool = True, stdin: str | None = None, timeout: float = 30) -> Any:
        proc = subprocess.run(
            [
                KUBECTL,
                "--kubeconfig",
                str(sim_api.kubeconfig_path),
                "--cache-dir",
                str(tmp_path / "kcache"),
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}"
            )
        return proc

    return run
