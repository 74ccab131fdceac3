"""A traffic probe: steady HTTP requests through the load balancer while an experiment runs.

The probe sends GET requests at a fixed rate (open loop: a slow answer does not delay the next
request, so an outage shows up as failures, not as fewer requests), each on a new connection
as independent clients would. For every request it records when it was sent, its status or
error, its latency, and which node and pod answered, read from the pod HTTP contract's
``X-K8sdr-Node`` / ``X-K8sdr-Pod`` headers (or the JSON body's ``node``/``pod``/``namespace``).

The requests run on an asyncio loop in one background thread; every method may be called from
any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from urllib.parse import urlsplit

from pytest_k8sdr.lb.errors import LBConfigError, LBError


def wall_clock(t: float) -> datetime:
    """The wall-clock time (UTC) of the probe clock's (`time.monotonic()`) reading `t`."""
    return datetime.fromtimestamp(time.time() - (time.monotonic() - t), UTC)


@dataclass(frozen=True)
class ProbeRecord:
    """One request: sent at `t` (`time.monotonic()`), answered or failed `latency` s later."""

    t: float
    wall: float
    latency: float
    status: int | None
    error: str | None
    node: str | None
    pod: str | None
    upstream: str | None = None

    @property
    def ok(self) -> bool:
        """Answered with a 2xx or 3xx status."""
        return self.error is None

    @property
    def retried(self) -> bool:
        """The load balancer tried more than one server (its upstream header lists several)."""
        return self.upstream is not None and "," in self.upstream


@dataclass(frozen=True)
class ErrorWindow:
    """A period with failures no further apart than the summary's `merge_gap`."""

    start: float
    end: float
    errors: int

    @property
    def duration(self) -> float:
        """From the first failed request's send to the last one's failure, in seconds."""
        return self.end - self.start


