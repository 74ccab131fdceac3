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
    `storage_key` names its objects in the store when the plural alone would not: a custom
    resource's is its CRD's name (`widgets.example.com`), as two groups may serve one plural.
    """

    group: str  # "" for core
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()  # "status", "scale", "eviction", "binding"
    selectable_fields: frozenset[str] = frozenset()
    storage_key: str = ""

    @property
    def key(self) -> str:
        """What the store files its objects under: `storage_key`, else the plural."""
        return self.storage_key or self.plural

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
