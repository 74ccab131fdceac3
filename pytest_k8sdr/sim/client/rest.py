"""The REST client every simulated component shares: a retrying aiohttp client and its Gate.

No component imports the kubernetes client (too heavy for one process per node). Every
request waits on a `Gate`, so a simulated partition (or a stopped kubelet) stops all traffic
at once; closing the gate also cuts the open watches.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Mapping
from typing import Any

import aiohttp

from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.client.kubeconfig import Kubeconfig
from pytest_k8sdr.sim.errors import SimError

__all__ = ["BACKOFF_CAP", "BACKOFF_START", "ApiClient", "ApiStatusError", "Gate"]

log = logging.getLogger("pytest_k8sdr.sim.client")

# Backoff of the kubelet's lease controller when it must (re)create its Lease
# (staging/src/k8s.io/component-helpers/apimachinery/lease/controller.go: 200ms up to 7s);
# reused for every retried request.
BACKOFF_START = 0.2
BACKOFF_CAP = 7.0


class ApiStatusError(SimError):
    """A non-retryable API answer (4xx other than 429), with the Status body."""

    def __init__(self, code: int, body: JSON) -> None:
        self.code = code
        self.body = body
        self.reason = str(body.get("reason", ""))
        super().__init__(f"{code} {self.reason}: {body.get('message', '')}")


class Gate:
    """Open while the component may talk to the API server; closing it cuts open watches."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._watches: set[aiohttp.ClientResponse] = set()

    @property
    def is_open(self) -> bool:
        """Whether requests may be sent."""
        return self._open.is_set()

    async def wait_open(self) -> None:
        """Return once requests may be sent."""
        await self._open.wait()

    def open(self) -> None:
        """Let requests through again."""
        self._open.set()

    def close(self) -> None:
        """Stop all requests and cut the watches in flight."""
        self._open.clear()
        for resp in list(self._watches):
            resp.close()
        self._watches.clear()

    def track(self, resp: aiohttp.ClientResponse) -> None:
        """Remember a watch stream so that `close` can cut it."""
        self._watches.add(resp)

    def untrack(self, resp: aiohttp.ClientResponse) -> None:
        """Forget a finished watch stream."""
        self._watches.discard(resp)


class _Retry(Exception):
    def __init__(self, why: str, after: float | None = None) -> None:
        super().__init__(why)
        self.after = after


class ApiClient:
    """Requests to the API server, retried with backoff on 429, 5xx and network errors."""

    def __init__(
        self,
        config: Kubeconfig,
        gate: Gate,
        *,
        request_timeout: float = 10.0,
        max_connections: int = 20,
        user_agent: str = "k8sdr-sim-agent/1",
    ) -> None:
        self.config = config
        self.user_agent = user_agent
        self.gate = gate
        self.request_timeout = request_timeout
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Accept": "application/json", "User-Agent": self.user_agent}
            if self.config.token:
                headers["Authorization"] = f"Bearer {self.config.token}"
            connector = aiohttp.TCPConnector(
                ssl=self.config.ssl_context(), limit=self._max_connections
            )
            self._session = aiohttp.ClientSession(headers=headers, connector=connector)
        return self._session

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        attempts: int | None = None,
    ) -> JSON:
        """The decoded 2xx answer; ApiStatusError for other 4xx answers.

        429 (after its Retry-After), 5xx, timeouts and network errors are retried with
        backoff, `attempts` times in all (None: until cancelled), then ConnectionError.
        """
        delay = BACKOFF_START
        attempt = 0
        while True:
            await self.gate.wait_open()
            attempt += 1
            try:
                return await self._once(method, path, params, body, content_type)
            except _Retry as exc:
                if attempts is not None and attempt >= attempts:
                    raise ConnectionError(f"{method} {path}: {exc}") from exc
                wait = exc.after if exc.after is not None else delay
                log.debug("%s %s: %s; retrying in %.2fs", method, path, exc, wait)
                await asyncio.sleep(wait * (1 + random.random() * 0.2))
                delay = min(delay * 2, BACKOFF_CAP)

    async def _once(
        self, method: str, path: str, params: Mapping[str, str] | None, body: Any, ctype: str
    ) -> JSON:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": ctype} if data is not None else {}
        try:
            async with self._get_session().request(
                method,
                self.config.server + path,
                params=params,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.request_timeout),
            ) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from exc
        try:
            decoded = json.loads(raw) if raw else {}
        except ValueError:
            decoded = {"message": raw[:200].decode(errors="replace")}
        if not isinstance(decoded, dict):
            decoded = {"items": decoded}
        if 200 <= status < 300:
            return decoded
        if status == 429 or status >= 500:
            after = None
            if retry_after and retry_after.isdigit():
                after = float(retry_after)
            raise _Retry(f"{status} {decoded.get('reason', '')}", after)
        raise ApiStatusError(status, decoded)

    async def read_bytes(self, path: str, *, timeout: float = 60.0) -> bytes:
        """The raw body of a GET answered 200 (a snapshot); ApiStatusError or ConnectionError."""
        try:
            async with self._get_session().get(
                self.config.server + path, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ConnectionError(f"GET {path}: {type(exc).__name__}: {exc}") from exc
        if status != 200:
            try:
                decoded = json.loads(raw)
            except ValueError:
                decoded = {"message": raw[:200].decode(errors="replace")}
            raise ApiStatusError(status, decoded if isinstance(decoded, dict) else {})
        return raw

    async def stream(self, path: str, params: Mapping[str, str]) -> aiohttp.ClientResponse:
        """Open a watch; the caller reads it and must release it. Errors as in `request`."""
        await self.gate.wait_open()
        try:
            resp = await self._get_session().get(
                self.config.server + path,
                params=params,
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=self.request_timeout, sock_connect=self.request_timeout
                ),
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ConnectionError(f"watch {path}: {exc}") from exc
        if resp.status != 200:
            raw = await resp.read()
            resp.release()
            try:
                decoded = json.loads(raw)
            except ValueError:
                decoded = {}
            if resp.status == 429 or resp.status >= 500:
                raise ConnectionError(f"watch {path}: {resp.status}")
            raise ApiStatusError(resp.status, decoded if isinstance(decoded, dict) else {})
        self.gate.track(resp)
        return resp
