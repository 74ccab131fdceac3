"""Python clients no one here wrote, against the simulator: lightkube and pykube-ng."""

from __future__ import annotations

from collections.abc import Iterator

import pykube
import pytest
from lightkube import ApiError as LightkubeError
from lightkube import Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Namespace
from lightkube.types import PatchType

from pytest_k8sdr.sim.launcher import SimCluster


@pytest.fixture(scope="module")
def lightkube_client(sim_api: SimCluster) -> Iterator[Client]:
    lk = Client(config=KubeConfig.from_file(str(sim_api.kubeconfig_path)), field_manager="lk")
    try:
        yield lk
    finally:
        lk.close()


def test_lightkube_crud_list_and_server_side_apply(lightkube_client: Client, sim_ns: str) -> None:
    lk = lightkube_client
    assert any(ns.metadata.name == sim_ns for ns in lk.list(Namespace))
    cm = ConfigMap(metadata=ObjectMeta(name="lk", namespace=sim_ns), data={"a": "1"})
    created = lk.create(cm)
    assert created.metadata.uid
    assert lk.get(ConfigMap, "lk", namespace=sim_ns).data == {"a": "1"}
    lk.patch(ConfigMap, "lk", {"data": {"b": "2"}}, namespace=sim_ns, patch_type=PatchType.MERGE)
    assert lk.get(ConfigMap, "lk", namespace=sim_ns).data == {"a": "1", "b": "2"}
    applied = ConfigMap(metadata=ObjectMeta(name="lk", namespace=sim_ns), data={"a": "3"})
    with pytest.raises(LightkubeError) as err:
        lk.apply(applied, field_manager="other")
    assert err.value.status.code == 409
    assert (
        err.value.status.message
        == 'Apply failed with 1 conflict: conflict with "lk" using v1: .data.a'
    )
    out = lk.apply(applied, field_manager="other", force=True)
    assert out.data == {"a": "3", "b": "2"}
    names = [c.metadata.name for c in lk.list(ConfigMap, namespace=sim_ns)]
    assert names == ["lk"]
    lk.delete(ConfigMap, "lk", namespace=sim_ns)
    with pytest.raises(LightkubeError) as err:
        lk.get(ConfigMap, "lk", namespace=sim_ns)
    assert err.value.status.code == 404


def test_lightkube_deployment_scale(lightkube_client: Client, sim_ns: str) -> None:
    lk = lightkube_client
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": sim_ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
            },
        },
    }
    lk.create(Deployment.from_dict(body))
    scale = lk.get(Deployment.Scale, "web", namespace=sim_ns)
    assert scale.spec.replicas == 1
    scale.spec.replicas = 3
    lk.replace(scale, "web", namespace=sim_ns)
    assert lk.get(Deployment, "web", namespace=sim_ns).spec.replicas == 3


def test_pykube_ng_queries_and_writes(sim_api: SimCluster, sim_ns: str) -> None:
    api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(sim_api.kubeconfig_path)))
    try:
        _pykube_round(api, sim_ns)
    finally:
        api.session.close()


def _pykube_round(api: pykube.HTTPClient, sim_ns: str) -> None:
    cm = pykube.ConfigMap(
        api, {"metadata": {"name": "pk", "namespace": sim_ns, "labels": {"app": "pk"}}, "data": {}}
    )
    cm.create()
    found = list(pykube.ConfigMap.objects(api).filter(namespace=sim_ns, selector={"app": "pk"}))
    assert [c.name for c in found] == ["pk"]
    cm.obj["data"] = {"k": "v"}
    cm.update()
    cm.reload()
    assert cm.obj["data"] == {"k": "v"}
    assert pykube.Namespace.objects(api).get(name=sim_ns).exists()
    cm.delete()
    assert not cm.exists()
