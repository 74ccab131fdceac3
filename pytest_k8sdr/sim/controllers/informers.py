"""The controllers' shared informers: caches that follow the store of their own process.

kube-controller-manager's informers list and watch the API server; the simulated controllers
run in the API server's process, so their informers follow its store directly (a
synchronous subscription after every commit) through the same `Cache` interface the HTTP
informers of the node agents use.
"""

from __future__ import annotations

from collections.abc import Iterable

from pytest_k8sdr.sim.apimachinery.meta import Key, controller_ref, key_of
from pytest_k8sdr.sim.apimachinery.types import JSON, WatchEvent
from pytest_k8sdr.sim.apiserver.registry.store import Store
from pytest_k8sdr.sim.client.cache import Cache

__all__ = ["Informers", "StoreInformer"]


class StoreInformer(Cache):
    """A `Cache` of one resource kept current by a store subscription."""

    def __init__(self, store: Store, plural: str) -> None:
        super().__init__(plural)
        self.plural = plural
        # The store's shared read-only objects: no second copy of every object in memory.
        for item in store.iter_objects(plural):
            self._put(item)
        self._unsubscribe = store.subscribe(plural, self._on_event)

    def has_synced(self) -> bool:
        """Always: the store's objects were read when the informer was made."""
        return True

    def stop(self) -> None:
        """Stop following the store."""
        self._unsubscribe()

    def _on_event(self, event: WatchEvent) -> None:
        obj = event.object
        if event.type == "DELETED":
            old = self._pop(key_of(obj))
            self._dispatch("DELETED", old or obj, None)
            return
        old = self._put(obj)
        self._dispatch("ADDED" if old is None else "MODIFIED", old, obj)


def _pod_node(pod: JSON) -> Iterable[str]:
    return ((pod.get("spec") or {}).get("nodeName") or "",)


def _controller_uid(obj: JSON) -> Iterable[str]:
    ref = controller_ref(obj)
    return (str(ref["uid"]),) if ref and ref.get("uid") else ()


class Informers:
    """The shared informer factory: one cache per resource for all controllers."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._informers: dict[str, StoreInformer] = {}
        self._pods_by_node: dict[str, dict[Key, JSON]] | None = None
        self._by_owner: dict[str, dict[str, dict[Key, JSON]]] = {}

    def get(self, plural: str) -> StoreInformer:
        """The informer of `plural`, started on first use."""
        informer = self._informers.get(plural)
        if informer is None:
            informer = StoreInformer(self.store, plural)
            self._informers[plural] = informer
        return informer

    @property
    def pods_by_node(self) -> dict[str, dict[Key, JSON]]:
        """Pods by spec.nodeName ("" for unbound pods)."""
        if self._pods_by_node is None:
            self._pods_by_node = self.get("pods").add_index(_pod_node)
        return self._pods_by_node

    def by_owner(self, plural: str) -> dict[str, dict[Key, JSON]]:
        """Objects of `plural` by their controller owner's uid."""
        index = self._by_owner.get(plural)
        if index is None:
            index = self.get(plural).add_index(_controller_uid)
            self._by_owner[plural] = index
        return index

    def stop(self) -> None:
        """Unsubscribe every informer."""
        for informer in self._informers.values():
            informer.stop()
