"""Taint-based eviction (pkg/controller/tainteviction/taint_eviction.go).

Pods on a node with NoExecute taints they do not tolerate are deleted at once; tolerated ones
after the smallest matching tolerationSeconds, counted from when this controller processed the
taint. Deleting = DisruptionTarget condition + a plain DELETE (not the Eviction API, PDBs are
ignored). Taints going away cancel pending deletions.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.meta import Key, meta
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.controllers.controller import Controller
from pytest_k8sdr.sim.controllers.podutil import set_pod_condition
from pytest_k8sdr.sim.controllers.taints import node_taints, pod_tolerations, toleration_tolerates
from pytest_k8sdr.sim.controllers.workqueue import WorkQueue

NAME = "taint-eviction-controller"
COMPONENT = "taint-eviction-controller"


def no_execute_taints(node: JSON | None) -> list[JSON]:
    """The node's NoExecute taints."""
    return [t for t in node_taints(node or {}) if t.get("effect") == "NoExecute"]


def min_toleration_seconds(taints: list[JSON], tolerations: list[JSON]) -> float | None:
    """None when some taint is not tolerated; inf when tolerated forever; else the minimum.

    v1helper.GetMatchingTolerations + getMinTolerationTime.
    """
    used: list[JSON] = []
    for taint in taints:
        matching = [t for t in tolerations if toleration_tolerates(t, taint)]
        if not matching:
            return None
        used.extend(matching)
    best = float("inf")
    for tol in used:
        seconds = tol.get("tolerationSeconds")
        if seconds is None:
            continue
        best = min(best, max(float(seconds), 0.0))
    return best


@dataclass
class _Scheduled:
    created_at: float
    fire_at: float
    handle: asyncio.TimerHandle


class TaintEvictionController(Controller):
    """Deletes pods whose tolerations of their node's NoExecute taints ran out."""

    name = NAME

    def start(self) -> list[asyncio.Task[None]]:
        """Follow nodes and pods."""
        self.loop = asyncio.get_running_loop()
        self.nodes = self.informers.get("nodes")
        self.pods = self.informers.get("pods")
        self.pods_by_node = self.informers.pods_by_node
        self.tainted: dict[str, list[JSON]] = {}
        self.scheduled: dict[Key, _Scheduled] = {}
        self.node_queue: WorkQueue[str] = WorkQueue(f"{NAME}-nodes", self._handle_node)
        self.pod_queue: WorkQueue[Key] = WorkQueue(f"{NAME}-pods", self._handle_pod)
        self.delete_queue: WorkQueue[Key] = WorkQueue(f"{NAME}-delete", self._delete_pod)
        self.watch(self.nodes, self._on_node)
        self.watch(self.pods, self._on_pod)
        return [
            self._spawn(self.node_queue.run(), "nodes"),
            self._spawn(self.pod_queue.run(), "pods"),
            self._spawn(self.delete_queue.run(), "delete"),
        ]

    def _on_node(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        if old is not None and new is not None and no_execute_taints(old) == no_execute_taints(new):
            return
        self.node_queue.add(meta(new or old or {}).get("name", ""))

    def _on_pod(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        if new is None:
            if old is not None:
                self._cancel(_key(old), event=False)
            return
        node_name = (new.get("spec") or {}).get("nodeName")
        if not node_name:
            return
        if (
            old is not None
            and (old.get("spec") or {}).get("nodeName") == node_name
            and pod_tolerations(old) == pod_tolerations(new)
        ):
            return
        self.pod_queue.add(_key(new))

    def _handle_node(self, name: str) -> None:
        node = self.nodes.get(None, name)
        if node is None:
            # The node is gone: forget it; pods are left to pod GC.
            self.tainted.pop(name, None)
            return
        taints = no_execute_taints(node)
        if taints:
            self.tainted[name] = taints
        else:
            self.tainted.pop(name, None)
        pods = list(self.pods_by_node.get(name, {}).values())
        if not taints:
            for pod in pods:
                self._cancel(_key(pod), event=True)
            return
        for pod in pods:
            self._process_pod_on_node(pod, taints)

    def _handle_pod(self, key: Key) -> None:
        pod = self.pods.get(*key)
        if pod is None:
            self._cancel(key, event=False)
            return
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        taints = self.tainted.get(node_name)
        if taints is None:
            return
        self._process_pod_on_node(pod, taints)

    def _process_pod_on_node(self, pod: JSON, taints: list[JSON]) -> None:
        key = _key(pod)
        if not taints:
            self._cancel(key, event=True)
            return
        seconds = min_toleration_seconds(taints, pod_tolerations(pod))
        if seconds is None:
            self._cancel(key, event=True)
            self.delete_queue.add(key)
            return
        if seconds == float("inf"):
            self._cancel(key, event=True)
            return
        now = self.loop.time()
        start = now
        trigger = now + seconds
        existing = self.scheduled.get(key)
        if existing is not None:
            start = existing.created_at
            if start + seconds < trigger:
                return
            self._cancel(key, event=True)
        handle = self.loop.call_at(start + seconds, self._fire, key)
        self.scheduled[key] = _Scheduled(start, start + seconds, handle)

    def _fire(self, key: Key) -> None:
        self.scheduled.pop(key, None)
        self.delete_queue.add(key)

    def _cancel(self, key: Key, *, event: bool) -> None:
        item = self.scheduled.pop(key, None)
        if item is None:
            return
        item.handle.cancel()
        if event:
            pod = self.pods.get(*key)
            if pod is not None:
                self.recorder.record(
                    pod,
                    "Pod",
                    "Normal",
                    "TaintManagerEviction",
                    f"Cancelling deletion of Pod {key[0]}/{key[1]}",
                    COMPONENT,
                )

    def _delete_pod(self, key: Key) -> None:
        ns, name = key
        try:
            pod = self.store.get("pods", ns, name)
        except ApiError as exc:
            if exc.code == 404:
                return
            raise
        self.recorder.record(
            pod,
            "Pod",
            "Normal",
            "TaintManagerEviction",
            f"Marking for deletion Pod {ns}/{name}",
            COMPONENT,
        )
        status = pod.setdefault("status", {})
        if set_pod_condition(
            status,
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint",
            },
        ):
            self.store.update("pods", ns, name, pod, subresource="status")
        try:
            self.store.delete("pods", ns, name)
        except ApiError as exc:
            if exc.code != 404:
                raise


def _key(pod: JSON) -> Key:
    m = meta(pod)
    return (m.get("namespace") or "", m.get("name") or "")
