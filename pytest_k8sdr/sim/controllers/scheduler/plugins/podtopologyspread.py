"""PodTopologySpread: topologySpreadConstraints and the system default spreading.

pkg/scheduler/framework/plugins/podtopologyspread: common.go, filtering.go, scoring.go, plugin.go.

Filter, over the DoNotSchedule constraints: per topology domain, the pods of the pod's
namespace matching the constraint's labelSelector (with `matchLabelKeys` values merged in),
terminating pods not counted ("Bypass terminating Pod"); nodes that do not pass the inclusion
policies are no domain (nodeAffinityPolicy Honor and nodeTaintsPolicy Ignore by default), and
nodes lacking any constraint's key are no domain either. A node is rejected when placing the
pod there makes `count + self - min > maxSkew`; `min` is 0 while fewer domains exist than
`minDomains`. A node without the key: "node(s) didn't match pod topology spread constraints
(missing required label)", UnschedulableAndUnresolvable.

Score, over the ScheduleAnyway constraints, or upstream's system default constraints for a pod
without any (hostname maxSkew 3, zone maxSkew 5, selecting the pods of the Services,
ReplicaSets and StatefulSets that select this pod): fewer matching pods in a node's domains
score higher, each constraint weighted by log(domains + 2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from pytest_k8sdr.sim.apimachinery.selectors import selector_matches
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apimachinery.wellknown import LABEL_HOSTNAME, LABEL_ZONE
from pytest_k8sdr.sim.controllers.nodeaffinity import pod_matches_node_selection
from pytest_k8sdr.sim.controllers.scheduler.framework import (
    EVENT_ASSIGNED_POD_ADD,
    EVENT_ASSIGNED_POD_DELETE,
    EVENT_ASSIGNED_POD_UPDATE,
    EVENT_NODE_ADD,
    EVENT_NODE_DELETE,
    EVENT_NODE_UPDATE,
    MAX_NODE_SCORE,
    SKIP,
    CycleState,
    FilterPlugin,
    NodeInfo,
    PodInfo,
    PreFilterPlugin,
    PreScorePlugin,
    ScorePlugin,
    Status,
)
from pytest_k8sdr.sim.controllers.scheduler.plugins.tainttoleration import untolerated_taint

__all__ = ["SYSTEM_DEFAULT_CONSTRAINTS", "PodTopologySpread"]

REJECTED = Status.unschedulable("node(s) didn't match pod topology spread constraints")
MISSING_LABEL = Status.unresolvable(
    "node(s) didn't match pod topology spread constraints (missing required label)"
)
# pkg/scheduler/apis/config/v1/defaults.go: the default of a profile's PodTopologySpreadArgs.
SYSTEM_DEFAULT_CONSTRAINTS = (
    {"topologyKey": LABEL_HOSTNAME, "maxSkew": 3, "whenUnsatisfiable": "ScheduleAnyway"},
    {"topologyKey": LABEL_ZONE, "maxSkew": 5, "whenUnsatisfiable": "ScheduleAnyway"},
)


@dataclass(frozen=True)
class Constraint:
    """A topologySpreadConstraint ready to count with (common.go topologySpreadConstraint)."""

    max_skew: int
    key: str
    selector: JSON
    min_domains: int
    honor_affinity: bool
    honor_taints: bool

    def includes(self, pod: PodInfo, node: NodeInfo) -> bool:
        """matchNodeInclusionPolicies: may `node` count as a domain for `pod`."""
        if self.honor_affinity and not pod_matches_node_selection(pod.pod, node.node):
            return False
        return not (self.honor_taints and node.taints and untolerated_taint(pod, node))

    def count(self, pod: PodInfo, node: NodeInfo) -> int:
        """countPodsMatchSelector: matching, non-terminating pods of the pod's namespace."""
        selector = self.selector
        return sum(
            1
            for other in node.pods.values()
            if not other.terminating
            and other.namespace == pod.namespace
            and selector_matches(selector, other.labels)
        )


