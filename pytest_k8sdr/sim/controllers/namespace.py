"""Namespace controller (pkg/controller/namespace/deletion/namespaced_resources_deleter.go).

A Terminating namespace is emptied: every namespaced object in it is deleted (pods gracefully,
so a pod on a dead node keeps the namespace Terminating, as upstream); once nothing is left
the `kubernetes` finalizer is removed and the namespace goes.
"""

from __future__ import annotations

import asyncio

from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.meta import is_terminating, meta
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apiserver.registry.resources import TYPES
from pytest_k8sdr.sim.controllers.controller import Controller
from pytest_k8sdr.sim.controllers.workqueue import WorkQueue

NAME = "namespace"
# How soon a namespace still holding content is looked at again.
RECHECK_SECONDS = 1.0


class NamespaceController(Controller):
    """Deletes the content of Terminating namespaces, then the namespaces."""

    name = NAME

    def start(self) -> list[asyncio.Task[None]]:
        """Follow namespaces."""
        self.namespaces = self.informers.get("namespaces")
        self.queue: WorkQueue[str] = WorkQueue(NAME, self._sync)
        self.watch(self.namespaces, self._on_namespace)
        return [self._spawn(self.queue.run(), "queue")]

    def _on_namespace(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        if new is not None and is_terminating(new):
            self.queue.add(meta(new)["name"])

    def _sync(self, name: str) -> None:
        ns = self.namespaces.get(None, name)
        if ns is None or not is_terminating(ns):
            return
        remaining = 0
        for rtype in TYPES:
            if not rtype.namespaced:
                continue
            for item in self.store.list(rtype.plural, name).get("items") or []:
                if is_terminating(item):
                    continue
                try:
                    self.store.delete(rtype.plural, name, meta(item)["name"])
                except ApiError as exc:
                    if exc.code != 404:
                        raise
            remaining += self.store.count(rtype.plural, name)
        if remaining:
            self.queue.add_after(name, RECHECK_SECONDS)
            return
        try:
            self.store.finalize_namespace(name)
        except ApiError as exc:
            if exc.code != 404:
                raise
