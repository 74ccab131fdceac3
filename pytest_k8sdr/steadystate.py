"""Steady state from Prometheus: `assert_promql`, and an experiment's hypothesis.

A hypothesis is a list of probes (`SteadyStateProbe`: a PromQL query and a threshold every
series it returns must keep). It is checked before the experiment's first disruption (not met:
the experiment refuses to start), watched while it disrupts (a breach trips the stop condition:
the experiment fails at once and its disruptions are undone), and checked again after it (the
system came back, within a recovery time). A query that returns nothing does not hold: no data
is no evidence of health. Every value read goes on the runbook's timeline as a numeric series.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pytest_k8sdr.config import SteadyStateProbe
from pytest_k8sdr.errors import (
    ConfigError,
    PrometheusError,
    SteadyStateBreached,
    SteadyStateNotMet,
    WaitTimeout,
)
from pytest_k8sdr.lock import StopCondition
from pytest_k8sdr.prometheus.client import Prometheus, Sample
from pytest_k8sdr.results import Result, deadline_for, report, sample

log = logging.getLogger(__name__)

#: Where a value goes: series name, value, when it was measured (the runbook's `sample`).
SampleSink = Callable[[str, float, datetime], object]

# Prometheus errors in a row, while watching, after which the steady state counts as lost:
# an experiment whose evidence of health is gone must not go on disrupting.
UNOBSERVED_LIMIT = 3


def series_name(name: str, s: Sample) -> str:
    """The timeline series of one query series: the probe's name, plus its labels if any."""
    return f"{name}{s.series}"


@dataclass(frozen=True)
class Reading:
    """One evaluation of one probe: what Prometheus answered and whether it held."""

    probe: SteadyStateProbe
    samples: tuple[Sample, ...]
    at: datetime

    @property
    def holds(self) -> bool:
        """Every series keeps the threshold, and there is at least one."""
        return bool(self.samples) and all(self.probe.holds(s.value) for s in self.samples)

    def describe(self) -> str:
        """The probe and what it read, e.g. ``error ratio: ... < 0.01: value = 0.2``."""
        seen = ", ".join(str(s) for s in self.samples) or "no data (the query returned nothing)"
        return f"{self.probe.describe()}: {seen}"


def _read(
    prometheus: Prometheus,
    probe: SteadyStateProbe,
    query: str,
    sink: SampleSink | None,
) -> Reading:
    samples = tuple(prometheus.query(query))
    at = samples[0].at if samples else datetime.now(UTC)
    for s in samples:
        series = series_name(probe.name, s)
        if sink is not None:
            sink(series, s.value, s.at)
        else:
            sample(series, s.value, s.at)
    return Reading(probe, samples, at)


def _bounds(below: float | None, above: float | None, query: str) -> list[SteadyStateProbe]:
    if below is None and above is None:
        raise ConfigError(f"assert_promql({query!r}) needs below=, above= or both")
    probes = []
    if below is not None:
        probes.append(SteadyStateProbe(query, query, "<", float(below)))
    if above is not None:
        probes.append(SteadyStateProbe(query, query, ">", float(above)))
    return probes


def assert_promql(
    prometheus: Prometheus,
    query: str,
    *,
    below: float | None = None,
    above: float | None = None,
    for_: float = 0.0,
    timeout: float | None = None,
    interval: float = 1.0,
    name: str | None = None,
) -> Result[list[Sample]]:
    """Wait until every series of `query` is below `below` and above `above`, for `for_` seconds.

    The query is evaluated every `interval` seconds; a query returning nothing does not hold.
    Its values go on the runbook's timeline (series `name`, default the query). Returns the
    last samples, decided at the evaluation that completed `for_`; `WaitTimeout` with the last
    values after `timeout` (default: the phase's remaining SLO).
    """
    __tracebackhide__ = True
    probes = _bounds(below, above, query)
    label = name or query
    named = [SteadyStateProbe(label, p.query, p.op, p.threshold) for p in probes]
    deadline, cut_by_slo = deadline_for(timeout)
    started = time.monotonic()
    held_since: float | None = None
    pause = threading.Event()
    readings: list[Reading] = []
    while True:
        # One query per evaluation, whichever bounds it is held to.
        samples = tuple(prometheus.query(query))
        at = samples[0].at if samples else datetime.now(UTC)
        for s in samples:
            sample(series_name(label, s), s.value, s.at)
        readings = [Reading(p, samples, at) for p in named]
        now = time.monotonic()
        if all(r.holds for r in readings):
            held_since = now if held_since is None else held_since
            if now - held_since >= for_:
                observed = "; ".join(r.describe() for r in readings)
                return report(
                    Result(list(samples), at, observed, elapsed=now - started),
                    label=f"{label} held",
                )
        else:
            held_since = None
        if now + interval > deadline:
            break
        pause.wait(interval)
    why = " (cut short by the runbook phase's SLO)" if cut_by_slo else ""
    wanted = " and ".join(f"{p.op} {p.threshold:g}" for p in named)
    hold = f" for {for_:g}s" if for_ else ""
    last = "; ".join(r.describe() for r in readings)
    raise WaitTimeout(
        f"timed out after {time.monotonic() - started:.1f}s{why} waiting for {label!r} to stay "
        f"{wanted}{hold}\nlast read: {last}"
    )


