"""The scheduling queue (pkg/scheduler/backend/queue/scheduling_queue.go).

Three parts, as upstream: activeQ (ready to try, highest priority first, then arrival),
backoffQ (tried and failed recently: back in activeQ once its backoff, 1 s doubling per attempt
up to 10 s, has passed) and unschedulablePods (failed; waiting for a cluster event one of the
plugins that rejected it registered, or for the periodic flush of pods left there longer than
5 minutes). A cluster event moves the matching unschedulable pods to backoffQ if still backing
off, else straight to activeQ. A pod that failed while such an event arrived during its own
cycle goes to backoffQ instead of waiting (upstream's moveRequestCycle).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

from pytest_k8sdr.sim.apimachinery.meta import Key

__all__ = ["SchedulingQueue"]


class SchedulingQueue:
    """activeQ, backoffQ and unschedulablePods of one scheduler."""

    def __init__(
        self,
        *,
        initial_backoff: float,
        max_backoff: float,
        max_in_unschedulable: float,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_in_unschedulable = max_in_unschedulable
        self._clock = clock
        self._heap: list[tuple[int, int, Key]] = []
        self._active: dict[Key, int] = {}  # key -> sequence number of its live heap entry
        self._seq = itertools.count()
        self._backoff: dict[Key, asyncio.TimerHandle] = {}
        self._unschedulable: dict[Key, tuple[float, frozenset[str]]] = {}
        self._priority: dict[Key, int] = {}
        self._attempts: dict[Key, int] = {}
        self._last_attempt: dict[Key, float] = {}
        self._move_cycle = 0
        self._popped_at: dict[Key, int] = {}
        self.wake = asyncio.Event()

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        return float(asyncio.get_running_loop().time())

    # --- membership ---------------------------------------------------------------------

    def __contains__(self, key: Key) -> bool:
        return (
            key in self._active
            or key in self._backoff
            or key in self._unschedulable
            or key in self._popped_at
        )

    def __len__(self) -> int:
        return len(self._active) + len(self._backoff) + len(self._unschedulable)

    def pending(self) -> dict[str, int]:
        """How many pods wait in each part (for a status view)."""
        return {
            "active": len(self._active),
            "backoff": len(self._backoff),
            "unschedulable": len(self._unschedulable),
        }

    def add(self, key: Key, priority: int) -> None:
        """A new pending pod (or one whose spec changed): straight to activeQ."""
        self._priority[key] = priority
        self._drop(key, keep_attempts=True)
        self._push(key)

    def delete(self, key: Key) -> None:
        """The pod is gone or bound: forget it."""
        self._drop(key, keep_attempts=False)
        self._popped_at.pop(key, None)
        self._priority.pop(key, None)

    def _drop(self, key: Key, *, keep_attempts: bool) -> None:
        self._active.pop(key, None)
        timer = self._backoff.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._unschedulable.pop(key, None)
        if not keep_attempts:
            self._attempts.pop(key, None)
            self._last_attempt.pop(key, None)

    def _push(self, key: Key) -> None:
        seq = next(self._seq)
        self._active[key] = seq
        heapq.heappush(self._heap, (-self._priority.get(key, 0), seq, key))
        self.wake.set()

    # --- the scheduling loop --------------------------------------------------------------

    def pop(self) -> Key | None:
        """The next pod to try (PrioritySort: higher priority, then earlier), or None."""
        while self._heap:
            _, seq, key = heapq.heappop(self._heap)
            if self._active.get(key) != seq:
                continue  # stale entry
            del self._active[key]
            self._attempts[key] = self._attempts.get(key, 0) + 1
            self._last_attempt[key] = self._now()
            self._popped_at[key] = self._move_cycle
            return key
        return None

    def done(self, key: Key) -> None:
        """The pod's cycle ended with a bind (or it is no longer ours)."""
        self.delete(key)

    def unschedulable(self, key: Key, plugins: frozenset[str]) -> None:
        """The pod fits nowhere: wait for an event one of `plugins` registered."""
        popped = self._popped_at.pop(key, None)
        if popped is not None and popped < self._move_cycle:
            self._to_backoff(key)
            return
        self._unschedulable[key] = (self._now(), plugins)

    def error(self, key: Key) -> None:
        """The cycle failed with an error: retry after the backoff."""
        self._popped_at.pop(key, None)
        self._to_backoff(key)

    def backoff_left(self, key: Key) -> float:
        """Seconds until the pod's backoff ends (0 when it is over)."""
        attempts = self._attempts.get(key, 0)
        if attempts == 0:
            return 0.0
        duration: float = min(self.initial_backoff * 2.0 ** (attempts - 1), self.max_backoff)
        return max(0.0, self._last_attempt.get(key, 0.0) + duration - self._now())

    def _to_backoff(self, key: Key) -> None:
        left = self.backoff_left(key)
        if left <= 0:
            self._push(key)
            return
        loop = asyncio.get_running_loop()

        def ready() -> None:
            if self._backoff.pop(key, None) is not None:
                self._push(key)

        self._backoff[key] = loop.call_later(left, ready)

    # --- cluster events ---------------------------------------------------------------------

    def move_all(self, wanted: Callable[[frozenset[str]], bool]) -> int:
        """MoveAllToActiveOrBackoffQueue: unschedulable pods whose rejectors care; the count."""
        self._move_cycle += 1
        moved = [k for k, (_, plugins) in self._unschedulable.items() if wanted(plugins)]
        for key in moved:
            del self._unschedulable[key]
            self._to_backoff(key)
        return len(moved)

    def flush_unschedulable_leftover(self) -> None:
        """Pods left in unschedulablePods longer than the maximum go back to be tried."""
        now = self._now()
        stale = [
            k
            for k, (since, _) in self._unschedulable.items()
            if now - since >= self.max_in_unschedulable
        ]
        for key in stale:
            del self._unschedulable[key]
            self._to_backoff(key)

    def close(self) -> None:
        """Cancel the backoff timers."""
        for timer in self._backoff.values():
            timer.cancel()
        self._backoff.clear()
