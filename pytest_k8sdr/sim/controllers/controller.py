"""What every simulated controller is: a named, switchable set of tasks over shared caches."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

from pytest_k8sdr.sim.apimachinery.clock import Clock
from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apiserver.registry.store import Store
from pytest_k8sdr.sim.client.cache import Cache, Handler
from pytest_k8sdr.sim.controllers.events import EventRecorder
from pytest_k8sdr.sim.controllers.informers import Informers
from pytest_k8sdr.sim.profiles import Profile

__all__ = ["Context", "Controller", "ignore_not_found"]


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


def ignore_not_found(fn: Callable[[], Any]) -> Any:
    """Run fn; a 404 (object already gone) is not an error for a controller."""
    try:
        return fn()
    except ApiError as exc:
        if exc.code == 404:
            return None
        raise
