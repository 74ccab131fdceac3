"""Pod garbage collector (pkg/controller/podgc/gc_controller.go).

Every period: delete terminated pods above the threshold (oldest first); force-delete
terminating pods on not-Ready nodes with the out-of-service taint; after a quarantine,
force-delete pods bound to nodes that no longer exist (DisruptionTarget DeletionByPodGC);
force-delete terminating pods that were never scheduled. The period and quarantine are
constants upstream (20s, 40s); the profiles carry them so `fast` can scale them.
"""

from __future__ import annotations

import asyncio

from pytest_k8sdr.sim.apimachinery.clock import parse_rfc3339
from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.meta import Key, is_terminating, key_of, meta
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apimachinery.wellknown import TAINT_OUT_OF_SERVICE
from pytest_k8sdr.sim.controllers.controller import Controller
from pytest_k8sdr.sim.controllers.podutil import (
    node_ready_status,
    pod_is_terminal,
    set_pod_condition,
)
from pytest_k8sdr.sim.controllers.taints import node_taints
from pytest_k8sdr.sim.controllers.workqueue import every

NAME = "podgc"
COMPONENT = "pod-garbage-collector"


class PodGCController(Controller):
    """Removes pods nobody else will: orphans, out-of-service, excess terminated."""

    name = NAME

    def start(self) -> list[asyncio.Task[None]]:
        """Run the periodic pass."""
        self.clock = asyncio.get_running_loop().time
        self.nodes = self.informers.get("nodes")
        self.pods = self.informers.get("pods")
        self.pods_by_node = self.informers.pods_by_node
        self.terminated: dict[Key, JSON] = {}
        self.quarantine: dict[str, float] = {}  # node name -> when it may be confirmed gone
        self.watch(self.pods, self._on_pod)
        return [self._spawn(every(self.profile.podgc_period, self.gc, name=NAME), "loop")]

    def _on_pod(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        key = key_of(new or old or {})
        if new is not None and pod_is_terminal(new):
            self.terminated[key] = new
        else:
            self.terminated.pop(key, None)

    def gc(self) -> None:
        """One pass, in upstream's order."""
        self._gc_terminated()
        self._gc_terminating()
        self._gc_orphaned()
        self._gc_unscheduled_terminating()

    def _gc_terminated(self) -> None:
        threshold = self.profile.terminated_pod_gc_threshold
        excess = len(self.terminated) - threshold
        if threshold <= 0 or excess <= 0:
            return

        def order(pod: JSON) -> tuple[int, float]:
            evicted = (pod.get("status") or {}).get("reason") == "Evicted"
            return (0 if evicted else 1, parse_rfc3339(meta(pod).get("creationTimestamp")) or 0.0)

        for pod in sorted(self.terminated.values(), key=order)[:excess]:
            self._delete(pod, grace=0)

    def _gc_terminating(self) -> None:
        for node in self.nodes.list():
            if node_ready_status(node) == "True":
                continue
            if not any(t.get("key") == TAINT_OUT_OF_SERVICE for t in node_taints(node)):
                continue
            for pod in list(self.pods_by_node.get(meta(node)["name"], {}).values()):
                if is_terminating(pod):
                    self._mark_failed_and_delete(pod, None)

    def _gc_orphaned(self) -> None:
        now = self.clock()
        for node_name in list(self.pods_by_node):
            if node_name and self.nodes.get(None, node_name) is None:
                self.quarantine.setdefault(node_name, now + self.profile.podgc_quarantine)
        for node_name, ready_at in list(self.quarantine.items()):
            if ready_at > now:
                continue
            del self.quarantine[node_name]
            if self.nodes.get(None, node_name) is not None:
                continue
            try:
                # A live GET confirms the node is really gone (discoverDeletedNodes).
                self.store.get("nodes", None, node_name)
                continue
            except ApiError as exc:
                if exc.code != 404:
                    raise
            for pod in list(self.pods_by_node.get(node_name, {}).values()):
                self._mark_failed_and_delete(
                    pod,
                    {
                        "type": "DisruptionTarget",
                        "status": "True",
                        "reason": "DeletionByPodGC",
                        "message": "PodGC: node no longer exists",
                    },
                )

    def _gc_unscheduled_terminating(self) -> None:
        for pod in list(self.pods_by_node.get("", {}).values()):
            if is_terminating(pod):
                self._mark_failed_and_delete(pod, None)

    def _mark_failed_and_delete(self, pod: JSON, condition: JSON | None) -> None:
        ns, name = key_of(pod)
        try:
            live = self.store.get("pods", ns, name)
            if not pod_is_terminal(live):
                status = live.setdefault("status", {})
                status["phase"] = "Failed"
                if condition is not None:
                    set_pod_condition(status, condition)
                self.store.update("pods", ns, name, live, subresource="status")
        except ApiError as exc:
            if exc.code == 404:
                return
            raise
        self._delete(pod, grace=0)

    def _delete(self, pod: JSON, *, grace: int) -> None:
        ns, name = key_of(pod)
        try:
            self.store.delete("pods", ns, name, grace_period_seconds=grace)
        except ApiError as exc:
            if exc.code != 404:
                raise
