"""What every simulated controller is: a named, switchable set of tasks over shared caches."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

from pytest_k8sdr.sim.apimachinery.clock import Clock
from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.meta import Key, key_of, meta
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apiserver.registry.store import Store
from pytest_k8sdr.sim.client.cache import Cache, Handler
from pytest_k8sdr.sim.controllers.events import EventRecorder
from pytest_k8sdr.sim.controllers.informers import Informers
from pytest_k8sdr.sim.controllers.workqueue import WorkQueue, queue_owners
from pytest_k8sdr.sim.profiles import Profile

__all__ = ["Context", "Controller", "OwnerController", "ignore_not_found"]


class Context:
    """What every controller gets: store, timings, caches, recorder, CA and clock."""

    def __init__(self, store: Store, profile: Profile, root_ca: bytes = b"") -> None:
        self.store = store
        self.profile = profile
        # The cluster CA (kube-controller-manager's --root-ca-file), PEM.
        self.root_ca = root_ca
        self.informers = Informers(store)
        self.recorder = EventRecorder(store)
        # The clock of time-driven controllers (CronJob schedules), which tests may advance.
        self.clock = Clock()


class Controller:
    """One named, separately switchable controller."""

    name: ClassVar[str]

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.profile = ctx.profile
        self.informers = ctx.informers
        self.recorder = ctx.recorder
        self._tasks: list[asyncio.Task[None]] = []
        self._undo: list[Callable[[], None]] = []

    def start(self) -> list[asyncio.Task[None]]:
        """Register handlers and start this controller's tasks."""
        raise NotImplementedError

    def stop(self) -> None:
        """Switch the controller off: its tasks are cancelled and its handlers removed.

        Every write a controller makes runs in one of its tasks (handlers only cache and
        enqueue), so once this returns it writes nothing more. A controller is not started
        twice: switching it on again builds a new instance, which lists its world afresh as a
        restarted kube-controller-manager does.
        """
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    def watch(self, informer: Cache, handler: Handler) -> None:
        """informer.add_handler(handler), removed again by stop()."""
        self._undo.append(informer.add_handler(handler))

    def on_stop(self, undo: Callable[[], None]) -> None:
        """Run `undo` when the controller is stopped (e.g. remove an admission hook)."""
        self._undo.append(undo)

    def _spawn(self, coro: Any, what: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            coro, name=f"{self.name}:{what}"
        )
        self._tasks.append(task)
        return task


class OwnerController(Controller):
    """A controller of one owner kind and the children it controls (ownerReferences).

    Upstream's workload controllers (replicaset, deployment, statefulset, daemon, job,
    cronjob) start alike: an informer of their kind, an informer of the children indexed by
    controller owner, and one work queue of owner keys fed by both. A subclass names the
    kinds and writes `_sync(key)`; `start()` may be extended (call it first, then add).
    """

    plural: ClassVar[str]  # the owner's resource
    kind: ClassVar[str]
    api_version: ClassVar[str]
    component: ClassVar[str]  # the source of its events
    child_plural: ClassVar[str] = "pods"
    # The SuccessfulDelete event's message, formatted with the child's and owner's names.
    deleted_message: ClassVar[str] = "Deleted pod: {name}"

    def start(self) -> list[asyncio.Task[None]]:
        """Follow the owners and their children."""
        self.owners = self.informers.get(self.plural)
        self.children = self.informers.get(self.child_plural)
        self.children_by_owner = self.informers.by_owner(self.child_plural)
        self.queue: WorkQueue[Key] = WorkQueue(self.name, self._sync)
        self.watch(self.owners, self._on_owner)
        self.watch(self.children, queue_owners(self.queue, self.kind))
        return [self._spawn(self.queue.run(), "queue")]

    def _on_owner(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        self.queue.add(key_of(new or old or {}))

    def _sync(self, key: Key) -> None:
        raise NotImplementedError

    def _owned(self, owner: JSON) -> list[JSON]:
        """The children whose controller is `owner`."""
        return list(self.children_by_owner.get(str(meta(owner).get("uid")), {}).values())

    def _event(self, owner: JSON, etype: str, reason: str, message: str) -> None:
        self.recorder.record(
            owner, self.kind, etype, reason, message, self.component, api_version=self.api_version
        )

    def _delete_child(self, owner: JSON, child: Key, propagation_policy: str | None = None) -> bool:
        """Delete a child and record SuccessfulDelete; False if it was already gone."""
        try:
            self.store.delete(self.child_plural, *child, propagation_policy=propagation_policy)
        except ApiError as exc:
            if exc.code != 404:
                raise
            return False
        message = self.deleted_message.format(name=child[1], owner=meta(owner)["name"])
        self._event(owner, "Normal", "SuccessfulDelete", message)
        return True

    def _write_status(self, key: Key, status: JSON, keep: tuple[str, ...] = ()) -> None:
        """Replace the owner's status (the `keep` fields stay as they are live)."""
        try:
            live = self.store.get(self.plural, *key)
        except ApiError as exc:
            if exc.code == 404:
                return
            raise
        for field in keep:
            if (live.get("status") or {}).get(field):
                status[field] = live["status"][field]
        live["status"] = status
        self.store.update(self.plural, key[0], key[1], live, subresource="status")


def ignore_not_found(fn: Callable[[], Any]) -> Any:
    """Run fn; a 404 (object already gone) is not an error for a controller."""
    try:
        return fn()
    except ApiError as exc:
        if exc.code == 404:
            return None
        raise
