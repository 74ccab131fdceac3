"""The shared client, called from synchronous code (the launcher, the CLI).

Each call runs the async client on an event loop of its own: `asyncio.run` in this thread,
or in a helper thread when this thread already runs a loop. API trouble is a SimLaunchError.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.client.informer import Informer
from pytest_k8sdr.sim.client.kubeconfig import Kubeconfig, load_kubeconfig
from pytest_k8sdr.sim.client.rest import ApiClient, ApiStatusError, Gate
from pytest_k8sdr.sim.errors import SimLaunchError

__all__ = ["BlockingClient"]

T = TypeVar("T")
STRATEGIC = "application/strategic-merge-patch+json"


def _run(make: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


class BlockingClient:
    """Requests and waits against one cluster, each a blocking call."""

    def __init__(self, config: Kubeconfig, *, attempts: int = 3) -> None:
        self.config = config
        self.attempts = attempts

    @classmethod
    def from_kubeconfig(cls, path: Path) -> BlockingClient:
        """A client for the cluster of a kubeconfig file."""
        return cls(load_kubeconfig(path))

    def _client(self) -> ApiClient:
        return ApiClient(self.config, Gate(), user_agent="k8sdr-sim-launcher/1")

    def request(self, method: str, path: str, body: Any = None) -> JSON:
        """The decoded answer; a body is sent as a strategic merge patch for PATCH."""

        async def call() -> JSON:
            api = self._client()
            try:
                ctype = STRATEGIC if method == "PATCH" else "application/json"
                return await api.request(
                    method, path, body=body, content_type=ctype, attempts=self.attempts
                )
            except ApiStatusError as exc:
                message = exc.body.get("message", "")
                raise SimLaunchError(
                    f"{method} {path}: HTTP {exc.code} {exc.reason}: {message}"
                ) from exc
            except ConnectionError as exc:
                raise SimLaunchError(f"{method} {path}: {exc}") from exc
            finally:
                await api.close()

        return _run(call)

    def read_bytes(self, path: str, *, timeout: float = 60.0) -> bytes:
        """The raw body of a GET (SimLaunchError when it fails)."""

        async def call() -> bytes:
            api = self._client()
            try:
                return await api.read_bytes(path, timeout=timeout)
            except ApiStatusError as exc:
                message = exc.body.get("message", "")
                raise SimLaunchError(f"GET {path}: HTTP {exc.code}: {message}") from exc
            except ConnectionError as exc:
                raise SimLaunchError(str(exc)) from exc
            finally:
                await api.close()

        return _run(call)

    def wait_until(
        self, path: str, done: Callable[[Collection[JSON]], bool], timeout: float
    ) -> bool:
        """List and watch `path` until `done(objects)` holds; False after `timeout` seconds."""

        async def call() -> bool:
            api = self._client()
            informer = Informer(api, path)
            changed = asyncio.Event()
            informer.add_handler(lambda *_: changed.set())
            task = asyncio.get_running_loop().create_task(informer.run())
            deadline = time.monotonic() + timeout
            try:
                while True:
                    if informer.has_synced() and done(list(informer.objects.values())):
                        return True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    changed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), min(remaining, 0.5))
            finally:
                # Close the pool first: it waits until the watch's connection is closed, which
                # a cancelled stream would leave to a loop that no longer runs.
                await api.close()
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

        return _run(call)
