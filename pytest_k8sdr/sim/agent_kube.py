"""The node agent's API access: kubeconfig, a retrying aiohttp client, list+watch informers.

The agent does not import the kubernetes client (too heavy for one process per node). Every
request waits on a `Gate`, so a simulated partition (or a stopped kubelet) stops all traffic
at once; closing the gate also cuts the open watches.
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import contextlib
import json
import logging
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

JSON = dict[str, Any]
log = logging.getLogger("pytest_k8sdr.sim.agent")

# Backoff of the kubelet's lease controller when it must (re)create its Lease
# (staging/src/k8s.io/component-helpers/apimachinery/lease/controller.go: 200ms up to 7s);
# reused for every retried request.
BACKOFF_START = 0.2
BACKOFF_CAP = 7.0


class KubeconfigError(ValueError):
    """The kubeconfig is missing or lacks what the agent needs."""


@dataclass(frozen=True)
class Kubeconfig:
    """What the agent needs from a kubeconfig: the server, its CA and a bearer token."""

    server: str
    ca_data: str | None
    token: str | None
    insecure: bool = False

    def ssl_context(self) -> ssl.SSLContext | bool:
        """The TLS settings for aiohttp (`True` = system defaults)."""
        if not self.server.startswith("https"):
            return True
        if self.insecure:
            return False
        if self.ca_data:
            return ssl.create_default_context(cadata=self.ca_data)
        return True


def load_kubeconfig(path: str | Path) -> Kubeconfig:
    """Read the current context's server, CA data and token; KubeconfigError names what is wrong."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise KubeconfigError(f"kubeconfig {path} is not a mapping")

    def named(section: str, name: str | None) -> JSON:
        items = doc.get(section) or []
        for item in items:
            if name is None or item.get("name") == name:
                value = item.get(section[:-1]) or {}
                if isinstance(value, dict):
                    return value
        raise KubeconfigError(f"kubeconfig {path}: no {section[:-1]} named {name!r}")

    context_name = doc.get("current-context")
    context = named("contexts", context_name or None)
    cluster = named("clusters", context.get("cluster"))
    user = named("users", context.get("user")) if doc.get("users") else {}
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise KubeconfigError(f"kubeconfig {path}: the cluster has no server")
    ca_data: str | None = None
    if cluster.get("certificate-authority-data"):
        ca_data = base64.b64decode(cluster["certificate-authority-data"]).decode()
    elif cluster.get("certificate-authority"):
        ca_path = path.parent / str(cluster["certificate-authority"])
        try:
            ca_data = ca_path.read_text()
        except OSError as exc:
            raise KubeconfigError(f"kubeconfig {path}: cannot read CA {ca_path}") from exc
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(str(user["tokenFile"])).read_text().strip()
    return Kubeconfig(
        server=server.rstrip("/"),
        ca_data=ca_data,
        token=str(token) if token else None,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )


class ApiStatusError(Exception):
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
    ) -> None:
        self.config = config
        self.gate = gate
        self.request_timeout = request_timeout
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Accept": "application/json", "User-Agent": "k8sdr-sim-agent/1"}
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


