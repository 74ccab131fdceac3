"""What every wait and check returns, and the runbook phase each one reports to.

A wait's predicate answers `Satisfied(value)` when its condition holds and None while it does
not, so 0, an empty list and None are values like any other, never "not yet".

Every wait and check returns one `Result`: its value, the wall-clock time of the cluster event
that decided it (not when the test noticed), and what was observed. Each one also reports that
result to the runbook phase it runs in, found through a context variable as a deadline is: the
phase times itself from what it was told, whether or not the test marked anything.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")

#: The timeout of a wait or check that names none, outside a runbook phase (inside one, the
#: phase's remaining SLO is the default).
DEFAULT_TIMEOUT = 120.0


@dataclass(frozen=True)
class Satisfied(Generic[T]):
    """A predicate's "the condition holds", with its value (which may be 0, [] or None)."""

    value: T
    observed: str | None = None


@dataclass(frozen=True)
class Result(Generic[T]):
    """A wait or check that held: its value, when it was decided, and what was observed.

    `at` is the wall-clock time (UTC) of the deciding event: when the watch event that made the
    condition true arrived, or when the traffic through a load balancer turned clean. `elapsed`
    (seconds) and `requests` (API requests) are what the wait cost.
    """

    value: T
    at: datetime
    observed: str
    elapsed: float = 0.0
    requests: int = 0


class PhaseSpan(Protocol):
    """A stretch of a run: a runbook phase, from its start to its end (None while it runs)."""

    @property
    def started(self) -> datetime:
        """When it began (wall clock, UTC)."""

    @property
    def ended(self) -> datetime | None:
        """When it ended; None while it runs."""


class PhaseClock(PhaseSpan, Protocol):
    """What a wait or check sees of the runbook phase it runs in."""

    @property
    def deadline(self) -> float | None:
        """`time.monotonic()` past which no wait in the phase may run (None: no bound)."""

    def observe(self, result: Result[Any], label: str | None) -> None:
        """A wait or check in the phase held; `label` names it on the timeline when given."""

    def sample(self, series: str, value: float, at: datetime) -> None:
        """A value of a numeric series measured at `at` (a query's), for the timeline."""


_phase: contextvars.ContextVar[PhaseClock | None] = contextvars.ContextVar(
    "k8sdr_phase", default=None
)


def current_phase() -> PhaseClock | None:
    """The phase the caller runs in, if any (threads started by the caller run in none)."""
    return _phase.get()


@contextmanager
def phase_scope(phase: PhaseClock) -> Iterator[None]:
    """Run the block inside `phase`: its waits report to it and end by its deadline."""
    token = _phase.set(phase)
    try:
        yield
    finally:
        _phase.reset(token)


def report(result: Result[T], label: str | None = None) -> Result[T]:
    """Tell the current phase (if any) that `result` held; returns `result`."""
    phase = _phase.get()
    if phase is not None:
        phase.observe(result, label)
    return result


def sample(series: str, value: float, at: datetime) -> None:
    """Put a measured value of `series` on the current phase's timeline (if any)."""
    phase = _phase.get()
    if phase is not None:
        phase.sample(series, value, at)


def timeout_for(timeout: float | None) -> float:
    """`timeout`, or the current phase's remaining time, or `DEFAULT_TIMEOUT`."""
    if timeout is not None:
        return timeout
    phase = _phase.get()
    if phase is not None and phase.deadline is not None:
        return max(0.0, phase.deadline - time.monotonic())
    return DEFAULT_TIMEOUT


def deadline_for(timeout: float | None) -> tuple[float, bool]:
    """The `time.monotonic()` deadline of a wait, and whether the phase's SLO set it."""
    start = time.monotonic()
    mine = start + timeout_for(timeout)
    phase = _phase.get()
    outer = phase.deadline if phase is not None else None
    if outer is not None and outer <= mine:
        return max(start, outer), True
    return mine, False
