"""The simulated API server driven by the official Python client."""

from __future__ import annotations

import json
import ssl
import time
import urllib.request
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from simapi_support import node_body, pod_body, raw_exchange

from pytest_k8sdr.sim.launcher import SimCluster


def _status(exc: ApiException) -> dict[str, Any]:
    return json.loads(exc.body)  # type: ignore[no-any-return]


def test_version_and_default_namespaces(
    sim_client: client.ApiClient, core: client.CoreV1Api
) -> None:
    version = client.VersionApi(sim_client).get_code()
    assert version.major == "1"
    names = {ns.metadata.name: ns for ns in core.list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= set(names)
    assert names["default"].status.phase == "Active"


def test_wrong_token_is_401_status(sim_api: SimCluster) -> None:
    ctx = ssl.create_default_context(cafile=str(sim_api.state_dir / "pki" / "ca.crt"))
    req = urllib.request.Request(
        f"{sim_api.server_url}/api/v1/namespaces", headers={"Authorization": "Bearer nope"}
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, context=ctx)
    assert info.value.code == 401
    body = json.loads(info.value.read())
    assert body["kind"] == "Status"
    assert body["reason"] == "Unauthorized"


def test_create_sets_metadata_and_defaults(core: client.CoreV1Api, sim_ns: str) -> None:
    body = pod_body("ignored")
    body["metadata"] = {"generateName": "web-"}
    pod = core.create_namespaced_pod(sim_ns, body)
    assert pod.metadata.name.startswith("web-")
    assert len(pod.metadata.name) == len("web-") + 5
    assert pod.metadata.uid
    assert pod.metadata.creation_timestamp is not None
    assert int(pod.metadata.resource_version) > 0
    assert pod.spec.termination_grace_period_seconds == 30
    assert pod.spec.restart_policy == "Always"
    assert pod.spec.scheduler_name == "default-scheduler"
    assert pod.spec.dns_policy == "ClusterFirst"
    assert pod.spec.containers[0].image_pull_policy == "IfNotPresent"
    assert pod.status.phase == "Pending"


def test_errors_are_upstream_status_bodies(core: client.CoreV1Api, sim_ns: str) -> None:
    core.create_namespaced_pod(sim_ns, pod_body("p"))
    with pytest.raises(ApiException) as info:
        core.create_namespaced_pod(sim_ns, pod_body("p"))
    assert info.value.status == 409
    assert _status(info.value)["reason"] == "AlreadyExists"

    with pytest.raises(ApiException) as info:
        core.read_namespaced_pod("missing", sim_ns)
    assert info.value.status == 404
    body = _status(info.value)
    assert body["reason"] == "NotFound"
    assert body["message"] == 'pods "missing" not found'

    bad = pod_body("bad")
    bad["spec"]["containers"] = []
    with pytest.raises(ApiException) as info:
        core.create_namespaced_pod(sim_ns, bad)
    assert info.value.status == 422
    causes = _status(info.value)["details"]["causes"]
    assert causes[0]["field"] == "spec.containers"

    with pytest.raises(ApiException) as info:
        core.create_namespaced_pod("no-such-ns", pod_body("x"))
    assert info.value.status == 404
    assert _status(info.value)["message"] == 'namespaces "no-such-ns" not found'


def test_stale_resource_version_is_409_conflict(core: client.CoreV1Api, sim_ns: str) -> None:
    cm = core.create_namespaced_config_map(sim_ns, {"metadata": {"name": "c"}, "data": {"a": "1"}})
    cm.data = {"a": "2"}
    updated = core.replace_namespaced_config_map("c", sim_ns, cm)
    assert updated.data == {"a": "2"}
    assert updated.metadata.resource_version != cm.metadata.resource_version
    cm.data = {"a": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as info:
        core.replace_namespaced_config_map("c", sim_ns, cm)
    assert info.value.status == 409
    body = _status(info.value)
    assert body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]


def test_strategic_merge_json_and_merge_patches(
    sim_api: SimCluster, core: client.CoreV1Api, sim_ns: str
) -> None:
    pod = pod_body("p")
    pod["spec"]["containers"].append(
        {"name": "side", "image": "busybox:1", "env": [{"name": "A", "value": "1"}]}
    )
    core.create_namespaced_pod(sim_ns, pod)
    # A dict body is sent as strategic merge: containers merge by name.
    patched = core.patch_namespaced_pod(
        "p", sim_ns, {"spec": {"containers": [{"name": "side", "image": "busybox:2"}]}}
    )
    images = {c.name: c.image for c in patched.spec.containers}
    assert images == {"web": "nginx:1.25", "side": "busybox:2"}
    assert patched.spec.containers[1].env[0].name == "A"
    # A list body is sent as JSON patch.
    patched = core.patch_namespaced_pod(
        "p", sim_ns, [{"op": "add", "path": "/metadata/labels/tier", "value": "front"}]
    )
    assert patched.metadata.labels == {"app": "web", "tier": "front"}
    # Merge patch replaces lists whole and deletes with null.
    answer = raw_exchange(
        sim_api,
        "PATCH",
        f"/api/v1/namespaces/{sim_ns}/pods/p",
        {"metadata": {"labels": {"tier": None}}},
        "application/merge-patch+json",
    )
    assert answer.status == 200
    assert answer.body["metadata"]["labels"] == {"app": "web"}
    # $patch: delete removes one list element.
    patched = core.patch_namespaced_pod("p", sim_ns, {"metadata": {"finalizers": ["a/b"]}})
    assert patched.metadata.finalizers == ["a/b"]
    patched = core.patch_namespaced_pod(
        "p",
        sim_ns,
        {
            "$setElementOrder/finalizers": [],
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["a/b"]},
        },
    )
    assert not patched.metadata.finalizers


