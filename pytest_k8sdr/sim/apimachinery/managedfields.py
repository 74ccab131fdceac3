"""Field ownership for server-side apply: managedFields, field sets, the apply merge, conflicts.

As k8s.io/apimachinery/pkg/util/managedfields and sigs.k8s.io/structured-merge-diff (SMD):

- a field set is kept in the fieldsV1 form (`f:name`, `k:{"name":"web"}` for an item of an
  associative list, `v:<json>` for a member of a set list, `.` for a node that is itself a
  member); internally every member carries `.` (`{".": {}}` is a leaf);
- an Update (create, PUT, a non-apply PATCH) gives its manager the fields it added or changed,
  taking them from every other manager, and takes removed fields from everyone; a map that
  did not exist before is a member of the set unless Go always has it (a non-pointer struct:
  `metadata`, `spec`, `template`, ...), as SMD's comparison of the typed objects gives;
- an Apply merges the applied configuration into the live object (maps by key, associative
  lists by their keys, set lists as sets, everything else atomic), answers 409 Conflict for
  a changed field another manager owns (unless forced, which takes it), removes the fields
  the manager applied before and no longer applies when nobody else owns them, and gives the
  manager exactly the applied configuration's fields.

What a list or map is comes from the field's name (`BUILTIN`), from the `+listType`,
`+listMapKey` and `+mapType`/`+structType` tags of k8s.io/api; a name not listed is a
granular map or an atomic list. Not modelled: version conversion of field sets, the
kubectl-client-side-apply upgrade beyond honouring a written managedFields, unions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_k8sdr.sim.apimachinery.errors import ApiError

__all__ = [
    "BUILTIN",
    "FieldTypes",
    "Scope",
    "apply",
    "object_fields",
    "record_update",
]

Node = dict[str, Any]
_MISSING: Any = object()
# SMD writes keys and values as compact JSON with sorted keys.
_ENCODE = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode
_ATOMIC = "atomic"
_SET = "set"

# metadata fields no manager owns (internal/stripmeta.go), and a Scope's top-level fields.
_STRIPPED_META = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    }
)


@dataclass(frozen=True)
class FieldTypes:
    """What each list and map is, by field name; see the module doc."""

    list_keys: Mapping[str, tuple[str, ...]]
    set_lists: frozenset[str]
    atomic_maps: frozenset[str]
    # Go structs that are never nil: a new one is not a member of an Update's set.
    struct_values: frozenset[str]
    # Defaults of key fields an item may omit (SMD fills them from the schema).
    key_defaults: Mapping[str, Any] = field(default_factory=dict)

    def list_kind(self, name: str, items: list[Any]) -> tuple[str, ...] | str:
        """`_ATOMIC`, `_SET` or the keys of an associative list."""
        if name == "ports":
            # Container ports are keyed by containerPort+protocol, Service ports by
            # port+protocol (core/v1/types.go listMapKey tags).
            if any(isinstance(i, dict) and "containerPort" in i for i in items):
                return ("containerPort", "protocol")
            if any(isinstance(i, dict) and "port" in i for i in items):
                return ("port", "protocol")
            return _ATOMIC
        if name in self.set_lists:
            return _SET
        return self.list_keys.get(name, _ATOMIC)


BUILTIN = FieldTypes(
    list_keys={
        "containers": ("name",),
        "initContainers": ("name",),
        "ephemeralContainers": ("name",),
        "env": ("name",),
        "volumes": ("name",),
        "volumeMounts": ("mountPath",),
        "volumeDevices": ("devicePath",),
        "imagePullSecrets": ("name",),
        "hostAliases": ("ip",),
        "conditions": ("type",),
        "ownerReferences": ("uid",),
        "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
        "resourceClaims": ("name",),
        "podIPs": ("ip",),
        "hostIPs": ("ip",),
        "containerStatuses": ("name",),
        "initContainerStatuses": ("name",),
    },
    set_lists=frozenset({"finalizers"}),
    # LabelSelector is +structType=atomic; ServiceSpec.selector, PodSpec.nodeSelector are
    # +mapType=atomic.
    atomic_maps=frozenset({"selector", "nodeSelector", "labelSelector", "namespaceSelector"}),
    struct_values=frozenset(
        {"metadata", "spec", "status", "template", "strategy", "updateStrategy", "resources"}
    ),
    key_defaults={"protocol": "TCP"},
)


@dataclass(frozen=True)
class Scope:
    """Which top-level fields a write's managed fields cover."""

    # "status" for the status subresource, "scale" for scale, None for the main resource.
    subresource: str | None
    # Whether status is a subresource of the kind (then the main resource never owns it).
    status_is_subresource: bool

    def top(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """The object as the field manager sees it: stripped of what nobody owns."""
        if self.subresource == "status":
            return {"status": obj["status"]} if "status" in obj else {}
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if key in ("apiVersion", "kind"):
                continue
            if key == "status" and self.status_is_subresource:
                continue
            if key == "metadata" and isinstance(value, dict):
                value = {k: v for k, v in value.items() if k not in _STRIPPED_META}
                if not value:
                    continue
            out[key] = value
        return out


# -- field sets --------------------------------------------------------------------


def _member(node: Node) -> bool:
    """Whether a node of the fieldsV1 form is itself a member: a leaf `{}` or one with `.`."""
    return not node or "." in node


def _node(member: bool, children: Node) -> Node | None:
    """The fieldsV1 node for a member flag and children (None: nothing at all)."""
    if member:
        return {".": {}, **children} if children else {}
    return children or None


def _item_key(item: Any, keys: tuple[str, ...], types: FieldTypes, where: str) -> str:
    if not isinstance(item, dict):
        raise ApiError(
            422, "Invalid", f"{where}: associative list with keys has an element that is not a map"
        )
    if len(keys) == 1 and keys[0] in item:
        return f'k:{{"{keys[0]}":{_ENCODE(item[keys[0]])}}}'
    values: dict[str, Any] = {}
    for key in keys:
        if key in item:
            values[key] = item[key]
        elif key in types.key_defaults:
            values[key] = types.key_defaults[key]
        else:
            raise ApiError(
                422,
                "Invalid",
                f"{where}: associative list with keys has an element that omits key field "
                f'"{key}" (and doesn\'t have default value)',
            )
    return "k:" + _ENCODE(values)


def _value_key(value: Any) -> str:
    return "v:" + _ENCODE(value)


def _map_fields(value: Mapping[str, Any], types: FieldTypes, fresh: bool) -> Node:
    node: Node = {}
    for key in sorted(value):
        sub = _value_fields(key, value[key], types, fresh)
        if sub is not None:
            node["f:" + key] = sub
    return node


def _value_fields(name: str, value: Any, types: FieldTypes, fresh: bool) -> Node | None:
    """The node a field's value contributes (SMD's ToFieldSet; `fresh`: new in an Update)."""
    if isinstance(value, dict):
        if not value or name in types.atomic_maps:
            return {}
        return _node(fresh and name not in types.struct_values, _map_fields(value, types, fresh))
    if isinstance(value, list):
        kind = types.list_kind(name, value)
        if kind == _ATOMIC:
            return {}
        if kind == _SET:
            return {_value_key(v): {} for v in value} or None
        items: Node = {}
        for item in value:
            key = _item_key(item, kind, types, "." + name)  # type: ignore[arg-type]
            items[key] = _node(True, _map_fields(item, types, fresh))
        return dict(sorted(items.items())) or None
    return {}


def _whole(name: str, value: Any, types: FieldTypes, fresh: bool) -> Node:
    """The field itself as a member, with everything below it."""
    sub = _value_fields(name, value, types, fresh)
    return _node(True, {k: v for k, v in (sub or {}).items() if k != "."}) or {}


def object_fields(obj: Mapping[str, Any], scope: Scope, types: FieldTypes = BUILTIN) -> Node:
    """The field set of an applied configuration (SMD's ToFieldSet)."""
    return _map_fields(scope.top(obj), types, fresh=False)


def _diff_map(
    old: Mapping[str, Any], new: Mapping[str, Any], types: FieldTypes
) -> tuple[Node, Node]:
    """(added or changed, removed) between two maps, as SMD's Compare."""
    changed: Node = {}
    removed: Node = {}
    for key, value in new.items():
        before = old.get(key, _MISSING)
        if before is _MISSING:
            sub = _value_fields(key, value, types, fresh=True)
            if sub is not None:
                changed["f:" + key] = sub
            continue
        if before == value and type(before) is type(value):
            continue
        c, r = _diff_value(key, before, value, types)
        if c is not None:
            changed["f:" + key] = c
        if r is not None:
            removed["f:" + key] = r
    for key, before in old.items():
        if key not in new:
            removed["f:" + key] = _whole(key, before, types, fresh=False)
    return changed, removed


def _diff_value(
    name: str, old: Any, new: Any, types: FieldTypes
) -> tuple[Node | None, Node | None]:
    if isinstance(old, dict) and isinstance(new, dict):
        if name in types.atomic_maps:
            return {}, None
        c, r = _diff_map(old, new, types)
        return c or None, r or None
    if isinstance(old, list) and isinstance(new, list):
        kind = types.list_kind(name, new or old)
        if kind == _ATOMIC:
            return {}, None
        if kind == _SET:
            added: Node = {_value_key(v): {} for v in new if v not in old}
            gone: Node = {_value_key(v): {} for v in old if v not in new}
            return added or None, gone or None
        keys: tuple[str, ...] = kind  # type: ignore[assignment]
        where = "." + name
        before = {_item_key(i, keys, types, where): i for i in old}
        changed: Node = {}
        seen = set()
        for item in new:
            k = _item_key(item, keys, types, where)
            seen.add(k)
            prior = before.get(k, _MISSING)
            if prior is _MISSING:
                changed[k] = _node(True, _map_fields(item, types, fresh=True))
            elif prior != item:
                c, _ = _diff_map(prior, item, types)
                if c:
                    changed[k] = c
        removed: Node = {}
        for k, item in before.items():
            if k not in seen:
                removed[k] = _node(True, _map_fields(item, types, fresh=False))
        return changed or None, removed or None
    # A scalar changed, or the value changed shape: the field itself is set anew.
    return _whole(name, new, types, fresh=True), None


def union(a: Node, b: Node) -> Node:
    """Members of either set (the children of two nodes)."""
    if not b:
        return a
    if not a:
        return b
    out = {k: v for k, v in a.items() if k != "."}
    for key, sb in b.items():
        if key == ".":
            continue
        sa = out.get(key)
        if sa is None:
            out[key] = sb
        else:
            out[key] = _node(_member(sa) or _member(sb), union(sa, sb))
    return out


def difference(a: Node, b: Node) -> Node:
    """Members of `a` not in `b` (the children of two nodes)."""
    out: Node = {}
    for key, sa in a.items():
        if key == ".":
            continue
        sb = b.get(key)
        if sb is None:
            out[key] = sa
            continue
        rest = _node(_member(sa) and not _member(sb), difference(sa, sb) if len(sa) > 0 else {})
        if rest is not None:
            out[key] = rest
    return out


def intersection(a: Node, b: Node) -> Node:
    """Members of both sets (the children of two nodes)."""
    if len(a) > len(b):
        a, b = b, a
    out: Node = {}
    for key, sa in a.items():
        if key == ".":
            continue
        sb = b.get(key)
        if sb is None:
            continue
        both = _node(_member(sa) and _member(sb), intersection(sa, sb) if sa and sb else {})
        if both is not None:
            out[key] = both
    return out


def members(node: Node, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every member's path, in fieldsV1 order."""
    for key in sorted(node):
        if key == ".":
            continue
        path = (*prefix, key)
        sub = node[key]
        if _member(sub):
            yield path
        yield from members(sub, path)


def path_string(path: tuple[str, ...]) -> str:
    """A path as SMD prints it: `.spec.containers[name="web"].image`."""
    out = []
    for elem in path:
        kind, text = elem[0], elem[2:]
        if kind == "f":
            out.append("." + text)
        elif kind == "k":
            values = json.loads(text)
            out.append("[" + ",".join(f"{k}={json.dumps(values[k])}" for k in sorted(values)) + "]")
        elif kind == "v":
            out.append(f"[={text}]")
        else:
            out.append(f"[{text}]")
    return "".join(out)


# -- the object --------------------------------------------------------------------


def _remove_map(obj: dict[str, Any], node: Node, keep: Node, types: FieldTypes) -> dict[str, Any]:
    """The object without the members of `node`, except what `keep` holds below them.

    As SMD's prune: remove what the applier owned, then add back what anyone owns now.
    """
    out = dict(obj)
    for key, sub in node.items():
        if not key.startswith("f:"):
            continue
        name = key[2:]
        if name not in out:
            continue
        kept = keep.get(key)
        if _member(sub):
            if kept is None:
                del out[name]
            elif not _member(kept):
                out[name] = _restrict(name, out[name], kept, types)
        else:
            out[name] = _remove_value(name, out[name], sub, kept or {}, types)
    return out


def _remove_value(name: str, value: Any, node: Node, keep: Node, types: FieldTypes) -> Any:
    if isinstance(value, dict):
        return _remove_map(value, node, keep, types)
    if isinstance(value, list):
        kind = types.list_kind(name, value)
        if kind == _SET:
            return [v for v in value if _value_key(v) not in node or _value_key(v) in keep]
        if kind == _ATOMIC:
            return value
        keys: tuple[str, ...] = kind  # type: ignore[assignment]
        out = []
        for item in value:
            k = _item_key(item, keys, types, "." + name)
            sub = node.get(k)
            kept = keep.get(k)
            if sub is None:
                out.append(item)
            elif not _member(sub):
                out.append(_remove_map(item, sub, kept or {}, types))
            elif kept is not None:
                out.append(item if _member(kept) else _restrict(name, item, kept, types))
        return out
    return value


def _restrict(name: str, value: Any, keep: Node, types: FieldTypes) -> Any:
    """Only the parts of a value that `keep` (a non-member node) holds."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            sub = keep.get("f:" + k)
            if sub is not None:
                out[k] = v if _member(sub) else _restrict(k, v, sub, types)
        return out
    if isinstance(value, list):
        kind = types.list_kind(name, value)
        if kind == _SET:
            return [v for v in value if _value_key(v) in keep]
        if kind == _ATOMIC:
            return value
        keys: tuple[str, ...] = kind  # type: ignore[assignment]
        items = []
        for item in value:
            sub = keep.get(_item_key(item, keys, types, "." + name))
            if sub is not None:
                items.append(item if _member(sub) else _restrict(name, item, sub, types))
        return items
    return value


def _merge_map(live: Mapping[str, Any], applied: Mapping[str, Any], types: FieldTypes) -> Node:
    out = dict(live)
    for key, value in applied.items():
        if value is None:
            out.pop(key, None)
            continue
        out[key] = _merge_value(key, out.get(key, _MISSING), value, types)
    return out


def _merge_value(name: str, live: Any, applied: Any, types: FieldTypes) -> Any:
    if isinstance(applied, dict) and isinstance(live, dict) and name not in types.atomic_maps:
        return _merge_map(live, applied, types)
    if isinstance(applied, list) and isinstance(live, list):
        kind = types.list_kind(name, applied or live)
        if kind == _SET:
            return list(live) + [v for v in applied if v not in live]
        if kind != _ATOMIC:
            keys: tuple[str, ...] = kind  # type: ignore[assignment]
            where = "." + name
            out = list(live)
            index = {_item_key(i, keys, types, where): n for n, i in enumerate(out)}
            for item in applied:
                k = _item_key(item, keys, types, where)
                if k in index:
                    out[index[k]] = _merge_map(out[index[k]], item, types)
                else:
                    index[k] = len(out)
                    out.append(item)
            return out
    return applied


# -- managedFields entries -----------------------------------------------------------


@dataclass
class _Manager:
    entry: dict[str, Any]
    fields: Node | None = None  # decoded on demand

    @property
    def identity(self) -> tuple[str, str, str]:
        e = self.entry
        return (e.get("manager", ""), e.get("operation", ""), e.get("subresource", ""))

    def decoded(self) -> Node:
        if self.fields is None:
            raw = self.entry.get("fieldsV1")
            self.fields = raw if isinstance(raw, dict) else {}
        return self.fields

    def set_fields(self, fields: Node) -> None:
        self.fields = fields
        self.entry = {**self.entry, "fieldsV1": fields}


def _managers(entries: Any) -> list[_Manager]:
    if not isinstance(entries, list):
        return []
    return [_Manager(dict(e)) for e in entries if isinstance(e, dict) and e.get("manager")]


def _entries(managers: list[_Manager]) -> list[dict[str, Any]]:
    return [m.entry for m in managers if m.fields is None or m.fields]


def _own(
    managers: list[_Manager],
    manager: str,
    operation: str,
    api_version: str,
    subresource: str | None,
    now: str,
) -> _Manager:
    ident = (manager, operation, subresource or "")
    for m in managers:
        if m.identity == ident:
            return m
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
    }
    if subresource:
        entry["subresource"] = subresource
    m = _Manager(entry, {})
    managers.append(m)
    return m


def _describe(m: _Manager) -> str:
    """A manager as conflict messages name it (internal/conflict.go printManager)."""
    e = m.entry
    text = json.dumps(e.get("manager", ""))
    if e.get("subresource"):
        text += f" with subresource {json.dumps(e['subresource'])}"
    if e.get("operation") == "Update":
        text += f" using {e.get('apiVersion', '')}"
    return text


def record_update(
    entries: Any,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    *,
    manager: str,
    api_version: str,
    scope: Scope,
    now: str,
    types: FieldTypes = BUILTIN,
) -> list[dict[str, Any]] | None:
    """The managedFields after an Update by `manager`; None when they do not change."""
    changed, removed = _diff_map(scope.top(old or {}), scope.top(new), types)
    if not changed and not removed:
        return None
    managers = _managers(entries)
    mine = _own(managers, manager, "Update", api_version, scope.subresource, now)
    touched = union(changed, removed)
    for m in managers:
        if m is not mine and intersection(m.decoded(), touched):
            # An Update takes what it changed from everyone; nobody owns what it removed.
            m.set_fields(difference(m.decoded(), touched))
    before = mine.decoded()
    after = difference(union(before, changed), removed)
    if after != before or "fieldsV1" not in mine.entry:
        mine.set_fields(after)
        mine.entry["time"] = now
        mine.entry["apiVersion"] = api_version
    return _entries(managers)


def apply(
    entries: Any,
    live: Mapping[str, Any] | None,
    applied: Mapping[str, Any],
    *,
    manager: str,
    api_version: str,
    scope: Scope,
    force: bool,
    now: str,
    types: FieldTypes = BUILTIN,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The object and managedFields after `manager` applies `applied` to `live` (None: create).

    The object holds only the fields `scope` covers (no apiVersion, kind, name, uid, ...):
    the store adds them back as for any write. 409 Conflict naming every conflicting field
    and its manager, as upstream words it, unless `force`.
    """
    applied_set = object_fields(applied, scope, types)
    merged = _merge_map(scope.top(live or {}), scope.top(applied), types)
    managers = _managers(entries if live is not None else None)
    mine = _own(managers, manager, "Apply", api_version, scope.subresource, now)
    changed, _ = _diff_map(scope.top(live or {}), scope.top(merged), types)
    conflicts: list[tuple[_Manager, tuple[str, ...]]] = []
    for m in managers:
        if m is mine:
            continue
        taken = intersection(m.decoded(), changed)
        if not taken:
            continue
        if force:
            m.set_fields(difference(m.decoded(), taken))
        else:
            conflicts += [(m, p) for p in members(taken)]
    if conflicts:
        raise _conflict_error(conflicts)
    keep = applied_set
    for m in managers:
        if m is not mine:
            keep = union(keep, m.decoded())
    dropped = difference(mine.decoded(), keep)
    if dropped:
        merged = _remove_map(merged, dropped, keep, types)
    unchanged = (
        "fieldsV1" in mine.entry
        and mine.decoded() == applied_set
        and mine.entry.get("apiVersion") == api_version
    )
    mine.set_fields(applied_set)
    if not unchanged:
        # The time moves only when the manager's set does (managedfieldsupdater.go keeps
        # the live entry's time otherwise), so an apply that changes nothing is a no-op.
        mine.entry["time"] = now
        mine.entry["apiVersion"] = api_version
    return merged, _entries(managers)


def _conflict_error(conflicts: list[tuple[_Manager, tuple[str, ...]]]) -> ApiError:
    """409 as internal/conflict.go NewConflictError words it."""
    causes = [
        {
            "type": "FieldManagerConflict",
            "message": f"conflict with {_describe(m)}",
            "field": path_string(p),
        }
        for m, p in conflicts
    ]
    if len(conflicts) == 1:
        m, p = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {_describe(m)}: {path_string(p)}"
    else:
        by_manager: dict[str, list[str]] = {}
        for m, p in conflicts:
            by_manager.setdefault(_describe(m), []).append(path_string(p))
        lines = []
        for who in sorted(by_manager):
            lines.append(f"conflicts with {who}:")
            lines += [f"- {p}" for p in by_manager[who]]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, details={"causes": causes})
