"""Taints and tolerations (staging/src/k8s.io/api/core/v1/toleration.go, pkg/util/taints)."""

from __future__ import annotations

from collections.abc import Iterable

from pytest_k8sdr.sim.apimachinery.types import JSON

__all__ = ["node_taints", "pod_tolerations", "taint_key", "tolerates", "toleration_tolerates"]


def toleration_tolerates(tol: JSON, taint: JSON) -> bool:
    """Toleration.ToleratesTaint."""
    effect = tol.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = tol.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = tol.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return (tol.get("value") or "") == (taint.get("value") or "")
    return False


def tolerates(tolerations: Iterable[JSON] | None, taint: JSON) -> bool:
    """Any toleration tolerates the taint."""
    return any(toleration_tolerates(t, taint) for t in tolerations or ())


def pod_tolerations(pod: JSON) -> list[JSON]:
    """spec.tolerations."""
    return list((pod.get("spec") or {}).get("tolerations") or [])


def node_taints(node: JSON) -> list[JSON]:
    """spec.taints."""
    return list((node.get("spec") or {}).get("taints") or [])


def taint_key(taint: JSON) -> tuple[str, str]:
    """Identity of a taint: key and effect (pkg/util/taints MatchTaint)."""
    return (str(taint.get("key")), str(taint.get("effect")))
