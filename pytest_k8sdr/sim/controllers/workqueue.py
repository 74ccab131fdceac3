"""The controllers' work queue (client-go's workqueue with its default rate limiter).

Controllers never write from inside a watch callback: callbacks only update caches and enqueue
keys; a queue's worker task does the writes, as upstream's informer + workqueue split does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.meta import controller_ref, meta
from pytest_k8sdr.sim.apimachinery.types import JSON

__all__ = ["WorkQueue", "every", "queue_owners"]

log = logging.getLogger("pytest_k8sdr.sim.controllers")

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    """A de-duplicating queue drained by one task; failed keys are retried with backoff."""

    def __init__(self, name: str, handler: Callable[[K], None], *, batch: int = 200) -> None:
        self.name = name
        self._handler = handler
        self._pending: dict[K, None] = {}
        self._wake = asyncio.Event()
        self._failures: dict[K, int] = {}
        self._batch = batch
        self._timers: dict[K, asyncio.TimerHandle] = {}

    def add(self, key: K) -> None:
        """Queue `key` (no-op when already queued)."""
        if key not in self._pending:
            self._pending[key] = None
            self._wake.set()

    def add_after(self, key: K, delay: float) -> None:
        """Queue `key` after `delay` seconds (an earlier pending timer for it wins)."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        old = self._timers.get(key)
        when = loop.time() + delay
        if old is not None and old.when() <= when:
            return
        if old is not None:
            old.cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            self.add(key)

        self._timers[key] = loop.call_at(when, fire)

    def forget(self, key: K) -> None:
        """Drop a delayed re-queue of `key`."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    async def run(self) -> None:
        """Drain the queue forever."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                done = 0
                while self._pending:
                    key = next(iter(self._pending))
                    del self._pending[key]
                    self._process(key)
                    done += 1
                    if done % self._batch == 0:
                        await asyncio.sleep(0)
        finally:
            for timer in self._timers.values():
                timer.cancel()

    def _process(self, key: K) -> None:
        try:
            self._handler(key)
        except ApiError as exc:
            self._retry(key, exc)
        except Exception as exc:  # a controller bug must not kill the loop
            log.exception("%s: syncing %r failed", self.name, key)
            self._retry(key, exc)
        else:
            self._failures.pop(key, None)

    def _retry(self, key: K, exc: Exception) -> None:
        n = self._failures.get(key, 0) + 1
        self._failures[key] = n
        # client-go's default controller rate limiter: 5ms doubling, capped (here at 5s).
        delay = min(0.005 * 2 ** min(n, 20), 5.0)
        log.debug("%s: retrying %r in %.3fs after %s", self.name, key, delay, exc)
        self.add_after(key, delay)


async def every(period: float, fn: Callable[[], None], *, name: str) -> None:
    """Call `fn` every `period` seconds (wait.Until: the first call happens at once)."""
    while True:
        try:
            fn()
        except Exception:
            log.exception("%s: periodic pass failed", name)
        await asyncio.sleep(period)


def queue_owners(queue: WorkQueue[tuple[str, str]], kind: str) -> Callable[..., None]:
    """An informer handler queueing the `kind` controller owner of the old and new object."""

    def handler(etype: str, old: JSON | None, new: JSON | None) -> None:
        for obj in (old, new):
            ref = controller_ref(obj) if obj is not None else None
            if ref is not None and ref.get("kind") == kind:
                queue.add((meta(obj or {}).get("namespace") or "", str(ref.get("name"))))

    return handler
