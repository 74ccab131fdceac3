"""Every kind the simulated API server serves, in discovery order, from the family modules.

A new kind is one `Resource(...)` in its family module; a new family is one line here.
"""

from __future__ import annotations

from pytest_k8sdr.sim.apimachinery.types import ResourceType
from pytest_k8sdr.sim.apiserver.registry import (
    apiextensions,
    apps,
    autoscaling,
    batch,
    certificates,
    coordination,
    core,
    discovery,
    networking,
    policy,
    rbac,
    scheduling,
    storage,
)
from pytest_k8sdr.sim.apiserver.registry.strategy import Resource, Version

__all__ = [
    "BY_GVR",
    "BY_PLURAL",
    "GROUPS",
    "GROUP_VERSIONS",
    "RESOURCES",
    "TYPES",
    "VIEWS",
    "lookup",
]

RESOURCES: tuple[Resource, ...] = (
    *core.RESOURCES,
    *apps.RESOURCES,
    *batch.RESOURCES,
    *discovery.RESOURCES,
    *coordination.RESOURCES,
    *policy.RESOURCES,
    *storage.RESOURCES,
    *scheduling.RESOURCES,
    *networking.RESOURCES,
    *rbac.RESOURCES,
    *certificates.RESOURCES,
    *autoscaling.RESOURCES,
    *apiextensions.RESOURCES,
)
TYPES: tuple[ResourceType, ...] = tuple(r.type for r in RESOURCES)
BY_PLURAL: dict[str, ResourceType] = {t.plural: t for t in TYPES}
BY_GVR: dict[tuple[str, str, str], ResourceType] = {
    (t.group, t.version, t.plural): t for t in TYPES
}
# Other versions of stored kinds, by their (group, version, plural), with the stored type.
VIEWS: dict[tuple[str, str, str], tuple[ResourceType, Version]] = {
    (v.type.group, v.type.version, v.type.plural): (r.type, v)
    for r in RESOURCES
    for v in r.versions
}
# What discovery lists: group -> version -> the types served there (stored and views).
GROUP_VERSIONS: dict[str, dict[str, list[ResourceType]]] = {}
for _t in (*TYPES, *(v.type for r in RESOURCES for v in r.versions)):
    GROUP_VERSIONS.setdefault(_t.group, {}).setdefault(_t.version, []).append(_t)
GROUPS: dict[str, list[ResourceType]] = {
    g: [t for ts in vs.values() for t in ts] for g, vs in GROUP_VERSIONS.items()
}


def lookup(plural_or_name: str) -> ResourceType | None:
    """The type for a plural, kind (any case) or short name."""
    name = plural_or_name.lower()
    if name in BY_PLURAL:
        return BY_PLURAL[name]
    for t in TYPES:
        if name == t.kind.lower() or name in t.short_names:
            return t
    return None