class SteadyState:
    """An experiment's hypothesis: checked before, watched during, checked after.

    `namespace` gives the test's namespace when the probes are first read (`$namespace` in a
    query stands for it); `sink` receives every value read (the test's runbook).
    """

    def __init__(
        self,
        prometheus: Prometheus,
        probes: Sequence[SteadyStateProbe],
        *,
        stop: StopCondition,
        interval: float = 1.0,
        recovery: float = 60.0,
        namespace: Callable[[], str | None] = lambda: None,
        sink: Callable[[], SampleSink | None] = lambda: None,
    ) -> None:
        self.prometheus = prometheus
        self.probes = tuple(probes)
        self.stop = stop
        self.interval = interval
        self.recovery = recovery
        self._namespace = namespace
        self._sink = sink
        self.started = False
        self.readings = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def _query(self, probe: SteadyStateProbe) -> str:
        namespace = self._namespace()
        if "$namespace" in probe.query:
            if namespace is None:
                raise ConfigError(
                    f"steady_state probe {probe.name!r} names $namespace, but the test has no "
                    "namespace (use the namespace fixture, or the namespace setting)"
                )
            return probe.query.replace("$namespace", namespace)
        return probe.query

    def read(self) -> list[Reading]:
        """Read every probe now; PrometheusError when Prometheus cannot answer."""
        sink = self._sink()
        readings = [_read(self.prometheus, p, self._query(p), sink) for p in self.probes]
        self.readings += 1
        return readings

    def before_first_disruption(self) -> None:
        """Require the hypothesis (SteadyStateNotMet otherwise: nothing disrupted), then watch it.

        Called before each disruption; only the first one checks. A probe with no data yet is
        read again every `interval`, up to `recovery`: no data is never taken for health.
        """
        __tracebackhide__ = True
        if self.started:
            return
        # A series not scraped yet (a workload made just now) is waited for, up to `recovery`;
        # a value read that breaks the hypothesis refuses at once.
        deadline = time.monotonic() + self.recovery
        pause = threading.Event()
        while True:
            try:
                readings = self.read()
            except PrometheusError as exc:
                raise SteadyStateNotMet(
                    f"refusing to start: the steady state cannot be read before the first "
                    f"disruption: {exc}; nothing was disrupted"
                ) from exc
            waiting = any(not r.samples for r in readings)
            refused = any(r.samples and not r.holds for r in readings)
            if refused or not waiting or time.monotonic() + self.interval > deadline:
                break
            pause.wait(self.interval)
        broken = [r for r in readings if not r.holds]
        if broken:
            raise SteadyStateNotMet(
                "refusing to start: the steady state does not hold before the first "
                "disruption, so the experiment would start from a broken system; nothing was "
                "disrupted:\n  " + "\n  ".join(r.describe() for r in broken)
            )
        self.started = True
        self._thread = threading.Thread(target=self._watch, name="k8sdr-steady-state", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        failures = 0
        while not self._stopping.wait(self.interval):
            try:
                readings = self.read()
            except (PrometheusError, ConfigError) as exc:
                failures += 1
                log.warning("steady state not readable (%d in a row): %s", failures, exc)
                if failures >= UNOBSERVED_LIMIT:
                    self.stop.trip(
                        f"the steady state can no longer be observed ({failures} failed reads "
                        f"in a row: {exc})",
                        error=SteadyStateBreached,
                        scope="test",
                    )
                    return
                continue
            failures = 0
            broken = [r for r in readings if not r.holds]
            if broken and not self._stopping.is_set():
                self.stop.trip(
                    "the steady state broke during the experiment: "
                    + "; ".join(r.describe() for r in broken),
                    error=SteadyStateBreached,
                    scope="test",
                )
                return

    def stop_watching(self) -> None:
        """Stop the watch (idempotent)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.prometheus.timeout + self.interval + 1)

    def require_recovered(self, timeout: float | None = None) -> list[Reading]:
        """After the experiment: wait up to `timeout` (default `recovery`) for it to hold again.

        SteadyStateNotMet with the last readings when it does not.
        """
        __tracebackhide__ = True
        timeout = self.recovery if timeout is None else timeout
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        readings: list[Reading] = []
        error: PrometheusError | None = None
        while True:
            try:
                readings = self.read()
                error = None
                if all(r.holds for r in readings):
                    return readings
            except PrometheusError as exc:
                error = exc
            if time.monotonic() + self.interval > deadline:
                break
            pause.wait(self.interval)
        last = (
            f"Prometheus: {error}"
            if error
            else "\n  ".join(r.describe() for r in readings if not r.holds)
        )
        raise SteadyStateNotMet(
            f"the system did not come back to its steady state within {timeout:g}s after the "
            f"experiment:\n  {last}"
        )
