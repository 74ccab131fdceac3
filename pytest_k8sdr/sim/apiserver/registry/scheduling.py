"""The scheduling.k8s.io group: PriorityClasses (pkg/registry/scheduling/priorityclass).

The two built-in classes are created at bootstrap as upstream's apiserver post-start hook
does (pkg/registry/scheduling/rest/storage_scheduling.go). Priority admission, which turns a
pod's priorityClassName into spec.priority, is `apiserver.admission.priority`.
"""

from __future__ import annotations

from typing import ClassVar

from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType
from pytest_k8sdr.sim.apiserver.registry.strategy import (
    Cause,
    Resource,
    Strategy,
    forbidden,
    immutable,
    required,
    unsupported,
)

__all__ = ["HIGHEST_USER_DEFINABLE_PRIORITY", "RESOURCES", "SYSTEM_PRIORITY_CLASSES"]

# pkg/apis/scheduling/types.go.
HIGHEST_USER_DEFINABLE_PRIORITY = 1_000_000_000
SYSTEM_PRIORITY_CLASSES: dict[str, int] = {
    "system-node-critical": 2_000_001_000,
    "system-cluster-critical": 2_000_000_000,
}
_POLICIES = ("Never", "PreemptLowerPriority")


class PriorityClassStrategy(Strategy):
    """SetDefaults_PriorityClass; ValidatePriorityClass{,Update} (pkg/apis/scheduling)."""

    track_generation: ClassVar[bool] = False

    def default(self, obj: JSON) -> None:
        """Preempt lower priorities unless told otherwise."""
        obj.setdefault("preemptionPolicy", "PreemptLowerPriority")

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """A value is required (and at most 1e9 for a user class); the system- prefix reserved."""
        causes: list[Cause] = []
        name = str((obj.get("metadata") or {}).get("name", ""))
        value = obj.get("value")
        if not isinstance(value, int) or isinstance(value, bool):
            causes.append(required("value"))
        if name in SYSTEM_PRIORITY_CLASSES:
            if value != SYSTEM_PRIORITY_CLASSES[name]:
                causes.append(
                    forbidden(
                        "metadata.name",
                        f"priority class {name} is a reserved system priority class and its value "
                        f"must be {SYSTEM_PRIORITY_CLASSES[name]}",
                    )
                )
        elif name.startswith("system-"):
            causes.append(
                forbidden(
                    "metadata.name", "priority class names with 'system-' prefix are reserved"
                )
            )
        elif isinstance(value, int) and value > HIGHEST_USER_DEFINABLE_PRIORITY:
            causes.append(
                forbidden(
                    "value",
                    f"maximum allowed value of a user defined priority is "
                    f"{HIGHEST_USER_DEFINABLE_PRIORITY}",
                )
            )
        if obj.get("preemptionPolicy") not in _POLICIES:
            causes.append(unsupported("preemptionPolicy", obj.get("preemptionPolicy"), _POLICIES))
        if old is not None:
            if value != old.get("value"):
                causes.append(forbidden("value", "may not be changed in an update."))
            if obj.get("preemptionPolicy") != old.get("preemptionPolicy"):
                causes.append(immutable("preemptionPolicy", obj.get("preemptionPolicy")))
        return causes


RESOURCES = (
    Resource(
        ResourceType("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ("pc",)),
        PriorityClassStrategy,
    ),
)
