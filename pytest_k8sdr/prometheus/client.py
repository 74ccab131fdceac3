"""A small client of Prometheus' HTTP API: instant queries, with a bearer token or basic auth.

Errors are translated here, once: whatever goes wrong asking Prometheus is a `PrometheusError`
saying what (unreachable, credentials refused, the query refused and why).
"""

from __future__ import annotations

import base64
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pytest_k8sdr.config import PrometheusAuth
from pytest_k8sdr.errors import PrometheusError


@dataclass(frozen=True)
class Sample:
    """One series of an instant query's answer: its labels, value and evaluation time."""

    labels: Mapping[str, str]
    value: float
    at: datetime

    @property
    def series(self) -> str:
        """The series as PromQL writes it, ``{a="b"}`` (empty for a scalar or no labels)."""
        if not self.labels:
            return ""
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return "{" + inner + "}"

    def __str__(self) -> str:
        return f"{self.series or 'value'} = {self.value:g}"


class Prometheus:
    """Prometheus at `url` (its base, e.g. ``http://127.0.0.1:9090``, or behind a path prefix)."""

    def __init__(
        self, url: str, auth: PrometheusAuth | None = None, *, timeout: float = 5.0
    ) -> None:
        self.url = url.rstrip("/")
        self.auth = auth or PrometheusAuth()
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Prometheus({self.url!r})"

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.auth.token:
            headers["Authorization"] = f"Bearer {self.auth.token}"
        elif self.auth.username is not None:
            pair = f"{self.auth.username}:{self.auth.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return headers

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            with exc:  # its response holds the connection open until closed
                body = exc.read()
            if exc.code in (401, 403):
                raise PrometheusError(
                    f"Prometheus at {self.url} refused the credentials ({exc.code}); set "
                    "K8SDR_PROMETHEUS_TOKEN or K8SDR_PROMETHEUS_USERNAME/_PASSWORD"
                ) from exc
            detail = _error_of(body) or exc.reason
            raise PrometheusError(f"Prometheus at {self.url}: {exc.code} {detail}") from exc
        except (OSError, ValueError) as exc:
            raise PrometheusError(f"Prometheus at {self.url} cannot be reached: {exc}") from exc
        try:
            answer = json.loads(body)
        except ValueError as exc:
            raise PrometheusError(f"Prometheus at {self.url} answered no JSON: {exc}") from exc
        if not isinstance(answer, dict) or answer.get("status") != "success":
            raise PrometheusError(f"Prometheus at {self.url}: {_error_of(body) or answer!r}")
        return answer.get("data")

    def query(self, query: str) -> list[Sample]:
        """The instant query's series now (a scalar is one series without labels).

        PrometheusError when Prometheus cannot be asked or refuses the query (naming it).
        """
        try:
            data = self._get("/api/v1/query", {"query": query})
        except PrometheusError as exc:
            raise PrometheusError(f"{exc} (query {query!r})") from exc.__cause__
        kind = (data or {}).get("resultType")
        result = (data or {}).get("result")
        if kind == "vector":
            return [_sample(r.get("metric") or {}, r.get("value")) for r in result or []]
        if kind == "scalar":
            return [_sample({}, result)]
        raise PrometheusError(
            f"query {query!r} gives a {kind}, not an instant vector or scalar: compare values "
            "(a range vector needs a function such as rate() or max_over_time())"
        )


def _sample(labels: Mapping[str, Any], pair: Any) -> Sample:
    at, text = pair
    value = float(text)  # Prometheus writes "NaN", "+Inf", "-Inf" as float() reads them
    return Sample(
        {str(k): str(v) for k, v in labels.items()},
        value if not math.isnan(value) else math.nan,
        datetime.fromtimestamp(float(at), UTC),
    )


def _error_of(body: bytes) -> str | None:
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    if isinstance(answer, dict) and answer.get("error"):
        return f"{answer.get('errorType', 'error')}: {answer['error']}"
    return None
