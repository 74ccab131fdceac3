"""The informer cache every simulated component reads through (client-go's Indexer + handlers).

A `Cache` holds one resource's objects by (namespace, name), keeps indexes, and calls its
handlers `handler(event type, old, new)` on every change. Two informers feed one: `Informer`
(`client.informer`) lists and watches over HTTP, as node agents and the launcher do;
`StoreInformer` (`controllers.informers`) follows the store of the API server's own process,
as kube-controller-manager's informers would follow a local watch cache.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator

from pytest_k8sdr.sim.apimachinery.meta import Key, key_of
from pytest_k8sdr.sim.apimachinery.types import JSON

__all__ = ["Cache", "Handler", "Index"]

log = logging.getLogger("pytest_k8sdr.sim.client")

# handler(event type: ADDED | MODIFIED | DELETED, old or None, new or None when deleted)
Handler = Callable[[str, JSON | None, JSON | None], None]


class Index:
    """Objects by every value `fn(object)` yields: value -> {key: object}."""

    def __init__(self, fn: Callable[[JSON], Iterable[str]]) -> None:
        self.fn = fn
        self.buckets: dict[str, dict[Key, JSON]] = {}

    def put(self, k: Key, old: JSON | None, new: JSON | None) -> None:
        """Move `k` from the buckets of `old` to those of `new`."""
        if old is not None:
            for value in self.fn(old):
                bucket = self.buckets.get(value)
                if bucket is not None:
                    bucket.pop(k, None)
                    if not bucket:
                        del self.buckets[value]
        if new is not None:
            for value in self.fn(new):
                self.buckets.setdefault(value, {})[k] = new


class Cache:
    """One resource's objects, indexes and handlers. Objects are shared: do not mutate them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.objects: dict[Key, JSON] = {}
        self.by_namespace: dict[str, dict[str, JSON]] = defaultdict(dict)
        self._handlers: list[Handler] = []
        self._indexes: list[Index] = []

    def add_handler(self, handler: Handler) -> Callable[[], None]:
        """Call handler(type, old, new) after every change; replays ADDED for cached objects.

        Returns a function that removes the handler again.
        """
        self._handlers.append(handler)
        for obj in list(self.objects.values()):
            handler("ADDED", None, obj)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._handlers.remove(handler)

        return remove

    def add_index(self, fn: Callable[[JSON], Iterable[str]]) -> dict[str, dict[Key, JSON]]:
        """An index: value -> {key: object} for every value fn(object) yields."""
        index = Index(fn)
        for k, obj in self.objects.items():
            index.put(k, None, obj)
        self._indexes.append(index)
        return index.buckets

    def get(self, namespace: str | None, name: str) -> JSON | None:
        """The cached object or None."""
        return self.objects.get((namespace or "", name))

    def list(self, namespace: str | None = None) -> Iterator[JSON]:
        """Cached objects, optionally of one namespace."""
        if namespace is None:
            return iter(list(self.objects.values()))
        return iter(list(self.by_namespace.get(namespace, {}).values()))

    def _put(self, obj: JSON) -> JSON | None:
        k = key_of(obj)
        old = self.objects.get(k)
        self.objects[k] = obj
        self.by_namespace[k[0]][k[1]] = obj
        for index in self._indexes:
            index.put(k, old, obj)
        return old

    def _pop(self, k: Key) -> JSON | None:
        old = self.objects.pop(k, None)
        ns_bucket = self.by_namespace.get(k[0])
        if ns_bucket is not None:
            ns_bucket.pop(k[1], None)
            if not ns_bucket:
                del self.by_namespace[k[0]]
        for index in self._indexes:
            index.put(k, old, None)
        return old

    def _dispatch(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        for handler in self._handlers:
            try:
                handler(etype, old, new)
            except Exception:
                log.exception("%s handler failed", self.name)
