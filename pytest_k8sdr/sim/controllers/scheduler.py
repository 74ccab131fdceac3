"""The scheduler (kube-scheduler's default profile, reduced to the plugins node failure touches).

Filters: NodeUnschedulable, TaintToleration (NoSchedule and NoExecute), NodeAffinity (nodeSelector
and required affinity), NodeResourcesFit (requests and pod count), PodTopologySpread
(DoNotSchedule constraints; nodeAffinityPolicy Honor, nodeTaintsPolicy Ignore by default;
terminating pods not counted). Score: fewest pods of the same owner, then fewest pods, ties
broken at random. Binding goes through pods/binding. Not modelled: preemption, inter-pod
affinity, volumes, the zone half of the default spreading constraints.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.meta import (
    Key,
    controller_ref,
    get_condition,
    is_terminating,
    key_of,
    meta,
)
from pytest_k8sdr.sim.apimachinery.quantity import parse_quantity
from pytest_k8sdr.sim.apimachinery.selectors import selector_matches
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apimachinery.wellknown import TAINT_UNSCHEDULABLE
from pytest_k8sdr.sim.controllers.controller import Controller
from pytest_k8sdr.sim.controllers.nodeaffinity import pod_matches_node_selection
from pytest_k8sdr.sim.controllers.podutil import pod_is_terminal, pod_requests, set_pod_condition
from pytest_k8sdr.sim.controllers.taints import node_taints, pod_tolerations, tolerates
from pytest_k8sdr.sim.controllers.workqueue import WorkQueue

NAME = "scheduler"
COMPONENT = "default-scheduler"
# pkg/scheduler/backend/queue: unschedulable pods are retried at least this often.
UNSCHEDULABLE_FLUSH_PERIOD = 5.0


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


class Scheduler(Controller):
    """Binds pending pods to nodes that pass the filters."""

    name = NAME

    def start(self) -> list[asyncio.Task[None]]:
        """Follow nodes and pods; schedule from a queue."""
        self.nodes = self.informers.get("nodes")
        self.pods = self.informers.get("pods")
        self.pods_by_node = self.informers.pods_by_node
        self.pods_by_owner = self.informers.by_owner("pods")
        self.rng = random.Random()
        self.requested: dict[str, Counter[str]] = {}
        self.contribution: dict[Key, tuple[str, dict[str, float]]] = {}
        self.unschedulable: set[Key] = set()
        self.allocatable: dict[str, dict[str, float]] = {}
        self.next_start = 0
        # One pod per turn of the event loop: a scheduling cycle is O(nodes).
        self.queue: WorkQueue[Key] = WorkQueue(NAME, self._schedule_one, batch=1)
        self._flush_pending = False
        self.watch(self.pods, self._on_pod)
        self.watch(self.nodes, self._on_node)
        return [self._spawn(self.queue.run(), "queue"), self._spawn(self._flush_loop(), "flush")]

    # --- cache ------------------------------------------------------------------------------

    def _on_pod(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        key = key_of(new or old or {})
        prior = self.contribution.pop(key, None)
        if prior is not None:
            self.requested.setdefault(prior[0], Counter()).subtract(prior[1])
        if new is not None:
            node = (new.get("spec") or {}).get("nodeName")
            if node and not pod_is_terminal(new):
                req = dict(pod_requests(new))
                req["pods"] = 1.0
                self.contribution[key] = (node, req)
                self.requested.setdefault(node, Counter()).update(req)
            if _wants_us(new):
                if key not in self.unschedulable:
                    self.queue.add(key)
                return
        self.unschedulable.discard(key)
        # A pod leaving or terminating frees room (or changes spreading): retry the rest.
        if prior is not None and (new is None or is_terminating(new) or pod_is_terminal(new)):
            self._request_flush()

    def _on_node(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        self.allocatable.pop(meta(new or old or {}).get("name", ""), None)
        if new is None:
            self.requested.pop(meta(old or {}).get("name", ""), None)
            return
        if old is not None and (
            old.get("spec") == new.get("spec")
            and meta(old).get("labels") == meta(new).get("labels")
            and (old.get("status") or {}).get("allocatable")
            == (new.get("status") or {}).get("allocatable")
        ):
            return
        self._request_flush()

    def _request_flush(self) -> None:
        if self._flush_pending or not self.unschedulable:
            return
        self._flush_pending = True
        asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        for key in list(self.unschedulable):
            self.unschedulable.discard(key)
            self.queue.add(key)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(UNSCHEDULABLE_FLUSH_PERIOD)
            self._flush()

    # --- scheduling -------------------------------------------------------------------------

    def _schedule_one(self, key: Key) -> None:
        pod = self.pods.get(*key)
        if pod is None or not _wants_us(pod):
            return
        nodes = list(self.nodes.list())
        reasons: Counter[str] = Counter()
        spread = self._spread_prepare(pod, nodes)
        feasible: list[JSON] = []
        requests = pod_requests(pod)
        want = num_feasible_nodes_to_find(len(nodes))
        # Start where the last search stopped (schedule_one.go nextStartNodeIndex), so the
        # sampled subset rotates over the cluster.
        start = self.next_start % len(nodes) if nodes else 0
        checked = 0
        for i in range(len(nodes)):
            node = nodes[(start + i) % len(nodes)]
            checked += 1
            why = self._filter(pod, node, spread, requests)
            if why is None:
                feasible.append(node)
                if len(feasible) >= want:
                    break
            else:
                reasons[why] += 1
        self.next_start = start + checked
        if not feasible:
            self._unschedulable(pod, len(nodes), reasons)
            return
        target = self._pick(pod, feasible)
        ns, name = key
        try:
            self.store.bind(
                ns,
                name,
                {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": name, "namespace": ns, "uid": meta(pod).get("uid")},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": meta(target)["name"]},
                },
            )
        except ApiError as exc:
            if exc.code in (404, 409):
                return  # deleted or bound meanwhile
            raise
        self.recorder.record(
            pod,
            "Pod",
            "Normal",
            "Scheduled",
            f"Successfully assigned {ns}/{name} to {meta(target)['name']}",
            COMPONENT,
        )

    def _unschedulable(self, pod: JSON, total: int, reasons: Counter[str]) -> None:
        key = key_of(pod)
        self.unschedulable.add(key)
        if total == 0:
            message = "no nodes available to schedule pods"
        else:
            parts = sorted(f"{count} {reason}" for reason, count in reasons.items())
            message = (
                f"0/{total} nodes are available: {', '.join(parts)}. preemption: 0/{total} nodes "
                f"are available: {total} Preemption is not helpful for scheduling."
            )
        cond = get_condition((pod.get("status") or {}).get("conditions"), "PodScheduled")
        if cond is not None and cond.get("message") == message and cond.get("status") == "False":
            return  # nothing new to say
        self.recorder.record(pod, "Pod", "Warning", "FailedScheduling", message, COMPONENT)
        try:
            live = self.store.get("pods", *key)
            if set_pod_condition(
                live.setdefault("status", {}),
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                },
            ):
                self.store.update("pods", key[0], key[1], live, subresource="status")
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _filter(
        self, pod: JSON, node: JSON, spread: list[_Spread], requests: dict[str, float]
    ) -> str | None:
        spec = node.get("spec") or {}
        tolerations = pod_tolerations(pod)
        # NodeUnschedulable (nodeunschedulable/node_unschedulable.go)
        if spec.get("unschedulable") and not tolerates(
            tolerations, {"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}
        ):
            return "node(s) were unschedulable"
        # TaintToleration filters NoSchedule and NoExecute (tainttoleration/taint_toleration.go)
        for taint in node_taints(node):
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(
                tolerations, taint
            ):
                value = taint.get("value") or ""
                return f"node(s) had untolerated taint {{{taint.get('key')}: {value}}}"
        if not pod_matches_node_selection(pod, node):
            return "node(s) didn't match Pod's node affinity/selector"
        why = self._fits(requests, node)
        if why is not None:
            return why
        for constraint in spread:
            why = constraint.check(node)
            if why is not None:
                return why
        return None

    def _fits(self, requests: dict[str, float], node: JSON) -> str | None:
        name = meta(node)["name"]
        allocatable = self.allocatable.get(name)
        if allocatable is None:
            raw = (node.get("status") or {}).get("allocatable") or {}
            allocatable = {k: parse_quantity(v) for k, v in raw.items()}
            self.allocatable[name] = allocatable
        used = self.requested.get(name, Counter())
        max_pods = allocatable.get("pods", 110.0)
        if used.get("pods", 0.0) + 1 > max_pods:
            return "Too many pods"
        for resource, amount in requests.items():
            if amount <= 0:
                continue
            if resource not in allocatable and resource not in (
                "cpu",
                "memory",
                "ephemeral-storage",
            ):
                return f"Insufficient {resource}"
            if resource not in allocatable:
                continue
            if used.get(resource, 0.0) + amount > allocatable[resource] + 1e-9:
                return f"Insufficient {resource}"
        return None

    def _spread_prepare(self, pod: JSON, nodes: list[JSON]) -> list[_Spread]:
        constraints = (pod.get("spec") or {}).get("topologySpreadConstraints") or []
        out: list[_Spread] = []
        labels = meta(pod).get("labels") or {}
        ns = meta(pod).get("namespace") or ""
        for c in constraints:
            if c.get("whenUnsatisfiable", "DoNotSchedule") != "DoNotSchedule":
                continue
            selector = dict(c.get("labelSelector") or {})
            keys = c.get("matchLabelKeys") or []
            if keys:
                exprs = list(selector.get("matchExpressions") or [])
                exprs += [
                    {"key": k, "operator": "In", "values": [labels[k]]} for k in keys if k in labels
                ]
                selector["matchExpressions"] = exprs
            topo = str(c.get("topologyKey"))
            honor_affinity = c.get("nodeAffinityPolicy", "Honor") == "Honor"
            honor_taints = c.get("nodeTaintsPolicy", "Ignore") == "Honor"
            domain_of: dict[str, str] = {}
            counts: Counter[str] = Counter()
            for node in nodes:
                value = (meta(node).get("labels") or {}).get(topo)
                if value is None:
                    continue
                if honor_affinity and not pod_matches_node_selection(pod, node):
                    continue
                if honor_taints and any(
                    t.get("effect") in ("NoSchedule", "NoExecute")
                    and not tolerates(pod_tolerations(pod), t)
                    for t in node_taints(node)
                ):
                    continue
                domain_of[meta(node)["name"]] = value
                counts.setdefault(value, 0)
            for other in self.pods.by_namespace.get(ns, {}).values():
                node_name = (other.get("spec") or {}).get("nodeName")
                # "Bypass terminating Pod" (podtopologyspread/common.go)
                if not node_name or is_terminating(other) or node_name not in domain_of:
                    continue
                if selector_matches(selector, meta(other).get("labels")):
                    counts[domain_of[node_name]] += 1
            minimum = min(counts.values()) if counts else 0
            min_domains = c.get("minDomains")
            if min_domains and len(counts) < int(min_domains):
                minimum = 0
            self_match = 1 if selector_matches(selector, labels) else 0
            out.append(_Spread(topo, int(c.get("maxSkew", 1)), counts, minimum, self_match))
        return out

    def _pick(self, pod: JSON, feasible: list[JSON]) -> JSON:
        ref = controller_ref(pod)
        siblings: Counter[str] = Counter()
        if ref is not None:
            for other in self.pods_by_owner.get(str(ref.get("uid")), {}).values():
                node_name = (other.get("spec") or {}).get("nodeName")
                if node_name and not is_terminating(other):
                    siblings[node_name] += 1
        best: list[JSON] = []
        best_score: tuple[float, float] | None = None
        for node in feasible:
            name = meta(node)["name"]
            score = (
                float(siblings.get(name, 0)),
                float(self.requested.get(name, Counter()).get("pods", 0.0)),
            )
            if best_score is None or score < best_score:
                best, best_score = [node], score
            elif score == best_score:
                best.append(node)
        return self.rng.choice(best)


class _Spread:
    def __init__(
        self, key: str, max_skew: int, counts: Counter[str], minimum: int, self_match: int
    ) -> None:
        self.key = key
        self.max_skew = max_skew
        self.counts = counts
        self.minimum = minimum
        self.self_match = self_match

    def check(self, node: JSON) -> str | None:
        value = (meta(node).get("labels") or {}).get(self.key)
        if value is None:
            return "node(s) didn't match pod topology spread constraints (missing required label)"
        if self.counts.get(value, 0) + self.self_match - self.minimum > self.max_skew:
            return "node(s) didn't match pod topology spread constraints"
        return None
