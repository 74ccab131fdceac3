"""Fault injection for the simulator's own reliability tests (off by default)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class FaultConfig:
    """What the API server does wrong on purpose.

    error_rate: share of non-watch requests answered with an error instead of being served;
    half of those are 500 InternalError, half 429 TooManyRequests with Retry-After
    (`retry_after` seconds), unless `error_codes` narrows the choice.
    latency_ms: added to every request before it is served.
    watch_cut_seconds: every watch stream is closed after this long (0: never).
    """

    error_rate: float = 0.0
    latency_ms: float = 0.0
    watch_cut_seconds: float = 0.0
    retry_after: int = 1
    error_codes: tuple[int, ...] = (500, 429)

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"fault error_rate must be within [0, 1], got {self.error_rate}")
        if self.latency_ms < 0:
            raise ValueError(f"fault latency_ms must be >= 0, got {self.latency_ms}")
        if self.watch_cut_seconds < 0:
            raise ValueError(f"fault watch_cut_seconds must be >= 0, got {self.watch_cut_seconds}")
        if self.retry_after < 0:
            raise ValueError(f"fault retry_after must be >= 0, got {self.retry_after}")
        bad = [c for c in self.error_codes if c not in (500, 429)]
        if bad or not self.error_codes:
            raise ValueError(
                "fault error_codes must be a non-empty subset of (500, 429), "
                f"got {self.error_codes}"
            )

    @property
    def enabled(self) -> bool:
        """Whether any fault is configured."""
        return bool(self.error_rate or self.latency_ms or self.watch_cut_seconds)

    def to_args(self) -> list[str]:
        """The server command-line flags carrying this configuration."""
        return [
            "--fault-error-rate",
            str(self.error_rate),
            "--fault-latency-ms",
            str(self.latency_ms),
            "--fault-watch-cut-seconds",
            str(self.watch_cut_seconds),
            "--fault-retry-after",
            str(self.retry_after),
            "--fault-error-codes",
            ",".join(str(c) for c in self.error_codes),
        ]

    def pick_error(self, rng: random.Random) -> int | None:
        """The error code to answer with for one request, or None to serve it."""
        if self.error_rate and rng.random() < self.error_rate:
            return rng.choice(self.error_codes)
        return None
