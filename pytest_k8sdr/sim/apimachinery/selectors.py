"""Label and field selectors: selector strings parsed once, LabelSelector objects matched.

The one copy of label matching in the simulator (apimachinery/pkg/labels and
apimachinery/pkg/apis/meta/v1/helpers.go LabelSelectorAsSelector).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_k8sdr.sim.apimachinery.errors import ApiError, bad_request
from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType

_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_OP_RE = re.compile(rf"^\s*({_KEY})\s*(==|=|!=)\s*([-A-Za-z0-9_.]*)\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


@dataclass(frozen=True)
class Requirement:
    """One label requirement: key, operator (=, !=, in, notin, exists, !), values."""

    key: str
    op: str
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether `labels` satisfy this requirement."""
        if self.op == "exists":
            return self.key in labels
        if self.op == "!":
            return self.key not in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return value is not None and value in self.values
        # `!=` and `notin` also match objects without the key (doc "Labels and Selectors").
        return value is None or value not in self.values


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    """Parse `k=v,k2!=v,k3 in (a,b),!k4`; 400 BadRequest on bad syntax."""
    if not text or not text.strip():
        return ()
    reqs: list[Requirement] = []
    for part in _split_top(text):
        m = _SET_RE.match(part)
        if m:
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append(Requirement(m.group(1), "in" if m.group(2) == "in" else "notin", values))
            continue
        m = _OP_RE.match(part)
        if m:
            op = "!=" if m.group(2) == "!=" else "="
            reqs.append(Requirement(m.group(1), op, frozenset({m.group(3)})))
            continue
        m = _EXISTS_RE.match(part)
        if m:
            reqs.append(Requirement(m.group(2), "!" if m.group(1) else "exists", frozenset()))
            continue
        raise bad_request(f"unable to parse requirement: {part.strip()!r} in selector {text!r}")
    return tuple(reqs)


def selector_matches(
    selector: JSON | None, labels: Mapping[str, str] | None, *, nil_matches: bool = False
) -> bool:
    """Whether a metav1.LabelSelector matches labels; an empty selector matches everything.

    A nil selector matches nothing (or everything with `nil_matches`), as the callers
    upstream choose (a PDB's nil selector selects nothing, a Service's nil selector none).
    """
    if selector is None:
        return nil_matches
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or ():
        k, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(k) not in values:
            return False
        if op == "NotIn" and k in labels and labels[k] in values:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def selector_is_empty(selector: JSON | None) -> bool:
    """No matchLabels and no matchExpressions."""
    return not selector or (
        not selector.get("matchLabels") and not selector.get("matchExpressions")
    )


def map_selector_matches(
    selector: Mapping[str, str] | None, labels: Mapping[str, str] | None
) -> bool:
    """A Service-style map selector (empty or None never selects)."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def selector_text(selector: JSON | None) -> str:
    """A LabelSelector as the selector string upstream renders (Scale's status.selector)."""
    parts = []
    for r in selector_from_label_selector(selector):
        if r.op == "=":
            parts.append(f"{r.key}={next(iter(r.values))}")
        elif r.op in ("in", "notin"):
            parts.append(f"{r.key} {r.op} ({','.join(sorted(r.values))})")
        else:
            parts.append(r.key if r.op == "exists" else f"!{r.key}")
    return ",".join(parts)


def selector_from_label_selector(selector: JSON | None) -> tuple[Requirement, ...]:
    """Requirements from a `LabelSelector` object (matchLabels + matchExpressions)."""
    if not selector:
        return ()
    reqs = [
        Requirement(k, "=", frozenset({v})) for k, v in (selector.get("matchLabels") or {}).items()
    ]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        reqs.append(
            Requirement(expr["key"], ops[expr["operator"]], frozenset(expr.get("values") or ()))
        )
    return tuple(reqs)


@dataclass(frozen=True)
class FieldRequirement:
    """One field requirement: path, `=` or `!=`, value."""

    field: str
    equal: bool
    value: str


def _field_value(obj: JSON, path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict):
            return ""
        node = node.get(part)
    if node is None:
        # Upstream's selectable fields are strings built from the Go struct; a missing
        # bool is "false" and a missing string "".
        return "false" if path in ("spec.unschedulable", "spec.hostNetwork") else ""
    if isinstance(node, bool):
        return "true" if node else "false"
    if path == "status.podIPs" and isinstance(node, list):
        return node[0].get("ip", "") if node else ""
    if path == "source" and isinstance(node, dict):
        return str(node.get("component", ""))
    return str(node)


def parse_field_selector(rtype: ResourceType, text: str | None) -> tuple[FieldRequirement, ...]:
    """Parse `a=b,c!=d`; a field the type does not select on is 400 BadRequest as upstream."""
    if not text or not text.strip():
        return ()
    allowed = rtype.selectable_fields | {"metadata.name", "metadata.namespace"}
    reqs: list[FieldRequirement] = []
    for part in text.split(","):
        if not part.strip():
            continue
        if "!=" in part:
            field, value = part.split("!=", 1)
            equal = False
        elif "==" in part:
            field, value = part.split("==", 1)
            equal = True
        elif "=" in part:
            field, value = part.split("=", 1)
            equal = True
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field = field.strip()
        if field not in allowed:
            # Wording of apimachinery's fields.ParseSelector failure as returned by the
            # registry (staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go).
            raise ApiError(
                400,
                "BadRequest",
                f"field label not supported: {field}",
            )
        reqs.append(FieldRequirement(field, equal, value.strip()))
    return tuple(reqs)


def selectable_paths(rtype: ResourceType) -> tuple[str, ...]:
    """The fields objects of `rtype` are selected by, in the order `selectable_values` uses."""
    meta = {"metadata.name", "metadata.namespace"}
    return ("metadata.name", "metadata.namespace", *sorted(rtype.selectable_fields - meta))


def selectable_values(paths: tuple[str, ...], obj: JSON) -> tuple[str, ...]:
    """The object's value of each selectable field, as the field selector compares them.

    Values but the name are interned: a store keeps this tuple per object, and most values
    (a node's name, a phase) repeat across thousands of objects.
    """
    name = _field_value(obj, paths[0])
    return (name, *(sys.intern(_field_value(obj, p)) for p in paths[1:]))


class Selectable(Protocol):
    """What a selector looks at: the labels and the `selectable_values` of an object."""

    @property
    def labels(self) -> Mapping[str, str] | None:
        """The object's labels, if any."""

    @property
    def fields(self) -> tuple[str, ...]:
        """The object's `selectable_values`."""


def make_filter(
    rtype: ResourceType, label_selector: str | None, field_selector: str | None
) -> Callable[[Selectable], bool] | None:
    """A predicate for both selectors, or None when there is nothing to filter.

    It reads `fields` as `selectable_values(selectable_paths(rtype), obj)` made them.
    """
    lreqs = parse_label_selector(label_selector)
    freqs = parse_field_selector(rtype, field_selector)
    if not lreqs and not freqs:
        return None
    paths = selectable_paths(rtype)
    wanted = tuple((paths.index(r.field), r.equal, r.value) for r in freqs)

    def match(item: Selectable) -> bool:
        if lreqs:
            labels = item.labels or {}
            if not all(r.matches(labels) for r in lreqs):
                return False
        fields = item.fields
        return all((fields[i] == value) == equal for i, equal, value in wanted)

    return match
