"""A simulated pod's own metrics: what its HTTP server answered, in Prometheus' text format.

Each running pod counts the requests its listeners answered, as an application instrumented
with a Prometheus client library does (the conventional names of client_golang's promhttp
and client_python): `http_requests_total{code, method}` and the latency histogram
`http_request_duration_seconds`. `GET /metrics` on any of the pod's ports answers them
(text format 0.0.4) and is not counted itself, as promhttp does not count its own handler.
Not modelled: process or runtime metrics (`process_*`, `go_*`).
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["LATENCY_BUCKETS", "METRICS_PATH", "PodMetrics"]

METRICS_PATH = "/metrics"
#: client_golang's DefBuckets (prometheus.DefBuckets), in seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class PodMetrics:
    """Request counters and the latency histogram of one pod's HTTP server."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    count: int = 0
    total_seconds: float = 0.0

    def observe(self, method: str, code: int, seconds: float) -> None:
        """Count one answered request: its method, status code and how long it took."""
        self.requests[(str(code), method.upper())] += 1
        index = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        if index < len(self.buckets):
            self.buckets[index] += 1
        self.count += 1
        self.total_seconds += seconds

    def render(self) -> str:
        """The metrics in Prometheus' text exposition format."""
        lines = [
            "# HELP http_requests_total Requests answered, by status code and method.",
            "# TYPE http_requests_total counter",
        ]
        for (code, method), n in sorted(self.requests.items()):
            lines.append(f'http_requests_total{{code="{code}",method="{method}"}} {n}')
        lines += [
            "# HELP http_request_duration_seconds Time to answer a request.",
            "# TYPE http_request_duration_seconds histogram",
        ]
        cumulative = 0
        for bound, n in zip(LATENCY_BUCKETS, self.buckets, strict=True):
            cumulative += n
            lines.append(f'http_request_duration_seconds_bucket{{le="{bound:g}"}} {cumulative}')
        lines.append(f'http_request_duration_seconds_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"http_request_duration_seconds_sum {self.total_seconds!r}")
        lines.append(f"http_request_duration_seconds_count {self.count}")
        return "\n".join(lines) + "\n"
