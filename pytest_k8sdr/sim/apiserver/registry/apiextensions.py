"""The apiextensions.k8s.io group: CustomResourceDefinitions and the resources they define.

As upstream's apiextensions-apiserver (staging/src/k8s.io/apiextensions-apiserver):

- `CustomResourceDefinitionStrategy`: pkg/registry/customresourcedefinition/strategy.go
  (status reset on create, status.storedVersions) with the defaults of
  pkg/apis/apiextensions/v1/defaults.go and the checks of
  pkg/apis/apiextensions/validation/validation.go a client trips over (name, group, scope,
  names, exactly one storage version, a structural root schema).
- `crd_status`: what the naming controller (pkg/controller/status/naming_controller.go,
  calculateNamesAndConditions: NamesAccepted, acceptedNames, name conflicts within the
  group) and the establishing controller (pkg/controller/establish/
  establishing_controller.go: Established True, InitialNamesAccepted) write. The simulator
  does both in the CRD's own write, so a CRD answers Established at once.
- `CustomResource`: the served types of one CRD (its storage version, the other served
  versions as views converted with the None strategy: only apiVersion changes), its
  subresources, printer columns and schemas.
- `CustomResourceStrategy`: pkg/registry/customresource/strategy.go with the structural
  schema's pruning (pkg/apiserver/schema/pruning/algorithm.go: unknown fields dropped unless
  x-kubernetes-preserve-unknown-fields; apiVersion, kind and metadata kept at the root and in
  x-kubernetes-embedded-resource objects), defaulting (pkg/apiserver/schema/defaulting/
  algorithm.go: a missing or null non-nullable property takes its default) and the schema
  checks of type, enum and required (422 with field paths).

Not modelled: conversion webhooks (only the None strategy), CEL validation rules
(x-kubernetes-validations), formats and numeric bounds, selectableFields, the metadata
pruning of ObjectMeta fields.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pytest_k8sdr.sim.apimachinery.clock import now_rfc3339
from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.selectors import selector_text
from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType
from pytest_k8sdr.sim.apiserver.registry.strategy import (
    Cause,
    Resource,
    Strategy,
    Version,
    cause,
    immutable,
    required,
    unsupported,
)

__all__ = [
    "CRD_PLURAL",
    "RESOURCES",
    "CustomResource",
    "CustomResourceStrategy",
    "crd_status",
    "json_path",
]

CRD_PLURAL = "customresourcedefinitions"
_SCOPES = ("Cluster", "Namespaced")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ROOT_FIELDS = ("apiVersion", "kind", "metadata")


def _storage_version(spec: JSON) -> str | None:
    stored = [v.get("name") for v in spec.get("versions") or [] if v.get("storage")]
    return str(stored[0]) if len(stored) == 1 else None


class CustomResourceDefinitionStrategy(Strategy):
    """The CRD registry's strategy; see the module doc."""

    track_generation: ClassVar[bool] = True

    def prepare_for_create(self, obj: JSON) -> None:
        """An empty status but for storedVersions (strategy.go PrepareForCreate)."""
        storage = _storage_version(obj.get("spec") or {})
        obj["status"] = {
            "conditions": [],
            "acceptedNames": {"plural": "", "kind": ""},
            "storedVersions": [storage] if storage else [],
        }

    def default(self, obj: JSON) -> None:
        """SetDefaults_CustomResourceDefinitionSpec and the versions' defaults."""
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        names = spec.get("names")
        if isinstance(names, dict) and names.get("kind"):
            names.setdefault("singular", str(names["kind"]).lower())
            names.setdefault("listKind", f"{names['kind']}List")
        spec.setdefault("conversion", {"strategy": "None"})
        status = obj.get("status")
        storage = _storage_version(spec)
        if isinstance(status, dict) and storage:
            stored = status.setdefault("storedVersions", [])
            if storage not in stored:
                stored.append(storage)  # strategy.go PrepareForUpdate: a new storage version

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """ValidateCustomResourceDefinition{,Update}, the checks a client trips over."""
        causes: list[Cause] = []
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        group = str(spec.get("group") or "")
        names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
        assert isinstance(names, dict)
        plural = str(names.get("plural") or "")
        name = str((obj.get("metadata") or {}).get("name", ""))
        if name != f"{plural}.{group}":
            causes.append(
                cause(
                    "metadata.name",
                    f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                )
            )
        if not group:
            causes.append(required("spec.group"))
        elif "." not in group:
            causes.append(
                cause(
                    "spec.group",
                    f'Invalid value: "{group}": should be a domain with at least one dot',
                )
            )
        if spec.get("scope") not in _SCOPES:
            causes.append(unsupported("spec.scope", spec.get("scope"), _SCOPES))
        if not plural:
            causes.append(required("spec.names.plural"))
        elif not _DNS_LABEL.match(plural):
            causes.append(
                cause(
                    "spec.names.plural",
                    f'Invalid value: "{plural}": a lowercase RFC 1123 label must consist of '
                    "lower case alphanumeric characters or '-'",
                )
            )
        if not names.get("kind"):
            causes.append(required("spec.names.kind"))
        versions = spec.get("versions")
        if not isinstance(versions, list) or not versions:
            causes.append(
                required("spec.versions", "must have exactly one version marked as storage version")
            )
        else:
            if sum(1 for v in versions if isinstance(v, dict) and v.get("storage")) != 1:
                causes.append(
                    cause(
                        "spec.versions",
                        "Invalid value: must have exactly one version marked as storage version",
                    )
                )
            for i, version in enumerate(versions):
                causes += _validate_version(i, version)
        if old is not None:
            old_spec = old.get("spec") or {}
            if spec.get("scope") != old_spec.get("scope"):
                causes.append(immutable("spec.scope", spec.get("scope")))
            if group != old_spec.get("group"):
                causes.append(immutable("spec.group", group))
        return causes


