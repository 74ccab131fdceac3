"""API discovery (/api, /apis, the APIResourceLists) and the OpenAPI v3 documents.

Each group/version's OpenAPI v3 document carries the schemas of its kinds (generated from
the official client's models by ci/gen/openapi_schemas.py, one file per group/version under
`openapi/`), so `kubectl explain` works, and a PATCH operation per kind with the
`fieldValidation` parameter, which tells kubectl the server validates fields itself.
The same schemas find a body's unknown fields (`unknown_fields`, for the `fieldValidation`
query parameter), as the API server's strict decoding does; a kind without a schema, a field
typed as one of several types or left open (`x-kubernetes-preserve-unknown-fields`) accepts
anything.
Not modelled: aggregated discovery (clients fall back to the legacy documents); OpenAPI v2
(404); operations other than that PATCH.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from importlib import resources

from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType
from pytest_k8sdr.sim.apiserver.registry.apiextensions import CustomResource
from pytest_k8sdr.sim.apiserver.registry.reviews import REVIEWS

# group -> version -> the types served there (`Store.group_versions`).
GroupVersions = dict[str, dict[str, list[ResourceType]]]

__all__ = [
    "KUBE_VERSION",
    "api_group",
    "api_group_list",
    "api_versions",
    "openapi",
    "resource_list",
    "unknown_fields",
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
    {
        "pods",
        "services",
        "deployments",
        "replicasets",
        "statefulsets",
        "daemonsets",
        "replicationcontrollers",
        "horizontalpodautoscalers",
        "jobs",
        "cronjobs",
    }
)


def api_versions(host: str) -> JSON:
    """The /api document."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
    }


def _version_priority(version: str) -> tuple[int, int, int]:
    """The sort key of Kubernetes version order: GA, beta, alpha, higher numbers first.

    As apimachinery/pkg/version/helpers.go CompareKubeAwareVersionStrings; others last.
    """
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if m is None:
        return (0, 0, 0)
    stage = {"alpha": 1, "beta": 2, None: 3}[m.group(2)]
    return (stage, int(m.group(1)), int(m.group(3) or 0))


def _versions(group: str, gvs: GroupVersions) -> list[str]:
    """The group's versions, preferred first (v2 before v1, as upstream orders GA versions)."""
    return sorted(gvs[group], key=_version_priority, reverse=True)


def _group_doc(group: str, gvs: GroupVersions) -> JSON:
    docs = [{"groupVersion": f"{group}/{v}", "version": v} for v in _versions(group, gvs)]
    return {"name": group, "versions": docs, "preferredVersion": docs[0]}


def api_group_list(gvs: GroupVersions) -> JSON:
    """The /apis document."""
    groups = [_group_doc(g, gvs) for g in gvs if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str, gvs: GroupVersions) -> JSON:
    """The /apis/GROUP document; 404 for a group not served."""
    if group not in gvs or not group:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, gvs)}


def resource_list(
    group: str,
    version: str,
    has_subresource: Callable[[str, str], bool],
    gvs: GroupVersions,
    custom: dict[str, CustomResource],
) -> JSON:
    """The APIResourceList of a group version; `has_subresource(plural, sub)`: is it served."""
    resources: list[JSON] = []
    for r in gvs[group][version]:
        entry: JSON = {
            "name": r.plural,
            "singularName": r.kind.lower(),
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": ["create"]
            if (group, version, r.plural) in REVIEWS
            else [
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
        served = custom.get(r.key)
        if served is not None and served.categories:
            entry["categories"] = list(served.categories)
        resources.append(entry)
        for sub in sorted(r.subresources):
            if sub in ("eviction", "token") and not has_subresource(r.plural, sub):
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
            elif sub == "token":
                sub_entry.update(
                    kind="TokenRequest",
                    group="authentication.k8s.io",
                    version="v1",
                    verbs=["create"],
                )
            resources.append(sub_entry)
    gv = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }


def openapi(parts: list[str], gvs: GroupVersions, custom: dict[str, CustomResource]) -> JSON:
    """A skeletal OpenAPI v3 document, only what kubectl reads.

    kubectl learns from it that the server validates fields itself, so it skips client-side
    schema validation (cli-runtime resource/query_param_verifier_v3.go looks for a PATCH
    operation of the kind with a `fieldValidation` parameter). The create-only reviews have a
    POST operation instead, as upstream's documents.
    """
    if parts[:1] != ["v3"]:
        raise ApiError(404, "NotFound", "OpenAPI v2 is not served by the simulator")
    if len(parts) == 1:
        paths = {}
        for group, versions in gvs.items():
            for version in versions:
                key = f"apis/{group}/{version}" if group else f"api/{version}"
                paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash=K8SDRSIM"}
        return {"paths": paths}
    key = "/".join(parts[1:])
    if parts[1] == "apis" and len(parts) == 4:
        group, version = parts[2], parts[3]
    elif parts[1] == "api" and len(parts) == 3:
        group, version = "", parts[2]
    else:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    types = gvs.get(group, {}).get(version)
    if types is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    doc_paths: JSON = {}
    params = [
        {"name": n, "in": "query", "schema": {"type": "string"}}
        for n in ("dryRun", "fieldManager", "fieldValidation", "force")
    ]
    prefix = f"/{key}"
    for r in types:
        ns = "/namespaces/{namespace}" if r.namespaced else ""
        operation = {
            "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": r.kind},
            "parameters": params,
            "responses": {"200": {"description": "OK"}},
        }
        if (group, version, r.plural) in REVIEWS:
            doc_paths[f"{prefix}/{r.plural}"] = {
                "post": {"x-kubernetes-action": "post", **operation}
            }
        else:
            doc_paths[f"{prefix}{ns}/{r.plural}/{{name}}"] = {
                "patch": {"x-kubernetes-action": "patch", **operation}
            }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": doc_paths,
        "components": {"schemas": {**_schemas(group, version), **_custom_schemas(types, custom)}},
    }


