"""JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge patch.

Strategic merge follows k8s.io/apimachinery/pkg/util/strategicpatch/patch.go for the
directives clients send: `$patch: replace|delete|merge`, `$retainKeys`,
`$setElementOrder/<list>` (honoured as an ordering) and `$deleteFromPrimitiveList/<list>`.
Inputs are never mutated; the result shares no structure with the patch.
"""

from __future__ import annotations

import copy
from typing import Any

from pytest_k8sdr.sim.apimachinery.errors import ApiError, bad_request

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)

# Strategic-merge keys by field name, from the patchMergeKey tags of k8s.io/api
# (core/v1/types.go, apps/v1/types.go, meta/v1/types.go). Lists not named here are
# atomic and replaced whole: NodeSpec.Taints and PodSpec.Tolerations carry no
# patchStrategy upstream, so `kubectl taint` sends the full list and expects a replace.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "addresses": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "podIPs": "ip",
    "hostIPs": "ip",
}
# `ports` merges by containerPort in containers and by port in services.
PORT_MERGE_KEYS = ("containerPort", "port")
# Primitive lists with patchStrategy merge (treated as sets).
MERGE_PRIMITIVE_LISTS = frozenset({"finalizers"})


def apply_patch(target: dict[str, Any], patch: Any, content_type: str) -> dict[str, Any]:
    """The target with the patch applied; 415 for an unsupported type, 422/400 for bad patches."""
    ctype = content_type.split(";", 1)[0].strip()
    if ctype == JSON_PATCH:
        if not isinstance(patch, list):
            raise bad_request("json patch must be a list of operations")
        return _json_patch(target, patch)
    if not isinstance(patch, dict):
        raise bad_request(f"{ctype} body must be a JSON object")
    if ctype == MERGE_PATCH:
        result = merge_patch(target, patch)
    elif ctype == STRATEGIC_MERGE_PATCH:
        result = strategic_merge(target, patch)
    else:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join(PATCH_TYPES)}",
        )
    if not isinstance(result, dict):
        raise bad_request("patch result is not an object")
    return result


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        for key in PORT_MERGE_KEYS:
            if any(isinstance(i, dict) and key in i for i in items):
                return key
        return None
    return MERGE_KEYS.get(field)


def strategic_merge(target: Any, patch: Any) -> Any:
    """Strategic merge patch of a map, with the served types' merge keys."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    orders: dict[str, list[Any]] = {}
    deletes: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value if isinstance(value, list) else []
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            deletes[key.split("/", 1)[1]] = value if isinstance(value, list) else []
            continue
        if value is None:
            result.pop(key, None)
            continue
        old = result.get(key)
        if isinstance(value, list):
            result[key] = _merge_list(key, old if isinstance(old, list) else None, value)
        elif isinstance(value, dict):
            merged = strategic_merge(old, value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = value
    for key, removed in deletes.items():
        if isinstance(result.get(key), list):
            result[key] = [v for v in result[key] if v not in removed]
    for key, order in orders.items():
        if isinstance(result.get(key), list):
            result[key] = _apply_order(key, result[key], order)
    if isinstance(retain, list):
        keep = set(retain)
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _merge_list(field: str, old: list[Any] | None, patch: list[Any]) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if field in MERGE_PRIMITIVE_LISTS:
        out = list(old or [])
        for v in patch:
            if v not in out:
                out.append(v)
        return out
    key = _merge_key(field, patch) or (_merge_key(field, old) if old else None)
    if key is None or not all(isinstance(i, dict) for i in patch):
        return [copy.deepcopy(i) for i in patch]
    out = [dict(i) if isinstance(i, dict) else i for i in (old or [])]
    for item in patch:
        if key not in item:
            if item.get("$patch") == "delete":
                continue
            raise ApiError(
                422,
                "Invalid",
                f"map: {item} does not contain declared merge key: {key}",
            )
        idx = next(
            (n for n, o in enumerate(out) if isinstance(o, dict) and o.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(strategic_merge({}, item))
        else:
            out[idx] = strategic_merge(out[idx], item)
    return out


def _apply_order(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    key = _merge_key(field, items)

    def ident(i: Any) -> Any:
        if key is not None and isinstance(i, dict):
            return i.get(key)
        return i

    position = {json_key(ident(o)): n for n, o in enumerate(order)}
    indexed = list(enumerate(items))
    indexed.sort(key=lambda p: position.get(json_key(ident(p[1])), len(order) + p[0]))
    return [i for _, i in indexed]


def json_key(value: Any) -> str:
    """A hashable identity for any JSON value."""
    return repr(value)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    for part in parts:
        if isinstance(doc, dict):
            if part not in doc:
                raise _patch_error(f"doc is missing path: {path}")
            doc = doc[part]
        elif isinstance(doc, list):
            try:
                doc = doc[int(part)]
            except (ValueError, IndexError):
                raise _patch_error(f"doc is missing path: {path}") from None
        else:
            raise _patch_error(f"doc is missing path: {path}")
    return doc


def _patch_error(message: str) -> ApiError:
    # Upstream answers a failing json patch with 422 Invalid
    # (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go).
    return ApiError(422, "Invalid", message)


def _json_patch(target: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    doc: Any = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid json patch operation: {op!r}")
        kind = op["op"]
        parts = _pointer(op["path"])
        if kind == "test":
            if _walk(doc, parts, op["path"]) != op.get("value"):
                raise _patch_error(f"testing value {op['path']} failed")
            continue
        if kind in ("move", "copy"):
            src_parts = _pointer(op.get("from", ""))
            value = copy.deepcopy(_walk(doc, src_parts, op.get("from", "")))
            if kind == "move":
                doc = _remove(doc, src_parts, op.get("from", ""))
            doc = _add(doc, parts, value, op["path"])
            continue
        if kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")), op["path"])
        elif kind == "remove":
            doc = _remove(doc, parts, op["path"])
        elif kind == "replace":
            doc = _remove(doc, parts, op["path"])
            doc = _add(doc, parts, copy.deepcopy(op.get("value")), op["path"])
        else:
            raise bad_request(f"unexpected json patch operation {kind!r}")
    if not isinstance(doc, dict):
        raise bad_request("json patch result is not an object")
    return doc


def _add(doc: Any, parts: list[str], value: Any, path: str) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            try:
                idx = int(last)
            except ValueError:
                raise _patch_error(f"invalid index in {path}") from None
            if idx < 0 or idx > len(parent):
                raise _patch_error(f"add operation does not apply: index out of range: {path}")
            parent.insert(idx, value)
    else:
        raise _patch_error(f"doc is missing path: {path}")
    return doc


def _remove(doc: Any, parts: list[str], path: str) -> Any:
    if not parts:
        return None
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _patch_error(f"remove operation does not apply: doc is missing path: {path}")
        del parent[last]
    elif isinstance(parent, list):
        try:
            parent.pop(int(last))
        except (ValueError, IndexError):
            raise _patch_error(
                f"remove operation does not apply: doc is missing path: {path}"
            ) from None
    else:
        raise _patch_error(f"doc is missing path: {path}")
    return doc