def _validate_version(i: int, version: Any) -> list[Cause]:
    at = f"spec.versions[{i}]"
    if not isinstance(version, dict) or not version.get("name"):
        return [required(f"{at}.name")]
    causes: list[Cause] = []
    if not isinstance(version.get("served"), bool):
        causes.append(required(f"{at}.served"))
    if not isinstance(version.get("storage"), bool):
        causes.append(required(f"{at}.storage"))
    schema = (version.get("schema") or {}).get("openAPIV3Schema")
    if not isinstance(schema, dict):
        causes.append(required(f"{at}.schema.openAPIV3Schema", "schemas are required"))
    elif schema.get("type") != "object":
        causes.append(
            required(f"{at}.schema.openAPIV3Schema.type", "must not be empty at the root")
            if not schema.get("type")
            else cause(
                f"{at}.schema.openAPIV3Schema.type",
                f'Invalid value: "{schema.get("type")}": must be object at the root',
            )
        )
    return causes


def _condition(kind: str, status: str, reason: str, message: str, old: JSON | None) -> JSON:
    if old is not None and old.get("status") == status and old.get("reason") == reason:
        since = old.get("lastTransitionTime") or now_rfc3339()
    else:
        since = now_rfc3339()
    return {
        "type": kind,
        "status": status,
        "lastTransitionTime": since,
        "reason": reason,
        "message": message,
    }