def _custom_schemas(types: list[ResourceType], custom: dict[str, CustomResource]) -> JSON:
    """The CRDs' schemas of a group/version, as apiextensions-apiserver publishes them.

    pkg/controller/openapi/builder/builder.go: the schema with apiVersion, kind and
    metadata, named by the reversed group, tagged with x-kubernetes-group-version-kind.
    """
    out: JSON = {}
    for r in types:
        served = custom.get(r.key)
        if served is None:
            continue
        schema = json.loads(json.dumps(served.schemas.get(r.version) or {"type": "object"}))
        props = schema.setdefault("properties", {})
        props.setdefault(
            "apiVersion",
            {
                "type": "string",
                "description": "APIVersion defines the versioned schema of this "
                "representation of an object.",
            },
        )
        props.setdefault(
            "kind",
            {
                "type": "string",
                "description": "Kind is a string value representing the "
                "REST resource this object represents.",
            },
        )
        props["metadata"] = {
            "allOf": [{"$ref": f"#/components/schemas/{_OBJECT_META}"}],
            "description": "Standard object's metadata.",
        }
        schema["x-kubernetes-group-version-kind"] = [
            {"group": r.group, "version": r.version, "kind": r.kind}
        ]
        out[f"{_reversed(r.group)}.{r.version}.{r.kind}"] = schema
        out.update(_meta_schemas())
    return out


def _reversed(group: str) -> str:
    return ".".join(reversed(group.split(".")))


_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


@functools.cache
def _meta_schemas() -> JSON:
    """ObjectMeta and what it refers to, under apimachinery's names, from the core schemas."""
    core = _schemas("", "v1")
    out: JSON = {}
    for short in ("ObjectMeta", "ManagedFieldsEntry", "OwnerReference"):
        schema = core.get(f"io.k8s.api.core.v1.{short}")
        if schema is not None:
            text = json.dumps(schema).replace(
                "#/components/schemas/io.k8s.api.core.v1.",
                "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.",
            )
            out[f"io.k8s.apimachinery.pkg.apis.meta.v1.{short}"] = json.loads(text)
    return out


@functools.cache
def _schemas(group: str, version: str) -> JSON:
    """The group/version's schemas (generated by ci/gen/openapi_schemas.py), {} if none."""
    name = f"{group or 'core'}_{version}.json"
    try:
        raw = resources.files("pytest_k8sdr.sim.apiserver").joinpath("openapi", name).read_text()
    except FileNotFoundError:
        return {}
    schemas: JSON = json.loads(raw)["schemas"]
    return schemas


@functools.cache
def _kinds(group: str, version: str) -> dict[str, str]:
    name = f"{group or 'core'}_{version}.json"
    try:
        raw = resources.files("pytest_k8sdr.sim.apiserver").joinpath("openapi", name).read_text()
    except FileNotFoundError:
        return {}
    kinds: dict[str, str] = json.loads(raw)["kinds"]
    return kinds


def unknown_fields(
    group: str, version: str, kind: str, body: object, *, prune: bool = False
) -> list[str]:
    """The paths of `body`'s fields its kind's schema does not know (`spec.replicass`).

    Patch directives (keys starting with `$`) are not fields. A kind without a schema has none.
    `prune` also removes them from `body`, as decoding drops them upstream.
    """
    schema = _kinds(group, version).get(kind)
    if schema is None:
        return []
    found: list[str] = []
    ref = {"$ref": f"#/components/schemas/{schema}"}
    _walk(_schemas(group, version), ref, body, "", found, prune)
    return found


def _resolve(schemas: JSON, node: JSON) -> JSON:
    for _ in range(8):
        if "$ref" in node:
            node = schemas.get(str(node["$ref"]).rsplit("/", 1)[-1], {})
        elif len(node.get("allOf") or []) == 1:
            node = node["allOf"][0]
        else:
            break
    return node


def _walk(
    schemas: JSON, node: JSON, value: object, path: str, found: list[str], prune: bool
) -> None:
    node = _resolve(schemas, node)
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        props = node.get("properties")
        extra = node.get("additionalProperties")
        unknown: list[str] = []
        for key, child in value.items():
            if not isinstance(key, str) or key.startswith("$"):
                continue
            where = f"{path}.{key}" if path else key
            if isinstance(props, dict):
                if key not in props:
                    found.append(where)
                    unknown.append(key)
                else:
                    _walk(schemas, props[key], child, where, found, prune)
            elif isinstance(extra, dict):
                _walk(schemas, extra, child, where, found, prune)
        if prune:
            for key in unknown:
                del value[key]
    elif isinstance(value, list):
        items = node.get("items")
        if isinstance(items, dict):
            for i, child in enumerate(value):
                _walk(schemas, items, child, f"{path}[{i}]", found, prune)
