"""Admission: the mutating plugins every create and update passes through, in order.

Upstream's chain (staging/src/k8s.io/apiserver/pkg/admission) runs mutating plugins, then
validating ones. A plugin here is `plugin(operation, new, old)` registered for one resource;
it may edit `new`. Not modelled: validating admission plugins, webhooks, quotas.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Protocol

from pytest_k8sdr.sim.apimachinery.types import JSON

__all__ = ["AdmissionChain", "MutatingPlugin", "Objects"]

# plugin("CREATE" | "UPDATE", new object (editable), old object or None)
MutatingPlugin = Callable[[str, JSON, JSON | None], None]


class Objects(Protocol):
    """What plugins read (the registry store): shared, read-only objects."""

    def find(self, plural: str, namespace: str | None, name: str) -> JSON | None:
        """The object or None."""

    def iter_objects(self, plural: str, namespace: str | None = None) -> Iterator[JSON]:
        """Every object of a type."""


class AdmissionChain:
    """The mutating admission plugins, by resource, in the order they were added."""

    def __init__(self) -> None:
        self._plugins: dict[str, list[MutatingPlugin]] = {}

    def add(self, plural: str, plugin: MutatingPlugin) -> Callable[[], None]:
        """Run `plugin` on every create and update of `plural`; returns its removal."""
        plugins = self._plugins.setdefault(plural, [])
        plugins.append(plugin)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                plugins.remove(plugin)

        return remove

    def admit(self, operation: str, plural: str, new: JSON, old: JSON | None) -> None:
        """Run every plugin of `plural` on `new`."""
        for plugin in self._plugins.get(plural, ()):
            plugin(operation, new, old)
