"""The ownership garbage collector (pkg/controller/garbagecollector), kube-controller-manager's.

It keeps the graph of ownerReferences beside the storage and acts synchronously inside the
write that makes it due, so a delete answers after its background cascade as it settles on a
quiet cluster upstream: dependents whose owners are all gone are deleted (Background), an
Orphan delete first drops the owner from its dependents, a Foreground delete holds the owner
with the foregroundDeletion finalizer until its dependents are gone, and an object created
with only absent owners is collected at the next loop iteration.

Switched off (`--controllers=-garbagecollector`) it still keeps the graph but collects
nothing; switched on again it catches up as upstream's first sync does (the graph is built
from a full list, then every node with absent owners is queued).
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apiserver.registry.store import Store

__all__ = ["NAME", "GarbageCollector"]

NAME = "garbagecollector"

ObjectKey = tuple[str, str, str]  # plural, namespace ("" for cluster scope), name


class GarbageCollector:
    """The owner graph of one store, and the collection it makes due."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.enabled = True
        self._dependents: dict[str, set[ObjectKey]] = {}
        storage = store.storage
        for plural in storage.types:
            for obj in storage.iter_objects(plural):
                m = obj["metadata"]
                self._observe(plural, m.get("namespace", ""), m["name"], obj, None)
        storage.observe_commits(self._observe)
        store.attach_owners(self)

    @classmethod
    def attach(cls, store: Store) -> GarbageCollector:
        """The collector of `store`, attaching one if it has none yet."""
        owners = store.owners
        if isinstance(owners, cls):
            return owners
        return cls(store)

    # -- the graph -----------------------------------------------------------------

    def _observe(self, plural: str, ns: str, name: str, obj: JSON | None, old: JSON | None) -> None:
        key = (plural, ns, name)
        if old is not None:
            for ref in old["metadata"].get("ownerReferences") or ():
                deps = self._dependents.get(ref.get("uid", ""))
                if deps is not None:
                    deps.discard(key)
                    if not deps:
                        del self._dependents[ref.get("uid", "")]
        if obj is not None:
            for ref in obj["metadata"].get("ownerReferences") or ():
                self._dependents.setdefault(ref.get("uid", ""), set()).add(key)

    def _owner_exists(self, ref: JSON) -> bool:
        return self.store.storage.where_uid(ref.get("uid", "")) is not None

    def has_dependents(self, uid: str) -> bool:
        """Whether anything names `uid` in its ownerReferences."""
        return bool(self._dependents.get(uid))

    # -- what the store asks -------------------------------------------------------------

    def set_enabled(self, enabled: bool) -> None:
        """Switch collection; switched on, it catches up (see the module doc)."""
        was, self.enabled = self.enabled, enabled
        if was or not enabled:
            return
        storage = self.store.storage
        for uid in sorted(u for u in self._dependents if storage.where_uid(u) is None):
            self._collect_dependents(uid)
        for uid, (plural, ns, name) in list(storage.uids()):
            entry = storage.find(plural, ns, name)
            if entry is not None and "foregroundDeletion" in (
                entry.decode()["metadata"].get("finalizers") or []
            ):
                self._collect_dependents(uid, force=True)
                self._finish_foreground(uid)

    def orphan_dependents(self, uid: str) -> None:
        """Drop `uid` from its dependents' ownerReferences (done even while switched off)."""
        storage = self.store.storage
        for plural, ns, name in sorted(self._dependents.get(uid, ())):
            entry = storage.find(plural, ns, name)
            if entry is None:
                continue
            new = json.loads(entry.raw)
            refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            self.store.update_entry(plural, ns or None, name, new)

    def created(self, plural: str, namespace: str, name: str, obj: JSON) -> None:
        """Collect an object created with only absent owners, once the create has answered."""
        refs = obj["metadata"].get("ownerReferences") or []
        if not refs or any(self._owner_exists(r) for r in refs):
            return
        uid = obj["metadata"]["uid"]

        def collect() -> None:
            if not self.enabled:
                return
            entry = self.store.storage.find(plural, namespace, name)
            meta = entry.decode()["metadata"] if entry is not None else {}
            if meta.get("uid") != uid:
                return
            refs = meta.get("ownerReferences") or []
            if refs and not any(self._owner_exists(r) for r in refs):
                with contextlib.suppress(ApiError):
                    self.store.delete_entry(
                        plural, namespace or None, name, propagation_policy="Background"
                    )

        try:
            asyncio.get_running_loop().call_soon(collect)
        except RuntimeError:
            collect()

    def removed(self, obj: JSON) -> None:
        """An object went: collect its dependents, finish the foreground deletion it held."""
        self._collect_dependents(obj["metadata"].get("uid", ""))
        for ref in obj["metadata"].get("ownerReferences") or ():
            self._finish_foreground(ref.get("uid", ""))

    def deleting_in_foreground(self, uid: str) -> None:
        """Delete the owner's dependents now; the owner goes once they are gone."""
        self._collect_dependents(uid, force=True)
        self._finish_foreground(uid)

    # -- collection ----------------------------------------------------------------------

    def _collect_dependents(self, uid: str, *, force: bool = False) -> None:
        """Background GC: delete dependents whose owners are all gone (or `force`)."""
        if not self.enabled:
            return
        storage = self.store.storage
        for plural, ns, name in sorted(self._dependents.get(uid, ())):
            entry = storage.find(plural, ns, name)
            if entry is None:
                continue
            meta = entry.decode()["metadata"]
            refs = meta.get("ownerReferences") or []
            if not force and any(self._owner_exists(r) for r in refs):
                continue
            if meta.get("deletionTimestamp") and plural != "pods":
                continue
            with contextlib.suppress(ApiError):
                self.store.delete_entry(plural, ns or None, name, propagation_policy="Background")

    def _finish_foreground(self, owner_uid: str) -> None:
        if not self.enabled:
            return
        storage = self.store.storage
        where = storage.where_uid(owner_uid)
        if where is None or self._dependents.get(owner_uid):
            return
        plural, ns, name = where
        entry = storage.find(plural, ns, name)
        new = entry.decode() if entry is not None else None
        if new is None or "foregroundDeletion" not in (new["metadata"].get("finalizers") or []):
            return
        fins = [f for f in new["metadata"]["finalizers"] if f != "foregroundDeletion"]
        if fins:
            new["metadata"]["finalizers"] = fins
        else:
            new["metadata"].pop("finalizers", None)
        self.store.update_entry(plural, ns or None, name, new)
