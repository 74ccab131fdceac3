"""Priority and ServiceAccount admission, the serviceaccount and root-CA controllers.

One API server with only these switched on (no nodes, no other controllers), driven by the
official client as a user would.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch
from simapi_support import all_controllers, make_api_client

from pytest_k8sdr.sim.launcher import SimCluster

ON = ("Priority", "ServiceAccount", "serviceaccount", "root-ca-certificate-publisher")
MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture(scope="module")
def admitting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    disabled = [c for c in all_controllers() if c not in ON]
    cluster = SimCluster.start(
        tmp_path_factory.mktemp("sim-adm"), workers=0, disabled_controllers=disabled
    )
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def api(admitting: SimCluster) -> Iterator[client.ApiClient]:
    with make_api_client(admitting) as c:
        yield c


@pytest.fixture
def v1(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def _wait_for(v1: client.CoreV1Api, kind: str, ns: str, name: str) -> Any:
    """The object once it exists (watch-driven; fails after 20 s)."""
    lister = getattr(v1, f"list_namespaced_{kind}")
    listed = lister(ns, field_selector=f"metadata.name={name}")
    if listed.items:
        return listed.items[0]
    for event in watch.Watch().stream(
        lister,
        ns,
        field_selector=f"metadata.name={name}",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=20,
    ):
        if event["type"] == "ADDED":
            return event["object"]
    raise AssertionError(f"{kind} {ns}/{name} never appeared")


@pytest.fixture
def ns(v1: client.CoreV1Api) -> str:
    name = f"adm-{uuid.uuid4().hex[:8]}"
    v1.create_namespace({"metadata": {"name": name}})
    _wait_for(v1, "service_account", name, "default")
    return name


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}], **spec},
    }


def _forbidden(err: pytest.ExceptionInfo[client.ApiException]) -> str:
    assert err.value.status == 403
    body = json.loads(err.value.body)
    assert body["reason"] == "Forbidden"
    return str(body["message"])


def test_every_namespace_has_default_account_and_root_ca(
    v1: client.CoreV1Api, admitting: SimCluster, ns: str
) -> None:
    for name in ("default", "kube-system", ns):
        assert _wait_for(v1, "service_account", name, "default").metadata.name == "default"
        ca = _wait_for(v1, "config_map", name, "kube-root-ca.crt")
        assert ca.data["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")
    v1.delete_namespaced_service_account("default", ns)
    assert _wait_for(v1, "service_account", ns, "default").metadata.name == "default"


def test_pod_gets_projected_token_volume_and_mounts(v1: client.CoreV1Api, ns: str) -> None:
    body = _pod("p", initContainers=[{"name": "init", "image": "busybox:1.36"}])
    pod = v1.create_namespaced_pod(ns, body)
    assert pod.spec.service_account_name == "default"
    (volume,) = pod.spec.volumes
    assert volume.name.startswith("kube-api-access-")
    assert len(volume.name) == len("kube-api-access-") + 5
    sources = volume.projected.sources
    assert sources[0].service_account_token.path == "token"
    assert sources[1].config_map.name == "kube-root-ca.crt"
    assert sources[2].downward_api.items[0].field_ref.field_path == "metadata.namespace"
    for container in (*pod.spec.containers, *pod.spec.init_containers):
        (mount,) = container.volume_mounts
        assert (mount.name, mount.mount_path, mount.read_only) == (volume.name, MOUNT, True)


def test_automount_false_is_honoured(v1: client.CoreV1Api, ns: str) -> None:
    pod = v1.create_namespaced_pod(ns, _pod("no-token", automountServiceAccountToken=False))
    assert not pod.spec.volumes
    v1.create_namespaced_service_account(
        ns, {"metadata": {"name": "quiet"}, "automountServiceAccountToken": False}
    )
    quiet = v1.create_namespaced_pod(ns, _pod("quiet", serviceAccountName="quiet"))
    assert not quiet.spec.volumes
    # The pod's own setting wins over the account's.
    loud = v1.create_namespaced_pod(
        ns, _pod("loud", serviceAccountName="quiet", automountServiceAccountToken=True)
    )
    assert loud.spec.volumes[0].name.startswith("kube-api-access-")


def test_unknown_service_account_is_forbidden(v1: client.CoreV1Api, ns: str) -> None:
    with pytest.raises(client.ApiException) as err:
        v1.create_namespaced_pod(ns, _pod("p", serviceAccountName="ghost"))
    assert _forbidden(err) == (
        f'pods "p" is forbidden: error looking up service account {ns}/ghost: '
        'serviceaccount "ghost" not found'
    )


def test_priority_from_class(api: client.ApiClient, v1: client.CoreV1Api, ns: str) -> None:
    sched = client.SchedulingV1Api(api)
    critical = v1.create_namespaced_pod(ns, _pod("crit", priorityClassName="system-node-critical"))
    assert critical.spec.priority == 2_000_001_000
    assert critical.spec.preemption_policy == "PreemptLowerPriority"
    assert v1.create_namespaced_pod(ns, _pod("plain")).spec.priority == 0
    with pytest.raises(client.ApiException) as err:
        v1.create_namespaced_pod(ns, _pod("lost", priorityClassName="nope"))
    assert _forbidden(err) == 'pods "lost" is forbidden: no PriorityClass with name nope was found'
    with pytest.raises(client.ApiException) as err:
        v1.create_namespaced_pod(ns, _pod("set", priority=7))
    assert "the integer value of priority (7) must not be provided" in _forbidden(err)

    default = f"low-{ns}"
    sched.create_priority_class(
        {
            "metadata": {"name": default},
            "value": 5,
            "globalDefault": True,
            "preemptionPolicy": "Never",
        }
    )
    try:
        pod = v1.create_namespaced_pod(ns, _pod("defaulted"))
        assert (pod.spec.priority, pod.spec.priority_class_name) == (5, default)
        assert pod.spec.preemption_policy == "Never"
        with pytest.raises(client.ApiException) as err:
            sched.create_priority_class(
                {"metadata": {"name": f"two-{ns}"}, "value": 6, "globalDefault": True}
            )
        assert _forbidden(err) == (
            f'priorityclasses.scheduling.k8s.io "two-{ns}" is forbidden: PriorityClass '
            f"{default} is already marked as default. Only one default can exist"
        )
    finally:
        sched.delete_priority_class(default)