def _constraints(pod: PodInfo, raw: list[JSON], when: str) -> list[Constraint]:
    out = []
    for c in raw:
        if c.get("whenUnsatisfiable", "DoNotSchedule") != when:
            continue
        selector = dict(c.get("labelSelector") or {})
        keys = [k for k in c.get("matchLabelKeys") or () if k in pod.labels]
        if keys:
            selector["matchExpressions"] = [
                *(selector.get("matchExpressions") or ()),
                *({"key": k, "operator": "In", "values": [pod.labels[k]]} for k in keys),
            ]
        out.append(
            Constraint(
                max_skew=int(c.get("maxSkew") or 1),
                key=str(c.get("topologyKey")),
                selector=selector,
                min_domains=int(c.get("minDomains") or 1),
                honor_affinity=c.get("nodeAffinityPolicy", "Honor") == "Honor",
                honor_taints=c.get("nodeTaintsPolicy", "Ignore") == "Honor",
            )
        )
    return out


def _has_keys(labels: Mapping[str, str], constraints: list[Constraint]) -> bool:
    return all(c.key in labels for c in constraints)


@dataclass
class _FilterState:
    constraints: list[Constraint]
    counts: list[dict[str, int]]
    self_match: list[int]

    def clone(self) -> _FilterState:
        return _FilterState(self.constraints, [dict(c) for c in self.counts], self.self_match)

    def update(self, pod: PodInfo, other: PodInfo, node: NodeInfo, delta: int) -> None:
        if other.namespace != pod.namespace or not _has_keys(node.labels, self.constraints):
            return
        for i, c in enumerate(self.constraints):
            if c.includes(pod, node) and selector_matches(c.selector, other.labels):
                value = node.labels[c.key]
                self.counts[i][value] = self.counts[i].get(value, 0) + delta


@dataclass
class _ScoreState:
    constraints: list[Constraint]
    counts: list[dict[str, int]] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    ignored: set[str] = field(default_factory=set)


