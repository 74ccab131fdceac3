"""API discovery (/api, /apis, the APIResourceLists) and the skeletal OpenAPI v3 document.

Not modelled: aggregated discovery (clients fall back to the legacy documents); OpenAPI v2
(404) and schemas (the v3 document lets kubectl leave validation to the server).
"""

from __future__ import annotations

from collections.abc import Callable

from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apiserver.registry.resources import GROUPS

__all__ = [
    "KUBE_VERSION",
    "api_group",
    "api_group_list",
    "api_versions",
    "openapi",
    "resource_list",
]

KUBE_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-k8sdr-sim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_CATEGORIES_ALL = frozenset(
    {"pods", "services", "deployments", "replicasets", "statefulsets", "daemonsets"}
)


def api_versions(host: str) -> JSON:
    """The /api document."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
    }


def _group_doc(group: str) -> JSON:
    gv = {"groupVersion": f"{group}/v1", "version": "v1"}
    return {"name": group, "versions": [gv], "preferredVersion": gv}


def api_group_list() -> JSON:
    """The /apis document."""
    groups = [_group_doc(g) for g in GROUPS if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str) -> JSON:
    """The /apis/GROUP document; 404 for a group not served."""
    if group not in GROUPS or not group:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group)}


def resource_list(group: str, has_subresource: Callable[[str, str], bool]) -> JSON:
    """The APIResourceList of a group; `has_subresource(plural, sub)` says what is served."""
    resources: list[JSON] = []
    for r in GROUPS[group]:
        entry: JSON = {
            "name": r.plural,
            "singularName": r.kind.lower(),
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": [
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ],
            "storageVersionHash": "",
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.plural in _CATEGORIES_ALL:
            entry["categories"] = ["all"]
        resources.append(entry)
        for sub in sorted(r.subresources):
            if sub == "eviction" and not has_subresource(r.plural, "eviction"):
                continue
            sub_entry: JSON = {
                "name": f"{r.plural}/{sub}",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }
            if sub == "scale":
                sub_entry.update(kind="Scale", group="autoscaling", version="v1")
            elif sub == "eviction":
                sub_entry.update(kind="Eviction", group="policy", version="v1", verbs=["create"])
            elif sub == "binding":
                sub_entry.update(kind="Binding", verbs=["create"])
            resources.append(sub_entry)
    gv = f"{group}/v1" if group else "v1"
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }


def openapi(parts: list[str]) -> JSON:
    """A skeletal OpenAPI v3 document, only what kubectl reads.

    kubectl learns from it that the server validates fields itself, so it skips client-side
    schema validation (cli-runtime resource/query_param_verifier_v3.go looks for a PATCH
    operation of the kind with a `fieldValidation` parameter).
    """
    if parts[:1] != ["v3"]:
        raise ApiError(404, "NotFound", "OpenAPI v2 is not served by the simulator")
    if len(parts) == 1:
        paths = {}
        for group in GROUPS:
            key = f"apis/{group}/v1" if group else "api/v1"
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash=K8SDRSIM"}
        return {"paths": paths}
    key = "/".join(parts[1:])
    group = parts[2] if parts[1] == "apis" and len(parts) > 2 else ""
    if key != (f"apis/{group}/v1" if group else "api/v1") or group not in GROUPS:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    doc_paths: JSON = {}
    params = [
        {"name": n, "in": "query", "schema": {"type": "string"}}
        for n in ("dryRun", "fieldManager", "fieldValidation", "force")
    ]
    for r in GROUPS[group]:
        prefix = f"/apis/{group}/v1" if group else "/api/v1"
        ns = "/namespaces/{namespace}" if r.namespaced else ""
        gvk = {"group": group, "version": "v1", "kind": r.kind}
        doc_paths[f"{prefix}{ns}/{r.plural}/{{name}}"] = {
            "patch": {
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
            },
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": doc_paths,
        "components": {"schemas": {}},
    }
