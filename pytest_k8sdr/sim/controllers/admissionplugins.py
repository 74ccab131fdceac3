"""Admission plugins switched like controllers (kube-apiserver's `--disable-admission-plugins`).

The plugin itself is API-server code (`apiserver.admission`); this switch registers it on the
store's admission chain when on, and removes it when off.
"""

from __future__ import annotations

import asyncio

from pytest_k8sdr.sim.apiserver.admission import (
    defaultstorageclass,
    defaulttolerationseconds,
    priority,
    serviceaccount,
)
from pytest_k8sdr.sim.controllers.controller import Controller

__all__ = [
    "DefaultStorageClass",
    "DefaultTolerationSeconds",
    "PriorityAdmission",
    "ServiceAccountAdmission",
]


class DefaultTolerationSeconds(Controller):
    """The DefaultTolerationSeconds admission plugin, switchable like a controller."""

    name = defaulttolerationseconds.NAME

    def start(self) -> list[asyncio.Task[None]]:
        """Register the mutating admission plugin for pods; it runs no task."""
        p = self.profile
        plugin = defaulttolerationseconds.plugin(
            p.default_not_ready_toleration_seconds, p.default_unreachable_toleration_seconds
        )
        self.on_stop(self.store.add_admission("pods", plugin))
        return []


class PriorityAdmission(Controller):
    """The Priority admission plugin: pods' priority from their class; one global default."""

    name = priority.NAME

    def start(self) -> list[asyncio.Task[None]]:
        """Register the plugins for pods and priority classes."""
        self.on_stop(self.store.add_admission("pods", priority.pod_plugin(self.store)))
        self.on_stop(
            self.store.add_admission("priorityclasses", priority.priority_class_plugin(self.store))
        )
        return []


class ServiceAccountAdmission(Controller):
    """The ServiceAccount admission plugin: a pod's account checked, its token mounted."""

    name = serviceaccount.NAME

    def start(self) -> list[asyncio.Task[None]]:
        """Register the plugin for pods."""
        self.on_stop(self.store.add_admission("pods", serviceaccount.plugin(self.store)))
        return []


class DefaultStorageClass(Controller):
    """The DefaultStorageClass admission plugin, switchable like a controller."""

    name = defaultstorageclass.NAME

    def start(self) -> list[asyncio.Task[None]]:
        """Register the mutating admission plugin for claims; it runs no task."""
        classes = self.informers.get("storageclasses")
        plugin = defaultstorageclass.plugin(lambda: classes.list())
        self.on_stop(self.store.add_admission("persistentvolumeclaims", plugin))
        return []
