"""CustomResourceDefinitions: established, discovered, served, pruned, defaulted, durable.

With clients no one here wrote: kubectl (apply, wait, get with the CRD's columns, explain,
patch --subresource=status, scale, delete), the official client's CustomObjectsApi and
ApiextensionsV1Api, and its dynamic client.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException
from simapi_support import all_controllers, make_api_client, raw_exchange

from pytest_k8sdr.sim.launcher import SimCluster

KUBECTL = "/usr/bin/kubectl"
Kubectl = Callable[..., subprocess.CompletedProcess[str]]

WIDGETS = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wd]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    additionalPrinterColumns:
    - {name: Size, type: string, jsonPath: .spec.size}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        description: A Widget is a thing the tests make.
        type: object
        properties:
          spec:
            type: object
            description: What the widget should be.
            required: [size]
            properties:
              size:
                type: string
                enum: [small, large]
                description: How big the widget is.
              replicas: {type: integer, default: 1}
              color: {type: string, default: blue}
              extra:
                type: object
                x-kubernetes-preserve-unknown-fields: true
          status:
            type: object
            properties:
              replicas: {type: integer}
              selector: {type: string}
              conditions:
                type: array
                items:
                  type: object
                  properties:
                    type: {type: string}
                    status: {type: string}
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
  - name: v1alpha1
    served: false
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"""