def object_key(obj: JSON) -> str:
    """`namespace/name`, or `name` for cluster-scoped objects."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


Handler = Callable[[str, JSON | None, JSON | None], None]
Transform = Callable[[JSON], JSON]


class Informer:
    """List, then watch from the list's resourceVersion; re-list on 410 or a broken stream.

    `handler(key, old, new)` runs for every change (new None = deleted). Objects are kept
    in `items`, passed through `transform` first when given (as client-go's SetTransform: keep
    only the fields the handlers read; it must keep `metadata.resourceVersion`). A re-list
    reports the objects that vanished meanwhile as deletions.
    """

    def __init__(
        self,
        client: ApiClient,
        path: str,
        *,
        field_selector: str | None = None,
        label_selector: str | None = None,
        watch_timeout: tuple[int, int] = (300, 600),
        transform: Transform | None = None,
    ) -> None:
        self.client = client
        self.transform = transform
        self.path = path
        self.field_selector = field_selector
        self.label_selector = label_selector
        self.watch_timeout = watch_timeout
        self.items: dict[str, JSON] = {}
        self.synced = asyncio.Event()
        self._handlers: list[Handler] = []
        self.last_event_at = 0.0

    def add_handler(self, handler: Handler) -> None:
        """Call `handler(key, old, new)` on every change."""
        self._handlers.append(handler)

    def _params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.field_selector:
            params["fieldSelector"] = self.field_selector
        if self.label_selector:
            params["labelSelector"] = self.label_selector
        return params

    def _emit(self, key: str, old: JSON | None, new: JSON | None) -> None:
        for handler in self._handlers:
            try:
                handler(key, old, new)
            except Exception:
                log.exception("handler for %s %s failed", self.path, key)

    async def run(self) -> None:
        """List and watch until cancelled; never raises on API trouble."""
        delay = BACKOFF_START
        while True:
            try:
                rv: str | None = await self._relist()
                delay = BACKOFF_START
                while rv is not None:
                    rv = await self._watch(rv)
            except asyncio.CancelledError:
                raise
            except ApiStatusError as exc:
                log.warning("%s: %s", self.path, exc)
            except (ConnectionError, aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.debug("%s: stream broken: %s", self.path, exc)
            except Exception:
                log.exception("informer %s failed", self.path)
            await asyncio.sleep(delay * (1 + random.random() * 0.2))
            delay = min(delay * 2, BACKOFF_CAP)

    async def _relist(self) -> str:
        listing = await self.client.request("GET", self.path, params=self._params())
        rv = str((listing.get("metadata") or {}).get("resourceVersion", ""))
        objs = listing.get("items") or []
        del listing  # a 30,000-pod list: drop the full objects as soon as they are slimmed
        if self.transform is not None:
            objs = [self.transform(obj) for obj in objs]
        fresh = {object_key(obj): obj for obj in objs}
        del objs
        old_items = self.items
        self.items = fresh
        for key, old in old_items.items():
            if key not in fresh:
                self._emit(key, old, None)
        for key, obj in fresh.items():
            prior = old_items.get(key)
            if prior is None or prior.get("metadata", {}).get("resourceVersion") != obj.get(
                "metadata", {}
            ).get("resourceVersion"):
                self._emit(key, prior, obj)
        self.synced.set()
        self.last_event_at = time.monotonic()
        return rv

    async def _watch(self, rv: str) -> str | None:
        """Follow one watch stream; the RV to resume from, or None to re-list."""
        params = self._params()
        # No allowWatchBookmarks: they only save a re-list after a long quiet spell, and the
        # informer re-lists cheaply on 410 anyway.
        params.update(
            {
                "watch": "1",
                "resourceVersion": rv,
                "timeoutSeconds": str(random.randint(*self.watch_timeout)),
            }
        )
        resp = await self.client.stream(self.path, params)
        log.debug("watching %s from %s", self.path, rv)
        buffer = b""
        try:
            async for chunk in resp.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    next_rv = self._apply(event)
                    if next_rv is None:
                        return None
                    rv = next_rv or rv
        finally:
            self.client.gate.untrack(resp)
            resp.release()
        log.debug("watch of %s ended at %s", self.path, rv)
        if not self.client.gate.is_open:
            # Cut by a partition: resume with a fresh list once healed.
            return None
        return rv

    def _apply(self, event: JSON) -> str | None:
        """Apply one watch event; the new RV ("" if none), None when a re-list is needed."""
        etype = event.get("type")
        obj = event.get("object") or {}
        self.last_event_at = time.monotonic()
        if etype == "ERROR":
            log.debug("%s: watch error %s", self.path, obj.get("message"))
            return None
        rv = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        if etype == "BOOKMARK":
            return rv
        key = object_key(obj)
        old = self.items.get(key)
        if etype == "DELETED":
            self.items.pop(key, None)
            self._emit(key, old, None)
        elif etype in ("ADDED", "MODIFIED"):
            if self.transform is not None:
                obj = self.transform(obj)
            self.items[key] = obj
            self._emit(key, old, obj)
        return rv


async def cancel_all(tasks: list[asyncio.Task[Any]] | set[asyncio.Task[Any]]) -> None:
    """Cancel tasks and wait for them to finish."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def microtime(ts: float | None = None) -> str:
    """A MicroTime: `2026-11-24T21:00:00.123456Z`."""
    ts = time.time() if ts is None else ts
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
    return f"{whole}.{int((ts % 1) * 1_000_000):06d}Z"


def rfc3339(ts: float | None = None) -> str:
    """A Time (second precision): `2026-11-24T21:00:00Z`."""
    ts = time.time() if ts is None else ts
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def parse_rfc3339(value: str | None) -> float | None:
    """Seconds since the epoch of a Time or MicroTime, None when absent or malformed."""
    if not value:
        return None
    try:
        whole, _, frac = value.rstrip("Z").partition(".")
        base = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    return base + (float(f"0.{frac}") if frac.isdigit() else 0.0)