def test_failed_json_patch_test_is_422(core: client.CoreV1Api, sim_ns: str) -> None:
    core.create_namespaced_pod(sim_ns, pod_body("p"))
    with pytest.raises(ApiException) as info:
        core.patch_namespaced_pod(
            "p", sim_ns, [{"op": "test", "path": "/metadata/name", "value": "other"}]
        )
    assert info.value.status == 422


def test_label_and_field_selectors(core: client.CoreV1Api, sim_ns: str) -> None:
    for name, app, node in (("a", "web", "n1"), ("b", "web", "n2"), ("c", "db", "n1")):
        body = pod_body(name)
        body["metadata"]["labels"] = {"app": app}
        body["spec"]["nodeName"] = node
        core.create_namespaced_pod(sim_ns, body)

    def names(**kw: Any) -> list[str]:
        return sorted(p.metadata.name for p in core.list_namespaced_pod(sim_ns, **kw).items)

    assert names(label_selector="app=web") == ["a", "b"]
    assert names(label_selector="app!=web") == ["c"]
    assert names(label_selector="app in (db,cache)") == ["c"]
    assert names(label_selector="app notin (db)") == ["a", "b"]
    assert names(label_selector="!app") == []
    assert names(field_selector="spec.nodeName=n1") == ["a", "c"]
    assert names(field_selector="spec.nodeName=n1,metadata.name!=a") == ["c"]
    assert names(field_selector="status.phase=Pending", label_selector="app=db") == ["c"]
    everywhere = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=n2").items
    assert [p.metadata.name for p in everywhere] == ["b"]
    with pytest.raises(ApiException) as info:
        core.list_namespaced_pod(sim_ns, field_selector="spec.bogus=1")
    assert info.value.status == 400
    assert "field label not supported: spec.bogus" in _status(info.value)["message"]


