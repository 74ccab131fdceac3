"""The served resource types and the change events of the store; plain values only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["JSON", "ResourceType", "WatchEvent"]

JSON = dict[str, Any]


@dataclass(frozen=True)
class ResourceType:
    """One served resource: `pods`, `deployments.apps`, ...

    `selectable_fields` are the field selectors it accepts beyond metadata.name and
    metadata.namespace (upstream's registries declare them in GetAttrs / ToSelectableFields).
    """

    group: str  # "" for core
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()  # "status", "scale", "eviction", "binding"
    selectable_fields: frozenset[str] = frozenset()

    @property
    def api_version(self) -> str:
        """`v1` for core, `group/version` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version


@dataclass(frozen=True)
class WatchEvent:
    """One change: ADDED, MODIFIED or DELETED, with the object after it (deep copy)."""

    type: str
    object: JSON
    resource_version: int
