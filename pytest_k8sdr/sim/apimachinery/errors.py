"""Kubernetes API errors as upstream shapes them (apimachinery/pkg/api/errors/errors.go)."""

from __future__ import annotations

from typing import Any

from pytest_k8sdr.sim.errors import SimError


class ApiError(SimError):
    """An API failure that the HTTP layer answers with a `Status` body and `code`."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})
        self.retry_after = retry_after
        if retry_after:
            self.details["retryAfterSeconds"] = retry_after

    def status(self) -> dict[str, Any]:
        """The `Status` object upstream would send."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    """404 NotFound, worded as upstream: `pods "x" not found`."""
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        404,
        "NotFound",
        f'{qualified} "{name}" not found',
        details={"name": name, "group": group, "kind": resource},
    )


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    """409 AlreadyExists on create."""
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified} "{name}" already exists',
        details={"name": name, "group": group, "kind": resource},
    )


def conflict(resource: str, name: str, why: str, group: str = "") -> ApiError:
    """409 Conflict for a stale resourceVersion or a failed precondition."""
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified} "{name}": {why}',
        details={"name": name, "group": group, "kind": resource},
    )


def invalid(kind: str, name: str, causes: list[dict[str, str]], group: str = "") -> ApiError:
    """422 Invalid with field causes `{type, message, field}`."""
    qualified = f"{kind}.{group}" if group else kind
    summary = ", ".join(f"{c.get('field', '')}: {c.get('message', '')}" for c in causes)
    return ApiError(
        422,
        "Invalid",
        f'{qualified} "{name}" is invalid: {summary}',
        details={"name": name, "group": group, "kind": kind, "causes": causes},
    )


def forbidden(resource: str, name: str, why: str, group: str = "") -> ApiError:
    """403 Forbidden, as admission words it: `pods "x" is forbidden: why`."""
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        403,
        "Forbidden",
        f'{qualified} "{name}" is forbidden: {why}',
        details={"name": name, "group": group, "kind": resource},
    )


def bad_request(message: str) -> ApiError:
    """400 BadRequest."""
    return ApiError(400, "BadRequest", message)


def too_many_requests(
    message: str, *, retry_after: int | None = None, causes: list[dict[str, str]] | None = None
) -> ApiError:
    """429 TooManyRequests; a Retry-After header is sent only when retry_after > 0."""
    details: dict[str, Any] = {}
    if causes:
        details["causes"] = causes
    return ApiError(429, "TooManyRequests", message, details=details, retry_after=retry_after)


def expired(message: str) -> ApiError:
    """410 Expired (too old resource version, expired continue token)."""
    return ApiError(410, "Expired", message)


def method_not_allowed() -> ApiError:
    """405 MethodNotAllowed as upstream words it."""
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
    )
