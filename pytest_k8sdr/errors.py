"""One exception root for the plugin.

Two branches that a reader of a test report must never confuse:

- `ToolError`: *our* action failed (a fault could not be injected or undone, bad settings,
  the API could not be reached). pytest reports it as an error.
- `ClusterCheckFailed`: *the system under test* failed (a check or an SLO). It is an
  `AssertionError`, so pytest reports it as a test failure.

The Kubernetes client's `ApiException` never escapes the facade: `Cluster.call` translates it
once, at the client boundary, into an `ApiError` subclass chosen by the HTTP status (as kopf's
`_cogs/clients/errors.py` does), with the original chained as its cause. Callers catch
`NotFound` or `Conflict`; none of them tests a status code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class K8sdrError(Exception):
    """Root of every exception raised by pytest-k8sdr."""


class ToolError(K8sdrError):
    """An action of the tool itself failed; the cluster's behaviour is not in question."""


class ConfigError(ToolError):
    """A setting, an argument, an inventory or a kubeconfig is invalid; nothing was touched."""


class FaultError(ToolError):
    """A fault could not be injected, or an undo could not be carried out."""


class UndoError(FaultError):
    """One or more undo actions failed; `failures` lists (description, exception)."""

    def __init__(self, message: str, failures: list[tuple[str, BaseException]]) -> None:
        super().__init__(message)
        self.failures = failures


class LockHeld(ToolError):
    """Another run holds the game-day lock; names the holder and when it expires.

    Not a `ConfigError`: nothing is wrong with this run's settings, the cluster is busy.
    """


class LockLost(ToolError):
    """The game-day lock was taken from a running session: it stops disrupting (a stop condition).

    Raised in the test that was running and by every disruption attempted afterwards.
    """


class RecoverRefused(ToolError):
    """`k8sdr recover` will not undo the entries of a run that is still alive (see `--force`).

    Not a `ConfigError`, as `LockHeld` is not: the arguments are fine, the run is not over.
    """


class PrometheusError(ToolError):
    """Prometheus could not be asked: unreachable, credentials refused, or the query refused."""


# --------------------------------------------------------------------------- the API


class ApiError(ToolError):
    """An API request failed; the subclass says how, `status` and `message` say what came back.

    `message` is the Status body's own message when the server sent one (upstream's
    `metav1.Status`), so an error reads as the API server put it.
    """

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class NotFound(ApiError):
    """The object asked for does not exist (404, or absent from the list read)."""


class Conflict(ApiError):
    """The object changed since it was read, or already exists (409)."""


class Gone(ApiError):
    """The resourceVersion or continue token is too old to resume from (410)."""


class Throttled(ApiError):
    """The API said "too many requests" (429) past the deadline, or without Retry-After.

    A 429 without Retry-After is a PodDisruptionBudget refusing an eviction, not overload.
    """


class Forbidden(ApiError):
    """The credentials may not do this (401, 403): RBAC, an expired token."""


class Invalid(ApiError):
    """The request was refused as malformed or invalid (400, 422)."""


class ApiUnavailable(ApiError):
    """The API server could not be reached or kept failing (5xx) past the deadline."""


class ReadOnlyCluster(ToolError):
    """A write reached a facade opened read-only (the dry run): nothing was written."""

    def __init__(self, method: str) -> None:
        super().__init__(
            f"the next step writes to the cluster ({method}); the cluster is read-only here"
        )
        self.method = method


_BY_STATUS: Mapping[int, type[ApiError]] = {
    400: Invalid,
    401: Forbidden,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: Throttled,
}


def api_error(status: int | None, reason: str, body: Any, what: str) -> ApiError:
    """The `ApiError` for a failed request to `what`, from its status, reason and body."""
    message = reason or "failed"
    if isinstance(body, Mapping) and body.get("kind") == "Status" and body.get("message"):
        message = str(body["message"])
    cls = _BY_STATUS.get(status or 0)
    if cls is None:
        cls = ApiUnavailable if (status or 0) >= 500 else ApiError
    return cls(f"{what}: {status} {message}", status=status, reason=reason)


# --------------------------------------------------------------------------- the cluster


class ClusterCheckFailed(K8sdrError, AssertionError):
    """The cluster did not behave as the check or runbook phase requires."""


class WaitTimeout(ClusterCheckFailed):
    """A condition did not hold before its deadline; the message says what is left."""


class SteadyStateNotMet(ClusterCheckFailed):
    """The steady-state hypothesis did not hold before the first disruption: nothing was done.

    Also raised when the system does not meet it again after the experiment.
    """


class SteadyStateBreached(ClusterCheckFailed):
    """The steady state broke during the experiment: it stopped, its disruptions undone."""


class SLOExceeded(ClusterCheckFailed):
    """A runbook phase took longer than its SLO."""

    def __init__(self, phase: str, slo: float, took: float, detail: str = "") -> None:
        message = f"phase {phase!r} exceeded its SLO: took {took:.2f}s, SLO {slo:.2f}s"
        if detail:
            message = f"{message}\n{detail}"
        super().__init__(message)
        self.phase = phase
        self.slo = slo
        self.took = took