def crd_status(crd: JSON, others: Iterable[JSON], taken_plurals: Iterable[str]) -> None:
    """Set status.acceptedNames and the NamesAccepted and Established conditions of `crd`.

    `others`: the other CRDs; `taken_plurals`: plurals the simulator serves otherwise.
    As naming_controller.go calculateNamesAndConditions then the establishing controller.
    """
    spec = crd.get("spec") or {}
    group = spec.get("group")
    requested: JSON = spec.get("names") or {}
    status = crd.setdefault("status", {})
    accepted: JSON = dict(status.get("acceptedNames") or {})
    resources: set[str] = set(taken_plurals)
    kinds: set[str] = set()
    for other in others:
        if (other.get("spec") or {}).get("group") != group:
            continue
        names = (other.get("status") or {}).get("acceptedNames") or {}
        resources.update(
            n
            for n in (names.get("plural"), names.get("singular"), *(names.get("shortNames") or []))
            if n
        )
        kinds.update(n for n in (names.get("kind"), names.get("listKind")) if n)
    reason = message = ""

    def fresh(field_name: str, used: set[str], why: str) -> None:
        nonlocal reason, message
        want = requested.get(field_name)
        if want == accepted.get(field_name) or want not in used:
            if want is not None:
                accepted[field_name] = want
            return
        reason, message = why, f'"{want}" is already in use'

    fresh("plural", resources, "PluralConflict")
    fresh("singular", resources, "SingularConflict")
    short = [s for s in requested.get("shortNames") or [] if s in resources]
    if short:
        reason, message = "ShortNamesConflict", f'"{short[0]}" is already in use'
    elif requested.get("shortNames"):
        accepted["shortNames"] = requested["shortNames"]
    fresh("kind", kinds, "KindConflict")
    fresh("listKind", kinds, "ListKindConflict")
    if requested.get("categories"):
        accepted["categories"] = requested["categories"]
    old_conditions = {c.get("type"): c for c in status.get("conditions") or []}
    conditions = [
        c
        for c in status.get("conditions") or []
        if c.get("type") not in ("NamesAccepted", "Established")
    ]
    if reason:
        named = _condition(
            "NamesAccepted", "False", reason, message, old_conditions.get("NamesAccepted")
        )
        established = old_conditions.get("Established") or _condition(
            "Established", "False", "NotAccepted", "not all names are accepted", None
        )
    else:
        named = _condition(
            "NamesAccepted",
            "True",
            "NoConflicts",
            "no conflicts found",
            old_conditions.get("NamesAccepted"),
        )
        established = _condition(
            "Established",
            "True",
            "InitialNamesAccepted",
            "the initial names have been accepted",
            old_conditions.get("Established"),
        )
    status["acceptedNames"] = accepted
    status["conditions"] = [named, established, *conditions]


def _is_true(crd: JSON, kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True"
        for c in (crd.get("status") or {}).get("conditions") or []
    )


# -- JSONPath (the subset printer columns and scale paths use) ----------------------------