@dataclass(frozen=True)
class ProbeSummary:
    """Figures over the requests sent in [`start`, `end`).

    `start` and `end` are on the probe's clock (`time.monotonic()`, for arithmetic with the
    records); `started_at` and `ended_at` are the same moments on the wall clock (UTC), to put
    the window on a runbook's timeline.
    """

    start: float
    end: float
    requests: int
    errors: int
    error_windows: tuple[ErrorWindow, ...]
    per_node: dict[str, int]
    per_pod: dict[str, int]
    errors_by_kind: dict[str, int]
    latency_p50: float | None
    latency_p99: float | None
    latency_max: float | None
    retried: int = 0
    per_node_share: dict[str, float] = field(init=False)
    started_at: datetime = field(init=False)
    ended_at: datetime = field(init=False)

    def __post_init__(self) -> None:
        answered = sum(self.per_node.values())
        share = {n: c / answered for n, c in self.per_node.items()} if answered else {}
        object.__setattr__(self, "per_node_share", share)
        object.__setattr__(self, "started_at", wall_clock(self.start))
        object.__setattr__(self, "ended_at", wall_clock(self.end))

    @property
    def error_rate(self) -> float:
        """Failed requests over all requests (0.0 when there were none)."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def longest_error_window(self) -> float:
        """Duration of the longest error window, 0.0 without errors."""
        return max((w.duration for w in self.error_windows), default=0.0)

    def describe(self) -> str:
        """One paragraph for reports and failure messages."""
        span = self.end - self.start
        nodes = ", ".join(f"{n} {c}" for n, c in sorted(self.per_node.items())) or "none"
        text = (
            f"{self.requests} requests in {span:.1f}s, {self.errors} failed "
            f"({self.error_rate:.1%}); answered by node: {nodes}"
        )
        if self.errors:
            kinds = ", ".join(f"{k} x{c}" for k, c in self.errors_by_kind.items())
            text += f"; errors: {kinds}; longest error window {self.longest_error_window:.2f}s"
        if self.retried:
            text += f"; {self.retried} answered after the load balancer retried"
        if self.latency_p50 is not None and self.latency_p99 is not None:
            text += (
                f"; latency p50 {self.latency_p50 * 1000:.1f}ms p99 {self.latency_p99 * 1000:.1f}ms"
            )
        return text


def summarize(
    records: Sequence[ProbeRecord], start: float, end: float, *, merge_gap: float = 1.0
) -> ProbeSummary:
    """Summarize the records sent in [`start`, `end`).

    Failures closer than `merge_gap` seconds belong to the same error window.
    """
    chosen = sorted((r for r in records if start <= r.t < end), key=lambda r: r.t)
    windows: list[ErrorWindow] = []
    for r in (r for r in chosen if not r.ok):
        last = windows[-1] if windows else None
        if last is not None and r.t - last.end <= merge_gap:
            windows[-1] = ErrorWindow(last.start, max(last.end, r.t + r.latency), last.errors + 1)
        else:
            windows.append(ErrorWindow(r.t, r.t + r.latency, 1))
    latencies = sorted(r.latency for r in chosen if r.ok)
    return ProbeSummary(
        start=start,
        end=end,
        requests=len(chosen),
        errors=sum(1 for r in chosen if not r.ok),
        error_windows=tuple(windows),
        per_node=dict(Counter(r.node or "?" for r in chosen if r.ok)),
        per_pod=dict(Counter(r.pod or "?" for r in chosen if r.ok)),
        errors_by_kind=dict(Counter(r.error or "" for r in chosen if not r.ok)),
        latency_p50=_quantile(latencies, 0.5),
        latency_p99=_quantile(latencies, 0.99),
        latency_max=latencies[-1] if latencies else None,
        retried=sum(1 for r in chosen if r.retried),
    )


def _quantile(ordered: Sequence[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


class TrafficProbe:
    """Sends GET `url` `rate` times a second in the background, recording every answer.

    `timeout` bounds each request (connect to last byte); `max_in_flight` caps the requests
    open at once (a tick that finds the cap reached is counted in `skipped`, not sent).
    `upstream_header` names a response header in which the load balancer lists the servers it
    tried (nginx: ``add_header X-Upstream-Addr $upstream_addr always;``), so that requests it
    retried on another node show up even though they succeeded.
    `start`/`stop` are idempotent; as a context manager the probe runs inside the block.
    """

    def __init__(
        self,
        url: str,
        *,
        rate: float = 50.0,
        timeout: float = 2.0,
        max_in_flight: int = 1000,
        host_header: str | None = None,
        upstream_header: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise LBConfigError(f"probe URL must be http://HOST[:PORT]/PATH, not {url!r}")
        if not rate > 0:
            raise LBConfigError(f"probe rate must be positive, not {rate!r}")
        if not timeout > 0:
            raise LBConfigError(f"probe timeout must be positive, not {timeout!r}")
        self.url = url
        self.rate = rate
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self.upstream_header = upstream_header.lower() if upstream_header else None
        self._host = parts.hostname
        self._port = parts.port or 80
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        host = host_header or parts.netloc
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pytest-k8sdr-probe\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        self.skipped = 0
        self._records: list[ProbeRecord] = []
        self._in_flight: dict[int, float] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started_at: float | None = None
        self._stopped_at: float | None = None
        self._failure: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> TrafficProbe:
        """Start sending (no-op when running); returns self."""
        with self._cond:
            if self._thread is not None:
                return self
            ready = threading.Event()
            self._thread = threading.Thread(
                target=self._thread_main, args=(ready,), name=f"k8sdr-probe {self.url}", daemon=True
            )
            self._thread.start()
        ready.wait()
        return self

    def stop(self) -> None:
        """Stop sending; requests still open are abandoned, not recorded."""
        with self._cond:
            thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(stopping.set)
        thread.join()
        with self._cond:
            self._thread = None
            self._in_flight.clear()
            self._cond.notify_all()
        if self._failure is not None:
            raise LBError(f"the traffic probe for {self.url} crashed") from self._failure

    @property
    def running(self) -> bool:
        """Whether the probe is sending."""
        return self._thread is not None

    def __enter__(self) -> TrafficProbe:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- reading -----------------------------------------------------------------------

    @staticmethod
    def now() -> float:
        """The probe's clock (`time.monotonic()`), to mark the start of a window."""
        return time.monotonic()

    def records(self, since: float | None = None, until: float | None = None) -> list[ProbeRecord]:
        """Records of requests sent in [`since`, `until`), in order of sending."""
        lo = -math.inf if since is None else since
        hi = math.inf if until is None else until
        with self._cond:
            chosen = [r for r in self._records if lo <= r.t < hi]
        return sorted(chosen, key=lambda r: r.t)

    def summary(
        self, since: float | None = None, until: float | None = None, *, merge_gap: float = 1.0
    ) -> ProbeSummary:
        """Figures over the requests sent in [`since`, `until`) (default: all of them)."""
        with self._cond:
            first = self._started_at if self._started_at is not None else self.now()
            last = self._stopped_at if self._thread is None and self._stopped_at else self.now()
        start = first if since is None else since
        end = last if until is None else until
        return summarize(self.records(start, end), start, end, merge_gap=merge_gap)

    def settled_until(self) -> float:
        """A time before which every request sent has its record (none is still open)."""
        with self._cond:
            return min(self._in_flight.values(), default=self.now())

    def wait_settled(self, until: float, timeout: float) -> bool:
        """Block until every request sent before `until` has its record; False on timeout."""
        deadline = self.now() + timeout
        with self._cond:
            while True:
                now = self.now()
                oldest = min(self._in_flight.values(), default=None)
                if now >= until and (oldest is None or oldest >= until):
                    return True
                if self._thread is None:
                    return oldest is None
                if now >= deadline:
                    return False
                wait = until - now if now < until else deadline - now
                self._cond.wait(min(wait, deadline - now))

    def wait_for_record(self, timeout: float) -> None:
        """Block until a new record arrives, or `timeout` seconds pass."""
        with self._cond:
            count = len(self._records)
            self._cond.wait_for(lambda: len(self._records) != count, timeout)

    # -- the loop ----------------------------------------------------------------------

    def _thread_main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._run(ready))
        except BaseException as exc:
            self._failure = exc
        finally:
            ready.set()
            loop.close()
            with self._cond:
                self._loop = None
                self._stopped_at = self.now()
                self._cond.notify_all()

    async def _run(self, ready: threading.Event) -> None:
        stopping = asyncio.Event()
        with self._cond:
            self._loop = asyncio.get_running_loop()
            self._stopping = stopping
            self._started_at = self.now()
        ready.set()
        tasks: set[asyncio.Task[None]] = set()
        interval = 1.0 / self.rate
        next_at = self.now()
        serial = 0
        while not stopping.is_set():
            delay = next_at - self.now()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), delay)
                continue
            next_at += interval
            if len(tasks) >= self.max_in_flight:
                self.skipped += 1
                continue
            serial += 1
            task = asyncio.create_task(self._one(serial))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, serial: int) -> None:
        t = self.now()
        wall = time.time()
        with self._cond:
            self._in_flight[serial] = t
        status: int | None = None
        error: str | None = None
        node = pod = upstream = None
        try:
            async with asyncio.timeout(self.timeout):
                status, headers, body = await self._fetch()
            node, pod = _identity(headers, body)
            if self.upstream_header:
                upstream = headers.get(self.upstream_header)
            if not 200 <= status < 400:
                error = f"HTTP {status}"
        except TimeoutError:
            error = "timeout"
        except asyncio.CancelledError:
            with self._cond:
                self._in_flight.pop(serial, None)
            raise
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            error = type(exc).__name__
        latency = self.now() - t
        record = ProbeRecord(t, wall, latency, status, error, node, pod, upstream)
        with self._cond:
            self._in_flight.pop(serial, None)
            self._records.append(record)
            self._cond.notify_all()

    async def _fetch(self) -> tuple[int, dict[str, str], bytes]:
        reader, writer = await asyncio.open_connection(self._host, self._port)
        try:
            writer.write(self._request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                key, sep, value = line.partition(":")
                if sep:
                    headers[key.strip().lower()] = value.strip()
            length = headers.get("content-length")
            if length is not None and length.isdigit():
                body = await reader.readexactly(int(length))
            else:
                body = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return status, headers, body


def _identity(headers: dict[str, str], body: bytes) -> tuple[str | None, str | None]:
    node = headers.get("x-k8sdr-node")
    pod = headers.get("x-k8sdr-pod")
    if (node is None or pod is None) and body[:1] == b"{":
        with contextlib.suppress(ValueError, AttributeError):
            data = json.loads(body)
            node = node or data.get("node")
            if pod is None and data.get("pod"):
                ns = data.get("namespace")
                pod = f"{ns}/{data['pod']}" if ns else str(data["pod"])
    return node, pod


@dataclass(frozen=True)
class Outage:
    """A stretch during which a node should get no traffic: drained from the LB, or dead.

    Times are on the wall clock (`time.time()`); `until` is None while it lasts. `address` is
    the node's address as the load balancer lists it (its upstream header names it), when known.
    """

    node: str
    why: str
    since: float
    until: float | None = None
    address: str | None = None

    def covers(self, wall: float) -> bool:
        """Whether a request sent at `wall` was sent during the outage."""
        return self.since <= wall and (self.until is None or wall < self.until)


def went_to(record: ProbeRecord, outage: Outage) -> bool:
    """Whether the request, sent during `outage`, was answered by or tried on its node."""
    if not outage.covers(record.wall):
        return False
    if record.node == outage.node:
        return True
    if outage.address is None or record.upstream is None:
        return False
    tried = (server.strip().rsplit(":", 1)[0] for server in record.upstream.split(","))
    return outage.address in tried


def per_second(records: Sequence[ProbeRecord]) -> list[dict[str, object]]:
    """The requests sent in each wall-clock second: counts, errors by kind, latency, nodes.

    One entry per second from the first request's to the last one's, a second with no request
    included (an outage of the probe itself shows as zero requests, not as a gap).
    """
    if not records:
        return []
    buckets: dict[int, list[ProbeRecord]] = {}
    for r in records:
        buckets.setdefault(math.floor(r.wall), []).append(r)
    out: list[dict[str, object]] = []
    for second in range(min(buckets), max(buckets) + 1):
        chosen = buckets.get(second, [])
        latencies = sorted(r.latency for r in chosen if r.ok)
        p50, p99 = _quantile(latencies, 0.5), _quantile(latencies, 0.99)
        out.append(
            {
                "t": second,
                "requests": len(chosen),
                "errors": sum(1 for r in chosen if not r.ok),
                "errors_by_kind": dict(Counter(r.error or "" for r in chosen if not r.ok)),
                "latency_p50_ms": None if p50 is None else round(p50 * 1000, 2),
                "latency_p99_ms": None if p99 is None else round(p99 * 1000, 2),
                "by_node": dict(Counter(r.node or "?" for r in chosen if r.ok)),
            }
        )
    return out


def traffic_figures(
    url: str, records: Sequence[ProbeRecord], outages: Sequence[Outage] = ()
) -> dict[str, object]:
    """A probe's figures as JSON: totals, share by node, error window, per-second series.

    The error window runs from the first failed request's send to the last one's failure (wall
    clock, seconds since the epoch). `to_outage_nodes` counts the requests answered by, or
    tried on, a node while it was drained or dead (`outages`), by node.
    """
    ordered = sorted(records, key=lambda r: r.t)
    whole = summarize(ordered, ordered[0].t, ordered[-1].t + 1.0) if ordered else None
    failed = [r for r in ordered if not r.ok]
    window: dict[str, float] | None = None
    if failed:
        start = failed[0].wall
        end = max(r.wall + r.latency for r in failed)
        window = {"start": start, "end": end, "seconds": round(end - start, 3)}
    strays: Counter[str] = Counter()
    for r in ordered:
        hit = next((o for o in outages if went_to(r, o)), None)
        if hit is not None:
            strays[hit.node] += 1
    return {
        "url": url,
        "requests": len(ordered),
        "errors": len(failed),
        "errors_by_kind": whole.errors_by_kind if whole else {},
        "latency_p50_ms": _ms(whole.latency_p50 if whole else None),
        "latency_p99_ms": _ms(whole.latency_p99 if whole else None),
        "share_by_node": (
            {n: round(s, 4) for n, s in sorted(whole.per_node_share.items())} if whole else {}
        ),
        "error_window": window,
        "to_outage_nodes": sum(strays.values()),
        "to_outage_nodes_by_node": dict(sorted(strays.items())),
        "outages": [
            {"node": o.node, "why": o.why, "since": o.since, "until": o.until, "address": o.address}
            for o in outages
        ],
        "per_second": per_second(ordered),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)
