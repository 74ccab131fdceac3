"""The list-watch informer over HTTP: list, then watch from the list's resourceVersion.

Re-lists on 410 or a broken stream, and reports the objects that vanished meanwhile as
deletions, as client-go's Reflector does. Objects pass through `transform` first when given
(client-go's SetTransform: keep only the fields the handlers read; it must keep
`metadata.resourceVersion`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable

import aiohttp

from pytest_k8sdr.sim.apimachinery.meta import key_of
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.client.cache import Cache
from pytest_k8sdr.sim.client.rest import BACKOFF_CAP, BACKOFF_START, ApiClient, ApiStatusError

__all__ = ["Informer", "Transform"]

log = logging.getLogger("pytest_k8sdr.sim.client")

Transform = Callable[[JSON], JSON]


class Informer(Cache):
    """A `Cache` of `path` kept current by list and watch until cancelled (`run`)."""

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
        super().__init__(path)
        self.client = client
        self.transform = transform
        self.path = path
        self.field_selector = field_selector
        self.label_selector = label_selector
        self.watch_timeout = watch_timeout
        self.synced = asyncio.Event()

    def has_synced(self) -> bool:
        """Whether the first list has been applied."""
        return self.synced.is_set()

    def _params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.field_selector:
            params["fieldSelector"] = self.field_selector
        if self.label_selector:
            params["labelSelector"] = self.label_selector
        return params

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
        fresh = {key_of(obj): obj for obj in objs}
        del objs
        for key in [k for k in self.objects if k not in fresh]:
            self._dispatch("DELETED", self._pop(key), None)
        for obj in fresh.values():
            prior = self.objects.get(key_of(obj))
            if prior is None or prior.get("metadata", {}).get("resourceVersion") != obj.get(
                "metadata", {}
            ).get("resourceVersion"):
                self._put(obj)
                self._dispatch("ADDED" if prior is None else "MODIFIED", prior, obj)
        self.synced.set()
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
        if etype == "ERROR":
            log.debug("%s: watch error %s", self.path, obj.get("message"))
            return None
        rv = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        if etype == "BOOKMARK":
            return rv
        if etype == "DELETED":
            old = self._pop(key_of(obj))
            self._dispatch("DELETED", old, None)
        elif etype in ("ADDED", "MODIFIED"):
            if self.transform is not None:
                obj = self.transform(obj)
            old = self._put(obj)
            self._dispatch("ADDED" if old is None else "MODIFIED", old, obj)
        return rv
