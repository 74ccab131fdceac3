"""Every built-in kind without a controller: kubectl and the official client, kind by kind.

One case per kind: `kubectl apply` creates it, `kubectl get` prints upstream's columns (by
plural and short name), the dynamic client patches it and a watch from the list's
resourceVersion sees the change, a bad manifest is 422 with upstream's field cause, and a
delete removes it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

Kubectl = Callable[..., Any]


@dataclass(frozen=True)
class Case:
    """One kind: a valid object, its table header, a merge patch and a broken variant."""

    manifest: dict[str, Any]
    header: tuple[str, ...]
    patch: dict[str, Any]
    # (path to break, value, text the 422 must contain)
    broken: tuple[tuple[str, ...], Any, str]
    short_name: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


def _obj(api_version: str, kind: str, name: str, **body: Any) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, **body}


CASES: dict[str, Case] = {
    "persistentvolumes": Case(
        _obj(
            "v1",
            "PersistentVolume",
            "pv-a",
            spec={
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
                "hostPath": {"path": "/tmp/pv-a"},
                "storageClassName": "manual",
            },
        ),
        (
            "NAME",
            "CAPACITY",
            "ACCESS MODES",
            "RECLAIM POLICY",
            "STATUS",
            "CLAIM",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "REASON",
            "AGE",
        ),
        {"metadata": {"labels": {"tier": "gold"}}},
        (("spec", "accessModes"), [], "spec.accessModes: Required value"),
        short_name="pv",
        defaults={"spec": {"persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem"}},
    ),
    "persistentvolumeclaims": Case(
        _obj(
            "v1",
            "PersistentVolumeClaim",
            "pvc-a",
            spec={"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        ),
        (
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS MODES",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "AGE",
        ),
        {"spec": {"resources": {"requests": {"storage": "2Gi"}}}},
        (("spec", "resources"), {}, "spec.resources[storage]: Required value"),
        short_name="pvc",
        defaults={"status": {"phase": "Pending"}, "spec": {"volumeMode": "Filesystem"}},
    ),
    "storageclasses": Case(
        _obj("storage.k8s.io/v1", "StorageClass", "fast", provisioner="example.com/fast"),
        (
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE",
        ),
        {"allowVolumeExpansion": True},
        (("provisioner",), "", "provisioner: Required value"),
        short_name="sc",
        defaults={"reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"},
    ),
    "csidrivers": Case(
        _obj("storage.k8s.io/v1", "CSIDriver", "csi.example.com", spec={}),
        (
            "NAME",
            "ATTACHREQUIRED",
            "PODINFOONMOUNT",
            "STORAGECAPACITY",
            "TOKENREQUESTS",
            "REQUIRESREPUBLISH",
            "MODES",
            "AGE",
        ),
        {"metadata": {"labels": {"a": "b"}}},
        (("metadata", "name"), "Bad_Name", "metadata.name: Invalid value"),
        defaults={"spec": {"attachRequired": True, "volumeLifecycleModes": ["Persistent"]}},
    ),
    "csinodes": Case(
        _obj(
            "storage.k8s.io/v1",
            "CSINode",
            "node-a",
            spec={"drivers": [{"name": "csi.example.com", "nodeID": "node-a"}]},
        ),
        ("NAME", "DRIVERS", "AGE"),
        {"spec": {"drivers": []}},
        (("spec", "drivers"), [{"name": "x"}], "spec.drivers[0].nodeID: Required value"),
    ),
    "volumeattachments": Case(
        _obj(
            "storage.k8s.io/v1",
            "VolumeAttachment",
            "va-a",
            spec={
                "attacher": "csi.example.com",
                "nodeName": "node-a",
                "source": {"persistentVolumeName": "pv-a"},
            },
        ),
        ("NAME", "ATTACHER", "PV", "NODE", "ATTACHED", "AGE"),
        {"metadata": {"labels": {"a": "b"}}},
        (("spec", "attacher"), "", "spec.attacher: Required value"),
        defaults={"status": {"attached": False}},
    ),
    "priorityclasses": Case(
        _obj("scheduling.k8s.io/v1", "PriorityClass", "high", value=1000, description="high"),
        ("NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"),
        {"description": "higher"},
        (("value",), 2_000_000_000, "maximum allowed value of a user defined priority"),
        short_name="pc",
        defaults={"preemptionPolicy": "PreemptLowerPriority"},
    ),
    "resourcequotas": Case(
        _obj("v1", "ResourceQuota", "q", spec={"hard": {"pods": "10", "limits.cpu": "4"}}),
        ("NAME", "AGE", "REQUEST", "LIMIT"),
        {"spec": {"hard": {"pods": "20"}}},
        (("spec", "hard"), {"pods": "-1"}, "must be greater than or equal to 0"),
        short_name="quota",
    ),
    "limitranges": Case(
        _obj(
            "v1",
            "LimitRange",
            "lr",
            spec={"limits": [{"type": "Container", "default": {"cpu": "500m"}}]},
        ),
        ("NAME", "CREATED AT"),
        {"metadata": {"labels": {"a": "b"}}},
        (("spec", "limits"), [{"type": "Nope"}], 'Unsupported value: "Nope"'),
        short_name="limits",
    ),
    "replicationcontrollers": Case(
        _obj(
            "v1",
            "ReplicationController",
            "rc",
            spec={
                "replicas": 1,
                "template": {
                    "metadata": {"labels": {"app": "rc"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]},
                },
            },
        ),
        ("NAME", "DESIRED", "CURRENT", "READY", "AGE"),
        {"spec": {"replicas": 3}},
        (("spec", "replicas"), -1, "spec.replicas: Invalid value: -1"),
        short_name="rc",
        defaults={"spec": {"selector": {"app": "rc"}}, "metadata": {"labels": {"app": "rc"}}},
    ),
    "podtemplates": Case(
        _obj(
            "v1",
            "PodTemplate",
            "pt",
            template={
                "metadata": {"labels": {"app": "pt"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]},
            },
        ),
        ("NAME", "CONTAINERS", "IMAGES", "POD LABELS"),
        {"metadata": {"labels": {"a": "b"}}},
        (("template", "spec"), {"containers": []}, "template.spec.containers: Required value"),
        defaults={"template": {"spec": {"restartPolicy": "Always"}}},
    ),
    "controllerrevisions": Case(
        _obj("apps/v1", "ControllerRevision", "cr", revision=1, data={"spec": {}}),
        ("NAME", "CONTROLLER", "REVISION", "AGE"),
        {"metadata": {"labels": {"a": "b"}}},
        (("revision",), -1, "revision: Invalid value: -1"),
    ),
    "ingresses": Case(
        _obj(
            "networking.k8s.io/v1",
            "Ingress",
            "web",
            spec={
                "rules": [
                    {
                        "host": "web.example.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": "web", "port": {"number": 80}}},
                                }
                            ]
                        },
                    }
                ]
            },
        ),
        ("NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"),
        {"spec": {"ingressClassName": "nginx"}},
        (("spec", "rules"), [], "either `defaultBackend` or `rules` must be specified"),
        short_name="ing",
    ),
    "ingressclasses": Case(
        _obj("networking.k8s.io/v1", "IngressClass", "nginx", spec={"controller": "k8s.io/nginx"}),
        ("NAME", "CONTROLLER", "PARAMETERS", "AGE"),
        {"metadata": {"labels": {"a": "b"}}},
        (("spec", "controller"), "", "spec.controller: Required value"),
    ),
    "networkpolicies": Case(
        _obj(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            "deny",
            spec={
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"ports": [{"port": 80}]}],
            },
        ),
        ("NAME", "POD-SELECTOR", "AGE"),
        {"spec": {"podSelector": {"matchLabels": {"app": "api"}}}},
        (("spec", "policyTypes"), ["Sideways"], 'Unsupported value: "Sideways"'),
        short_name="netpol",
        defaults={
            "spec": {"policyTypes": ["Ingress"], "ingress": [{"ports": [{"protocol": "TCP"}]}]}
        },
    ),
    "roles": Case(
        _obj(
            "rbac.authorization.k8s.io/v1",
            "Role",
            "reader",
            rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        ),
        ("NAME", "CREATED AT"),
        {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
        (
            ("rules",),
            [{"apiGroups": [""], "resources": ["pods"]}],
            "rules[0].verbs: Required value",
        ),
    ),
    "clusterroles": Case(
        _obj(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            "k8sdr-reader",
            rules=[{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}],
        ),
        ("NAME", "CREATED AT"),
        {"metadata": {"labels": {"a": "b"}}},
        (("rules",), [{"verbs": ["get"]}], "rules[0].apiGroups: Required value"),
    ),
    "rolebindings": Case(
        _obj(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            "read-pods",
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            subjects=[{"kind": "User", "name": "jane"}],
        ),
        ("NAME", "ROLE", "AGE"),
        {"subjects": [{"kind": "Group", "name": "ops"}]},
        (("roleRef", "kind"), "Team", 'roleRef.kind: Unsupported value: "Team"'),
        defaults={"subjects": [{"apiGroup": "rbac.authorization.k8s.io"}]},
    ),
    "clusterrolebindings": Case(
        _obj(
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            "k8sdr-read",
            roleRef={
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "view",
            },
            subjects=[{"kind": "ServiceAccount", "name": "default", "namespace": "default"}],
        ),
        ("NAME", "ROLE", "AGE"),
        {"metadata": {"labels": {"a": "b"}}},
        (
            ("subjects",),
            [{"kind": "ServiceAccount", "name": "x"}],
            "subjects[0].namespace: Required value",
        ),
    ),
    "horizontalpodautoscalers": Case(
        _obj(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "web",
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "maxReplicas": 5,
            },
        ),
        ("NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"),
        {"spec": {"maxReplicas": 7}},
        (("spec", "maxReplicas"), 0, "spec.maxReplicas: Invalid value: 0"),
        short_name="hpa",
        defaults={"spec": {"minReplicas": 1}, "status": {"currentReplicas": 0}},
    ),
    "events.events.k8s.io": Case(
        _obj(
            "events.k8s.io/v1",
            "Event",
            "web.1",
            eventTime="2026-01-01T00:00:00.000000Z",
            reportingController="k8sdr.io/test",
            reportingInstance="test-1",
            action="Testing",
            reason="Tested",
            type="Normal",
            note="hello",
            regarding={"kind": "Pod", "name": "web", "apiVersion": "v1"},
        ),
        ("LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"),
        {"note": "changed"},
        (("metadata", "name"), "Bad_Name", "metadata.name: Invalid value"),
    ),
}


def _subset(want: Any, have: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_subset(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list) and want and isinstance(want[0], dict):
        return (
            isinstance(have, list)
            and len(have) == len(want)
            and all(_subset(w, h) for w, h in zip(want, have, strict=True))
        )
    return bool(want == have)


def _broken(case: Case, name: str) -> dict[str, Any]:
    obj = copy.deepcopy(case.manifest)
    obj["metadata"]["name"] = name
    *parents, leaf = case.broken[0]
    target = obj
    for key in parents:
        target = target.setdefault(key, {})
    target[leaf] = case.broken[1]
    return obj


@pytest.fixture(scope="module")
def dyn(sim_client: client.ApiClient) -> DynamicClient:
    return DynamicClient(sim_client)


@pytest.mark.parametrize("plural", sorted(CASES))
def test_kind_round_trip(plural: str, kubectl: Kubectl, dyn: DynamicClient, sim_ns: str) -> None:
    case = CASES[plural]
    api_version, kind = case.manifest["apiVersion"], case.manifest["kind"]
    api = dyn.resources.get(api_version=api_version, kind=kind)
    ns = ["-n", sim_ns] if api.namespaced else []
    namespace = sim_ns if api.namespaced else None
    name = case.manifest["metadata"]["name"]

    out = kubectl("apply", *ns, "-f", "-", stdin=yaml.safe_dump(case.manifest)).stdout
    assert f"{kind.lower()}" in out, out
    assert "created" in out, out
    try:
        got = json.loads(kubectl("get", plural, name, *ns, "-o", "json").stdout)
        assert _subset(case.defaults, got), got
        table = kubectl("get", case.short_name or plural, *ns).stdout
        assert table.splitlines()[0].split() == " ".join(case.header).split(), table
        assert len(table.splitlines()) > 1, table
        assert f"/{name}" in kubectl("get", plural, *ns, "-o", "name").stdout

        listed = api.get(namespace=namespace)
        rv = listed.metadata.resourceVersion
        api.patch(
            name=name,
            namespace=namespace,
            body=case.patch,
            content_type="application/merge-patch+json",
        )
        seen = []
        for event in api.watch(namespace=namespace, resource_version=rv, timeout=5):
            seen.append((event["type"], event["object"].metadata.name))
            if seen[-1] == ("MODIFIED", name):
                break
        assert ("MODIFIED", name) in seen, seen
        assert _subset(case.patch, api.get(name=name, namespace=namespace).to_dict())

        bad = kubectl(
            "apply", *ns, "-f", "-", stdin=yaml.safe_dump(_broken(case, "bad-one")), check=False
        )
        assert bad.returncode != 0
        assert "is invalid" in bad.stderr, bad.stderr
        assert case.broken[2] in bad.stderr, bad.stderr
    finally:
        api.delete(name=name, namespace=namespace)
    with pytest.raises(NotFoundError):
        api.get(name=name, namespace=namespace)


def test_discovery_lists_new_kinds_with_short_names(kubectl: Kubectl) -> None:
    rows = kubectl("api-resources", "--no-headers").stdout.splitlines()
    by_name = {r.split()[0]: r.split() for r in rows}
    for key, case in CASES.items():
        plural = key.split(".")[0]
        assert plural in by_name, rows
        if case.short_name:
            assert case.short_name in by_name[plural], by_name[plural]


def test_system_priority_classes_exist(kubectl: Kubectl) -> None:
    table = kubectl("get", "priorityclasses", "--no-headers").stdout
    values = {line.split()[0]: line.split()[1] for line in table.splitlines()}
    assert values["system-node-critical"] == "2000001000"
    assert values["system-cluster-critical"] == "2000000000"


def test_pvc_spec_is_immutable_but_may_grow(core: client.CoreV1Api, sim_ns: str) -> None:
    body = CASES["persistentvolumeclaims"].manifest
    core.create_namespaced_persistent_volume_claim(sim_ns, body)
    core.patch_namespaced_persistent_volume_claim(
        "pvc-a", sim_ns, {"spec": {"resources": {"requests": {"storage": "5Gi"}}}}
    )
    with pytest.raises(client.ApiException) as err:
        core.patch_namespaced_persistent_volume_claim(
            "pvc-a", sim_ns, {"spec": {"accessModes": ["ReadWriteMany"]}}
        )
    assert err.value.status == 422
    assert "spec is immutable after creation" in json.loads(err.value.body)["message"]


def test_pv_status_subresource(core: client.CoreV1Api) -> None:
    body = copy.deepcopy(CASES["persistentvolumes"].manifest)
    body["metadata"]["name"] = "pv-status"
    core.create_persistent_volume(body)
    try:
        core.patch_persistent_volume_status("pv-status", {"status": {"phase": "Available"}})
        pv = core.read_persistent_volume("pv-status")
        assert pv.status.phase == "Available"
        # A main-resource write does not touch the status.
        core.patch_persistent_volume("pv-status", {"status": {"phase": "Failed"}})
        assert core.read_persistent_volume("pv-status").status.phase == "Available"
    finally:
        core.delete_persistent_volume("pv-status")


def test_hpa_is_served_at_v1_and_v2(
    sim_client: client.ApiClient, kubectl: Kubectl, sim_ns: str
) -> None:
    v1 = client.AutoscalingV1Api(sim_client)
    v2 = client.AutoscalingV2Api(sim_client)
    body = {
        "metadata": {"name": "api"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
            "minReplicas": 2,
            "maxReplicas": 6,
            "targetCPUUtilizationPercentage": 60,
        },
    }
    v1.create_namespaced_horizontal_pod_autoscaler(sim_ns, body)
    stored = v2.read_namespaced_horizontal_pod_autoscaler("api", sim_ns)
    metric = stored.spec.metrics[0].resource
    assert (metric.name, metric.target.average_utilization) == ("cpu", 60)
    # A v2-only metric survives a v1 round trip (kept in an annotation, as upstream).
    v2.patch_namespaced_horizontal_pod_autoscaler(
        "api",
        sim_ns,
        {
            "spec": {
                "metrics": [
                    sim_client.sanitize_for_serialization(stored.spec.metrics[0]),
                    {
                        "type": "Pods",
                        "pods": {
                            "metric": {"name": "rps"},
                            "target": {"type": "AverageValue", "averageValue": "10"},
                        },
                    },
                ]
            }
        },
    )
    old = v1.read_namespaced_horizontal_pod_autoscaler("api", sim_ns)
    assert old.spec.target_cpu_utilization_percentage == 60
    assert "autoscaling.alpha.kubernetes.io/metrics" in old.metadata.annotations
    v1.patch_namespaced_horizontal_pod_autoscaler("api", sim_ns, {"spec": {"maxReplicas": 9}})
    now = v2.read_namespaced_horizontal_pod_autoscaler("api", sim_ns)
    assert now.spec.max_replicas == 9
    assert sorted(m.type for m in now.spec.metrics) == ["Pods", "Resource"]
    assert not now.metadata.annotations
    listed = v1.list_namespaced_horizontal_pod_autoscaler(sim_ns)
    assert listed.items[0].spec.target_cpu_utilization_percentage == 60
    table = kubectl("get", "hpa", "-n", sim_ns).stdout
    assert "Deployment/api" in table
    assert "cpu: <unknown>/60%" in table


def test_events_k8s_io_share_core_events(sim_client: client.ApiClient, sim_ns: str) -> None:
    core = client.CoreV1Api(sim_client)
    events = client.EventsV1Api(sim_client)
    core.create_namespaced_event(
        sim_ns,
        {
            "metadata": {"name": "e1"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": sim_ns},
            "reason": "Started",
            "message": "started it",
            "type": "Normal",
            "source": {"component": "kubelet"},
            "count": 2,
            # events.k8s.io requires eventTime; the client rejects an Event without it.
            "eventTime": "2026-01-01T00:00:00.000000Z",
        },
    )
    seen = events.read_namespaced_event("e1", sim_ns)
    assert (seen.note, seen.regarding.name, seen.deprecated_count) == ("started it", "web", 2)
    assert seen.deprecated_source.component == "kubelet"
    events.patch_namespaced_event("e1", sim_ns, {"note": "changed"})
    assert core.read_namespaced_event("e1", sim_ns).message == "changed"
    names = [e.metadata.name for e in events.list_namespaced_event(sim_ns).items]
    assert names == ["e1"]


def test_replication_controller_scale(core: client.CoreV1Api, sim_ns: str) -> None:
    body = CASES["replicationcontrollers"].manifest
    core.create_namespaced_replication_controller(sim_ns, body)
    scale = core.read_namespaced_replication_controller_scale("rc", sim_ns)
    assert scale.status.selector == "app=rc"
    core.patch_namespaced_replication_controller_scale("rc", sim_ns, {"spec": {"replicas": 4}})
    assert core.read_namespaced_replication_controller("rc", sim_ns).spec.replicas == 4


def test_role_binding_role_ref_is_immutable(sim_client: client.ApiClient, sim_ns: str) -> None:
    rbac = client.RbacAuthorizationV1Api(sim_client)
    rbac.create_namespaced_role_binding(sim_ns, CASES["rolebindings"].manifest)
    with pytest.raises(client.ApiException) as err:
        rbac.patch_namespaced_role_binding(
            "read-pods", sim_ns, {"roleRef": {"kind": "ClusterRole", "name": "view"}}
        )
    assert err.value.status == 422
    assert "cannot change roleRef" in json.loads(err.value.body)["message"]


@pytest.mark.parametrize(
    ("plural", "header"),
    [
        ("configmaps", "NAME DATA AGE"),
        ("secrets", "NAME TYPE DATA AGE"),
        ("serviceaccounts", "NAME SECRETS AGE"),
        ("endpoints", "NAME ENDPOINTS AGE"),
        ("leases", "NAME HOLDER AGE"),
        ("endpointslices", "NAME ADDRESSTYPE PORTS ENDPOINTS AGE"),
        ("poddisruptionbudgets", "NAME MIN AVAILABLE MAX UNAVAILABLE ALLOWED DISRUPTIONS AGE"),
    ],
)
def test_existing_kinds_print_upstream_columns(
    plural: str, header: str, kubectl: Kubectl, core: client.CoreV1Api, sim_ns: str
) -> None:
    core.create_namespaced_config_map(sim_ns, {"metadata": {"name": "c"}, "data": {"a": "b"}})
    core.create_namespaced_secret(sim_ns, {"metadata": {"name": "s"}, "stringData": {"a": "b"}})
    core.create_namespaced_endpoints(sim_ns, {"metadata": {"name": "e"}})
    core.create_namespaced_service_account(sim_ns, {"metadata": {"name": "sa"}})
    kubectl(
        "apply",
        "-n",
        sim_ns,
        "-f",
        "-",
        stdin=yaml.safe_dump_all(
            [
                _obj("coordination.k8s.io/v1", "Lease", "l", spec={"holderIdentity": "me"}),
                _obj(
                    "discovery.k8s.io/v1", "EndpointSlice", "es", addressType="IPv4", endpoints=[]
                ),
                _obj(
                    "policy/v1",
                    "PodDisruptionBudget",
                    "pdb",
                    spec={"minAvailable": 1, "selector": {"matchLabels": {"app": "x"}}},
                ),
            ]
        ),
    )
    table = kubectl("get", plural, "-n", sim_ns).stdout
    assert table.splitlines()[0].split() == header.split(), table
