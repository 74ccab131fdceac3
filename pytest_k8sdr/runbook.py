"""The runbook's phases as one timed object a test drives step by step.

A phase is a context: every wait and check that runs inside it reports its result to it (see
`pytest_k8sdr.results`), whether or not the test marks anything. A phase starts when the test
enters it and ends at the latest of

- the deciding cluster event of each wait or check that ran in it (a result's `at`: when the
  condition became true, not when the test got round to noticing), and
- the end of whatever the test did after its last wait or check: a fault, an LB reload, a
  command, a sleep. That work is timed from the last result's deciding event, so the test's
  own detection lag (a watch's delivery, a traffic window's confirmation) is never counted,
  and work after it always is.

A phase with no wait or check ends when its body returns. A phase that takes longer than its
SLO fails with `SLOExceeded`, naming the phase; any other failure inside a phase gets a note
naming it. Waits inside a phase end at its SLO (plus a second, so the SLO verdict decides), and
a check that names no timeout gets the phase's remaining time.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pytest_k8sdr.config import parse_duration
from pytest_k8sdr.errors import ClusterCheckFailed, ConfigError, SLOExceeded
from pytest_k8sdr.results import Result, phase_scope

# How far past its SLO a wait in a phase may run: long enough that a wait cut short by the
# deadline always finds the phase over its SLO, so the verdict is SLOExceeded, not a timeout.
SLO_GRACE = 1.0

PHASES = (
    "fail",
    "isolate",
    "self-heal",
    "drain LB",
    "restore",
    "relabel",
    "revert LB",
    "rebalance",
    # The data-loss drill (a backup restored and verified) and a rollout during an outage.
    "backup",
    "destroy",
    "verify",
    "rollout",
)

# SLOs per timing profile. `fast` matches the simulator's and ci/kind-config.yaml's fast timings
# (grace 4s, tolerations 10s, pod GC scaled); `upstream` matches upstream's defaults (grace 50s,
# tolerations 300s, pod GC 20s + 40s quarantine; docs/node-failure-semantics.md timelines).
DEFAULT_SLOS: dict[str, dict[str, float]] = {
    "fast": {
        "fail": 30.0,
        "isolate": 60.0,
        "self-heal": 90.0,
        "drain LB": 15.0,
        "restore": 90.0,
        "relabel": 15.0,
        "revert LB": 15.0,
        "rebalance": 90.0,
        "backup": 30.0,
        "destroy": 60.0,
        "verify": 60.0,
        "rollout": 90.0,
    },
    "upstream": {
        "fail": 120.0,
        "isolate": 180.0,
        "self-heal": 600.0,
        "drain LB": 60.0,
        "restore": 300.0,
        "relabel": 60.0,
        "revert LB": 60.0,
        "rebalance": 300.0,
        "backup": 300.0,
        "destroy": 300.0,
        "verify": 300.0,
        "rollout": 900.0,
    },
}


class PhaseListener(Protocol):
    """Told when a phase starts and ends (reports: allure steps, progress lines)."""

    def phase_started(self, runbook: Runbook, record: PhaseRecord) -> None:
        """A phase began."""

    def phase_ended(
        self, runbook: Runbook, record: PhaseRecord, error: BaseException | None
    ) -> None:
        """A phase ended; `error` is what it raised, if anything."""


@dataclass
class Mark:
    """One point of the timeline: what happened, when (wall clock), in which phase."""

    label: str
    at: datetime
    phase: str | None


@dataclass(frozen=True)
class Point:
    """One value of a numeric series on the timeline (a query's value), and when it was measured."""

    at: datetime
    value: float


@dataclass
class PhaseRecord:
    """A phase as it ran: start, end, SLO and verdict; the clock its waits report to."""

    name: str
    slo: float | None
    started: datetime
    ended: datetime | None = None
    verdict: str = "running"  # ok | slo-exceeded | failed | error
    error: str | None = None
    deadline: float | None = None  # time.monotonic() past which its waits stop
    _runbook: Runbook | None = field(default=None, repr=False)
    _latest: datetime | None = field(default=None, repr=False)
    _last: tuple[datetime, datetime] | None = field(default=None, repr=False)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (None while running)."""
        if self.ended is None:
            return None
        return (self.ended - self.started).total_seconds()

    def observe(self, result: Result[Any], label: str | None = None) -> None:
        """A wait or check in this phase held: count its deciding event; label it if named."""
        at = max(result.at, self.started)
        if self._latest is None or at > self._latest:
            self._latest = at
        self._last = (at, datetime.now(UTC))
        if label is not None and self._runbook is not None:
            self._runbook.marks.append(Mark(label, at, self.name))

    def sample(self, series: str, value: float, at: datetime) -> None:
        """A value of a numeric series, for the runbook's timeline."""
        if self._runbook is not None:
            self._runbook.sample(series, value, at)

    def end_at(self, body_returned: datetime) -> datetime:
        """Where the phase ends, its body having returned at `body_returned`."""
        if self._last is None or self._latest is None:
            return body_returned
        at, reported = self._last
        # What ran after the last result was work, timed from that result's deciding event.
        after = max(timedelta(0), body_returned - reported)
        return max(self._latest, at + after)

    def to_json(self) -> dict[str, Any]:
        """The record as JSON."""
        return {
            "phase": self.name,
            "slo_seconds": self.slo,
            "started": self.started.isoformat(),
            "ended": self.ended.isoformat() if self.ended else None,
            "seconds": None if self.duration is None else round(self.duration, 3),
            "verdict": self.verdict,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PhaseRecord:
        """A finished record from `to_json`'s output (another process's, e.g. an xdist worker's)."""
        ended = raw.get("ended")
        return cls(
            str(raw["phase"]),
            None if raw.get("slo_seconds") is None else float(raw["slo_seconds"]),
            datetime.fromisoformat(str(raw["started"])),
            datetime.fromisoformat(str(ended)) if ended else None,
            verdict=str(raw.get("verdict", "running")),
            error=None if raw.get("error") is None else str(raw["error"]),
        )


@dataclass
class Runbook:
    """The phases of one experiment, with their SLOs, durations and timeline."""

    name: str
    slos: Mapping[str, float | str] = field(default_factory=dict)
    phases: list[PhaseRecord] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    #: Numeric series by name (a query's values over the run), in the order measured.
    series: dict[str, list[Point]] = field(default_factory=dict)
    listeners: list[PhaseListener] = field(default_factory=list)
    _current: PhaseRecord | None = None

    def mark(self, label: str, at: datetime | Result[Any] | None = None) -> Mark:
        """Add a labelled point to the timeline (a time, a result's time, or now).

        Only a label: the phase is timed from what its waits and checks report, marked or not.
        """
        when = at.at if isinstance(at, Result) else at
        current = self._current.name if self._current else None
        mark = Mark(label, when or datetime.now(UTC), current)
        self.marks.append(mark)
        return mark

    def sample(self, series: str, value: float, at: datetime | None = None) -> Point:
        """Add a value of the numeric series `series` (measured at `at`, or now) to the timeline.

        Thread-safe enough for one writer per series (a steady-state monitor beside the test).
        """
        point = Point(at or datetime.now(UTC), float(value))
        self.series.setdefault(series, []).append(point)
        return point

    @contextmanager
    def phase(self, name: str, slo: float | str | None = None) -> Iterator[PhaseRecord]:
        """Time one phase; `slo` (seconds or "90s") overrides the runbook's SLO for it."""
        __tracebackhide__ = True
        if self._current is not None:
            raise ConfigError(f"phase {name!r} started inside phase {self._current.name!r}")
        raw_slo = slo if slo is not None else self.slos.get(name)
        record = PhaseRecord(
            name,
            parse_duration(raw_slo) if raw_slo is not None else None,
            datetime.now(UTC),
            _runbook=self,
        )
        started = time.monotonic()
        if record.slo is not None:
            record.deadline = started + record.slo + SLO_GRACE
        self.phases.append(record)
        self._current = record
        for listener in self.listeners:
            listener.phase_started(self, record)
        error: BaseException | None = None
        try:
            with phase_scope(record):
                yield record
            record.ended = record.end_at(datetime.now(UTC))
            took = record.duration or 0.0
            if record.slo is not None and took > record.slo:
                record.verdict = "slo-exceeded"
                record.error = f"took {took:.2f}s, SLO {record.slo:.2f}s"
                raise SLOExceeded(name, record.slo, took, f"runbook {self.name!r}")
            record.verdict = "ok"
        except SLOExceeded as exc:
            error = exc
            raise
        except ClusterCheckFailed as exc:
            record.ended = datetime.now(UTC)
            took = time.monotonic() - started
            if record.slo is not None and took > record.slo:
                record.verdict = "slo-exceeded"
                record.error = f"took over {record.slo:.2f}s: {str(exc).splitlines()[0]}"
                error = SLOExceeded(name, record.slo, took, f"runbook {self.name!r}\n{exc}")
                raise error from exc
            error = exc
            record.verdict = "failed"
            record.error = str(exc).splitlines()[0]
            exc.add_note(f"in runbook phase {name!r} of {self.name!r}")
            raise
        except BaseException as exc:
            error = exc
            record.ended = datetime.now(UTC)
            record.verdict = "error"
            record.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            exc.add_note(f"in runbook phase {name!r} of {self.name!r}")
            raise
        finally:
            self._current = None
            for listener in self.listeners:
                listener.phase_ended(self, record, error)

    def summary(self) -> list[dict[str, Any]]:
        """The phases as JSON records, in order."""
        return [p.to_json() for p in self.phases]

    def timeline(self) -> list[dict[str, Any]]:
        """Every mark, with seconds since the first phase started."""
        origin = self.phases[0].started if self.phases else None
        out = []
        for m in sorted(self.marks, key=lambda m: m.at):
            offset = (m.at - origin).total_seconds() if origin else 0.0
            out.append(
                {"label": m.label, "at": m.at.isoformat(), "t": round(offset, 3), "phase": m.phase}
            )
        return out

    def series_json(self) -> list[dict[str, Any]]:
        """Every numeric series: its name and points, with seconds since the first phase started.

        A value that is not a number (NaN, an infinity: a ratio of no traffic) is written null.
        """
        origin = self.phases[0].started if self.phases else None
        out = []
        for name, points in list(self.series.items()):
            out.append(
                {
                    "name": name,
                    "points": [
                        {
                            "at": p.at.isoformat(),
                            "t": round((p.at - origin).total_seconds(), 3) if origin else 0.0,
                            "value": p.value if math.isfinite(p.value) else None,
                        }
                        for p in sorted(points, key=lambda p: p.at)
                    ],
                }
            )
        return out

    def to_json(self) -> str:
        """Phases, timeline and numeric series as a JSON document."""
        return json.dumps(
            {
                "runbook": self.name,
                "phases": self.summary(),
                "timeline": self.timeline(),
                "series": self.series_json(),
            },
            indent=2,
        )
