"""Watch streams: a store `Watch` sent as chunked JSON lines, with bookmarks and timeouts.

As staging/src/k8s.io/apiserver/pkg/endpoints/handlers/watch.go: the stream ends at the
client's timeoutSeconds (else a random time between one and two minRequestTimeouts), a
too-old resourceVersion is one ERROR event (410 Expired) on a 200 response, and a watcher
that falls behind is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from pytest_k8sdr.sim.apimachinery.errors import ApiError, bad_request
from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType
from pytest_k8sdr.sim.apiserver.registry.store import Store
from pytest_k8sdr.sim.apiserver.registry.strategy import Version
from pytest_k8sdr.sim.apiserver.tables import table_for

__all__ = ["JSON_CT", "WatchSettings", "int_param", "serve_watch", "truthy"]

JSON_CT = "application/json"


@dataclass(frozen=True)
class WatchSettings:
    """How watches end: bookmarks, the server's request timeout, an injected cut."""

    bookmark_interval: float = 60.0
    min_request_timeout: float = 1800.0
    cut_seconds: float = 0.0  # close every stream after this long (0: never)


def truthy(value: str | None) -> bool:
    """A boolean query parameter."""
    return value is not None and value.lower() in ("1", "true", "yes")


def int_param(query: Any, name: str) -> int | None:
    """An integer query parameter; 400 when it is not one."""
    value = query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"invalid value for {name}: {value!r}") from None


async def serve_watch(
    request: web.Request,
    store: Store,
    rtype: ResourceType,
    namespace: str | None,
    settings: WatchSettings,
    tasks: set[asyncio.Task[Any]],
    *,
    view: Version | None = None,
) -> web.StreamResponse:
    """Stream the watch `request` asks for until its timeout, the client leaves or it lags.

    `view` converts every object to another version of the stored kind.
    """
    q = request.query
    timeout = int_param(q, "timeoutSeconds")
    bookmarks = truthy(q.get("allowWatchBookmarks"))
    send_initial = truthy(q.get("sendInitialEvents"))
    response = web.StreamResponse(status=200, headers={"Content-Type": JSON_CT})
    response.enable_chunked_encoding()
    rv = q.get("resourceVersion")
    if send_initial:
        rv = None
    try:
        watch = store.watch(
            rtype.key,
            namespace,
            label_selector=q.get("labelSelector"),
            field_selector=q.get("fieldSelector"),
            resource_version=rv,
        )
    except ApiError as err:
        if err.code != 410:
            raise
        # A too-old RV is HTTP 200 and one ERROR event (storage/cacher/watch_cache.go).
        await response.prepare(request)
        line = json.dumps({"type": "ERROR", "object": err.status()}).encode() + b"\n"
        await response.write(line)
        await response.write_eof()
        return response
    loop = asyncio.get_running_loop()
    started = loop.time()
    if timeout is not None and timeout > 0:
        deadline = started + timeout
    else:
        deadline = started + settings.min_request_timeout * (1 + random.random())
    cut = settings.cut_seconds
    if cut:
        deadline = min(deadline, started + cut)
    bookmark_every = settings.bookmark_interval
    shown = rtype if view is None else view.type
    bookmark_head = (
        b'{"type":"BOOKMARK","object":{"kind":"'
        + shown.kind.encode()
        + b'","apiVersion":"'
        + shown.api_version.encode()
        + b'","metadata":{"resourceVersion":"'
    )
    await response.prepare(request)
    task = asyncio.current_task()
    if task is not None:
        tasks.add(task)
    queue = watch.queue
    as_table = "as=Table" in request.headers.get("Accept", "")
    include_object = q.get("includeObject")
    custom = store.custom.get(rtype.key)
    columns = None if custom is None else custom.columns.get(shown.version)

    def encode(chunks: list[bytes | None]) -> bytes:
        data = [c for c in chunks if c is not None]
        if as_table:
            # Tables print the stored form, as upstream's printers print the internal one.
            data = [_table_line(rtype, c, include_object, columns) for c in data]
        elif view is not None:
            data = [_converted_line(view, c) for c in data]
        return b"".join(data)

    try:
        if send_initial and bookmarks:
            chunks = _drain(queue)
            chunks.append(
                bookmark_head
                + str(store.resource_version).encode()
                + b'","annotations":{"k8s.io/initial-events-end":"true"}}}}\n'
            )
            await response.write(encode(chunks))
        next_bookmark = loop.time() + bookmark_every
        while True:
            now = loop.time()
            if now >= deadline:
                break
            if bookmarks and now >= next_bookmark and queue.empty():
                line = bookmark_head + str(store.resource_version).encode() + b'"}}}\n'
                await response.write(line)
                next_bookmark = now + bookmark_every
                continue
            if not queue.empty():
                # Never wait_for() with a zero timeout here: on Python 3.11 it times out
                # before queue.get() runs, and a due bookmark would then starve delivery.
                first = queue.get_nowait()
            else:
                wait = deadline - now
                if bookmarks:
                    wait = min(wait, max(0.0, next_bookmark - now))
                try:
                    first = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    continue
            if first is None:
                break
            chunks = [first, *_drain(queue)]
            closed = None in chunks
            await response.write(encode(chunks))
            if closed:
                break
    except ConnectionResetError:
        return response  # the client went away
    finally:
        watch.close()
        if task is not None:
            tasks.discard(task)
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await response.write_eof()
    return response


def _converted_line(view: Version, line: bytes) -> bytes:
    event = json.loads(line)
    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
        event["object"] = view.to_external(event["object"])
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"


def _table_line(
    rtype: ResourceType, line: bytes, include_object: str | None, columns: list[JSON] | None
) -> bytes:
    event = json.loads(line)
    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
        event["object"] = table_for(rtype, event["object"], include_object, columns)
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"


def _drain(queue: asyncio.Queue[bytes | None]) -> list[bytes | None]:
    out: list[bytes | None] = []
    while True:
        try:
            out.append(queue.get_nowait())
        except asyncio.QueueEmpty:
            return out