def test_pagination_shares_one_snapshot(core: client.CoreV1Api, sim_ns: str) -> None:
    for i in range(5):
        core.create_namespaced_config_map(sim_ns, {"metadata": {"name": f"c{i}"}})
    first = core.list_namespaced_config_map(sim_ns, limit=2)
    assert len(first.items) == 2
    assert first.metadata._continue
    core.create_namespaced_config_map(sim_ns, {"metadata": {"name": "c9"}})  # not in the snapshot
    seen = [i.metadata.name for i in first.items]
    token = first.metadata._continue
    while token:
        page = core.list_namespaced_config_map(sim_ns, limit=2, _continue=token)
        assert page.metadata.resource_version == first.metadata.resource_version
        seen += [i.metadata.name for i in page.items]
        token = page.metadata._continue
    assert seen == ["c0", "c1", "c2", "c3", "c4"]


def test_watch_streams_added_modified_deleted(core: client.CoreV1Api, sim_ns: str) -> None:
    core.create_namespaced_config_map(sim_ns, {"metadata": {"name": "before"}})
    listing = core.list_namespaced_config_map(sim_ns)
    core.create_namespaced_config_map(sim_ns, {"metadata": {"name": "w"}})
    core.patch_namespaced_config_map("w", sim_ns, {"data": {"k": "v"}})
    core.delete_namespaced_config_map("w", sim_ns)
    events = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            core.list_namespaced_config_map,
            sim_ns,
            resource_version=listing.metadata.resource_version,
            timeout_seconds=1,
        )
    ]
    assert events == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]
    # Without a resourceVersion the watch starts with a synthetic ADDED per object.
    initial = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(core.list_namespaced_config_map, sim_ns, timeout_seconds=1)
    ]
    assert ("ADDED", "before") in initial
    assert ("ADDED", "w") not in initial


def test_watch_honours_timeout_seconds(core: client.CoreV1Api, sim_ns: str) -> None:
    start = time.monotonic()
    events = list(watch.Watch().stream(core.list_namespaced_pod, sim_ns, timeout_seconds=1))
    elapsed = time.monotonic() - start
    assert events == []
    assert 0.9 <= elapsed < 30  # ended by the server's timeout, not the client's 60 s default


def test_graceful_pod_deletion(core: client.CoreV1Api, sim_ns: str) -> None:
    core.create_namespaced_pod(sim_ns, pod_body("unbound"))
    core.delete_namespaced_pod("unbound", sim_ns)
    with pytest.raises(ApiException) as info:
        core.read_namespaced_pod("unbound", sim_ns)
    assert info.value.status == 404  # unscheduled pods go at once

    core.create_namespaced_pod(sim_ns, pod_body("bound"))
    core.create_namespaced_pod_binding(
        "bound",
        sim_ns,
        {"metadata": {"name": "bound"}, "target": {"kind": "Node", "name": "n1"}},
        _preload_content=False,
    )
    pod = core.read_namespaced_pod("bound", sim_ns)
    assert pod.spec.node_name == "n1"
    assert any(c.type == "PodScheduled" and c.status == "True" for c in pod.status.conditions)
    deleted = core.delete_namespaced_pod("bound", sim_ns)
    assert deleted.metadata.deletion_timestamp is not None
    assert deleted.metadata.deletion_grace_period_seconds == 30
    still = core.read_namespaced_pod("bound", sim_ns)
    assert still.metadata.deletion_grace_period_seconds == 30
    core.delete_namespaced_pod("bound", sim_ns, grace_period_seconds=5)
    assert core.read_namespaced_pod("bound", sim_ns).metadata.deletion_grace_period_seconds == 5
    core.delete_namespaced_pod("bound", sim_ns, grace_period_seconds=0)
    with pytest.raises(ApiException) as info:
        core.read_namespaced_pod("bound", sim_ns)
    assert info.value.status == 404


def test_binding_an_assigned_pod_is_409(core: client.CoreV1Api, sim_ns: str) -> None:
    body = pod_body("p")
    body["spec"]["nodeName"] = "n1"
    core.create_namespaced_pod(sim_ns, body)
    with pytest.raises(ApiException) as info:
        core.create_namespaced_pod_binding(
            "p", sim_ns, {"metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n2"}}
        )
    assert info.value.status == 409