_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[\?\(@\.([\w.-]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]")


def json_path(obj: Any, path: str) -> Any:
    """The value at a simple JSONPath, `.spec.replicas` or `.a.b[?(@.type=="Ready")].status`.

    None when any step is missing; a filter takes the first match.
    """
    node = obj
    pos = 0
    path = path.strip()
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None:
            return None
        pos = m.end()
        key, index, fkey, fvalue = m.groups()
        if key is not None:
            node = node.get(key) if isinstance(node, dict) else None
        elif index is not None:
            i = int(index)
            node = node[i] if isinstance(node, list) and i < len(node) else None
        else:
            node = (
                next(
                    (
                        x
                        for x in node or []
                        if isinstance(x, dict) and str(json_path(x, "." + fkey)) == fvalue
                    ),
                    None,
                )
                if isinstance(node, list)
                else None
            )
        if node is None:
            return None
    return node


def _set_path(obj: JSON, path: str, value: Any) -> None:
    keys = [k for k in path.strip().lstrip(".").split(".") if k]
    node = obj
    for key in keys[:-1]:
        nxt = node.get(key)
        if not isinstance(nxt, dict):
            nxt = node[key] = {}
        node = nxt
    node[keys[-1]] = value


# -- structural schemas ---------------------------------------------------------------


def prune(obj: Any, schema: JSON, *, root: bool = False) -> None:
    """Drop the fields `schema` does not specify, in place (pruning/algorithm.go)."""
    if isinstance(obj, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        keep_unknown = schema.get("x-kubernetes-preserve-unknown-fields") is True
        embedded = root or schema.get("x-kubernetes-embedded-resource") is True
        for key in list(obj):
            if embedded and key in _ROOT_FIELDS:
                continue
            if isinstance(props, dict) and key in props:
                prune(obj[key], props[key])
            elif isinstance(extra, dict):
                prune(obj[key], extra)
            elif not keep_unknown and extra is not True:
                del obj[key]
    elif isinstance(obj, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in obj:
                prune(item, items)


def apply_defaults(obj: Any, schema: JSON) -> None:
    """Set the defaults of missing properties, in place (defaulting/algorithm.go)."""
    if isinstance(obj, dict):
        props = schema.get("properties")
        if isinstance(props, dict):
            for key, sub in props.items():
                if not isinstance(sub, dict):
                    continue
                if "default" in sub and (
                    key not in obj or (obj[key] is None and not sub.get("nullable"))
                ):
                    obj[key] = copy.deepcopy(sub["default"])
                if key in obj:
                    apply_defaults(obj[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for value in obj.values():
                apply_defaults(value, extra)
    elif isinstance(obj, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in obj:
                apply_defaults(item, items)


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
}


def _type_ok(value: Any, want: str) -> bool:
    if isinstance(value, bool) and want in ("integer", "number"):
        return False
    return isinstance(value, _TYPES.get(want, (object,)))


def check_schema(obj: Any, schema: JSON, at: str, causes: list[Cause]) -> None:
    """Append causes for values of the wrong type, enum or missing required properties."""
    if obj is None:
        if not schema.get("nullable") and schema.get("type"):
            causes.append(
                cause(
                    at,
                    f'Invalid value: "null": {at} in body must be of type {schema["type"]}: "null"',
                    "FieldValueTypeInvalid",
                )
            )
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(obj, (int, str)) or isinstance(obj, bool):
            causes.append(
                cause(at, "Invalid value: must be an integer or a string", "FieldValueTypeInvalid")
            )
        return
    want = schema.get("type")
    if isinstance(want, str) and not _type_ok(obj, want):
        got = (
            "object"
            if isinstance(obj, dict)
            else "array"
            if isinstance(obj, list)
            else (
                "boolean"
                if isinstance(obj, bool)
                else "string"
                if isinstance(obj, str)
                else "number"
            )
        )
        causes.append(
            cause(
                at,
                f'Invalid value: "{got}": {at} in body must be of type {want}: "{got}"',
                "FieldValueTypeInvalid",
            )
        )
        return
    if "enum" in schema and obj not in schema["enum"]:
        causes.append(unsupported(at, obj, tuple(str(e) for e in schema["enum"])))
    if isinstance(obj, dict):
        props = schema.get("properties") or {}
        for key in schema.get("required") or []:
            if key not in obj:
                causes.append(required(f"{at}.{key}" if at else key))
        for key, value in obj.items():
            sub = props.get(key) if isinstance(props, dict) else None
            if sub is None and isinstance(schema.get("additionalProperties"), dict):
                sub = schema["additionalProperties"]
            if isinstance(sub, dict) and not (at == "" and key in _ROOT_FIELDS):
                check_schema(value, sub, f"{at}.{key}" if at else key, causes)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(obj):
            check_schema(item, schema["items"], f"{at}[{i}]", causes)


# -- the served custom resources --------------------------------------------------------


class CustomResourceStrategy(Strategy):
    """customresource/strategy.go: pruning, defaulting and schema checks of the storage version."""

    def __init__(self, schema: JSON, status: bool) -> None:
        self.schema = schema
        self.status = status

    def prepare_for_create(self, obj: JSON) -> None:
        """With a status subresource a create may not set the status."""
        if self.status:
            obj.pop("status", None)

    def default(self, obj: JSON) -> None:
        """Prune unknown fields, then set the schema's defaults."""
        prune(obj, self.schema, root=True)
        apply_defaults(obj, self.schema)

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """The schema's type, enum and required checks."""
        causes: list[Cause] = []
        check_schema(obj, self.schema, "", causes)
        return causes


@dataclass(frozen=True)
class CustomResource:
    """One established CRD's served types; see the module doc."""

    crd_name: str
    type: ResourceType  # the storage version
    views: dict[str, Version]  # other served versions by version name
    schemas: dict[str, JSON]  # openAPIV3Schema by version
    columns: dict[str, list[JSON]]  # additionalPrinterColumns by version
    scale: JSON | None  # the storage version's scale subresource
    categories: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, crd: JSON) -> CustomResource | None:
        """The served form of `crd`; None while it is not Established (or its names are taken)."""
        if not (_is_true(crd, "Established") and _is_true(crd, "NamesAccepted")):
            return None
        if (crd.get("metadata") or {}).get("deletionTimestamp"):
            return None
        spec = crd["spec"]
        names = crd["status"].get("acceptedNames") or spec["names"]
        storage = _storage_version(spec)
        group = spec["group"]

        def rtype(version: JSON) -> ResourceType:
            subs = version.get("subresources") or {}
            return ResourceType(
                group,
                version["name"],
                names["plural"],
                names["kind"],
                spec["scope"] == "Namespaced",
                tuple(names.get("shortNames") or ()),
                frozenset(s for s in ("status", "scale") if s in subs),
                storage_key=f"{names['plural']}.{group}",
            )

        versions = {v["name"]: v for v in spec["versions"]}
        stored = versions[storage]
        stored_type = rtype(stored)
        views: dict[str, Version] = {}
        for name, version in versions.items():
            if name == storage or not version.get("served"):
                continue
            view_type = rtype(version)
            views[name] = Version(
                view_type,
                _retag(view_type.api_version),
                _retag(stored_type.api_version),
            )
        served = {n: v for n, v in versions.items() if v.get("served")}
        return cls(
            crd_name=crd["metadata"]["name"],
            type=stored_type,
            views=views,
            schemas={
                n: (v.get("schema") or {}).get("openAPIV3Schema") or {"type": "object"}
                for n, v in served.items()
            },
            columns={n: list(v.get("additionalPrinterColumns") or []) for n, v in served.items()},
            scale=(stored.get("subresources") or {}).get("scale"),
            categories=tuple(names.get("categories") or ()),
        )

    @property
    def served_versions(self) -> list[str]:
        """The served version names (the storage version if served, then the views)."""
        return list(self.schemas)

    def strategy(self) -> CustomResourceStrategy:
        """The registry strategy of the storage version."""
        return CustomResourceStrategy(
            self.schemas.get(self.type.version, {"type": "object"}),
            "status" in self.type.subresources,
        )

    def scale_of(self, obj: JSON) -> JSON:
        """The autoscaling/v1 Scale read through the CRD's replica paths (scale.go)."""
        scale = self.scale or {}
        meta = obj["metadata"]
        status_path = scale.get("statusReplicasPath")
        selector_path = scale.get("labelSelectorPath")
        selector = json_path(obj, selector_path) if selector_path else None
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"],
                "namespace": meta.get("namespace", ""),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
                "creationTimestamp": meta.get("creationTimestamp"),
            },
            "spec": {"replicas": json_path(obj, scale.get("specReplicasPath", "")) or 0},
            "status": {
                "replicas": (json_path(obj, status_path) if status_path else None) or 0,
                "selector": selector if isinstance(selector, str) else selector_text(selector),
            },
        }

    def set_replicas(self, obj: JSON, replicas: int) -> None:
        """Write spec replicas at the CRD's specReplicasPath."""
        path = (self.scale or {}).get("specReplicasPath")
        if not path:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        _set_path(obj, path, replicas)


def _retag(api_version: str) -> Any:
    def convert(obj: JSON) -> JSON:
        # The None conversion strategy: only apiVersion changes (conversion/nop_converter.go).
        return {**obj, "apiVersion": api_version}

    return convert


RESOURCES = (
    Resource(
        ResourceType(
            "apiextensions.k8s.io",
            "v1",
            CRD_PLURAL,
            "CustomResourceDefinition",
            False,
            ("crd", "crds"),
            frozenset({"status"}),
        ),
        CustomResourceDefinitionStrategy,
    ),
)