GADGETS = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Cluster
  names: {plural: gadgets, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              level: {type: integer}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"""


def _widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": "small", **spec},
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    """One API server (no nodes, no controllers) holding the test CRDs."""
    sim = SimCluster.start(
        tmp_path_factory.mktemp("crds"), workers=0, disabled_controllers=all_controllers()
    )
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="module")
def kubectl(cluster: SimCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    cache = tmp_path_factory.mktemp("kcache")

    def run(*args: str, check: bool = True, stdin: str | None = None) -> Any:
        proc = subprocess.run(
            [
                KUBECTL,
                "--kubeconfig",
                str(cluster.kubeconfig_path),
                "--cache-dir",
                str(cache),
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc

    return run


@pytest.fixture(scope="module")
def api(cluster: SimCluster, kubectl: Kubectl) -> Iterator[client.ApiClient]:
    """The official client, once both CRDs are applied and Established."""
    kubectl("apply", "-f", "-", stdin=WIDGETS + "---" + GADGETS)
    kubectl(
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "crd/gadgets.example.com",
        "--timeout=30s",
    )
    api_client = make_api_client(cluster)
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture
def ns(api: client.ApiClient) -> str:
    name = f"crd-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    return name


def _status_of(api: client.ApiClient, name: str) -> dict[str, Any]:
    crd = client.ApiextensionsV1Api(api).read_custom_resource_definition(name)
    return api.sanitize_for_serialization(crd.status)  # type: ignore[no-any-return]


def test_a_crd_is_established_with_its_accepted_names(api: client.ApiClient) -> None:
    status = _status_of(api, "widgets.example.com")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["NamesAccepted"]["status"] == "True"
    assert conditions["NamesAccepted"]["reason"] == "NoConflicts"
    assert conditions["Established"]["status"] == "True"
    assert conditions["Established"]["reason"] == "InitialNamesAccepted"
    assert status["acceptedNames"] == {
        "plural": "widgets",
        "singular": "widget",
        "kind": "Widget",
        "listKind": "WidgetList",
        "shortNames": ["wd"],
        "categories": ["all"],
    }
    assert status["storedVersions"] == ["v1"]


def test_a_conflicting_or_invalid_crd(api: client.ApiClient, kubectl: Kubectl) -> None:
    ext = client.ApiextensionsV1Api(api)
    clash = yaml.safe_load(GADGETS)
    clash["metadata"]["name"] = "things.example.com"
    clash["spec"]["names"] = {"plural": "things", "kind": "Gadget"}  # Gadget is taken
    ext.create_custom_resource_definition(clash)
    status = _status_of(api, "things.example.com")
    names = {c["type"]: c for c in status["conditions"]}["NamesAccepted"]
    # Kind and listKind both clash; as upstream, the last name checked gives the reason.
    assert (names["status"], names["reason"]) == ("False", "ListKindConflict")
    assert names["message"] == '"GadgetList" is already in use'
    assert status["acceptedNames"]["kind"] == ""
    assert {c["type"]: c for c in status["conditions"]}["Established"]["status"] == "False"
    groups = json.loads(kubectl("get", "--raw", "/apis/example.com/v1").stdout)
    assert "things" not in [r["name"] for r in groups["resources"]]
    ext.delete_custom_resource_definition("things.example.com")

    bad = yaml.safe_load(GADGETS)
    bad["metadata"]["name"] = "gadgets.example.org"
    bad["spec"]["versions"][0]["storage"] = False
    with pytest.raises(ApiException) as err:
        ext.create_custom_resource_definition(bad)
    assert err.value.status == 422
    text = json.loads(err.value.body)["message"]
    assert 'metadata.name: Invalid value: "gadgets.example.org"' in text
    assert "must have exactly one version marked as storage version" in text


def test_discovery_and_openapi_list_the_served_versions(
    kubectl: Kubectl, api: client.ApiClient
) -> None:
    group = json.loads(kubectl("get", "--raw", "/apis/example.com").stdout)
    assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1"]
    assert group["preferredVersion"]["version"] == "v1"
    listed = json.loads(kubectl("get", "--raw", "/apis/example.com/v1").stdout)
    by_name = {r["name"]: r for r in listed["resources"]}
    assert by_name["widgets"]["namespaced"] is True
    assert by_name["widgets"]["shortNames"] == ["wd"]
    assert by_name["widgets"]["categories"] == ["all"]
    assert by_name["widgets/scale"]["kind"] == "Scale"
    assert "widgets/status" in by_name
    assert by_name["gadgets"]["namespaced"] is False
    missing = kubectl("get", "--raw", "/apis/example.com/v1alpha1", check=False)
    assert missing.returncode != 0  # served: false
    paths = json.loads(kubectl("get", "--raw", "/openapi/v3").stdout)["paths"]
    assert "apis/example.com/v1" in paths
    assert "apis/apiextensions.k8s.io/v1" in paths
    resources = kubectl("api-resources", "--api-group=example.com").stdout
    assert "widgets" in resources
    assert "wd" in resources
    explained = kubectl("explain", "widgets.spec").stdout
    assert "What the widget should be." in explained
    assert "How big the widget is." in explained
    assert "CustomResourceDefinition" in kubectl("explain", "crd").stdout


def test_pruning_defaulting_and_schema_errors(api: client.ApiClient, ns: str) -> None:
    objs = client.CustomObjectsApi(api)
    body = _widget("w1", extra={"anything": {"goes": 1}}, bogus="dropped")
    body["status"] = {"replicas": 9}  # the status subresource: a create may not set it
    body["unknownTop"] = 1
    made = objs.create_namespaced_custom_object("example.com", "v1", ns, "widgets", body)
    assert made["spec"] == {
        "size": "small",
        "replicas": 1,
        "color": "blue",
        "extra": {"anything": {"goes": 1}},
    }
    assert "status" not in made
    assert "unknownTop" not in made
    assert made["metadata"]["generation"] == 1
    with pytest.raises(ApiException) as err:
        objs.create_namespaced_custom_object(
            "example.com", "v1", ns, "widgets", _widget("w2", size="huge", replicas="two")
        )
    assert err.value.status == 422
    message = json.loads(err.value.body)["message"]
    assert 'spec.size: Unsupported value: "huge"' in message
    assert "spec.replicas" in message
    assert "must be of type integer" in message
    missing = _widget("w3")
    del missing["spec"]["size"]
    with pytest.raises(ApiException) as err:
        objs.create_namespaced_custom_object("example.com", "v1", ns, "widgets", missing)
    assert "spec.size: Required value" in json.loads(err.value.body)["message"]


def test_custom_objects_api_verbs(api: client.ApiClient, ns: str) -> None:
    objs = client.CustomObjectsApi(api)
    args = ("example.com", "v1", ns, "widgets")
    objs.create_namespaced_custom_object(*args, _widget("a", replicas=2))
    objs.create_namespaced_custom_object(*args, _widget("b"))
    listed = objs.list_namespaced_custom_object(*args)
    assert listed["kind"] == "WidgetList"
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == ["a", "b"]
    got = objs.get_namespaced_custom_object(*args, "a")
    got["spec"]["size"] = "large"
    replaced = objs.replace_namespaced_custom_object(*args, "a", got)
    assert replaced["spec"]["size"] == "large"
    assert replaced["metadata"]["generation"] == 2
    merged = objs.patch_namespaced_custom_object(*args, "a", {"spec": {"color": "red"}})
    assert merged["spec"]["color"] == "red"
    status = objs.patch_namespaced_custom_object_status(
        *args, "a", {"status": {"replicas": 2, "conditions": [{"type": "Ready", "status": "True"}]}}
    )
    assert status["status"]["replicas"] == 2
    assert merged["metadata"]["generation"] == 3
    assert status["metadata"]["generation"] == 3  # a status write is not a spec change
    # A spec write cannot change the status when the status subresource is declared.
    kept = objs.patch_namespaced_custom_object(*args, "a", {"status": {"replicas": 7}})
    assert kept["status"]["replicas"] == 2
    scale = objs.get_namespaced_custom_object_scale(*args, "a")
    assert (scale["spec"]["replicas"], scale["status"]["replicas"]) == (2, 2)
    scaled = objs.patch_namespaced_custom_object_scale(*args, "a", {"spec": {"replicas": 5}})
    assert scaled["spec"]["replicas"] == 5
    assert objs.get_namespaced_custom_object(*args, "a")["spec"]["replicas"] == 5
    # Another served version reads the same object with its apiVersion.
    beta = objs.get_namespaced_custom_object("example.com", "v1beta1", ns, "widgets", "a")
    assert beta["apiVersion"] == "example.com/v1beta1"
    assert beta["spec"]["replicas"] == 5
    with pytest.raises(ApiException) as err:
        objs.get_namespaced_custom_object("example.com", "v1alpha1", ns, "widgets", "a")
    assert err.value.status == 404
    objs.delete_namespaced_custom_object(*args, "a")
    with pytest.raises(ApiException) as err:
        objs.get_namespaced_custom_object(*args, "a")
    assert err.value.status == 404
    objs.delete_collection_namespaced_custom_object(*args)
    assert objs.list_namespaced_custom_object(*args)["items"] == []
    # Cluster scope.
    gadget = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": ns}}
    gadget["spec"] = {"level": 3}
    gadget["status"] = {"seen": 1}
    made = objs.create_cluster_custom_object("example.com", "v1", "gadgets", gadget)
    # No status subresource: the status is a field as any other.
    assert made["status"] == {"seen": 1}
    patched = objs.patch_cluster_custom_object(
        "example.com", "v1", "gadgets", ns, {"status": {"seen": 2}}
    )
    assert patched["status"] == {"seen": 2}
    assert objs.get_cluster_custom_object("example.com", "v1", "gadgets", ns)["spec"] == {
        "level": 3
    }
    objs.delete_cluster_custom_object("example.com", "v1", "gadgets", ns)


def test_dynamic_client_and_watch(api: client.ApiClient, ns: str) -> None:
    dyn = dynamic.DynamicClient(api)
    widgets = dyn.resources.get(api_version="example.com/v1", kind="Widget")
    widgets.create(body=_widget("d1"), namespace=ns)
    listed = widgets.get(namespace=ns)
    assert [i.metadata.name for i in listed.items] == ["d1"]
    rv = listed.metadata.resourceVersion
    widgets.patch(
        body=[{"op": "replace", "path": "/spec/size", "value": "large"}],
        name="d1",
        namespace=ns,
        content_type="application/json-patch+json",
    )
    seen = []
    for event in widgets.watch(namespace=ns, resource_version=rv, timeout=20):
        seen.append((event["type"], event["object"].spec.size))
        break
    assert seen == [("MODIFIED", "large")]


def test_kubectl_get_columns_patch_status_scale_apply_server_side(
    kubectl: Kubectl, api: client.ApiClient, ns: str
) -> None:
    manifest = yaml.safe_dump(_widget("k1", replicas=2))
    assert (
        "widget.example.com/k1 created"
        in kubectl("apply", "-n", ns, "-f", "-", stdin=manifest).stdout
    )
    kubectl(
        "patch",
        "widget",
        "k1",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"conditions": [{"type": "Ready", "status": "True"}]}}',
    )
    table = kubectl("get", "wd", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "REPLICAS", "READY", "AGE"]
    assert table[1].split()[:4] == ["k1", "small", "2", "True"]
    assert "k1" in kubectl("get", "all", "-n", ns).stdout  # the CRD's categories
    assert "scaled" in kubectl("scale", "widget/k1", "-n", ns, "--replicas=4").stdout
    assert kubectl("get", "widget", "k1", "-n", ns, "-o", "jsonpath={.spec.replicas}").stdout == "4"
    # Server-side apply: a field another manager owns conflicts; --force-conflicts takes it.
    ssa = yaml.safe_dump(_widget("k1", replicas=2, color="green"))
    conflict = kubectl("apply", "--server-side", "-n", ns, "-f", "-", stdin=ssa, check=False)
    assert conflict.returncode != 0
    assert "conflict" in conflict.stderr.lower()
    kubectl("apply", "--server-side", "--force-conflicts", "-n", ns, "-f", "-", stdin=ssa)
    got = json.loads(
        kubectl("get", "widget", "k1", "-n", ns, "-o", "json", "--show-managed-fields").stdout
    )
    assert (got["spec"]["replicas"], got["spec"]["color"]) == (2, "green")
    assert any(m["manager"] == "kubectl" for m in got["metadata"]["managedFields"])
    bad = kubectl(
        "apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(_widget("k2", size="huge")), check=False
    )
    assert bad.returncode != 0
    assert "Unsupported value" in bad.stderr
    assert 'widget.example.com "k1" deleted' in kubectl("delete", "widget", "k1", "-n", ns).stdout


def test_custom_resources_refuse_protobuf_and_answer_json(
    cluster: SimCluster, kubectl: Kubectl, api: client.ApiClient, ns: str
) -> None:
    """No protobuf for custom resources (customresource_handler.go): 415 for a body, JSON out."""
    path = f"/apis/example.com/v1/namespaces/{ns}/widgets"
    # The framing of a protobuf body (magic, runtime.Unknown); refused before it is decoded.
    body = b"k8s\x00\x0a\x17\x0a\x0eexample.com/v1\x12\x06Widget"
    refused = raw_exchange(
        cluster, "POST", path, content_type="application/vnd.kubernetes.protobuf", data=body
    )
    assert refused.status == 415
    assert refused.body["reason"] == "UnsupportedMediaType"
    assert refused.body["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/yaml"
    )
    kubectl("create", "-n", ns, "-f", "-", stdin=yaml.safe_dump(_widget("pb")))
    assert kubectl("get", "widget", "pb", "-n", ns, "-o", "name").stdout.strip() == (
        "widget.example.com/pb"
    )
    ctx = ssl.create_default_context(cafile=str(cluster.state_dir / "pki" / "ca.crt"))

    def get(accept: str) -> tuple[int, str, dict[str, Any]]:
        req = urllib.request.Request(
            f"{cluster.server_url}{path}/pb",
            headers={"Authorization": f"Bearer {cluster.token}", "Accept": accept},
        )
        try:
            with urllib.request.urlopen(req, context=ctx) as resp:
                return resp.status, resp.headers["Content-Type"], json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, err.headers["Content-Type"], json.loads(err.read())

    # client-go's protobuf clients offer JSON second, and get it.
    code, ctype, got = get("application/vnd.kubernetes.protobuf,application/json")
    assert (code, ctype, got["metadata"]["name"]) == (200, "application/json", "pb")
    code, _, status = get("application/vnd.kubernetes.protobuf")
    assert (code, status["reason"]) == (406, "NotAcceptable")
    assert status["message"] == (
        "only the following media types are accepted: application/json, application/yaml"
    )


def _backups(group: str) -> str:
    return f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: backups.{group}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: backups, kind: Backup}}
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - {{name: Group, type: string, jsonPath: .apiVersion}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {{type: object, properties: {{target: {{type: string}}}}}}
"""


def test_one_plural_in_two_groups_is_served_twice(kubectl: Kubectl, api: client.ApiClient) -> None:
    """Names conflict within a group only (naming_controller.go): both CRDs are served."""
    kubectl("apply", "-f", "-", stdin=_backups("velero.io") + "---" + _backups("backup.example"))
    kubectl(
        "wait",
        "--for=condition=Established",
        "crd/backups.velero.io",
        "crd/backups.backup.example",
        "--timeout=30s",
    )
    ns = f"bk-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
    for group in ("velero.io", "backup.example"):
        backup = {
            "apiVersion": f"{group}/v1",
            "kind": "Backup",
            "metadata": {"name": f"nightly-{group.split('.')[0]}"},
            "spec": {"target": group},
        }
        kubectl("apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(backup))
    rows = kubectl("api-resources", "--no-headers").stdout.splitlines()
    served = sorted(r.split()[1] for r in rows if r.split()[0] == "backups")
    assert served == ["backup.example/v1", "velero.io/v1"]
    for group in ("velero.io", "backup.example"):
        table = kubectl("get", f"backups.{group}", "-n", ns, "--no-headers").stdout
        assert table.split() == [f"nightly-{group.split('.')[0]}", f"{group}/v1"]
    custom = client.CustomObjectsApi(api)
    listed = custom.list_namespaced_custom_object("velero.io", "v1", ns, "backups")
    assert [i["spec"]["target"] for i in listed["items"]] == ["velero.io"]
    kubectl("delete", "crd", "backups.velero.io")
    gone = kubectl("get", "backups.velero.io", "-n", ns, check=False)
    assert gone.returncode != 0
    left = custom.list_namespaced_custom_object("backup.example", "v1", ns, "backups")
    assert [i["metadata"]["name"] for i in left["items"]] == ["nightly-backup"]
    kubectl("delete", "crd", "backups.backup.example")


def test_deleting_a_crd_deletes_its_resources(api: client.ApiClient, kubectl: Kubectl) -> None:
    ext = client.ApiextensionsV1Api(api)
    crd = yaml.safe_load(GADGETS)
    crd["metadata"]["name"] = "sprockets.example.net"
    crd["spec"]["group"] = "example.net"
    crd["spec"]["names"] = {"plural": "sprockets", "kind": "Sprocket"}
    ext.create_custom_resource_definition(crd)
    objs = client.CustomObjectsApi(api)
    body = {"apiVersion": "example.net/v1", "kind": "Sprocket", "metadata": {"name": "s"}}
    objs.create_cluster_custom_object("example.net", "v1", "sprockets", body)
    ext.delete_custom_resource_definition("sprockets.example.net")
    with pytest.raises(ApiException) as err:
        objs.list_cluster_custom_object("example.net", "v1", "sprockets")
    assert err.value.status == 404
    groups = json.loads(kubectl("get", "--raw", "/apis").stdout)["groups"]
    assert "example.net" not in [g["name"] for g in groups]
    # Made again, the CRD serves an empty collection: its old objects are gone.
    ext.create_custom_resource_definition(crd)
    assert objs.list_cluster_custom_object("example.net", "v1", "sprockets")["items"] == []
    ext.delete_custom_resource_definition("sprockets.example.net")


def test_crds_and_their_objects_survive_a_control_plane_restart(
    cluster: SimCluster, api: client.ApiClient, ns: str, tmp_path: Path
) -> None:
    objs = client.CustomObjectsApi(api)
    made = objs.create_namespaced_custom_object(
        "example.com", "v1", ns, "widgets", _widget("keep", replicas=3)
    )
    cluster.stop_control_plane()
    cluster.start_control_plane()
    again = make_api_client(cluster)
    try:
        objs = client.CustomObjectsApi(again)
        got = objs.get_namespaced_custom_object("example.com", "v1", ns, "widgets", "keep")
        assert got["metadata"]["uid"] == made["metadata"]["uid"]
        assert got["spec"]["replicas"] == 3
        status = _status_of(again, "widgets.example.com")
        assert {c["type"]: c["status"] for c in status["conditions"]}["Established"] == "True"
        # Still validated and defaulted by the restored schema.
        other = objs.create_namespaced_custom_object(
            "example.com", "v1", ns, "widgets", _widget("new")
        )
        assert other["spec"]["color"] == "blue"
    finally:
        again.close()


MANIFESTS = Path(__file__).parent / "manifests"


def test_a_chart_like_release_applies_reads_back_reapplies_and_deletes(
    kubectl: Kubectl, api: client.ApiClient, ns: str
) -> None:
    """A helm-shaped release: its crds/ first, then every kind, with kubectl's validation on."""
    kubectl("apply", "-f", str(MANIFESTS / "chart-crds.yaml"))
    kubectl(
        "wait",
        "--for=condition=Established",
        "crd/servicemonitors.monitoring.coreos.com",
        "--timeout=30s",
    )
    chart = str(MANIFESTS / "chart.yaml")
    docs = [d for d in yaml.safe_load_all((MANIFESTS / "chart.yaml").read_text()) if d]
    out = kubectl("apply", "-n", ns, "-f", chart).stdout.splitlines()
    assert len(out) == len(docs), out
    assert all(line.endswith(" created") for line in out), out
    refs = [
        f"{d['kind'].lower()}.{d['apiVersion'].split('/')[0]}/{d['metadata']['name']}" for d in docs
    ]
    refs = [r.replace(".v1/", "/") for r in refs]  # core kinds have no group
    got = json.loads(kubectl("get", "-n", ns, "-o", "json", *refs).stdout)["items"]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in got) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in docs
    )
    sts = next(o for o in got if o["kind"] == "StatefulSet")
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "8Gi"
    }
    monitor = next(o for o in got if o["kind"] == "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["relabelings"][0]["targetLabel"] == "pod"
    assert "redis" in kubectl("get", "smon", "-n", ns).stdout
    # Server-side apply takes the fields over once; applied again it changes nothing.
    kubectl("apply", "--server-side", "--force-conflicts", "-n", ns, "-f", chart)
    before = {
        o["metadata"]["uid"]: o["metadata"]["resourceVersion"] for o in _items(kubectl, ns, refs)
    }
    again = kubectl("apply", "--server-side", "-n", ns, "-f", chart).stdout.splitlines()
    assert all(line.endswith(" serverside-applied") for line in again), again
    after = {
        o["metadata"]["uid"]: o["metadata"]["resourceVersion"] for o in _items(kubectl, ns, refs)
    }
    assert after == before
    deleted = kubectl("delete", "-n", ns, "-f", chart).stdout.splitlines()
    assert len(deleted) == len(docs)
    assert all(line.endswith(" deleted") for line in deleted)
    left = kubectl("get", "-n", ns, "--ignore-not-found", "-o", "name", *refs).stdout
    assert left.strip() == ""
    kubectl("delete", "-f", str(MANIFESTS / "chart-crds.yaml"))


def _items(kubectl: Kubectl, ns: str, refs: list[str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(kubectl("get", "-n", ns, "-o", "json", *refs).stdout)[
        "items"
    ]
    return items
