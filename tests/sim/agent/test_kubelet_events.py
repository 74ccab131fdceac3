"""The events a kubelet records over a pod's life.

What `kubectl describe pod` and `kubectl events` show an operator after a node came back:
Pulled, Created, Started as a container starts; Killing as a deleted pod's containers stop.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from pytest_k8sdr.sim.launcher import SimCluster, worker_name
from tests.sim.agent.agentsim import pod_ready, wait_for
from tests.sim.simapi_support import make_api_client

TIMEOUT = 30.0


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[client.CoreV1Api]:
    sim = SimCluster.start(tmp_path_factory.mktemp("kubelet-events"), workers=1)
    api = make_api_client(sim)
    try:
        yield client.CoreV1Api(api)
    finally:
        api.close()
        sim.stop()


def _kubelet_events(core: client.CoreV1Api, ns: str, pod: str) -> list[tuple[str, str, str]]:
    return [
        (e.reason, e.message, e.involved_object.field_path)
        for e in core.list_namespaced_event(ns).items
        if e.involved_object.name == pod and e.source.component == "kubelet"
    ]


def _wait_events(core: client.CoreV1Api, ns: str, pod: str, wanted: set[str]) -> list[Any]:
    def done(_: Any) -> bool:
        return wanted <= {reason for reason, _, _ in _kubelet_events(core, ns, pod)}

    wait_for(core.list_namespaced_event, done, namespace=ns, timeout=TIMEOUT, what=str(wanted))
    return _kubelet_events(core, ns, pod)


def test_a_pods_life_is_recorded_as_a_kubelet_records_it(core: client.CoreV1Api) -> None:
    ns = f"ev-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns}})
    node = worker_name(1)
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "web"},
            "spec": {
                "nodeName": node,
                "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}],
            },
        },
    )
    wait_for(
        core.list_namespaced_pod,
        pod_ready,
        namespace=ns,
        timeout=TIMEOUT,
        what="pod web Ready",
    )
    events = _wait_events(core, ns, "web", {"Pulled", "Created", "Started"})
    where = "spec.containers{app}"
    assert (
        "Pulled",
        'Container image "registry.k8s.io/pause:3.10" already present on machine',
        where,
    ) in events
    assert ("Created", "Created container: app", where) in events
    assert ("Started", "Started container app", where) in events
    hosts = {e.source.host for e in core.list_namespaced_event(ns).items if e.source.host}
    assert hosts == {node}

    core.delete_namespaced_pod("web", ns, grace_period_seconds=1)
    events = _wait_events(core, ns, "web", {"Killing"})
    assert ("Killing", "Stopping container app", where) in events
