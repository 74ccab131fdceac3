"""The autoscaling group: HorizontalPodAutoscalers, stored as v2 and served at v1 and v2.

As upstream (pkg/apis/autoscaling/v1/conversion.go): a v1 object carries the CPU target in
spec.targetCPUUtilizationPercentage and the v2 fields it has no place for (other metrics,
behavior, conditions, current metrics) in `autoscaling.alpha.kubernetes.io/*` annotations,
so either version round-trips. No HPA controller runs: objects are stored and watched.
"""

from __future__ import annotations

import json
from typing import ClassVar

from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType
from pytest_k8sdr.sim.apiserver.registry.strategy import (
    Cause,
    ResetStatus,
    Resource,
    Version,
    cause,
    required,
)

__all__ = ["RESOURCES"]

_ANNOTATION = "autoscaling.alpha.kubernetes.io/"
_V1_FIELDS = {
    "spec": (("metrics", "metrics"), ("behavior", "behavior")),
    "status": (("conditions", "conditions"), ("currentMetrics", "current-metrics")),
}


def _is_cpu(metric: JSON, target_key: str) -> bool:
    resource = metric.get("resource") or {}
    return (
        metric.get("type") == "Resource"
        and resource.get("name") == "cpu"
        and (resource.get(target_key) or {}).get("averageUtilization") is not None
    )


def to_v1(obj: JSON) -> JSON:
    """A stored (v2) HPA in its autoscaling/v1 form."""
    out = {**obj, "apiVersion": "autoscaling/v1"}
    meta = out["metadata"] = dict(obj.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})
    spec = dict(obj.get("spec") or {})
    status = dict(obj.get("status") or {})
    metrics = spec.pop("metrics", None) or []
    cpu = [m for m in metrics if _is_cpu(m, "target")]
    rest = [m for m in metrics if not _is_cpu(m, "target")]
    if cpu:
        spec["targetCPUUtilizationPercentage"] = cpu[0]["resource"]["target"]["averageUtilization"]
    current = status.pop("currentMetrics", None) or []
    cpu_now = [m for m in current if _is_cpu(m, "current")]
    if cpu_now:
        status["currentCPUUtilizationPercentage"] = cpu_now[0]["resource"]["current"][
            "averageUtilization"
        ]
    extra = {
        "metrics": rest,
        "behavior": spec.pop("behavior", None),
        "conditions": status.pop("conditions", None),
        "current-metrics": [m for m in current if not _is_cpu(m, "current")],
    }
    for key, value in extra.items():
        if value:
            annotations[_ANNOTATION + key] = json.dumps(value, separators=(",", ":"))
    if annotations:
        meta["annotations"] = annotations
    out["spec"] = spec
    if "status" in obj:
        out["status"] = status
    return out


def to_v2(obj: JSON) -> JSON:
    """An autoscaling/v1 HPA in the stored (v2) form."""
    out = {**obj, "apiVersion": "autoscaling/v2"}
    meta = out["metadata"] = dict(obj.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})
    spec = dict(obj.get("spec") or {})
    status = dict(obj.get("status") or {})
    for part, fields in _V1_FIELDS.items():
        target = spec if part == "spec" else status
        for field, key in fields:
            raw = annotations.pop(_ANNOTATION + key, None)
            if raw:
                target[field] = json.loads(raw)
    cpu = spec.pop("targetCPUUtilizationPercentage", None)
    if cpu is not None:
        spec["metrics"] = [
            *(spec.get("metrics") or []),
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": cpu},
                },
            },
        ]
    now = status.pop("currentCPUUtilizationPercentage", None)
    if now is not None:
        status["currentMetrics"] = [
            *(status.get("currentMetrics") or []),
            {
                "type": "Resource",
                "resource": {"name": "cpu", "current": {"averageUtilization": now}},
            },
        ]
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out["spec"] = spec
    if "status" in obj:
        out["status"] = status
    return out


class HorizontalPodAutoscalerStrategy(ResetStatus):
    """SetDefaults_HorizontalPodAutoscaler (v2); ValidateHorizontalPodAutoscaler."""

    empty_status: ClassVar[JSON] = {"currentReplicas": 0, "desiredReplicas": 0}

    def default(self, obj: JSON) -> None:
        """MinReplicas 1; with no metrics, 80% average CPU utilization."""
        spec = obj.setdefault("spec", {})
        spec.setdefault("minReplicas", 1)
        if not spec.get("metrics"):
            spec["metrics"] = [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80},
                    },
                }
            ]

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """The scale target named; 1 <= minReplicas <= maxReplicas."""
        spec = obj.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        causes = [required(f"spec.scaleTargetRef.{k}") for k in ("kind", "name") if not ref.get(k)]
        low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
        if not isinstance(low, int) or low < 1:
            causes.append(
                cause(
                    "spec.minReplicas", f"Invalid value: {low}: must be greater than or equal to 1"
                )
            )
        if not isinstance(high, int) or high < 1:
            causes.append(
                cause(
                    "spec.maxReplicas", f"Invalid value: {high}: must be greater than or equal to 1"
                )
            )
        elif isinstance(low, int) and high < low:
            causes.append(
                cause(
                    "spec.maxReplicas",
                    f"Invalid value: {high}: must be greater than or equal to `minReplicas`",
                )
            )
        return causes


_STATUS = frozenset({"status"})
RESOURCES = (
    Resource(
        ResourceType(
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
            True,
            ("hpa",),
            _STATUS,
        ),
        HorizontalPodAutoscalerStrategy,
        versions=(
            Version(
                ResourceType(
                    "autoscaling",
                    "v1",
                    "horizontalpodautoscalers",
                    "HorizontalPodAutoscaler",
                    True,
                    ("hpa",),
                    _STATUS,
                ),
                to_v1,
                to_v2,
            ),
        ),
    ),
)
