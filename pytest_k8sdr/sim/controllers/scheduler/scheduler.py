"""The scheduler controller: its cache, event handlers and scheduling cycle.

pkg/scheduler/scheduler.go, eventhandlers.go (which events move which pods), schedule_one.go
(one cycle: PreFilter, Filter over a rotating sample of numFeasibleNodesToFind nodes with the
nominated node first, PostFilter when nothing fits, Score, Reserve, PreBind, Bind) and
backend/cache (NodeInfo per node, kept from the informers). A pod that fits nowhere gets
PodScheduled=False, reason Unschedulable, with the FitError message, a FailedScheduling event,
and waits in the queue for an event that may make room.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping

from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.meta import Key, get_condition, is_terminating, key_of, meta
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.controllers.controller import Controller
from pytest_k8sdr.sim.controllers.podutil import pod_is_terminal, set_pod_condition
from pytest_k8sdr.sim.controllers.scheduler.framework import (
    EVENT_ASSIGNED_POD_ADD,
    EVENT_ASSIGNED_POD_DELETE,
    EVENT_ASSIGNED_POD_UPDATE,
    EVENT_NODE_ADD,
    EVENT_NODE_DELETE,
    EVENT_NODE_UPDATE,
    Code,
    CycleState,
    Diagnosis,
    Framework,
    NodeInfo,
    PodInfo,
    Snapshot,
    Status,
    fit_error_message,
)
from pytest_k8sdr.sim.controllers.scheduler.plugins import DEFAULT_PROFILE, REGISTRY
from pytest_k8sdr.sim.controllers.scheduler.queue import SchedulingQueue

__all__ = ["COMPONENT", "NAME", "Scheduler", "num_feasible_nodes_to_find"]

NAME = "scheduler"
COMPONENT = "default-scheduler"
# backend/queue: how often unschedulablePods is checked for pods left too long.
UNSCHEDULABLE_FLUSH_PERIOD = 30.0
# One yield to the event loop per this many cycles (a cycle is O(nodes)).
_CYCLES_PER_TURN = 1


def num_feasible_nodes_to_find(total: int) -> int:
    """How many feasible nodes end the search (schedule_one.go numFeasibleNodesToFind).

    Below 100 nodes every node; else an adaptive percentage (50 - nodes/125, at least 5).
    """
    if total < 100:
        return total
    percentage = max(50 - total // 125, 5)
    return max(total * percentage // 100, 100)


def _wants_us(pod: JSON) -> bool:
    spec = pod.get("spec") or {}
    return (
        not spec.get("nodeName")
        and (spec.get("schedulerName") or COMPONENT) == COMPONENT
        and not is_terminating(pod)
        and not pod_is_terminal(pod)
    )


def _scheduling_relevant(old: JSON, new: JSON) -> bool:
    """isPodUpdated: anything but status, resourceVersion and managedFields changed."""
    if old.get("spec") != new.get("spec"):
        return True
    mo, mn = meta(old), meta(new)
    return mo.get("labels") != mn.get("labels") or mo.get("annotations") != mn.get("annotations")


class Scheduler(Controller):
    """kube-scheduler with the default profile."""

    name = NAME

    def start(self) -> list[asyncio.Task[None]]:
        """Build the cache from the informers and schedule from the queue."""
        self.nodes = self.informers.get("nodes")
        self.pods = self.informers.get("pods")
        self.namespaces = self.informers.get("namespaces")
        self.rng = random.Random()
        self.snapshot = Snapshot()
        self.next_start = 0
        self.assigned: dict[Key, str] = {}
        self.nominated: dict[str, dict[Key, PodInfo]] = {}
        self.nominated_to: dict[Key, str] = {}
        self.framework = Framework(
            (REGISTRY[name](self), weight) for name, weight in DEFAULT_PROFILE
        )
        self.queue = SchedulingQueue(
            initial_backoff=self.profile.pod_initial_backoff,
            max_backoff=self.profile.pod_max_backoff,
            max_in_unschedulable=self.profile.pod_max_in_unschedulable,
        )
        # add_handler replays every cached object as ADDED: the cache starts full.
        self.watch(self.nodes, self._on_node)
        self.watch(self.pods, self._on_pod)
        self.on_stop(self.queue.close)
        return [
            self._spawn(self._run(), "queue"),
            self._spawn(self._flush_loop(), "flush"),
        ]

    # --- Handle -------------------------------------------------------------------------

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        """The namespace's labels ({} when unknown)."""
        ns = self.namespaces.get(None, namespace)
        return (meta(ns).get("labels") or {}) if ns is not None else {}

    def nominated_pods_for_node(self, node_name: str) -> list[PodInfo]:
        """Pending pods nominated to that node."""
        return list(self.nominated.get(node_name, {}).values())

    def clear_nomination(self, pod: PodInfo) -> None:
        """Remove status.nominatedNodeName from a pending pod."""
        self._set_nominated(pod.key, None)
        try:
            live = self.store.get("pods", pod.namespace, pod.name)
        except ApiError:
            return
        status = live.setdefault("status", {})
        if status.pop("nominatedNodeName", None) is not None:
            try:
                self.store.update("pods", pod.namespace, pod.name, live, subresource="status")
            except ApiError as exc:
                if exc.code not in (404, 409):
                    raise

    def move_all(self, event: str) -> None:
        """A cluster event: retry the unschedulable pods a plugin registered it for."""
        interested = self.framework.plugins_for_event(event)
        if self.queue.move_all(lambda plugins: not plugins or bool(plugins & interested)):
            self.queue.wake.set()

    # --- cache and event handlers ---------------------------------------------------------

    def _set_nominated(self, key: Key, info: PodInfo | None) -> None:
        old = self.nominated_to.pop(key, None)
        if old is not None:
            self.nominated.get(old, {}).pop(key, None)
        if info is not None:
            node = str((info.pod.get("status") or {}).get("nominatedNodeName") or "")
            if node:
                self.nominated_to[key] = node
                self.nominated.setdefault(node, {})[key] = info

    def _on_node(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        if new is None:
            name = meta(old or {}).get("name") or ""
            info = self.snapshot.by_name.pop(name, None)
            if info is not None and info.pods:
                self.snapshot.orphans[name] = dict(info.pods)
            self.move_all(EVENT_NODE_DELETE)
            return
        name = meta(new).get("name") or ""
        info = self.snapshot.by_name.get(name)
        if info is None:
            info = NodeInfo(new)
            for pod in self.snapshot.orphans.pop(name, {}).values():
                info.add_pod(pod)
            self.snapshot.by_name[name] = info
            self.move_all(EVENT_NODE_ADD)
            return
        info.set_node(new)
        if old is not None and (
            old.get("spec") != new.get("spec")
            or meta(old).get("labels") != meta(new).get("labels")
            or (old.get("status") or {}).get("allocatable")
            != (new.get("status") or {}).get("allocatable")
        ):
            self.move_all(EVENT_NODE_UPDATE)

    def _node_for(self, name: str) -> dict[Key, PodInfo]:
        info = self.snapshot.by_name.get(name)
        if info is not None:
            return info.pods
        return self.snapshot.orphans.setdefault(name, {})

    def _unassign(self, key: Key) -> PodInfo | None:
        node = self.assigned.pop(key, None)
        if node is None:
            return None
        info = self.snapshot.by_name.get(node)
        if info is not None:
            return info.remove_pod(key)
        return self.snapshot.orphans.get(node, {}).pop(key, None)

    def _assign(self, node: str, pod: PodInfo) -> None:
        self.assigned[pod.key] = node
        info = self.snapshot.by_name.get(node)
        if info is not None:
            info.add_pod(pod)
        else:
            self.snapshot.orphans.setdefault(node, {})[pod.key] = pod

    def _on_pod(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        key = key_of(new or old or {})
        node = ((new or {}).get("spec") or {}).get("nodeName") or ""
        if new is None or (node and pod_is_terminal(new)):
            self._set_nominated(key, None)
            self.queue.delete(key)
            if self._unassign(key) is not None:
                self.move_all(EVENT_ASSIGNED_POD_DELETE)
            return
        if node:
            self._set_nominated(key, None)
            self.queue.delete(key)
            was = self.assigned.get(key)
            if (
                was == node
                and old is not None
                and old.get("spec") == new.get("spec")
                and meta(old).get("labels") == meta(new).get("labels")
                and is_terminating(old) == is_terminating(new)
            ):
                return  # a status write: nothing the scheduler counts changed
            self._unassign(key)
            self._assign(node, PodInfo(new))
            self.move_all(EVENT_ASSIGNED_POD_ADD if was is None else EVENT_ASSIGNED_POD_UPDATE)
            return
        if not _wants_us(new):
            self._set_nominated(key, None)
            self.queue.delete(key)
            return
        info = PodInfo(new)
        self._set_nominated(key, info)
        if key not in self.queue or (old is not None and _scheduling_relevant(old, new)):
            self.queue.add(key, info.priority)

    # --- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        queue = self.queue
        while True:
            await queue.wake.wait()
            queue.wake.clear()
            done = 0
            while (key := queue.pop()) is not None:
                try:
                    self.schedule_one(key)
                except ApiError:
                    queue.error(key)
                done += 1
                if done % _CYCLES_PER_TURN == 0:
                    await asyncio.sleep(0)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(UNSCHEDULABLE_FLUSH_PERIOD)
            self.queue.flush_unschedulable_leftover()

    # --- one cycle --------------------------------------------------------------------------

    def schedule_one(self, key: Key) -> str | None:
        """One scheduling cycle for the pod `key`; the node it was bound to, or None."""
        pod = self.pods.get(*key)
        if pod is None or not _wants_us(pod):
            self.queue.done(key)
            return None
        info = PodInfo(pod)
        state = CycleState()
        fw = self.framework
        nodes = self.snapshot.node_infos()
        if not nodes:
            self._fail(info, "no nodes available to schedule pods", frozenset(), None)
            return None
        diagnosis = Diagnosis()
        allowed, status = fw.run_pre_filter(state, info, nodes)
        feasible: list[NodeInfo] = []
        if status is not None:
            diagnosis.pre_filter_msg = status.message
            diagnosis.node_to_status = {n.name: status for n in nodes}
            diagnosis.unschedulable_plugins.add(status.plugin)
        else:
            candidates = nodes
            if allowed is not None:
                candidates = [n for n in nodes if n.name in allowed]
                diagnosis.absent_status = Status.unresolvable(
                    "node(s) didn't satisfy plugin(s) [NodeAffinity]"
                )
            feasible = self._find_feasible(state, info, candidates, diagnosis)
        if not feasible:
            result, post = fw.run_post_filter(state, info, diagnosis.node_to_status)
            if post is not None and post.code != Code.SUCCESS:
                diagnosis.post_filter_msg = post.message
            message = fit_error_message(len(nodes), diagnosis)
            nominated = result.nominated_node_name if result is not None else None
            self._fail(info, message, frozenset(diagnosis.unschedulable_plugins), nominated)
            return None
        target = feasible[0] if len(feasible) == 1 else self._select_host(state, info, feasible)
        return self._bind(state, info, target.name)

    def _find_feasible(
        self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], diagnosis: Diagnosis
    ) -> list[NodeInfo]:
        nominated_node = str((pod.pod.get("status") or {}).get("nominatedNodeName") or "")
        if nominated_node:
            # evaluateNominatedNode: the node preemption made room on is tried first.
            node = self.snapshot.get(nominated_node)
            if node is not None and node in nodes and self._filter(state, pod, node) is None:
                return [node]
        want = num_feasible_nodes_to_find(len(nodes))
        # Start where the last search stopped (nextStartNodeIndex), so the sample rotates.
        total = len(nodes)
        start = self.next_start % total if total else 0
        feasible: list[NodeInfo] = []
        checked = 0
        statuses = diagnosis.node_to_status
        plugins = diagnosis.unschedulable_plugins
        for i in range(total):
            node = nodes[(start + i) % total]
            checked += 1
            status = self._filter(state, pod, node)
            if status is None:
                feasible.append(node)
                if len(feasible) >= want:
                    break
            else:
                statuses[node.name] = status
                plugins.add(status.plugin)
        self.next_start = start + checked
        return feasible

    def _filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        nominated = self.nominated.get(node.name)
        if nominated:
            return self.framework.run_filter_with_nominated(
                state, pod, node, list(nominated.values())
            )
        return self.framework.run_filter(state, pod, node)

    def _select_host(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> NodeInfo:
        """The highest total score; ties broken at random (reservoir sampling, as selectHost)."""
        totals = self.framework.run_score(state, pod, nodes)
        best = nodes[0]
        best_score = totals[0]
        ties = 1
        for node, score in zip(nodes[1:], totals[1:], strict=True):
            if score > best_score:
                best, best_score, ties = node, score, 1
            elif score == best_score:
                ties += 1
                if self.rng.randrange(ties) == 0:
                    best = node
        return best

    def _bind(self, state: CycleState, pod: PodInfo, node: str) -> str | None:
        fw = self.framework
        status = fw.run_reserve(state, pod, node)
        if status is None:
            status = fw.run_pre_bind(state, pod, node)
            if status is not None:
                fw.run_unreserve(state, pod, node)
        if status is not None and status.code == Code.WAIT:
            # A PreBind waits for something another controller does (VolumeBinding: claims
            # being bound): back to the queue quietly, retried on the plugin's events.
            self.queue.unschedulable(pod.key, frozenset({status.plugin}))
            return None
        if status is not None:
            self._fail(pod, status.message, frozenset({status.plugin}), None)
            return None
        ns, name = pod.key
        try:
            self.store.bind(
                ns,
                name,
                {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": name, "namespace": ns, "uid": meta(pod.pod).get("uid")},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node},
                },
            )
        except ApiError as exc:
            fw.run_unreserve(state, pod, node)
            if exc.code in (404, 409):
                self.queue.done(pod.key)
                return None  # deleted or bound meanwhile
            raise
        self.queue.done(pod.key)
        self.recorder.record(
            pod.pod,
            "Pod",
            "Normal",
            "Scheduled",
            f"Successfully assigned {ns}/{name} to {node}",
            COMPONENT,
        )
        return node

    def _fail(
        self, pod: PodInfo, message: str, plugins: frozenset[str], nominated: str | None
    ) -> None:
        """handleSchedulingFailure: back to the queue, the event, PodScheduled=False."""
        key = pod.key
        self.queue.unschedulable(key, plugins)
        self.recorder.record(pod.pod, "Pod", "Warning", "FailedScheduling", message, COMPONENT)
        status = pod.pod.get("status") or {}
        cond = get_condition(status.get("conditions"), "PodScheduled")
        same = (
            cond is not None
            and cond.get("status") == "False"
            and cond.get("message") == message
            and (nominated is None or status.get("nominatedNodeName") == nominated)
        )
        if same:
            return
        try:
            live = self.store.get("pods", *key)
            live_status = live.setdefault("status", {})
            changed = set_pod_condition(
                live_status,
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                },
            )
            if nominated is not None and live_status.get("nominatedNodeName") != nominated:
                live_status["nominatedNodeName"] = nominated
                changed = True
            if changed:
                self.store.update("pods", key[0], key[1], live, subresource="status")
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
