"""The kubelet's node lease (staging/src/k8s.io/component-helpers/apimachinery/lease/controller.go).

The Lease `kube-node-lease/<node>` is renewed every renew interval, owned by the Node once the
Node exists (pkg/kubelet/util/nodelease.go); the node lifecycle controller reads renewTime.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from pytest_k8sdr.sim.apimachinery.clock import microtime
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.client.rest import ApiClient, ApiStatusError
from pytest_k8sdr.sim.profiles import Profile

__all__ = ["LEASE_NAMESPACE", "NodeLease"]

log = logging.getLogger("pytest_k8sdr.sim.node")

LEASE_NAMESPACE = "kube-node-lease"


class NodeLease:
    """Renews one node's Lease; `owner_uid()` is the Node's uid once known (None before)."""

    def __init__(
        self,
        name: str,
        client: ApiClient,
        profile: Profile,
        owner_uid: Callable[[], str | None],
    ) -> None:
        self.name = name
        self.client = client
        self.profile = profile
        self.owner_uid = owner_uid
        self.renewals = 0

    async def run(self) -> None:
        """Renew every renew interval until cancelled (renewals failing are retried)."""
        lease: JSON | None = None
        interval = self.profile.lease_renew_interval
        while True:
            began = time.monotonic()
            try:
                lease = await self._renew(lease)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("node %s: lease renewal failed: %s", self.name, exc)
            # Scheduled from the start of the renewal so a slow answer does not push the next
            # one back; 4% jitter as wait.JitterUntil in the lease controller.
            period = interval * (1 + random.random() * 0.04)
            await asyncio.sleep(max(0.0, began + period - time.monotonic()))

    def _lease_body(self, base: JSON) -> JSON:
        lease = dict(base)
        meta = dict(lease.get("metadata") or {})
        meta.setdefault("name", self.name)
        meta.setdefault("namespace", LEASE_NAMESPACE)
        # pkg/kubelet/util/nodelease.go setNodeOwnerFunction: owned by the Node when it exists.
        owner = self.owner_uid()
        if not meta.get("ownerReferences") and owner:
            meta["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": owner}
            ]
        lease["metadata"] = meta
        lease["apiVersion"] = "coordination.k8s.io/v1"
        lease["kind"] = "Lease"
        lease["spec"] = {
            **(lease.get("spec") or {}),
            "holderIdentity": self.name,
            "leaseDurationSeconds": int(self.profile.node_lease_duration),
            "renewTime": microtime(),
        }
        return lease

    async def _renew(self, lease: JSON | None) -> JSON | None:
        # Wait out a partition before stamping renewTime, so the first renewal after it is fresh.
        await self.client.gate.wait_open()
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
        if lease is not None:
            try:
                updated = await self.client.request(
                    "PUT", f"{path}/{self.name}", body=self._lease_body(lease), attempts=3
                )
                self.renewals += 1
                return updated
            except ApiStatusError:
                lease = None  # conflict or gone: fetch or create it again
        try:
            lease = await self.client.request("GET", f"{path}/{self.name}", attempts=3)
        except ApiStatusError as exc:
            if exc.code != 404:
                raise
            created = await self.client.request("POST", path, body=self._lease_body({}), attempts=3)
            self.renewals += 1
            return created
        updated = await self.client.request(
            "PUT", f"{path}/{self.name}", body=self._lease_body(lease), attempts=3
        )
        self.renewals += 1
        return updated
