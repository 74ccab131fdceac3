"""Every kind the simulated API server serves, in discovery order, from the family modules.

A new kind is one `Resource(...)` in its family module; a new family is one line here.
"""

from __future__ import annotations

from pytest_k8sdr.sim.apimachinery.types import ResourceType
from pytest_k8sdr.sim.apiserver.registry import (
    apps,
    coordination,
    core,
    discovery,
    policy,
    scheduling,
    storage,
)
from pytest_k8sdr.sim.apiserver.registry.strategy import Resource

__all__ = ["BY_GVR", "BY_PLURAL", "GROUPS", "RESOURCES", "TYPES", "lookup"]

RESOURCES: tuple[Resource, ...] = (
    *core.RESOURCES,
    *apps.RESOURCES,
    *discovery.RESOURCES,
    *coordination.RESOURCES,
    *policy.RESOURCES,
    *storage.RESOURCES,
    *scheduling.RESOURCES,
)
TYPES: tuple[ResourceType, ...] = tuple(r.type for r in RESOURCES)
BY_PLURAL: dict[str, ResourceType] = {t.plural: t for t in TYPES}
BY_GVR: dict[tuple[str, str, str], ResourceType] = {
    (t.group, t.version, t.plural): t for t in TYPES
}
GROUPS: dict[str, list[ResourceType]] = {}
for _t in TYPES:
    GROUPS.setdefault(_t.group, []).append(_t)


def lookup(plural_or_name: str) -> ResourceType | None:
    """The type for a plural, kind (any case) or short name."""
    name = plural_or_name.lower()
    if name in BY_PLURAL:
        return BY_PLURAL[name]
    for t in TYPES:
        if name == t.kind.lower() or name in t.short_names:
            return t
    return None
