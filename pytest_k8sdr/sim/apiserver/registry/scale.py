"""The autoscaling/v1 Scale subresource of the workloads (and ReplicationControllers)."""

from __future__ import annotations

from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.selectors import selector_text
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apiserver.registry.strategy import cause

__all__ = ["scale_of", "scale_replicas"]


def scale_of(obj: JSON) -> JSON:
    """The Scale of a workload object."""
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    if (
        isinstance(selector, dict)
        and selector
        and not {"matchLabels", "matchExpressions"} & set(selector)
    ):
        selector = {"matchLabels": selector}  # a ReplicationController's plain map
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
        "spec": {"replicas": spec.get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": selector_text(selector),
        },
    }


def scale_replicas(name: str, scale: JSON) -> int:
    """spec.replicas of a Scale body; 422 when it is not a count."""
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        raise ApiError(
            422,
            "Invalid",
            f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: '
            f"{replicas}: must be greater than or equal to 0",
            details={
                "name": name,
                "group": "autoscaling",
                "kind": "Scale",
                "causes": [cause("spec.replicas", "must be greater than or equal to 0")],
            },
        )
    return replicas
