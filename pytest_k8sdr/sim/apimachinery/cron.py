"""Cron schedules as CronJobs read them (github.com/robfig/cron/v3 ParseStandard).

Five fields (minute, hour, day of month, month, day of week) with `*`, `?`, lists, ranges,
steps and month and weekday names, or a descriptor (`@yearly`, `@annually`, `@monthly`,
`@weekly`, `@daily`, `@midnight`, `@hourly`, `@every <duration>`). As robfig/cron, when either
day field is restricted (not `*` or `?`) a day matches if either field matches, else both must.
Schedules are evaluated in a time zone (`zone`): the CronJob's `timeZone`, else the
controller's local one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["CronError", "Schedule", "parse_schedule", "zone"]


class CronError(ValueError):
    """A schedule or time zone that cannot be parsed (the message is robfig/cron's gist)."""


_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# (low, high, names) per field, robfig/cron's bounds.
_FIELDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (1, 12, _MONTHS),
    (0, 6, _DAYS),
)
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def zone(name: str | None) -> tzinfo:
    """The time zone called `name` (IANA), the local one for None; CronError if unknown."""
    if name is None:
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else UTC
    if name in ("UTC", "Etc/UTC"):
        return UTC
    if not name or name.startswith("/") or ".." in name:
        raise CronError(f"unknown time zone {name}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"unknown time zone {name}") from exc


def _field(text: str, index: int) -> tuple[frozenset[int], bool]:
    """The values one field allows, and whether it was `*` or `?` (robfig's starBit)."""
    low, high, names = _FIELDS[index]
    values: set[int] = set()
    star = False
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"failed to parse int from {step_text}: invalid step")
            step = int(step_text)
        if rng in ("*", "?"):
            start, end = low, high
            star = star or not step_text
        else:
            lo_text, dash, hi_text = rng.partition("-")
            start = _value(lo_text, names)
            end = _value(hi_text, names) if dash else (high if step_text else start)
        if start < low:
            raise CronError(f"beginning of range ({start}) below minimum ({low}): {part}")
        if end > high:
            raise CronError(f"end of range ({end}) above maximum ({high}): {part}")
        if start > end:
            raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {part}")
        values.update(range(start, end + 1, step))
    return frozenset(values), star


def _value(text: str, names: dict[str, int]) -> int:
    lowered = text.lower()
    if lowered in names:
        return names[lowered]
    if not text.isdigit():
        raise CronError(f"failed to parse int from {text}: invalid syntax")
    return int(text)


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule; `next(after, tz)` is its first time strictly after `after`."""

    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    days: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    weekdays: frozenset[int] = frozenset()
    day_star: bool = False
    weekday_star: bool = False
    every: float = 0.0  # @every: a constant delay (seconds)

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.day_star or self.weekday_star:
            return dom and dow
        return dom or dow

    def next(self, after: float, tz: tzinfo) -> float | None:
        """Seconds since the epoch of the first activation after `after` (None: never)."""
        if self.every:
            # ConstantDelaySchedule.Next: rounded down to the second, plus the delay.
            return float(int(after)) + self.every
        t = datetime.fromtimestamp(int(after), tz).replace(second=0) + timedelta(minutes=1)
        limit = t.year + 5
        while t.year <= limit:
            if t.month not in self.months:
                year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
                t = t.replace(year=year, month=month, day=1, hour=0, minute=0)
                continue
            if not self._day_matches(t):
                t = (t + timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if t.hour not in self.hours:
                t = (t + timedelta(hours=1)).replace(minute=0)
                continue
            if t.minute not in self.minutes:
                t = t + timedelta(minutes=1)
                continue
            return t.timestamp()
        return None


def parse_schedule(text: str) -> Schedule:
    """Parse a CronJob schedule (CronError naming what is wrong)."""
    spec = text.strip()
    if spec.startswith("@every "):
        parts = _DURATION.findall(spec[len("@every ") :].strip())
        rest = _DURATION.sub("", spec[len("@every ") :].strip())
        if not parts or rest:
            raise CronError(f"failed to parse duration {spec}")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
        if seconds < 1:
            seconds = 1.0  # robfig/cron: delays under a second become one second
        return Schedule(every=float(int(seconds)))
    if spec.startswith("@"):
        if spec not in _DESCRIPTORS:
            raise CronError(f"unrecognized descriptor: {spec}")
        spec = _DESCRIPTORS[spec]
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: {fields}")
    parsed = [_field(f, i) for i, f in enumerate(fields)]
    return Schedule(
        minutes=parsed[0][0],
        hours=parsed[1][0],
        days=parsed[2][0],
        months=parsed[3][0],
        weekdays=parsed[4][0],
        day_star=parsed[2][1],
        weekday_star=parsed[4][1],
    )