def test_finalizers_hold_deletion(core: client.CoreV1Api, sim_ns: str) -> None:
    core.create_namespaced_config_map(
        sim_ns, {"metadata": {"name": "f", "finalizers": ["example.com/hold"]}}
    )
    core.delete_namespaced_config_map("f", sim_ns)
    held = core.read_namespaced_config_map("f", sim_ns)
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map(
        "f", sim_ns, [{"op": "remove", "path": "/metadata/finalizers"}]
    )
    with pytest.raises(ApiException) as info:
        core.read_namespaced_config_map("f", sim_ns)
    assert info.value.status == 404


def _owned_rs(apps: client.AppsV1Api, ns: str, owner: Any, name: str) -> None:
    apps.create_namespaced_replica_set(
        ns,
        {
            "metadata": {
                "name": name,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": owner.metadata.name,
                        "uid": owner.metadata.uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1"}]},
                },
            },
        },
    )


def _deployment(apps: client.AppsV1Api, ns: str, name: str) -> Any:
    return apps.create_namespaced_deployment(
        ns,
        {
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1"}]},
                },
            },
        },
    )


def test_deployment_defaults_and_generation(apps: client.AppsV1Api, sim_ns: str) -> None:
    dep = _deployment(apps, sim_ns, "d")
    assert dep.spec.replicas == 1
    assert dep.spec.revision_history_limit == 10
    assert dep.spec.progress_deadline_seconds == 600
    assert dep.spec.strategy.type == "RollingUpdate"
    assert dep.spec.strategy.rolling_update.max_surge == "25%"
    assert dep.metadata.generation == 1
    dep = apps.patch_namespaced_deployment("d", sim_ns, {"spec": {"replicas": 3}})
    assert dep.metadata.generation == 2
    dep = apps.patch_namespaced_deployment("d", sim_ns, {"metadata": {"labels": {"x": "y"}}})
    assert dep.metadata.generation == 2


def test_garbage_collection_by_propagation_policy(apps: client.AppsV1Api, sim_ns: str) -> None:
    owner = _deployment(apps, sim_ns, "bg")
    _owned_rs(apps, sim_ns, owner, "bg-rs")
    apps.delete_namespaced_deployment("bg", sim_ns)
    assert [rs.metadata.name for rs in apps.list_namespaced_replica_set(sim_ns).items] == []

    owner = _deployment(apps, sim_ns, "orphan")
    _owned_rs(apps, sim_ns, owner, "orphan-rs")
    apps.delete_namespaced_deployment("orphan", sim_ns, propagation_policy="Orphan")
    rs = apps.read_namespaced_replica_set("orphan-rs", sim_ns)
    assert not rs.metadata.owner_references

    owner = _deployment(apps, sim_ns, "fg")
    _owned_rs(apps, sim_ns, owner, "fg-rs")
    apps.delete_namespaced_deployment("fg", sim_ns, propagation_policy="Foreground")
    with pytest.raises(ApiException):
        apps.read_namespaced_replica_set("fg-rs", sim_ns)
    with pytest.raises(ApiException) as info:
        apps.read_namespaced_deployment("fg", sim_ns)
    assert info.value.status == 404


def test_objects_with_only_absent_owners_are_collected(core: client.CoreV1Api, sim_ns: str) -> None:
    ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "gone", "uid": "no-such-uid"}
    cm = core.create_namespaced_config_map(
        sim_ns, {"metadata": {"name": "dangling", "ownerReferences": [ref]}}
    )
    events = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            core.list_namespaced_config_map,
            sim_ns,
            resource_version=cm.metadata.resource_version,
            timeout_seconds=1,
        )
    ]
    assert events == [("DELETED", "dangling")]


