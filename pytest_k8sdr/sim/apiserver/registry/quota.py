"""ResourceQuotas and LimitRanges (pkg/registry/core/{resourcequota,limitrange}).

Stored and validated. A quota's status.hard follows its spec.hard and status.used counts the
namespace's objects for the `count/<resource>` and object-count names (`pods`, `services`,
`configmaps`, `secrets`, `persistentvolumeclaims`, ...) when the store computes it; admission
does not enforce quotas or limits (not modelled).
"""

from __future__ import annotations

from typing import ClassVar

from pytest_k8sdr.sim.apimachinery.quantity import parse_quantity
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apiserver.registry.strategy import (
    Cause,
    ResetStatus,
    Strategy,
    cause,
    required,
    unsupported,
)

__all__ = ["LimitRangeStrategy", "ResourceQuotaStrategy", "validate_quantities"]

_SCOPES = (
    "BestEffort",
    "CrossNamespacePodAffinity",
    "NotBestEffort",
    "NotTerminating",
    "PriorityClass",
    "Terminating",
)
_LIMIT_TYPES = ("Container", "PersistentVolumeClaim", "Pod")


def validate_quantities(path: str, values: object) -> list[Cause]:
    """Each value a valid, non-negative quantity (ValidateResourceQuantityValue)."""
    causes: list[Cause] = []
    for key, value in (values or {}).items() if isinstance(values, dict) else []:
        try:
            amount = parse_quantity(value)
        except (TypeError, ValueError):
            causes.append(
                cause(
                    f"{path}[{key}]",
                    f"Invalid value: {value!r}: quantities must match the regular expression "
                    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                )
            )
            continue
        if amount < 0:
            causes.append(
                cause(
                    f"{path}[{key}]",
                    f'Invalid value: "{value}": must be greater than or equal to 0',
                )
            )
    return causes


class ResourceQuotaStrategy(ResetStatus):
    """ValidateResourceQuota: hard quantities, scopes from the supported set."""

    track_generation: ClassVar[bool] = False

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """Quantities of spec.hard and status; known scopes."""
        spec = obj.get("spec") or {}
        causes = validate_quantities("spec.hard", spec.get("hard"))
        for scope in spec.get("scopes") or []:
            if scope not in _SCOPES:
                causes.append(unsupported("spec.scopes", scope, _SCOPES))
        return causes


class LimitRangeStrategy(Strategy):
    """ValidateLimitRange: every item has a supported type and valid quantities."""

    track_generation: ClassVar[bool] = False

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """Types and quantities of spec.limits."""
        causes: list[Cause] = []
        limits = (obj.get("spec") or {}).get("limits")
        if limits is None:
            causes.append(required("spec.limits"))
        for n, item in enumerate(limits or []):
            path = f"spec.limits[{n}]"
            kind = (item or {}).get("type")
            if kind not in _LIMIT_TYPES:
                causes.append(unsupported(f"{path}.type", kind, _LIMIT_TYPES))
            for key in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
                causes += validate_quantities(f"{path}.{key}", (item or {}).get(key))
        return causes
