"""Fixtures for the simulator's tests: one shared API server, clients, kubectl; a full cluster.

The shared server has no nodes and no controllers. A module that needs a whole cluster (nodes
running pods, every controller) asks for `full_cluster`, one per module, with `full_core` and
a namespace of its own per test, `full_ns`.
"""

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
    with SimCluster.start(
        tmp_path_factory.mktemp("sim-api"), workers=0, disabled_controllers=all_controllers()
    ) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def sim_client(sim_api: SimCluster) -> Iterator[client.ApiClient]:
    with make_api_client(sim_api) as api:
        yield api


@pytest.fixture
def core(sim_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(sim_client)


@pytest.fixture
def apps(sim_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(sim_client)


@pytest.fixture
def sim_ns(core: client.CoreV1Api) -> str:
    """A fresh namespace for one test."""
    return _create_namespace(core, "t")


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


@pytest.fixture(scope="module")
def full_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    """A cluster of two workers running every controller, for one test module."""
    with SimCluster.start(tmp_path_factory.mktemp("full"), workers=2) as sim:
        yield sim


@pytest.fixture(scope="module")
def full_core(full_cluster: SimCluster) -> Iterator[client.CoreV1Api]:
    """The official client on `full_cluster` (its connection pool closed with the module)."""
    with make_api_client(full_cluster) as api:
        yield client.CoreV1Api(api)


@pytest.fixture
def full_ns(full_core: client.CoreV1Api) -> str:
    """A fresh namespace of `full_cluster` for one test."""
    return _create_namespace(full_core, "p")


def _create_namespace(core: client.CoreV1Api, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    return name
