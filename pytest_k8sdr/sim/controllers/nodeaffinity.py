"""Node selection: nodeSelector and required node affinity.

staging/src/k8s.io/component-helpers/scheduling/corev1/nodeaffinity.
"""

from __future__ import annotations

from collections.abc import Callable

from pytest_k8sdr.sim.apimachinery.meta import meta
from pytest_k8sdr.sim.apimachinery.types import JSON

__all__ = ["node_selector_term_matches", "pod_matches_node_selection"]


def _requirement_matches(expr: JSON, values_of: Callable[[str], str | None]) -> bool:
    value = values_of(str(expr.get("key")))
    op = expr.get("operator")
    vals = expr.get("values") or []
    if op == "In":
        return value is not None and value in vals
    if op == "NotIn":
        return value is None or value not in vals
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and vals:
        try:
            left, right = int(value), int(vals[0])
        except ValueError:
            return False
        return left > right if op == "Gt" else left < right
    return False


def node_selector_term_matches(term: JSON, node: JSON) -> bool:
    """One NodeSelectorTerm: all matchExpressions (labels) and matchFields (metadata.name)."""
    labels = meta(node).get("labels") or {}
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches nothing
    name = meta(node).get("name")
    if not all(_requirement_matches(e, labels.get) for e in exprs):
        return False
    return all(
        _requirement_matches(f, lambda k: name if k == "metadata.name" else None) for f in fields
    )


def pod_matches_node_selection(pod: JSON, node: JSON) -> bool:
    """NodeSelector and required node affinity (scheduler NodeAffinity filter)."""
    spec = pod.get("spec") or {}
    labels = meta(node).get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or None
    if required is None:
        return True
    return any(node_selector_term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])
