"""Server-side apply and managedFields: the store's field sets, kubectl, the official client."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException

from pytest_k8sdr.sim import ApiError
from pytest_k8sdr.sim.apiserver.registry.store import Store, WriteOptions

Kubectl = Callable[..., Any]
APPLY = "application/apply-patch+yaml"

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{containerPort: 80}]
        env: [{name: A, value: "1"}, {name: B, value: "2"}]
"""


def _deployment(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
            },
            **spec,
        },
    }


def _entry(obj: dict[str, Any], manager: str, operation: str) -> dict[str, Any]:
    found = [
        e
        for e in obj["metadata"].get("managedFields", [])
        if e["manager"] == manager and e["operation"] == operation
    ]
    assert len(found) == 1, obj["metadata"].get("managedFields")
    return found[0]


# -- the store -------------------------------------------------------------------------


def test_create_records_an_update_with_upstreams_fields_v1() -> None:
    store = Store()
    body = _deployment(replicas=1)
    body["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80}]
    obj = store.create("deployments", "default", body, opts=WriteOptions(manager="kubectl-create"))
    entry = _entry(obj, "kubectl-create", "Update")
    assert entry["apiVersion"] == "apps/v1"
    assert entry["fieldsType"] == "FieldsV1"
    fields = entry["fieldsV1"]
    assert "f:status" not in fields  # status is a subresource: the main resource never owns it
    spec = fields["f:spec"]
    assert "." not in spec  # a struct Go always has is not itself a member
    assert spec["f:replicas"] == {}
    assert spec["f:selector"] == {}  # LabelSelector is atomic
    assert spec["f:strategy"]["f:rollingUpdate"]["."] == {}  # defaulted, a pointer: a member
    container = spec["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert container["."] == {}
    assert container["f:image"] == {}
    port = container["f:ports"]['k:{"containerPort":80,"protocol":"TCP"}']
    assert port == {".": {}, "f:containerPort": {}, "f:protocol": {}}
    # The simulator's own writes (no named manager) leave an untracked object untracked...
    plain = store.create("configmaps", "default", {"metadata": {"name": "c"}, "data": {"a": "b"}})
    assert "managedFields" not in plain["metadata"]
    # ...and are recorded once the object is tracked.
    obj["spec"]["replicas"] = 2
    updated = store.update("deployments", "default", "web", obj)
    assert _entry(updated, "kube-controller-manager", "Update")["fieldsV1"] == {
        "f:spec": {"f:replicas": {}}
    }


def test_update_takes_changed_fields_and_status_is_its_own_subresource() -> None:
    store = Store()
    store.create("deployments", "default", _deployment(replicas=1), opts=WriteOptions("a"))
    store.patch(
        "deployments",
        "default",
        "web",
        {"spec": {"replicas": 4}},
        "application/merge-patch+json",
        opts=WriteOptions("scaler"),
    )
    obj = store.get("deployments", "default", "web")
    assert "f:replicas" not in _entry(obj, "a", "Update")["fieldsV1"]["f:spec"]
    assert _entry(obj, "scaler", "Update")["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    obj["status"] = {"replicas": 4}
    obj = store.update(
        "deployments", "default", "web", obj, subresource="status", opts=WriteOptions("ctrl")
    )
    status = _entry(obj, "ctrl", "Update")
    assert status["subresource"] == "status"
    assert status["fieldsV1"] == {"f:status": {"f:replicas": {}}}
    # A write that changes nothing commits nothing and keeps the managed fields.
    again = store.update("deployments", "default", "web", obj, opts=WriteOptions("other"))
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


def test_apply_conflict_names_fields_and_managers_as_upstream() -> None:
    store = Store()
    store.create(
        "deployments",
        "default",
        _deployment(replicas=2),
        opts=WriteOptions("kubectl-client-side-apply"),
    )
    body = _deployment(replicas=3)
    with pytest.raises(ApiError) as err:
        store.patch("deployments", "default", "web", body, APPLY, opts=WriteOptions("kubectl"))
    assert err.value.code == 409
    assert err.value.reason == "Conflict"
    assert err.value.message == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: '
        ".spec.replicas"
    )
    assert err.value.details["causes"] == [
        {
            "type": "FieldManagerConflict",
            "message": 'conflict with "kubectl-client-side-apply" using apps/v1',
            "field": ".spec.replicas",
        }
    ]
    body["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    with pytest.raises(ApiError) as err:
        store.patch("deployments", "default", "web", body, APPLY, opts=WriteOptions("kubectl"))
    assert err.value.message == (
        "Apply failed with 2 conflicts: conflicts with "
        '"kubectl-client-side-apply" using apps/v1:\n- .spec.replicas\n'
        '- .spec.template.spec.containers[name="web"].image'
    )
    # The same values are shared, not conflicts; force takes the changed ones.
    obj = store.patch(
        "deployments", "default", "web", body, APPLY, opts=WriteOptions("kubectl", force=True)
    )
    assert obj["spec"]["replicas"] == 3
    old_owner = _entry(obj, "kubectl-client-side-apply", "Update")["fieldsV1"]["f:spec"]
    assert "f:replicas" not in old_owner
    assert "f:selector" in old_owner  # shared: the same value
    applied = _entry(obj, "kubectl", "Apply")["fieldsV1"]
    assert applied["f:spec"]["f:replicas"] == {}


def test_apply_removes_what_a_manager_stops_applying_and_merges_lists_by_key() -> None:
    store = Store()
    mine = WriteOptions("mine")
    body = _deployment(replicas=1)
    body["metadata"]["labels"] = {"a": "1", "b": "2"}
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    created = store.patch("deployments", "default", "web", copy.deepcopy(body), APPLY, opts=mine)
    assert [e["operation"] for e in created["metadata"]["managedFields"]] == ["Apply"]
    # Another manager adds a sidecar and a label of its own through its own apply.
    sidecar = _deployment()
    sidecar["metadata"]["labels"] = {"c": "3"}
    sidecar["spec"]["template"]["spec"]["containers"] = [{"name": "side", "image": "busybox"}]
    del sidecar["spec"]["selector"]
    store.patch("deployments", "default", "web", sidecar, APPLY, opts=WriteOptions("other"))
    del body["metadata"]["labels"]["b"]
    container["env"] = [{"name": "A", "value": "1"}]
    obj = store.patch("deployments", "default", "web", body, APPLY, opts=mine)
    assert obj["metadata"]["labels"] == {"a": "1", "c": "3"}
    containers = obj["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web", "side"]
    assert containers[0]["env"] == [{"name": "A", "value": "1"}]
    assert containers[0]["imagePullPolicy"] == "IfNotPresent"  # defaults stay, unowned


def test_apply_validates_and_dry_run_commits_nothing() -> None:
    store = Store()
    with pytest.raises(ApiError) as err:
        store.patch(
            "configmaps", "default", "cm", {"data": {"a": "b"}}, APPLY, opts=WriteOptions("m")
        )
    assert err.value.code == 400
    assert "apiVersion must be set" in err.value.message
    body = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}}
    dry = WriteOptions("m", dry_run=True)
    rv = store.resource_version
    out = store.patch("configmaps", "default", "cm", body, APPLY, opts=dry)
    assert out["data"] == {"a": "b"}
    assert store.resource_version == rv
    with pytest.raises(ApiError):
        store.get("configmaps", "default", "cm")
    store.patch("configmaps", "default", "cm", body, APPLY, opts=WriteOptions("m"))
    changed = {**body, "data": {"a": "c"}}
    assert store.patch("configmaps", "default", "cm", changed, APPLY, opts=dry)["data"] == {
        "a": "c"
    }
    assert store.get("configmaps", "default", "cm")["data"] == {"a": "b"}


# -- over HTTP ---------------------------------------------------------------------------


def _json(kubectl: Kubectl, *args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json").stdout)


def test_kubectl_server_side_apply_conflict_force_and_diff(kubectl: Kubectl, sim_ns: str) -> None:
    assert "created" in kubectl("apply", "-n", sim_ns, "-f", "-", stdin=DEPLOYMENT).stdout
    scaled = DEPLOYMENT.replace("replicas: 2", "replicas: 5")
    refused = kubectl("apply", "--server-side", "-n", sim_ns, "-f", "-", stdin=scaled, check=False)
    assert refused.returncode != 0
    assert (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: '
        ".spec.replicas" in refused.stderr
    )
    # kubectl diff (dry run on the server) shows the change and changes nothing.
    diff = kubectl(
        "diff",
        "--server-side",
        "--force-conflicts",
        "-n",
        sim_ns,
        "-f",
        "-",
        stdin=scaled,
        check=False,
    )
    assert diff.returncode == 1, diff.stderr
    assert "+  replicas: 5" in diff.stdout
    assert _json(kubectl, "get", "deploy", "web", "-n", sim_ns)["spec"]["replicas"] == 2
    out = kubectl(
        "apply", "--server-side", "--force-conflicts", "-n", sim_ns, "-f", "-", stdin=scaled
    ).stdout
    assert "deployment.apps/web serverside-applied" in out
    dep = _json(kubectl, "get", "deploy", "web", "-n", sim_ns, "--show-managed-fields")
    assert dep["spec"]["replicas"] == 5
    applied = _entry(dep, "kubectl", "Apply")["fieldsV1"]
    assert applied["f:spec"]["f:replicas"] == {}
    # Stop applying a label and an env var: the server removes them.
    trimmed = scaled.replace(", tier: front", "").replace(', {name: B, value: "2"}', "")
    kubectl("apply", "--server-side", "-n", sim_ns, "-f", "-", stdin=trimmed)
    dep = _json(kubectl, "get", "deploy", "web", "-n", sim_ns)
    assert dep["metadata"]["labels"] == {"app": "web"}
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]
    diff = kubectl("diff", "--server-side", "-n", sim_ns, "-f", "-", stdin=trimmed, check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr


def test_client_side_diff_and_server_dry_run(kubectl: Kubectl, sim_ns: str) -> None:
    diff = kubectl("diff", "-n", sim_ns, "-f", "-", stdin=DEPLOYMENT, check=False)
    assert diff.returncode == 1, diff.stderr
    assert "+  replicas: 2" in diff.stdout
    out = kubectl("apply", "--dry-run=server", "-n", sim_ns, "-f", "-", stdin=DEPLOYMENT).stdout
    assert "(server dry run)" in out
    missing = kubectl("get", "deploy", "web", "-n", sim_ns, check=False)
    assert missing.returncode != 0


def test_official_client_server_side_apply(sim_client: client.ApiClient, sim_ns: str) -> None:
    dyn = dynamic.DynamicClient(sim_client)
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg"},
        "data": {"a": "1"},
    }
    made = dyn.server_side_apply(cms, body=body, namespace=sim_ns, field_manager="tool-a")
    assert made.data.a == "1"
    theirs = {**body, "data": {"a": "2"}}
    with pytest.raises(ApiException) as err:
        dyn.server_side_apply(cms, body=theirs, namespace=sim_ns, field_manager="tool-b")
    assert err.value.status == 409
    status = json.loads(err.value.body)
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "tool-a": .data.a'
    assert status["details"]["causes"][0]["field"] == ".data.a"
    forced = dyn.server_side_apply(
        cms, body=theirs, namespace=sim_ns, field_manager="tool-b", force_conflicts=True
    )
    assert forced.data.a == "2"
    core = client.CoreV1Api(sim_client)
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map(
            "cfg", sim_ns, theirs, _content_type=APPLY
        )  # no fieldManager
    assert err.value.status == 422
    assert "fieldManager: Required value" in json.loads(err.value.body)["message"]
    owners = {
        (e.manager, e.operation)
        for e in core.read_namespaced_config_map("cfg", sim_ns).metadata.managed_fields
    }
    assert owners == {("tool-b", "Apply")}
