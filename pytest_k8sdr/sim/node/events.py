"""The events a kubelet records about its pods (pkg/kubelet/events, client-go tools/record).

Posted in the background, never awaited by a pod sync, and dropped when the API does not take
them (as client-go's broadcaster does); a repeat of the same event within the recorder's memory
raises its count instead of making a new one (EventCorrelator).
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from pytest_k8sdr.sim.apimachinery.clock import now_rfc3339
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.client.rest import ApiClient, ApiStatusError
from pytest_k8sdr.sim.client.tasks import cancel_all

__all__ = ["KubeletEvents"]

log = logging.getLogger("pytest_k8sdr.sim.node")
STRATEGIC = "application/strategic-merge-patch+json"
_MEMORY = 1024
_IN_FLIGHT = 256


class KubeletEvents:
    """Records core/v1 Events about pods, as source `kubelet` on host `node`."""

    def __init__(self, client: ApiClient, node: str) -> None:
        self.client = client
        self.node = node
        self._seen: dict[tuple[str, ...], tuple[str, int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, pod: JSON, container: str, etype: str, reason: str, message: str) -> None:
        """Record an event about `pod` (its container `container`, "" for the pod itself)."""
        if len(self._tasks) >= _IN_FLIGHT:
            return  # the API is slow or away: drop, as client-go's full broadcaster queue does
        task = asyncio.create_task(self._post(pod, container, etype, reason, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Drop the events still in flight."""
        await cancel_all(list(self._tasks))

    async def _post(self, pod: JSON, container: str, etype: str, reason: str, message: str) -> None:
        meta = pod.get("metadata") or {}
        ns = str(meta.get("namespace") or "default")
        key = (ns, str(meta.get("uid")), container, etype, reason, message)
        now = now_rfc3339()
        try:
            prior = self._seen.get(key)
            if prior is not None:
                name, count = prior
                self._seen[key] = (name, count + 1)
                await self.client.request(
                    "PATCH",
                    f"/api/v1/namespaces/{ns}/events/{name}",
                    body={"count": count + 1, "lastTimestamp": now},
                    content_type=STRATEGIC,
                    attempts=1,
                )
                return
            name = f"{meta.get('name')}.{secrets.token_hex(8)}"
            involved: JSON = {
                "kind": "Pod",
                "namespace": ns,
                "name": meta.get("name"),
                "uid": meta.get("uid"),
                "apiVersion": "v1",
                "resourceVersion": meta.get("resourceVersion"),
            }
            if container:
                involved["fieldPath"] = f"spec.containers{{{container}}}"
            await self.client.request(
                "POST",
                f"/api/v1/namespaces/{ns}/events",
                body={
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"name": name, "namespace": ns},
                    "involvedObject": involved,
                    "reason": reason,
                    "message": message,
                    "type": etype,
                    "source": {"component": "kubelet", "host": self.node},
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "count": 1,
                    "reportingComponent": "kubelet",
                    "reportingInstance": self.node,
                },
                attempts=1,
            )
            self._seen[key] = (name, 1)
            if len(self._seen) > _MEMORY:
                self._seen.pop(next(iter(self._seen)))
        except (ApiStatusError, ConnectionError) as exc:
            log.debug("event %s on %s not recorded: %s", reason, meta.get("name"), exc)
