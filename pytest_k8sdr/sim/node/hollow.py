"""The kubelets of one agent process: one node, or N hollow ones (kubemark's hollow nodes).

Hollow mode (`--hollow N`) runs N kubelets in one process for scale tests: they share one
Node and one pod informer (each kubelet keeps only the fields it reads, `slim`), their lease
renewals are spread over a renew interval, and their pods go through their lifecycle in the
API without sockets (`Runtime(serve=False)`); there is no kube-proxy.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable

from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.client.informer import Informer
from pytest_k8sdr.sim.client.rest import ApiClient
from pytest_k8sdr.sim.client.tasks import cancel_all
from pytest_k8sdr.sim.node.kubelet import Kubelet
from pytest_k8sdr.sim.node.nodespec import NodeSpec
from pytest_k8sdr.sim.node.podworkers import DEFAULT_PASS_LIMIT, PassLimiter
from pytest_k8sdr.sim.node.runtime import Runtime
from pytest_k8sdr.sim.node.slim import slim_node, slim_pod
from pytest_k8sdr.sim.profiles import Profile

__all__ = ["KubeletHost"]


class KubeletHost:
    """The kubelet side of one agent process: informers shared by one or many kubelets."""

    def __init__(
        self,
        client: ApiClient,
        profile: Profile,
        specs: Iterable[NodeSpec],
        runtimes: dict[str, Runtime],
        *,
        hollow: bool = False,
    ) -> None:
        self.client = client
        self.profile = profile
        self.specs = list(specs)
        self.runtimes = runtimes
        self.hollow = hollow
        self.kubelets: dict[str, Kubelet] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.running = False

    def start(self) -> None:
        """Start every kubelet (as their processes would start) and the shared watches."""
        self.running = True
        limiter = PassLimiter(DEFAULT_PASS_LIMIT)
        self.kubelets = {
            s.name: Kubelet(s, self.client, self.runtimes[s.name], self.profile, limiter)
            for s in self.specs
        }
        if len(self.specs) == 1 and not self.hollow:
            name = self.specs[0].name
            nodes = Informer(
                self.client,
                "/api/v1/nodes",
                field_selector=f"metadata.name={name}",
                transform=slim_node,
            )
            pods = Informer(
                self.client,
                "/api/v1/pods",
                field_selector=f"spec.nodeName={name}",
                transform=slim_pod,
            )
        else:
            nodes = Informer(self.client, "/api/v1/nodes", transform=slim_node)
            pods = Informer(self.client, "/api/v1/pods", transform=slim_pod)

        def on_node(etype: str, old: JSON | None, new: JSON | None) -> None:
            kubelet = self.kubelets.get(str(((new or old) or {}).get("metadata", {}).get("name")))
            if kubelet is not None:
                kubelet.on_node(new)

        def on_pod(etype: str, old: JSON | None, new: JSON | None) -> None:
            names = {((o or {}).get("spec") or {}).get("nodeName") for o in (old, new)}
            for name in names:
                kubelet = self.kubelets.get(name) if name else None
                if kubelet is not None:
                    kubelet.on_pod(old, new)

        nodes.add_handler(on_node)
        pods.add_handler(on_pod)
        self._tasks = [asyncio.create_task(nodes.run()), asyncio.create_task(pods.run())]
        spread = self.profile.lease_renew_interval if len(self.specs) > 1 else 0.0
        for kubelet in self.kubelets.values():
            kubelet.start(initial_delay=random.random() * spread)

    async def stop(self) -> None:
        """Stop every kubelet and the watches; pods keep running."""
        self.running = False
        await cancel_all(self._tasks)
        self._tasks = []
        for kubelet in self.kubelets.values():
            await kubelet.stop()

    def runtime_changed(self) -> None:
        """Tell every kubelet that its runtime went down or came back."""
        for kubelet in self.kubelets.values():
            kubelet.runtime_changed()