class PodTopologySpread(PreFilterPlugin, FilterPlugin, PreScorePlugin, ScorePlugin):
    """Spread constraints, hard and soft."""

    name = "PodTopologySpread"
    events = frozenset(
        {
            EVENT_NODE_ADD,
            EVENT_NODE_UPDATE,
            EVENT_NODE_DELETE,
            EVENT_ASSIGNED_POD_ADD,
            EVENT_ASSIGNED_POD_UPDATE,
            EVENT_ASSIGNED_POD_DELETE,
        }
    )

    # --- filter -------------------------------------------------------------------------

    def pre_filter(
        self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]
    ) -> tuple[set[str] | None, Status | None]:
        """Count matching pods per domain over every node (calPreFilterState)."""
        raw = (pod.pod.get("spec") or {}).get("topologySpreadConstraints") or []
        constraints = _constraints(pod, raw, "DoNotSchedule")
        if not constraints:
            return None, SKIP
        counts: list[dict[str, int]] = [{} for _ in constraints]
        for node in nodes:
            if not _has_keys(node.labels, constraints):
                continue
            for i, c in enumerate(constraints):
                if not c.includes(pod, node):
                    continue
                value = node.labels[c.key]
                counts[i][value] = counts[i].get(value, 0) + c.count(pod, node)
        self_match = [1 if selector_matches(c.selector, pod.labels) else 0 for c in constraints]
        state.data[self.name] = _FilterState(constraints, counts, self_match)
        return None, None

    def add_pod(self, state: CycleState, pod: PodInfo, added: PodInfo, node: NodeInfo) -> None:
        """A pod counted on `node` (preemption's dry run)."""
        s: _FilterState | None = state.data.get(self.name)
        if s is not None:
            s.update(pod, added, node, 1)

    def remove_pod(self, state: CycleState, pod: PodInfo, removed: PodInfo, node: NodeInfo) -> None:
        """A pod no longer counted on `node`."""
        s: _FilterState | None = state.data.get(self.name)
        if s is not None:
            s.update(pod, removed, node, -1)

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        """`count + self - min > maxSkew` rejects."""
        s: _FilterState = state.data[self.name]
        for i, c in enumerate(s.constraints):
            value = node.labels.get(c.key)
            if value is None:
                return MISSING_LABEL
            counts = s.counts[i]
            minimum = min(counts.values()) if counts else 0
            if len(counts) < c.min_domains:
                minimum = 0
            if counts.get(value, 0) + s.self_match[i] - minimum > c.max_skew:
                return REJECTED
        return None

    # --- score --------------------------------------------------------------------------

    def _default_selector(self, pod: PodInfo) -> JSON | None:
        """helper.DefaultSelector: Services, ReplicaSets and StatefulSets selecting the pod."""
        informers = self.handle.informers
        reqs: dict[str, str] = {}
        exprs: list[JSON] = []
        for svc in informers.get("services").by_namespace.get(pod.namespace, {}).values():
            sel = (svc.get("spec") or {}).get("selector") or {}
            if sel and all(pod.labels.get(k) == v for k, v in sel.items()):
                reqs.update(sel)
        for plural in ("replicasets", "statefulsets"):
            for obj in informers.get(plural).by_namespace.get(pod.namespace, {}).values():
                sel = (obj.get("spec") or {}).get("selector")
                if sel and selector_matches(sel, pod.labels):
                    reqs.update(sel.get("matchLabels") or {})
                    exprs += list(sel.get("matchExpressions") or ())
        if not reqs and not exprs:
            return None
        return {"matchLabels": reqs, "matchExpressions": exprs}

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        """initPreScoreState: domains of the feasible nodes, counts over every node."""
        raw = (pod.pod.get("spec") or {}).get("topologySpreadConstraints") or []
        system_defaulted = not raw
        if raw:
            constraints = _constraints(pod, raw, "ScheduleAnyway")
        else:
            selector = self._default_selector(pod)
            if selector is None:
                return SKIP
            constraints = [
                Constraint(int(str(c["maxSkew"])), str(c["topologyKey"]), selector, 1, True, False)
                for c in SYSTEM_DEFAULT_CONSTRAINTS
            ]
        if not constraints:
            return SKIP
        require_all = not system_defaulted
        s = _ScoreState(constraints, [{} for _ in constraints])
        for node in nodes:
            if require_all and not _has_keys(node.labels, constraints):
                s.ignored.add(node.name)
                continue
            for i, c in enumerate(constraints):
                if c.key != LABEL_HOSTNAME and c.key in node.labels:
                    s.counts[i].setdefault(node.labels[c.key], 0)
        feasible = len(nodes) - len(s.ignored)
        for i, c in enumerate(constraints):
            size = feasible if c.key == LABEL_HOSTNAME else len(s.counts[i])
            s.weights.append(math.log(size + 2))
        for node in self.handle.snapshot.node_infos():
            if require_all and not _has_keys(node.labels, constraints):
                continue
            for i, c in enumerate(constraints):
                if c.key == LABEL_HOSTNAME or not c.includes(pod, node):
                    continue
                value = node.labels.get(c.key)
                if value is None or value not in s.counts[i]:
                    continue
                s.counts[i][value] += c.count(pod, node)
        state.data[self.name + "/score"] = s
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> float:
        """Sum over constraints of count * weight + (maxSkew - 1)."""
        s: _ScoreState = state.data[self.name + "/score"]
        if node.name in s.ignored:
            return 0.0
        total = 0.0
        for i, c in enumerate(s.constraints):
            value = node.labels.get(c.key)
            if value is None:
                continue
            count = c.count(pod, node) if c.key == LABEL_HOSTNAME else s.counts[i].get(value, 0)
            total += count * s.weights[i] + (c.max_skew - 1)
        return float(round(total))

    def normalize(self, state: CycleState, pod: PodInfo, scores: dict[str, float]) -> None:
        """Fewest matching pods score 100: `100 * (max + min - score) / max`."""
        s: _ScoreState = state.data[self.name + "/score"]
        considered = [v for k, v in scores.items() if k not in s.ignored]
        if not considered:
            return
        low, high = min(considered), max(considered)
        for k, v in scores.items():
            if k in s.ignored:
                scores[k] = 0.0
            elif high == 0:
                scores[k] = float(MAX_NODE_SCORE)
            else:
                scores[k] = MAX_NODE_SCORE * (high + low - v) / high
