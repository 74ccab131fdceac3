"""InterPodAffinity: pod affinity and anti-affinity.

pkg/scheduler/framework/plugins/interpodaffinity: filtering.go, scoring.go, plugin.go.

Filter, with counts per topology pair (key, value) made in PreFilter over every node:
- the pod's required affinity: every term needs a matching pod in the node's domain, except
  for the first pod of a group (nothing matches anywhere, and the pod matches its own terms);
  a node lacking the term's key fails: "node(s) didn't match pod affinity rules",
  UnschedulableAndUnresolvable;
- the pod's required anti-affinity: no matching pod in the node's domain,
  "node(s) didn't match pod anti-affinity rules", Unschedulable;
- existing pods' required anti-affinity, the symmetric check: no pod whose anti-affinity term
  matches this pod may share the term's domain, "node(s) didn't satisfy existing pods
  anti-affinity rules", Unschedulable.
Score: the pod's preferred (anti-)affinity weights, existing pods' preferred (anti-)affinity
towards it, and existing pods' required affinity towards it (hardPodAffinityWeight 1), summed
per domain and normalized from the lowest to the highest node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pytest_k8sdr.sim.controllers.scheduler.framework import (
    EVENT_ASSIGNED_POD_ADD,
    EVENT_ASSIGNED_POD_DELETE,
    EVENT_ASSIGNED_POD_UPDATE,
    EVENT_NODE_ADD,
    EVENT_NODE_UPDATE,
    MAX_NODE_SCORE,
    SKIP,
    AffinityTerm,
    CycleState,
    FilterPlugin,
    NodeInfo,
    PodInfo,
    PreFilterPlugin,
    PreScorePlugin,
    ScorePlugin,
    Status,
)

__all__ = ["InterPodAffinity"]

AFFINITY_REJECTED = Status.unresolvable("node(s) didn't match pod affinity rules")
ANTI_AFFINITY_REJECTED = Status.unschedulable("node(s) didn't match pod anti-affinity rules")
EXISTING_ANTI_AFFINITY_REJECTED = Status.unschedulable(
    "node(s) didn't satisfy existing pods anti-affinity rules"
)
HARD_POD_AFFINITY_WEIGHT = 1  # InterPodAffinityArgs default

Pair = tuple[str, str]


def _bump(counts: dict[Pair, int], pair: Pair, delta: int) -> None:
    counts[pair] = counts.get(pair, 0) + delta


@dataclass
class _FilterState:
    existing_anti: dict[Pair, int]
    affinity: dict[Pair, int]
    anti: dict[Pair, int]

    def clone(self) -> _FilterState:
        return _FilterState(dict(self.existing_anti), dict(self.affinity), dict(self.anti))


class InterPodAffinity(PreFilterPlugin, FilterPlugin, PreScorePlugin, ScorePlugin):
    """Pod affinity and anti-affinity, required and preferred, both directions."""

    name = "InterPodAffinity"
    events = frozenset(
        {
            EVENT_NODE_ADD,
            EVENT_NODE_UPDATE,
            EVENT_ASSIGNED_POD_ADD,
            EVENT_ASSIGNED_POD_UPDATE,
            EVENT_ASSIGNED_POD_DELETE,
        }
    )

    def _ns_labels(self, namespace: str) -> Mapping[str, str]:
        return self.handle.namespace_labels(namespace)

    def _update(
        self, s: _FilterState, pod: PodInfo, other: PodInfo, node: NodeInfo, delta: int
    ) -> None:
        labels = node.labels
        ns_labels = self._ns_labels
        for term in other.required_anti_affinity:
            value = labels.get(term.topology_key)
            if value is not None and term.matches(pod, ns_labels):
                _bump(s.existing_anti, (term.topology_key, value), delta)
        for terms, counts in (
            (pod.required_affinity, s.affinity),
            (pod.required_anti_affinity, s.anti),
        ):
            for term in terms:
                value = labels.get(term.topology_key)
                if value is not None and term.matches(other, ns_labels):
                    _bump(counts, (term.topology_key, value), delta)

    def pre_filter(
        self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]
    ) -> tuple[set[str] | None, Status | None]:
        """Counts per topology pair: existing pods' anti-affinity, the pod's own terms."""
        snapshot = self.handle.snapshot
        own = bool(pod.required_affinity or pod.required_anti_affinity)
        with_anti = snapshot.have_pods_with_required_anti_affinity()
        if not own and not with_anti:
            return None, SKIP
        s = _FilterState({}, {}, {})
        ns_labels = self._ns_labels
        for node in with_anti:
            for other in node.pods_with_required_anti_affinity.values():
                for term in other.required_anti_affinity:
                    value = node.labels.get(term.topology_key)
                    if value is not None and term.matches(pod, ns_labels):
                        _bump(s.existing_anti, (term.topology_key, value), 1)
        if own:
            for node in nodes:
                for terms, counts in (
                    (pod.required_affinity, s.affinity),
                    (pod.required_anti_affinity, s.anti),
                ):
                    for term in terms:
                        value = node.labels.get(term.topology_key)
                        if value is None:
                            continue
                        n = sum(1 for o in node.pods.values() if term.matches(o, ns_labels))
                        if n:
                            _bump(counts, (term.topology_key, value), n)
        state.data[self.name] = s
        return None, None

    def add_pod(self, state: CycleState, pod: PodInfo, added: PodInfo, node: NodeInfo) -> None:
        """A pod counted on `node` (preemption)."""
        s: _FilterState | None = state.data.get(self.name)
        if s is not None:
            self._update(s, pod, added, node, 1)

    def remove_pod(self, state: CycleState, pod: PodInfo, removed: PodInfo, node: NodeInfo) -> None:
        """A pod no longer counted on `node`."""
        s: _FilterState | None = state.data.get(self.name)
        if s is not None:
            self._update(s, pod, removed, node, -1)

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        """Affinity, then anti-affinity, then existing pods' anti-affinity (filtering.go)."""
        s: _FilterState = state.data[self.name]
        labels = node.labels
        if pod.required_affinity and not self._satisfies_affinity(s, pod, labels):
            return AFFINITY_REJECTED
        for term in pod.required_anti_affinity:
            value = labels.get(term.topology_key)
            if value is not None and s.anti.get((term.topology_key, value), 0) > 0:
                return ANTI_AFFINITY_REJECTED
        if s.existing_anti:
            for pair in labels.items():
                if s.existing_anti.get(pair, 0) > 0:
                    return EXISTING_ANTI_AFFINITY_REJECTED
        return None

    def _satisfies_affinity(self, s: _FilterState, pod: PodInfo, labels: Mapping[str, str]) -> bool:
        pods_exist = True
        for term in pod.required_affinity:
            value = labels.get(term.topology_key)
            if value is None:
                return False
            if s.affinity.get((term.topology_key, value), 0) <= 0:
                pods_exist = False
        if pods_exist:
            return True
        # The first pod of a group: nothing anywhere matches, and the pod matches its terms.
        return not any(v > 0 for v in s.affinity.values()) and all(
            t.matches(pod, self._ns_labels) for t in pod.required_affinity
        )

    # --- score --------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        """Weights per topology pair from every relevant existing pod (scoring.go)."""
        has_preferred = bool(pod.preferred_affinity or pod.preferred_anti_affinity)
        snapshot = self.handle.snapshot
        candidates = snapshot.node_infos() if has_preferred else snapshot.have_pods_with_affinity()
        if not candidates:
            return SKIP
        scores: dict[Pair, int] = {}
        ns_labels = self._ns_labels

        def add(terms: Iterable[tuple[AffinityTerm, int]], target: PodInfo, node: NodeInfo) -> None:
            for term, weight in terms:
                value = node.labels.get(term.topology_key)
                if value is not None and term.matches(target, ns_labels):
                    _bump(scores, (term.topology_key, value), weight)

        for node in candidates:
            others = node.pods.values() if has_preferred else node.pods_with_affinity.values()
            for other in others:
                add(((w.term, w.weight) for w in pod.preferred_affinity), other, node)
                add(((w.term, -w.weight) for w in pod.preferred_anti_affinity), other, node)
                if other.has_affinity:
                    add(((t, HARD_POD_AFFINITY_WEIGHT) for t in other.required_affinity), pod, node)
                    add(((w.term, w.weight) for w in other.preferred_affinity), pod, node)
                    add(((w.term, -w.weight) for w in other.preferred_anti_affinity), pod, node)
        if not scores:
            return SKIP
        state.data[self.name + "/score"] = scores
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> float:
        """The sum over the node's labels of the pair weights."""
        scores: dict[Pair, int] = state.data[self.name + "/score"]
        return float(sum(scores.get(pair, 0) for pair in node.labels.items()))

    def normalize(self, state: CycleState, pod: PodInfo, scores: dict[str, float]) -> None:
        """`100 * (score - min) / (max - min)`, 0 when all are equal."""
        if not scores:
            return
        low, high = min(scores.values()), max(scores.values())
        spread = high - low
        for k, v in scores.items():
            scores[k] = MAX_NODE_SCORE * (v - low) / spread if spread > 0 else 0.0
