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
}


def _subset(want: Any, have: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_subset(v, have.get(k)) for k, v in want.items())
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
        assert any(line.split()[0] == name for line in table.splitlines()[1:]), table

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
    for plural, case in CASES.items():
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