def test_scale_and_status_subresources(apps: client.AppsV1Api, sim_ns: str) -> None:
    _deployment(apps, sim_ns, "d")
    scale = apps.read_namespaced_deployment_scale("d", sim_ns)
    assert scale.spec.replicas == 1
    assert scale.status.selector == "app=web"
    scale = apps.patch_namespaced_deployment_scale("d", sim_ns, {"spec": {"replicas": 4}})
    assert scale.spec.replicas == 4
    assert apps.read_namespaced_deployment("d", sim_ns).spec.replicas == 4
    dep = apps.patch_namespaced_deployment_status(
        "d", sim_ns, {"status": {"readyReplicas": 2}, "spec": {"replicas": 9}}
    )
    assert dep.status.ready_replicas == 2
    assert dep.spec.replicas == 4
    # A write to the main resource leaves status alone.
    dep = apps.patch_namespaced_deployment("d", sim_ns, {"status": {"readyReplicas": 7}})
    assert dep.status.ready_replicas == 2


def test_namespace_deletion_marks_terminating(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.delete_namespace("doomed")
    ns = core.read_namespace("doomed")
    assert ns.status.phase == "Terminating"
    assert ns.metadata.deletion_timestamp is not None
    assert ns.spec.finalizers == ["kubernetes"]
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map("doomed", {"metadata": {"name": "x"}})
    assert info.value.status == 403


def test_services_get_cluster_ip_and_node_port(core: client.CoreV1Api, sim_ns: str) -> None:
    svc = core.create_namespaced_service(
        sim_ns,
        {
            "metadata": {"name": "web"},
            "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]},
        },
    )
    assert svc.spec.cluster_ip.startswith("10.96.")
    port = svc.spec.ports[0]
    assert 30000 <= port.node_port <= 32767
    assert port.target_port == 80
    assert port.protocol == "TCP"
    with pytest.raises(ApiException) as info:
        core.create_namespaced_service(
            sim_ns,
            {
                "metadata": {"name": "dup"},
                "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": port.node_port}]},
            },
        )
    assert info.value.status == 422


def test_node_status_subresource_and_node_field_selector(core: client.CoreV1Api) -> None:
    core.create_node(node_body("sel-node"))
    core.patch_node("sel-node", {"spec": {"unschedulable": True}})
    names = [
        n.metadata.name for n in core.list_node(field_selector="spec.unschedulable=true").items
    ]
    assert names == ["sel-node"]
    node = core.patch_node_status(
        "sel-node",
        {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "X"}]}},
    )
    assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["False"]
    uid = node.metadata.uid
    # A deleted Node is answered with a Status (its registry does not return deleted objects).
    gone = json.loads(core.delete_node("sel-node", _preload_content=False).data)
    assert (gone["kind"], gone["status"]) == ("Status", "Success")
    assert (gone["details"]["name"], gone["details"]["uid"]) == ("sel-node", uid)


def test_unsupported_media_type_and_method(sim_api: SimCluster, sim_ns: str) -> None:
    ns_path = f"/api/v1/namespaces/{sim_ns}"
    apply = raw_exchange(
        sim_api, "PATCH", ns_path, {"metadata": {}}, "application/apply-patch+yaml"
    )
    # Server-side apply is served; without a fieldManager it is 422 as upstream.
    assert apply.status == 422
    assert "fieldManager: Required value" in apply.body["message"]
    text = raw_exchange(sim_api, "PATCH", ns_path, {}, "text/plain")
    assert (text.status, text.body["reason"]) == (415, "UnsupportedMediaType")
    post = raw_exchange(sim_api, "POST", "/api/v1", {})
    assert (post.status, post.body["reason"]) == (405, "MethodNotAllowed")


def test_eviction_routes_to_the_registered_handler(core: client.CoreV1Api, sim_ns: str) -> None:
    core.create_namespaced_pod(sim_ns, pod_body("ev"))
    core.create_namespaced_pod_eviction(
        "ev",
        sim_ns,
        {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": "ev", "namespace": sim_ns},
        },
    )
    with pytest.raises(ApiException) as info:
        core.read_namespaced_pod("ev", sim_ns)
    assert info.value.status == 404
    with pytest.raises(ApiException) as info:
        core.create_namespaced_pod_eviction(
            "ev2",
            sim_ns,
            {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}},
        )
    assert info.value.status == 400
